"""An optional PyTorch Lightning callback that logs latent health through :class:`RunWriter`.

SIGReg (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) — the mean over
slices of the Epps–Pulley statistic ``EP(x) = N sum_k c_k [(Cbar_k - exp(-t_k^2/2))^2 +
Sbar_k^2]`` — and the rest of the per-step summary are written by
:class:`sigreg_core.runs.RunWriter`; this module only connects it to Lightning's
training loop.  Lightning is imported only when :func:`LatentHealthCallback` is
called (it is not a dependency of ``sigreg_core``)::

    from sigreg_core.runs.lightning import LatentHealthCallback
    trainer = Trainer(callbacks=[LatentHealthCallback("runs/my-run", every=100)])

The embeddings of a step are taken, in this order, from ``embeddings_fn(trainer,
pl_module, outputs, batch)`` if given; from ``outputs[key]`` when ``training_step``
returns a dict (``key`` defaults to ``"embeddings"``); or from the attribute
``pl_module.<key>``.  The user's scalars are the scalar entries of
``trainer.callback_metrics`` (what ``self.log`` recorded: loss, lambda, ...).  Only
global rank 0 writes; the writer is closed when training ends.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import torch

from sigreg_core.runs import RunWriter

__all__ = ["LatentHealthCallback", "LatentHealthLogic", "import_lightning_callback"]


def import_lightning_callback():
    """Lightning's ``Callback`` base class (``lightning.pytorch``, else ``pytorch_lightning``)."""
    try:
        from lightning.pytorch.callbacks import Callback  # type: ignore

        return Callback
    except ImportError:
        pass
    try:
        from pytorch_lightning.callbacks import Callback  # type: ignore

        return Callback
    except ImportError:
        raise ImportError("LatentHealthCallback needs PyTorch Lightning: pip install lightning "
                          "(or use sigreg_core.runs.RunWriter directly in a plain PyTorch loop)") from None


class LatentHealthLogic:
    """The callback's behaviour, independent of Lightning (duck-typed trainer and module)."""

    def __init__(self, run_dir, every: int = 100, *, key: str = "embeddings",
                 embeddings_fn: Optional[Callable[..., Any]] = None, **writer_kwargs) -> None:
        self.run_dir = run_dir
        self.every = int(every)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.key = key
        self.embeddings_fn = embeddings_fn
        self.writer_kwargs = writer_kwargs
        self.writer: Optional[RunWriter] = None
        self._missing_warned = False

    # -- helpers
    def _writer(self) -> RunWriter:
        if self.writer is None:
            self.writer = RunWriter(self.run_dir, every=self.every, **self.writer_kwargs)
        return self.writer

    def _embeddings(self, trainer, pl_module, outputs, batch):
        if self.embeddings_fn is not None:
            return self.embeddings_fn(trainer, pl_module, outputs, batch)
        if isinstance(outputs, dict) and self.key in outputs:
            return outputs[self.key]
        return getattr(pl_module, self.key, None)

    @staticmethod
    def _scalars(trainer) -> dict:
        out = {}
        for k, v in dict(getattr(trainer, "callback_metrics", {}) or {}).items():
            if isinstance(v, torch.Tensor):
                if v.numel() == 1:
                    out[str(k)] = float(v.detach().float().cpu())
            elif isinstance(v, (int, float)):
                out[str(k)] = float(v)
        return out

    # -- the hooks Lightning calls
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not getattr(trainer, "is_global_zero", True):
            return
        step = int(getattr(trainer, "global_step", batch_idx))
        if step % self.every != 0:
            return
        emb = self._embeddings(trainer, pl_module, outputs, batch)
        if emb is None:
            if not self._missing_warned:
                self._missing_warned = True
                warnings.warn(f"LatentHealthCallback: no embeddings at step {step}: return a dict with "
                              f"'{self.key}' from training_step, set pl_module.{self.key}, or pass embeddings_fn",
                              RuntimeWarning, stacklevel=2)
            return
        with torch.no_grad():
            self._writer().log(step, emb.detach() if isinstance(emb, torch.Tensor) else emb, **self._scalars(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def teardown(self, trainer, pl_module, stage=None) -> None:
        self.on_train_end(trainer, pl_module)


def LatentHealthCallback(run_dir, every: int = 100, **kwargs):
    """A Lightning ``Callback`` logging latent health to ``run_dir`` every ``every`` global steps.

    Keyword arguments: ``key``, ``embeddings_fn`` (see the module docstring) and any
    :class:`RunWriter` argument (``max_rows``, ``keep_last``, ``keep_every``,
    ``num_slices``, ``preset``, ``seed``, ``metadata``).
    """
    base = import_lightning_callback()
    cls = type("LatentHealthCallback", (LatentHealthLogic, base), {})
    return cls(run_dir, every, **kwargs)
