"""Moved to :mod:`sigreg_core.integrations.lightning`; this name stays importable for existing code.

The callback logs SIGReg (the sliced Epps–Pulley statistic of LeJEPA, arXiv 2511.08544)
and the rest of the per-step summary through :class:`sigreg_core.runs.RunWriter`.
"""
from sigreg_core.integrations.lightning import (  # noqa: F401 - re-exports
    LatentHealthCallback,
    LatentHealthLogic,
    TrainerLoggerSink,
    gather_rows,
    import_lightning_callback,
)

__all__ = ["LatentHealthCallback", "LatentHealthLogic", "TrainerLoggerSink", "gather_rows", "import_lightning_callback"]
