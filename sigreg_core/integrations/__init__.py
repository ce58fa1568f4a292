"""latent-health inside the tools users already run: Lightning, TensorBoard, W&B and alerts.

Every logged step of a :class:`sigreg_core.runs.RunWriter` is summarised once — SIGReg,
the mean over M unit directions of the Epps–Pulley statistic
``EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2]``
(LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312), its multiple of the exact
null mean, the overall p-value, the verdict, RankMe and the std of L2-normalised rows —
and handed, as a :class:`~sigreg_core.integrations.base.StepRecord`, to the writer's
*sinks*: :class:`~.tensorboard.TensorBoardSink` (scalars + a histogram of the per-slice
statistics), :class:`~.wandb.WandbSink` (the same through ``wandb.log``),
:class:`~.alerts.AlertSink` (a webhook message and/or a command when a run turns
unhealthy (each graded level) or collapsed, from a background thread) and, inside Lightning, the Trainer's
own loggers (:mod:`.lightning`).  Each module imports its third-party package lazily,
so ``import sigreg_core`` and the loss never pull in Lightning, TensorBoard or W&B.
"""
from __future__ import annotations

import importlib

__all__ = ["StepRecord", "headline", "severity", "TensorBoardSink", "WandbSink", "AlertSink",
           "LatentHealthCallback", "TrainerLoggerSink"]

_LAZY = {
    "StepRecord": "base", "headline": "base", "severity": "base",
    "TensorBoardSink": "tensorboard", "WandbSink": "wandb", "AlertSink": "alerts",
    "LatentHealthCallback": "lightning", "TrainerLoggerSink": "lightning",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
