"""PyTorch Lightning: a callback that logs latent health to a run folder and the Trainer's loggers.

SIGReg (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) — the mean over
slices of the Epps–Pulley statistic ``EP(x) = N sum_k c_k [(Cbar_k - exp(-t_k^2/2))^2 +
Sbar_k^2]`` — and the rest of the per-step summary are computed and written by
:class:`sigreg_core.runs.RunWriter`; this module connects it to Lightning's training
loop.  Lightning is imported only when :func:`LatentHealthCallback` is called (it is not
a dependency of ``sigreg_core``)::

    from sigreg_core.integrations.lightning import LatentHealthCallback
    trainer = Trainer(callbacks=[LatentHealthCallback("runs/my-run", every=100)],
                      logger=TensorBoardLogger("tb"))

Every ``every`` optimizer steps (``trainer.global_step``; with gradient accumulation a
step is logged once) the callback

* takes the step's embeddings, in this order, from ``embeddings_fn(trainer, pl_module,
  outputs, batch)`` if given; from ``outputs[key]`` when ``training_step`` returns a dict
  (``key`` defaults to ``"embeddings"``); or from the attribute ``pl_module.<key>``;
* takes the step's class labels, when there are any, from ``labels_fn(trainer, pl_module,
  outputs, batch)`` if given; else from ``outputs[labels_key]`` (``labels_key`` defaults to
  ``"labels"``; None turns labels off) or from ``batch[labels_key]`` when the batch is a dict;
  with labels the writer adds held-out k-NN and linear-probe accuracy to the step
  (:meth:`sigreg_core.runs.RunWriter.log`, ``labels=``; bounded to ``quality_rows`` samples);
* writes the run folder the Monitor page reads, with the scalar entries of
  ``trainer.callback_metrics`` (what ``self.log`` recorded: loss, lambda, ...);
* and logs the headline numbers (:func:`sigreg_core.integrations.base.headline`, under
  ``latent_health/``) through every logger the Trainer has (``logger.log_metrics``:
  TensorBoard, CSV, W&B, MLflow, ...), plus the per-slice histogram where the logger's
  ``experiment`` can draw one (TensorBoard);
* and hands the step to any extra ``sinks`` (alerts, a separate TensorBoard or W&B sink).

Under DDP only global rank 0 writes.  With ``gather=True`` every rank's embeddings are
first collected on rank 0's side (:func:`gather_rows`: a collective every rank joins at the
logged step; ranks may hold different numbers of rows, or none), so the summary sees the
global batch; by default rank 0 scores its own shard.  The writer and the sinks are closed
when training ends.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Sequence

import torch

from sigreg_core.integrations.base import StepRecord, headline, per_slice_values
from sigreg_core.runs import RunWriter

__all__ = ["LatentHealthCallback", "LatentHealthLogic", "TrainerLoggerSink", "gather_rows", "import_lightning_callback"]

DEFAULT_PREFIX = "latent_health"


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


def gather_rows(z: Optional[torch.Tensor], device=None) -> Optional[torch.Tensor]:
    """All ranks' embedding rows, concatenated in rank order, on every rank (a collective).

    Each rank's ``z`` (..., N_r, D) is folded to (N_r, D) rows; the ranks first exchange
    (N_r, D), then every rank pads its rows to max N_r, ``all_gather`` runs once, and the
    padding is cut off.  A rank without embeddings (``z`` None) takes part with 0 rows, so
    nobody waits forever.  Gathered as float32 on ``z``'s device (``device`` for a rank
    without embeddings: the module's device, a CUDA one under NCCL).  Without an initialised
    process group (or with one process) ``z`` is returned as it is.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    world = dist.get_world_size()
    dev = z.device if z is not None else torch.device(device if device is not None else "cpu")
    rows = None if z is None else z.detach().reshape(-1, z.shape[-1]).to(torch.float32).contiguous()
    shape = torch.tensor([0, 0] if rows is None else list(rows.shape), dtype=torch.long, device=dev)
    shapes = [torch.zeros_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    counts = [int(s[0]) for s in shapes]
    dim = max(int(s[1]) for s in shapes)
    if dim == 0:
        return None  # no rank had embeddings
    if any(int(s[1]) not in (0, dim) for s in shapes):
        raise ValueError(f"gather_rows: ranks disagree on the embedding dimension: {[int(s[1]) for s in shapes]}")
    padded = torch.zeros(max(counts), dim, dtype=torch.float32, device=dev)
    if rows is not None and rows.shape[0]:
        padded[: rows.shape[0]] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts)])


class TrainerLoggerSink:
    """A run-writer sink that logs the headline numbers through a Trainer's loggers.

    ``logger.log_metrics({"<prefix>/<key>": value}, step=step)`` for each of
    ``trainer.loggers``; where a logger's ``experiment`` has ``add_histogram`` (TensorBoard)
    the per-slice statistics go there as a histogram too.
    """

    def __init__(self, trainer: Any, *, prefix: str = DEFAULT_PREFIX, histogram: bool = True) -> None:
        self.trainer = trainer
        self.prefix = str(prefix).strip("/")
        self.histogram = bool(histogram)

    def _loggers(self) -> list:
        loggers = getattr(self.trainer, "loggers", None)
        if loggers is None:
            one = getattr(self.trainer, "logger", None)
            loggers = [] if one is None else [one]
        return list(loggers)

    def log_step(self, record: StepRecord) -> None:
        metrics = {f"{self.prefix}/{k}": v for k, v in headline(record).items()}
        values = per_slice_values(record) if self.histogram else None
        for lg in self._loggers():
            lg.log_metrics(metrics, step=int(record.step))
            if values is not None:
                exp = getattr(lg, "experiment", None)
                if hasattr(exp, "add_histogram"):
                    exp.add_histogram(f"{self.prefix}/slice_statistic", values, int(record.step))

    def close(self) -> None:
        """Nothing to close: the loggers belong to the Trainer."""


class LatentHealthLogic:
    """The callback's behaviour, independent of Lightning (duck-typed trainer and module)."""

    def __init__(self, run_dir, every: int = 100, *, key: str = "embeddings",
                 embeddings_fn: Optional[Callable[..., Any]] = None, labels_key: Optional[str] = "labels",
                 labels_fn: Optional[Callable[..., Any]] = None, log_to_trainer: bool = True,
                 gather: bool = False, sinks: Optional[Sequence] = None, prefix: str = DEFAULT_PREFIX,
                 **writer_kwargs) -> None:
        self.run_dir = run_dir
        self.every = int(every)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.key = key
        self.embeddings_fn = embeddings_fn
        self.labels_key = labels_key
        self.labels_fn = labels_fn
        self.log_to_trainer = bool(log_to_trainer)
        self.gather = bool(gather)
        self.sinks = list(sinks or [])
        self.prefix = prefix
        self.writer_kwargs = writer_kwargs
        self.writer: Optional[RunWriter] = None
        self._missing_warned = False
        self._last_step: Optional[int] = None

    # -- helpers
    def _writer(self, trainer) -> RunWriter:
        if self.writer is None:
            sinks = list(self.sinks)
            if self.log_to_trainer:
                sinks.append(TrainerLoggerSink(trainer, prefix=self.prefix))
            self.writer = RunWriter(self.run_dir, every=self.every, sinks=sinks, **self.writer_kwargs)
        return self.writer

    def _embeddings(self, trainer, pl_module, outputs, batch):
        if self.embeddings_fn is not None:
            return self.embeddings_fn(trainer, pl_module, outputs, batch)
        if isinstance(outputs, dict) and self.key in outputs:
            return outputs[self.key]
        return getattr(pl_module, self.key, None)

    def _labels(self, trainer, pl_module, outputs, batch):
        """The step's class labels (one per sample) or None: ``labels_fn``, ``outputs[labels_key]``,
        ``batch[labels_key]`` (dict batches), in that order."""
        if self.labels_fn is not None:
            return self.labels_fn(trainer, pl_module, outputs, batch)
        if self.labels_key is None:
            return None
        for source in (outputs, batch):
            if isinstance(source, dict) and self.labels_key in source:
                return source[self.labels_key]
        return None

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
        step = int(getattr(trainer, "global_step", batch_idx))
        if step % self.every != 0 or step == self._last_step:
            return  # not a logged step, or the same optimizer step again (gradient accumulation)
        self._last_step = step
        emb = self._embeddings(trainer, pl_module, outputs, batch)
        if self.gather and int(getattr(trainer, "world_size", 1)) > 1:
            if emb is not None and not isinstance(emb, torch.Tensor):
                emb = torch.as_tensor(emb)
            with torch.no_grad():  # a collective: every rank takes part, rank 0 writes
                emb = gather_rows(emb, device=getattr(pl_module, "device", None))
        if not getattr(trainer, "is_global_zero", True):
            return
        if emb is None:
            if not self._missing_warned:
                self._missing_warned = True
                warnings.warn(f"LatentHealthCallback: no embeddings at step {step}: return a dict with "
                              f"'{self.key}' from training_step, set pl_module.{self.key}, or pass embeddings_fn",
                              RuntimeWarning, stacklevel=2)
            return
        labels = self._labels(trainer, pl_module, outputs, batch)
        if labels is not None and self.gather and int(getattr(trainer, "world_size", 1)) > 1:
            labels = None  # the rows were gathered across ranks, the labels were not: no probes
            if not getattr(self, "_gather_labels_warned", False):
                self._gather_labels_warned = True
                warnings.warn("LatentHealthCallback: labels are not gathered across ranks (gather=True); "
                              "the probes are skipped", RuntimeWarning, stacklevel=2)
        if isinstance(labels, torch.Tensor):
            labels = labels.detach()
        with torch.no_grad():
            self._writer(trainer).log(step, emb.detach() if isinstance(emb, torch.Tensor) else emb,
                                      labels=labels, **self._scalars(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def teardown(self, trainer, pl_module, stage=None) -> None:
        self.on_train_end(trainer, pl_module)


def LatentHealthCallback(run_dir, every: int = 100, **kwargs):
    """A Lightning ``Callback`` logging latent health to ``run_dir`` every ``every`` global steps.

    Keyword arguments: ``key``, ``embeddings_fn``, ``labels_key`` / ``labels_fn`` (class labels of the
    step, for k-NN and linear-probe accuracy; see the module docstring), ``gather`` (collect every DDP rank's rows
    before scoring; see the module docstring);
    ``log_to_trainer`` (default True: the headline numbers go to the Trainer's loggers under
    ``prefix``, default ``latent_health``); ``sinks`` (extra :mod:`sigreg_core.integrations`
    sinks: alerts, TensorBoard, W&B); and any :class:`RunWriter` argument (``max_rows``,
    ``keep_last``, ``keep_every``, ``num_slices``, ``preset``, ``seed``, ``metadata``, ``quality_rows``).
    """
    base = import_lightning_callback()
    cls = type("LatentHealthCallback", (LatentHealthLogic, base), {})
    return cls(run_dir, every, **kwargs)
