"""The Lightning callback's logic with a duck-typed trainer and module, through the old import path.

The real ``lightning.Trainer`` is exercised in test_integrations_lightning.py."""
from __future__ import annotations

import sys

import pytest
import torch

from sigreg_core.runs.lightning import LatentHealthCallback, LatentHealthLogic
from sigreg_core.runs import RunReader


class FakeTrainer:
    def __init__(self, rank0=True):
        self.global_step = 0
        self.is_global_zero = rank0
        self.callback_metrics = {}


class FakeModule:
    embeddings = None


def _fit(cb, trainer, module, steps, outputs_fn):
    for i in range(steps):
        trainer.global_step = i
        trainer.callback_metrics = {"loss": torch.tensor(1.0 / (i + 1)), "lam": 0.09, "vec": torch.ones(3)}
        cb.on_train_batch_end(trainer, module, outputs_fn(i), None, i)
    cb.on_train_end(trainer, module)


def test_logs_outputs_dict_every_k_steps(tmp_path):
    cb = LatentHealthLogic(tmp_path / "r", every=3, num_slices=16, max_rows=64)
    g = torch.Generator().manual_seed(0)
    _fit(cb, FakeTrainer(), FakeModule(), 8,
         lambda i: {"loss": torch.tensor(0.0), "embeddings": torch.randn(80, 4, generator=g, requires_grad=True)})
    ts = RunReader(tmp_path / "r").timeseries()
    assert list(ts["step"]) == [0, 3, 6]
    assert list(ts["loss"]) == pytest.approx([1.0, 0.25, 1 / 7])
    assert list(ts["lam"]) == [0.09, 0.09, 0.09] and "vec" not in ts.columns  # only scalars
    assert (ts["n"] == 64).all() and cb.writer is None  # closed at the end of training


def test_module_attribute_and_custom_function(tmp_path):
    m = FakeModule()

    def outputs(i):
        m.embeddings = torch.randn(30, 3)
        return torch.tensor(0.0)  # training_step returned just the loss

    cb = LatentHealthLogic(tmp_path / "a", every=2, summary=False)
    _fit(cb, FakeTrainer(), m, 4, outputs)
    assert list(RunReader(tmp_path / "a").timeseries()["step"]) == [0, 2]
    cb = LatentHealthLogic(tmp_path / "b", every=1, summary=False,
                           embeddings_fn=lambda tr, mod, out, batch: torch.full((5, 2), float(tr.global_step)))
    _fit(cb, FakeTrainer(), m, 2, lambda i: None)
    assert RunReader(tmp_path / "b").snapshot(1).tolist() == [[1.0, 1.0]] * 5


def test_only_rank_zero_writes_and_missing_embeddings_warn_once(tmp_path):
    cb = LatentHealthLogic(tmp_path / "r1", every=1, summary=False)
    _fit(cb, FakeTrainer(rank0=False), FakeModule(), 3, lambda i: {"embeddings": torch.randn(4, 2)})
    assert not (tmp_path / "r1").exists()
    cb = LatentHealthLogic(tmp_path / "r2", every=1, summary=False)
    with pytest.warns(RuntimeWarning, match="no embeddings") as rec:
        _fit(cb, FakeTrainer(), FakeModule(), 3, lambda i: {"loss": 1.0})
    assert len([r for r in rec if "no embeddings" in str(r.message)]) == 1
    with pytest.raises(ValueError):
        LatentHealthLogic(tmp_path, every=0)


def test_old_import_path_gives_the_integration_and_the_callback_is_lazy(tmp_path):
    import subprocess

    import sigreg_core.integrations.lightning as new

    assert LatentHealthCallback is new.LatentHealthCallback and LatentHealthLogic is new.LatentHealthLogic
    # importing the callback module does not import Lightning; creating the callback does
    code = ("import sys; from sigreg_core.runs.lightning import LatentHealthCallback; "
            "assert 'lightning' not in sys.modules; "
            f"cb = LatentHealthCallback({str(tmp_path)!r}, every=5); "
            "import lightning.pytorch as pl; assert isinstance(cb, pl.Callback) and 'lightning' in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
