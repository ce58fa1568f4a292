"""How to read a report's numbers: verdict colours, p-values, references for a healthy set.

* :func:`verdict_tone`, :data:`TONE_COLOURS` — the one place a verdict string maps to a
  colour (the Inspect page and the HTML report); new verdict levels fall in "warn"
  unless they say healthy or collapse.
* :func:`format_p` — p-values as shown: ``< 1e-300`` at the floor of the exact null law
  (p-values are floored there; the log p-value is not).
* :func:`min_p_note` — per-slice p-values are uniform under the null, so the smallest of
  M is Beta(1, M): median ``1 - 2^(-1/M)`` ≈ 0.69 / M, 5 % quantile ``1 - 0.95^(1/M)``.
  The worst slice of a healthy set with M = 1024 shows p ≈ 7e-4 by chance alone.
* :func:`healthy_references` — the companion metrics (RankMe, Garrido et al., ICML 2023;
  VICReg terms, Bardes et al., ICLR 2022; spectrum) of one seeded N(0, I) sample of the
  same shape, since several depend on N / D (Marchenko–Pastur); :func:`metrics_table`
  puts them beside the set's own values.

SIGReg itself: LeJEPA (arXiv 2511.08544), LeWorldModel (arXiv 2603.19312).
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
import pandas as pd

__all__ = ["METRIC_LABELS", "METRIC_NOTES", "TONE_COLOURS", "verdict_tone", "format_p", "min_p_note",
           "healthy_references", "metrics_table"]

#: Display names of the companion metrics (keys of ``Assessment.metrics``).
METRIC_LABELS = {
    "rankme": "RankMe",
    "rankme_fraction": "RankMe / min(N, D)",
    "normalized_std": "std of L2-normalised rows",
    "normalized_std_isotropic": "same, isotropic (1/√D)",
    "vicreg_variance": "VICReg variance term",
    "vicreg_covariance": "VICReg covariance term",
    "spectrum_slope": "spectrum slope",
    "top_eigen_fraction": "top eigenvalue share",
    "mean_norm": "norm of the mean",
    "rms_std": "RMS std per dim",
}

#: What each companion metric reads like (shown beside the N(0, I) reference).
METRIC_NOTES = {
    "rankme": "effective rank, in [1, min(N, D)]; low = dimensional collapse",
    "rankme_fraction": "RankMe / min(N, D); near 1 = all dims used",
    "normalized_std": "0 = full collapse; about 1/√D when isotropic",
    "normalized_std_isotropic": "1/√D, the isotropic value of the line above",
    "vicreg_variance": "mean relu(1 − std); 0 when every std ≥ 1",
    "vicreg_covariance": "Σ off-diagonal cov² / D; grows with correlation",
    "spectrum_slope": "log-log slope of the eigen-spectrum; near 0 = flat",
    "top_eigen_fraction": "share of variance on the top axis; 1/D when flat",
    "mean_norm": "‖mean‖; sampling noise √(D/N) when centred",
    "rms_std": "root mean variance per dim; 1 for N(0, I)",
}

#: Verdict tone → colour (Okabe–Ito); the page maps the same tones to st.success / warning / error.
TONE_COLOURS = {"good": "#009E73", "warn": "#E69F00", "bad": "#D55E00"}


def verdict_tone(verdict: str) -> str:
    """'good', 'warn' or 'bad' for a verdict string (the single place verdicts get a colour).

    healthy… → good; anything naming collapse (or "unhealthy") → bad; every other
    level (suspicious, inconclusive, new levels) → warn.
    """
    v = str(verdict).strip().lower()
    if v.startswith("healthy"):
        return "good"
    if "collapse" in v or v.startswith("unhealthy"):
        return "bad"
    return "warn"


def format_p(p: Any, digits: int = 3) -> str:
    """A p-value as shown: ``< 1e-300`` at the floor of the exact law, ``n/a`` when not finite."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(p):
        return "n/a"
    if p <= 1e-300:
        return "< 1e-300"
    return f"{p:.{digits}g}"


def min_p_note(report, index: int) -> Optional[str]:
    """A sentence when slice ``index`` holds the smallest of M p-values and that is not surprising.

    Under the null the per-slice p-values are uniform, so the smallest of M is about
    1/M (median 1 - 2^(-1/M)); shown so a healthy set's worst slice is not misread.
    """
    p = report.p_values
    m = p.size
    if m < 2 or not np.isfinite(p).any() or int(index) != int(np.nanargmin(p)):
        return None
    pmin = float(p[int(index)])
    median = 1.0 - 0.5 ** (1.0 / m)
    q05 = 1.0 - 0.95 ** (1.0 / m)
    if pmin < q05:
        return (f"This is the smallest of {m:,} per-slice p-values. By chance alone the smallest of {m:,} "
                f"is about {median:.2g} (95 % of the time above {q05:.2g}); {format_p(pmin)} is below that, "
                f"so it is evidence against N(0, 1) even after looking at every slice.")
    return (f"This is the smallest of {m:,} per-slice p-values. When every slice is N(0, 1) the smallest of "
            f"{m:,} is about {median:.2g} by chance alone (95 % of the time above {q05:.2g}), so "
            f"{format_p(pmin)} here is what a healthy set shows, not evidence of a problem.")


_REF_CACHE: "OrderedDict[tuple, dict]" = OrderedDict()
_REF_LOCK = threading.Lock()


def healthy_references(n: int, d: int, *, seed: int = 0, max_rows: int = 8192) -> dict:
    """Companion metrics of one N(0, I) sample with min(n, max_rows) rows and d dims (seeded).

    The reference a healthy set of this shape scores (RankMe, the spectrum and the
    covariance term depend on N / D, so a fixed number would mislead).  Cached per shape.
    """
    rows = int(min(int(n), int(max_rows)))
    key = (rows, int(d), int(seed))
    with _REF_LOCK:
        hit = _REF_CACHE.get(key)
        if hit is not None:
            return dict(hit)
    from sigreg_core.assessment.metrics import companion_metrics

    z = np.random.default_rng(seed).standard_normal((rows, int(d)), dtype=np.float32)
    met = companion_metrics(z)
    ref = {k: float(v) for k, v in met.items() if np.ndim(v) == 0 and k not in ("n", "dim")}
    ref["_rows"] = rows
    with _REF_LOCK:
        _REF_CACHE[key] = ref
        while len(_REF_CACHE) > 16:
            _REF_CACHE.popitem(last=False)
    return dict(ref)


def metrics_table(report, reference: Optional[dict] = None) -> pd.DataFrame:
    """Companion metrics beside the N(0, I) reference of the same shape: metric, value, reference, reads."""
    ref = reference if reference is not None else healthy_references(report.summary["n"], report.summary["d"])
    rows = []
    for k, v in report.metrics.items():
        r = ref.get(k)
        rows.append({
            "metric": METRIC_LABELS.get(k, k),
            "this set": float(v) if isinstance(v, (int, float)) and v is not None else float("nan"),
            "N(0, I) reference": float(r) if isinstance(r, (int, float)) else float("nan"),
            "reads": METRIC_NOTES.get(k, ""),
        })
    return pd.DataFrame(rows, columns=["metric", "this set", "N(0, I) reference", "reads"])
