"""W&B sink in offline mode (no network, no account): the run's .wandb log read back."""
from __future__ import annotations

import pytest
import torch

from integration_helpers import ep_oracle, wait_for_wandb_log, wandb_history, wandb_metrics
from sigreg_core.assessment.severity import severity
from sigreg_core.integrations.base import HEADLINE_KEYS
from sigreg_core.integrations.wandb import WandbSink
from sigreg_core.runs import RunReader, RunWriter

M = 24


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                 "WANDB_DISABLE_GIT": "true", "WANDB_CONSOLE": "off"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    import wandb

    yield wandb
    if wandb.run is not None:
        wandb.run.finish()


def _wandb_file(run):
    from pathlib import Path

    files = list(Path(run.dir).parent.glob("run-*.wandb"))
    assert len(files) == 1, files
    return files[0]


def test_offline_run_history_matches_the_index_and_the_oracle(tmp_path, offline):
    wandb = offline
    run = wandb.init(project="latent-health-test", mode="offline", dir=str(tmp_path), config={"lam": 0.09})
    g = torch.Generator().manual_seed(1)
    batches = {0: torch.randn(200, 6, generator=g),
               5: torch.randn(1, 6, generator=g) + 1e-3 * torch.randn(200, 6, generator=g)}
    with RunWriter(tmp_path / "run", every=5, max_rows=None, num_slices=M, sinks=[WandbSink(run)]) as w:
        for step in range(10):
            run.log({"train/loss": 1.0 / (step + 1)})  # the user's own logging, its own W&B step
            if step in batches:
                assert w.log(step, batches[step])
    path = _wandb_file(run)
    run.finish()
    wait_for_wandb_log(path)

    history = wandb_history(path)
    rows = [r for r in history if "latent_health/step" in r]
    assert [r["latent_health/step"] for r in rows] == [0, 5], (path, history)
    ts = RunReader(tmp_path / "run").timeseries().set_index("step")
    for r in rows:
        step = r["latent_health/step"]
        for k in ("sigreg", "sigreg_over_null", "log10_p", "rankme"):
            assert r[f"latent_health/{k}"] == pytest.approx(ts.loc[step, k], rel=1e-12)
        u = batches[step].double() / batches[step].double().norm(dim=1, keepdim=True)
        assert r["latent_health/normalized_std"] == pytest.approx(u.std(0).mean().item(), rel=1e-3)
        assert r["latent_health/severity"] == severity(ts.loc[step, "verdict"])
        assert r["latent_health/verdict"] == ts.loc[step, "verdict"]
        hist = r["latent_health/slice_statistic"]
        assert hist["_type"] == "histogram" and sum(hist["values"]) == M and len(hist["bins"]) == 64 + 1
        oracle = ep_oracle(batches[step].numpy(), M)
        assert hist["bins"][0] == pytest.approx(oracle.min(), rel=1e-4)
        assert hist["bins"][-1] == pytest.approx(oracle.max(), rel=1e-4)
        assert r["latent_health/sigreg"] == pytest.approx(oracle.mean(), rel=1e-4)
        assert set(f"latent_health/{k}" for k in HEADLINE_KEYS) <= set(r)
    assert [r["latent_health/verdict"] for r in rows] == ["healthy", "collapsed"]
    assert ("latent_health/*", "latent_health/step") in wandb_metrics(path)  # the charts' x-axis
    assert len([r for r in wandb_history(path) if "train/loss" in r]) == 10   # the user's rows untouched


def test_active_run_is_used_and_missing_run_is_a_warning_not_a_crash(tmp_path, offline):
    wandb = offline
    sink = WandbSink(histogram=False)
    with pytest.warns(RuntimeWarning, match="no active W&B run"):
        with RunWriter(tmp_path / "a", every=1, num_slices=8, sinks=[sink]) as w:
            assert w.log(0, torch.randn(50, 4))  # the run folder is still written
    run = wandb.init(project="latent-health-test", mode="offline", dir=str(tmp_path))
    with RunWriter(tmp_path / "b", every=1, num_slices=8, sinks=[sink]) as w:
        w.log(3, torch.randn(50, 4))
    path = _wandb_file(run)
    run.finish()
    wait_for_wandb_log(path)
    rows = [r for r in wandb_history(path) if "latent_health/step" in r]
    assert len(rows) == 1 and rows[0]["latent_health/step"] == 3
    assert "latent_health/slice_statistic" not in rows[0]
    with pytest.raises(ValueError):
        WandbSink(num_bins=1000)
