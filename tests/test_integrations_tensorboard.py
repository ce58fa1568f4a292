"""TensorBoard sink: scalars and the per-slice histogram, read back with TensorBoard's own reader."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from integration_helpers import ep_oracle
from sigreg_core.assessment.severity import severity, verdict_levels
from sigreg_core.integrations.base import HEADLINE_KEYS, StepRecord, headline
from sigreg_core.integrations.tensorboard import TensorBoardSink
from sigreg_core.runs import RunReader, RunWriter

M = 32


def _accumulator(log_dir):
    from tensorboard.backend.event_processing import event_accumulator

    ea = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.SCALARS: 0,
                                                                         event_accumulator.HISTOGRAMS: 0})
    ea.Reload()
    return ea


def _batches():
    g = torch.Generator().manual_seed(3)
    healthy = torch.randn(256, 8, generator=g)
    collapsed = torch.randn(1, 8, generator=g) + 1e-3 * torch.randn(256, 8, generator=g)
    return [(0, healthy), (10, 0.5 * healthy), (20, collapsed)]


def test_scalars_and_histogram_read_back_match_the_index_and_an_independent_oracle(tmp_path):
    sink = TensorBoardSink(log_dir=tmp_path / "tb")
    with RunWriter(tmp_path / "run", every=10, max_rows=None, num_slices=M, sinks=[sink]) as w:
        for step, z in _batches():
            assert w.log(step, z)
    assert sink._writer is None  # the writer closed the sink's own SummaryWriter
    ea = _accumulator(tmp_path / "tb")
    tags = ea.Tags()
    assert set(tags["scalars"]) == {f"latent_health/{k}" for k in HEADLINE_KEYS}
    assert tags["histograms"] == ["latent_health/slice_statistic"]

    ts = RunReader(tmp_path / "run").timeseries().set_index("step")
    read = {k: {e.step: e.value for e in ea.Scalars(f"latent_health/{k}")} for k in HEADLINE_KEYS}
    for k in ("sigreg", "sigreg_over_null", "log10_p", "rankme"):
        assert read[k] == pytest.approx(ts[k].to_dict(), rel=1e-6)  # TB stores float32
    assert read["severity"] == {s: severity(v) for s, v in ts["verdict"].items()}
    levels = verdict_levels()  # healthy first, collapsed last
    assert read["severity"][0] == 0 and read["severity"][20] == levels.index("collapsed") == len(levels) - 1

    for (step, z), ev in zip(_batches(), ea.Histograms("latent_health/slice_statistic")):
        oracle = ep_oracle(z.numpy(), M)
        h = ev.histogram_value
        assert ev.step == step and h.num == M
        assert h.min == pytest.approx(oracle.min(), rel=1e-4) and h.max == pytest.approx(oracle.max(), rel=1e-4)
        assert h.sum == pytest.approx(oracle.sum(), rel=1e-4)
        assert h.sum / h.num == pytest.approx(read["sigreg"][step], rel=1e-4)
        assert sum(h.bucket) == M
    # std of L2-normalised rows, written differently: per-dim std of z / ||z||, averaged
    for step, z in _batches():
        u = z.double() / z.double().norm(dim=1, keepdim=True)
        assert read["normalized_std"][step] == pytest.approx(u.std(0).mean().item(), rel=1e-3)


def test_users_own_writer_and_prefix(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    own = SummaryWriter(log_dir=str(tmp_path / "own"))
    sink = TensorBoardSink(own, prefix="health/", histogram=False)
    rec = StepRecord(5, {"sigreg": 2.0, "sigreg_over_null": 1.9, "log10_p": float("-inf"), "verdict": "mild",
                         "rankme": 7.5, "normalized_std": 0.3}, per_slice=np.ones(4))
    sink.log_step(rec)
    sink.close()  # flushes, does not close the user's writer
    own.add_scalar("user/loss", 1.0, 5)
    own.close()
    ea = _accumulator(tmp_path / "own")
    assert set(ea.Tags()["scalars"]) == {"health/sigreg", "health/sigreg_over_null", "health/severity",
                                         "health/rankme", "health/normalized_std", "user/loss"}
    assert ea.Tags()["histograms"] == []                      # histogram=False
    assert ea.Scalars("health/severity")[0].value == verdict_levels().index("mild") == 1
    assert "log10_p" not in headline(rec)                     # -inf is a gap, not a spike
    with pytest.raises(ValueError):
        TensorBoardSink(prefix="/")


def test_a_failing_sink_warns_once_and_training_goes_on(tmp_path):
    class Broken:
        calls = 0

        def log_step(self, record):
            Broken.calls += 1
            raise OSError("disk gone")

    sink = TensorBoardSink(log_dir=tmp_path / "tb")
    with pytest.warns(RuntimeWarning, match="Broken failed at step 0") as rec:
        with RunWriter(tmp_path / "run", every=1, num_slices=8, sinks=[Broken(), sink]) as w:
            for step in range(3):
                assert w.log(step, torch.randn(64, 4))  # the snapshot is still written
    assert Broken.calls == 3 and len([r for r in rec if "Broken" in str(r.message)]) == 1
    assert len(_accumulator(tmp_path / "tb").Scalars("latent_health/sigreg")) == 3  # later sinks still ran
    assert len(RunReader(tmp_path / "run").timeseries()) == 3


def test_writer_without_sinks_stores_no_per_slice_array(tmp_path):
    with RunWriter(tmp_path / "run", every=1, num_slices=8) as w:
        w.log(0, torch.randn(64, 4))
    row = RunReader(tmp_path / "run").timeseries().iloc[0]
    assert np.isfinite(row["sigreg"])
    import sqlite3, json  # noqa: E401
    summ = json.loads(sqlite3.connect(tmp_path / "run" / "index.sqlite").execute("SELECT summary FROM steps").fetchone()[0])
    assert "per_slice_statistic" not in summ and summ["normalized_std"] > 0


def test_import_sigreg_core_imports_no_integration_package():
    import subprocess

    code = ("import sys, sigreg_core, sigreg_core.integrations, sigreg_core.runs.lightning, "
            "sigreg_core.integrations.alerts, sigreg_core.integrations.tensorboard, sigreg_core.integrations.wandb; "
            "from sigreg_core import SIGReg; import torch; SIGReg(num_slices=4)(torch.randn(8, 3)); "
            "bad = [m for m in ('lightning', 'pytorch_lightning', 'tensorboard', 'wandb', 'torch.utils.tensorboard') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_lightning_tensorboard_logger_is_used_through_its_experiment(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path, name="tb")
    sink = TensorBoardSink(logger)
    sink.log_step(StepRecord(4, {"sigreg": 3.0, "verdict": "collapsed"}, per_slice=np.array([1.0, 2.0, 6.0])))
    sink.close()  # the logger's writer is flushed, not closed (it belongs to the Trainer)
    assert sink.writer is logger.experiment
    ea = _accumulator(logger.log_dir)
    assert [(e.step, e.value) for e in ea.Scalars("latent_health/severity")] == [(4, len(verdict_levels()) - 1)]
    h = ea.Histograms("latent_health/slice_statistic")[0].histogram_value
    assert (h.num, h.min, h.max, h.sum) == (3, 1.0, 6.0, 9.0)
    logger.finalize("success")
