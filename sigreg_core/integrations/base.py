"""What every integration receives from a logged step, and the headline numbers it logs.

A :class:`StepRecord` carries one step's summary (:func:`sigreg_core.runs.summary.summarize`:
SIGReg — the mean over M slices of the Epps–Pulley statistic
``EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2]``,
LeJEPA arXiv 2511.08544 — with its multiple of the exact null mean
``sum_k c_k (1 - exp(-t_k^2))``, the overall p-value, the verdict, RankMe (Garrido et
al., ICML 2023) and the std of L2-normalised rows (Chen & He 2021)), the M per-slice
statistics and the user's scalars.  :func:`headline` turns it into the flat dict of
numbers that TensorBoard, W&B and Lightning loggers plot, with the verdict as its
severity rank (0 healthy, 1 mild, 2 marked, 3 severe, 4 collapsed: the one ranking of
:mod:`sigreg_core.assessment.severity` that every page uses) so it can be charted and
thresholded.  :func:`dispatch` hands a record to each sink and keeps a failing sink
from ever raising into the training loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import numpy as np

__all__ = ["StepRecord", "HEADLINE_KEYS", "severity", "headline", "per_slice_values",
           "finite_or_none", "dispatch", "close_sinks"]

#: headline numbers, in the order they are logged (tag = prefix + "/" + key)
HEADLINE_KEYS = ("sigreg", "sigreg_over_null", "log10_p", "severity", "rankme", "normalized_std")


@dataclass
class StepRecord:
    """One summarised step, as the run writer hands it to its sinks."""

    step: int
    summary: dict
    per_slice: Optional[np.ndarray] = None
    scalars: dict = field(default_factory=dict)
    run_dir: Optional[str] = None

    @property
    def verdict(self) -> Optional[str]:
        v = self.summary.get("verdict")
        return None if v is None else str(v)


def severity(verdict: Optional[str]) -> Optional[float]:
    """The verdict's rank (0 healthy ... 4 collapsed); None when there is no verdict.

    :func:`sigreg_core.assessment.severity.severity`, so a level the assessment adds is ranked
    here as on the pages.
    """
    from sigreg_core.assessment.severity import severity as rank

    s = rank(verdict)
    return None if s is None or s < 0 else s


def finite_or_none(v) -> Optional[float]:
    """``float(v)`` when it is a finite number, else None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def headline(record: StepRecord) -> dict:
    """The record's headline numbers as ``{key: float}`` (keys of :data:`HEADLINE_KEYS`).

    Missing or non-finite values (a p-value that underflowed, a failed metric) are left
    out rather than logged as NaN, so the charts show gaps, not spikes.
    """
    s = record.summary
    vals = {
        "sigreg": s.get("sigreg"),
        "sigreg_over_null": s.get("sigreg_over_null"),
        "log10_p": s.get("log10_p"),
        "severity": severity(record.verdict),
        "rankme": s.get("rankme"),
        "normalized_std": s.get("normalized_std"),
    }
    out = {}
    for k in HEADLINE_KEYS:
        f = finite_or_none(vals[k])
        if f is not None:
            out[k] = f
    return out


def per_slice_values(record: StepRecord) -> Optional[np.ndarray]:
    """The finite per-slice statistics of the record as float64 (None when absent or empty)."""
    if record.per_slice is None:
        return None
    a = np.asarray(record.per_slice, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    return a if a.size else None


def _name(sink: Any) -> str:
    return type(sink).__name__


def dispatch(sinks: Iterable[Any], record: StepRecord, warn: Callable[[str, str], None]) -> None:
    """Call ``sink.log_step(record)`` for each sink; an exception becomes one warning per sink."""
    for sink in sinks:
        try:
            sink.log_step(record)
        except Exception as exc:  # an integration must never stop training
            warn(f"sink:{_name(sink)}:{id(sink)}",
                 f"{_name(sink)} failed at step {record.step} ({type(exc).__name__}: {' '.join(str(exc).split())})")


def close_sinks(sinks: Iterable[Any]) -> None:
    """Close every sink that has a ``close()``; errors are ignored (the run is ending)."""
    for sink in sinks:
        close = getattr(sink, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
