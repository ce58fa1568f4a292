"""The Lightning callback with a real ``lightning.Trainer`` on CPU: run folder, Trainer loggers, DDP."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from sigreg_core.assessment.severity import severity
from sigreg_core.integrations.base import HEADLINE_KEYS
from sigreg_core.runs import RunReader

import lightning.pytorch as pl  # noqa: E402 - a dev requirement: never skipped

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402

from sigreg_core.integrations.lightning import LatentHealthCallback, LatentHealthLogic  # noqa: E402

DIM = 6


class Tiny(pl.LightningModule):
    """A linear encoder pulled towards a constant: its embeddings collapse as it trains."""

    def __init__(self, out_key="embeddings", as_attribute=False):
        super().__init__()
        self.enc = nn.Linear(DIM, DIM)
        with torch.no_grad():  # starts as the identity: N(0, I) inputs give healthy embeddings
            self.enc.weight.copy_(torch.eye(DIM))
            self.enc.bias.zero_()
        self.out_key = out_key
        self.as_attribute = as_attribute

    def training_step(self, batch, batch_idx):
        (x,) = batch
        z = self.enc(x)
        loss = (z - 1.0).pow(2).mean()
        self.log("train_loss", loss)
        if self.as_attribute:
            self.embeddings = z
            return loss
        return {"loss": loss, self.out_key: z}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)  # W shrinks by 1 - 2/DIM per step


def _loader(n_batches, batch=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * batch, DIM, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=batch)


def _trainer(tmp_path, cb, loggers, **kw):
    return pl.Trainer(accelerator="cpu", devices=1, logger=loggers, callbacks=[cb], enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=1,
                      default_root_dir=str(tmp_path), **kw)


def _csv_rows(logger):
    path = Path(logger.log_dir) / "metrics.csv"
    with open(path) as f:
        return list(csv.DictReader(f))


def test_real_trainer_writes_the_run_and_logs_through_its_loggers(tmp_path):
    torch.manual_seed(0)
    csv_logger = CSVLogger(tmp_path, name="csv")
    tb_logger = TensorBoardLogger(tmp_path, name="tb")
    cb = LatentHealthCallback(tmp_path / "run", every=3, num_slices=16, max_rows=None)
    assert isinstance(cb, pl.Callback) and isinstance(cb, LatentHealthLogic)
    trainer = _trainer(tmp_path, cb, [csv_logger, tb_logger], max_steps=12)
    trainer.fit(Tiny(), _loader(12))
    assert cb.writer is None  # closed at the end of training

    ts = RunReader(tmp_path / "run").timeseries().set_index("step")
    assert list(ts.index) == [3, 6, 9, 12]  # global_step after the optimizer step, every 3
    assert (ts["n"] == 64).all() and ts["train_loss"].notna().all()
    assert ts["train_loss"].iloc[-1] < ts["train_loss"].iloc[0]
    levels = [severity(v) for v in ts["verdict"]]  # the callback sees the collapse coming
    assert levels == sorted(levels) and levels[0] < levels[-1] == severity("collapsed")
    assert ts["rankme"].iloc[-1] < 2 < ts["rankme"].iloc[0]

    rows = [r for r in _csv_rows(csv_logger) if r.get("latent_health/sigreg")]
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 12]
    for r in rows:
        s = int(r["step"])
        assert float(r["latent_health/sigreg"]) == pytest.approx(ts.loc[s, "sigreg"], rel=1e-9)
        assert float(r["latent_health/rankme"]) == pytest.approx(ts.loc[s, "rankme"], rel=1e-9)
        assert float(r["latent_health/severity"]) == severity(ts.loc[s, "verdict"])

    from tensorboard.backend.event_processing import event_accumulator

    ea = event_accumulator.EventAccumulator(tb_logger.log_dir, size_guidance={event_accumulator.SCALARS: 0,
                                                                              event_accumulator.HISTOGRAMS: 0})
    ea.Reload()
    assert {f"latent_health/{k}" for k in HEADLINE_KEYS} <= set(ea.Tags()["scalars"])
    assert [e.step for e in ea.Scalars("latent_health/sigreg")] == [3, 6, 9, 12]
    assert [e.value for e in ea.Scalars("latent_health/sigreg")] == pytest.approx(list(ts["sigreg"]), rel=1e-6)
    hist = ea.Histograms("latent_health/slice_statistic")
    assert [h.step for h in hist] == [3, 6, 9, 12] and all(h.histogram_value.num == 16 for h in hist)
    assert [h.histogram_value.sum / 16 for h in hist] == pytest.approx(list(ts["sigreg"]), rel=1e-5)


def test_gradient_accumulation_logs_each_step_once_and_attribute_embeddings(tmp_path):
    class Counting:
        def __init__(self):
            self.steps = []

        def log_step(self, record):
            self.steps.append(record.step)

    sink = Counting()
    cb = LatentHealthCallback(tmp_path / "run", every=2, num_slices=8, sinks=[sink], log_to_trainer=False)
    trainer = _trainer(tmp_path, cb, False, max_steps=4, accumulate_grad_batches=3)
    trainer.fit(Tiny(as_attribute=True), _loader(12))
    # batch ends see global_step 0,0,0,1,1,1,2,2,2,...: each logged step is written once
    assert sink.steps == [0, 2, 4]
    assert list(RunReader(tmp_path / "run").timeseries()["step"]) == [0, 2, 4]


def test_missing_embeddings_warn_once_and_training_finishes(tmp_path):
    cb = LatentHealthCallback(tmp_path / "run", every=1, num_slices=8)
    trainer = _trainer(tmp_path, cb, False, max_steps=3)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        trainer.fit(Tiny(out_key="z"), _loader(3))
    assert trainer.global_step == 3
    assert len([w for w in rec if "no embeddings" in str(w.message)]) == 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_gloo_two_processes_write_once_with_the_gathered_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PL_DISABLE_FORK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    job = Path(__file__).with_name("lightning_ddp_job.py")
    res = subprocess.run([sys.executable, str(job), str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "rank0.done").read_text() == "8" and (tmp_path / "rank1.done").read_text() == "8"
    lines = (tmp_path / "sink.txt").read_text().split()
    calls = [(int(lines[i]), int(lines[i + 1]), int(lines[i + 2])) for i in range(0, len(lines), 3)]
    assert [s for _, s, _ in calls] == [2, 4, 6, 8]  # each logged step once, from one process
    assert len({pid for pid, _, _ in calls}) == 1
    # rank 0's 32 rows + rank 1's 24 (none at step 4): gathered despite the uneven shards
    assert [n for _, _, n in calls] == [56, 32, 56, 56]
    ts = RunReader(tmp_path / "run").timeseries()
    assert list(ts["step"]) == [2, 4, 6, 8] and list(ts["n"]) == [56, 32, 56, 56]
    assert len(list((tmp_path / "run" / "snapshots").iterdir())) == 4
    csv_path = next((tmp_path / "csv").glob("version_*/metrics.csv"))
    with open(csv_path) as f:
        rows = [r for r in csv.DictReader(f) if r.get("latent_health/sigreg")]
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]  # the Trainer's logger, no duplicates


def test_trainer_with_a_wandb_logger_offline(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from integration_helpers import wait_for_wandb_log, wandb_history

    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                 "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = WandbLogger(project="latent-health-test", save_dir=str(tmp_path), offline=True)
    cb = LatentHealthCallback(tmp_path / "run", every=2, num_slices=8, max_rows=None)
    trainer = _trainer(tmp_path, cb, logger, max_steps=4)
    trainer.fit(Tiny(), _loader(4))
    run = logger.experiment
    path = next(Path(run.dir).parent.glob("run-*.wandb"))
    run.finish()
    wait_for_wandb_log(path)
    rows = [r for r in wandb_history(path) if "latent_health/sigreg" in r]
    ts = RunReader(tmp_path / "run").timeseries().set_index("step")
    assert [r["trainer/global_step"] for r in rows] == [2, 4]  # WandbLogger's own step key
    assert [r["latent_health/sigreg"] for r in rows] == pytest.approx([ts.loc[2, "sigreg"], ts.loc[4, "sigreg"]])
    assert all("latent_health/slice_statistic" not in r for r in rows)  # histograms: TensorBoard loggers only
