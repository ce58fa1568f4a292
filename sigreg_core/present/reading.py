"""How to read a report's numbers: verdict colours, p-values, references for a healthy set.

* :func:`verdict_tone`, :data:`TONE_COLOURS` — the one place a verdict string maps to the
  page's callout (success / info / warning / error); the colours are the anchors of the
  severity ramp (:mod:`sigreg_core.assessment.severity`); new verdict levels fall in "warn"
  unless they say healthy or collapse.
* :func:`format_p` — p-values as shown: ``< 1e-300`` at the floor of the exact null law
  (p-values are floored there; the log p-value is not).
* :func:`min_p_note` — per-slice p-values are uniform under the null, so the smallest of
  M is Beta(1, M): median ``1 - 2^(-1/M)`` ≈ 0.69 / M, 5 % quantile ``1 - 0.95^(1/M)``.
  The worst slice of a healthy set with M = 1024 shows p ≈ 7e-4 by chance alone.
* :func:`healthy_references` — the companion metrics (RankMe, Garrido et al., ICML 2023;
  VICReg terms, Bardes et al., ICLR 2022; spectrum) of an N(0, I) set of the same shape,
  drawn from their exact laws (Wishart spectra by the Dumitriu–Edelman tridiagonal model),
  since several depend on N / D (Marchenko–Pastur); :func:`metrics_table` puts them beside
  the set's own values.

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
    "alpha_req": "α-ReQ (eigenspectrum decay)",
    "alpha_req_k_lo": "α-ReQ fit from k",
    "alpha_req_k_hi": "α-ReQ fit to k",
    "lidar": "LiDAR (views)",
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
    "alpha_req": "λ_k ∝ k^−α; near 1 generalises best, ≪ 1 noisy, ≫ 1 collapsing",
    "alpha_req_k_lo": "first eigenvalue index of the α-ReQ fit",
    "alpha_req_k_hi": "last eigenvalue index of the α-ReQ fit",
    "lidar": "effective rank of the views' LDA matrix; higher = more separable samples",
    "mean_norm": "‖mean‖; sampling noise √(D/N) when centred",
    "rms_std": "root mean variance per dim; 1 for N(0, I)",
}

def _tone_colours() -> dict:
    from sigreg_core.assessment.severity import VERDICT_COLOURS

    return {"good": VERDICT_COLOURS[0], "info": "#0072B2", "warn": VERDICT_COLOURS[1], "bad": VERDICT_COLOURS[2]}


#: Verdict tone → colour: the anchors of the severity ramp (:mod:`sigreg_core.assessment.severity`, where the
#: Monitor, Compare and the verdict card take theirs); the page maps the same tones to st.success / info /
#: warning / error.
TONE_COLOURS = _tone_colours()


def verdict_tone(verdict: str) -> str:
    """'good', 'info', 'warn' or 'bad' for a verdict string (the page's callout for it).

    healthy… → good; anything naming collapse (or "unhealthy") → bad; "mild" and "too few
    rows" (no verdict) → info; every other level (suspicious, marked, severe, new levels) → warn.
    """
    v = str(verdict).strip().lower()
    if v.startswith("healthy"):
        return "good"
    if "collapse" in v or v.startswith("unhealthy"):
        return "bad"
    if v in ("mild", "too few rows"):
        return "info"
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


def _wishart_eigenvalues(dof: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Nonzero eigenvalues of W = X^T X, X (dof x dim) i.i.d. N(0, 1), drawn exactly in O(dim^2).

    Dumitriu & Edelman (2002), "Matrix models for beta ensembles": for beta = 1 the
    eigenvalues of W have the law of those of B B^T, B bidiagonal with diagonal
    chi_{dof}, chi_{dof-1}, ..., and sub-diagonal chi_{dim-1}, ..., chi_1 (dof >= dim;
    otherwise the roles swap: the nonzero spectrum of X X^T).  B B^T is tridiagonal.
    """
    from scipy.linalg import eigvalsh_tridiagonal

    m, n = (int(dof), int(dim)) if dof >= dim else (int(dim), int(dof))
    diag = np.sqrt(rng.chisquare(m - np.arange(n)))                 # chi_{m}, ..., chi_{m-n+1}
    sub = np.sqrt(rng.chisquare(np.arange(n - 1, 0, -1))) if n > 1 else np.zeros(0)  # chi_{n-1}, ..., chi_1
    # B lower bidiagonal: B B^T has diagonal d_i^2 + s_{i-1}^2 and off-diagonal d_i s_i
    d2 = diag**2 + np.concatenate([[0.0], sub**2])
    off = diag[:-1] * sub
    ev = eigvalsh_tridiagonal(d2, off) if n > 1 else d2
    return np.sort(np.clip(ev, 0.0, None))[::-1]


def healthy_references(n: int, d: int, *, seed: int = 0) -> dict:
    """Companion metrics of an N(0, I) set with n rows and d dims: what a healthy set of this shape scores.

    Drawn from the exact laws, without building the set (milliseconds at any N): the
    singular values of Z (RankMe) from the Wishart(n, I_d) spectrum and the covariance
    eigenvalues (spectrum slope, top share) from Wishart(n - 1, I_d) / (n - 1), both by the
    Dumitriu–Edelman tridiagonal model; per-dimension variances from chi-square(n - 1) / (n - 1)
    (VICReg variance term, RMS std); the mean's norm from chi-square(d) / n.  The VICReg
    covariance term is its exact mean (d - 1) / (n - 1), the std of L2-normalised rows its
    isotropic value 1/sqrt(d).  Seeded; cached per shape.
    """
    from sigreg_core.assessment.alpha_req import alpha_req
    from sigreg_core.assessment.metrics import RANKME_EPS, VICREG_EPS, _spectrum_slope, rankme

    n, d = int(n), int(d)
    key = (n, d, int(seed))
    with _REF_LOCK:
        hit = _REF_CACHE.get(key)
        if hit is not None:
            return dict(hit)
    rng = np.random.default_rng(seed)
    sing = np.sqrt(_wishart_eigenvalues(n, d, rng))
    eig = _wishart_eigenvalues(n - 1, d, rng) / max(n - 1, 1)
    eig = np.concatenate([eig, np.zeros(max(0, d - eig.size))])
    var_unb = rng.chisquare(max(n - 1, 1), size=d) / max(n - 1, 1)
    rk = rankme(sing, RANKME_EPS)
    aq = alpha_req(eig, min(n - 1, d))  # issue 22: the same fit range as the set's own alpha-ReQ
    ref = {
        "rankme": rk,
        "rankme_fraction": rk / min(n, d),
        "spectrum_slope": _spectrum_slope(eig),
        "top_eigen_fraction": float(eig[0] / eig.sum()),
        "alpha_req": aq["alpha"],
        "alpha_req_k_lo": aq["k_lo"],
        "alpha_req_k_hi": aq["k_hi"],
        "normalized_std": 1.0 / math.sqrt(d),
        "normalized_std_isotropic": 1.0 / math.sqrt(d),
        "vicreg_variance": float(np.mean(np.maximum(0.0, 1.0 - np.sqrt(var_unb + VICREG_EPS)))),
        "vicreg_covariance": (d - 1) / max(n - 1, 1),
        "mean_norm": math.sqrt(rng.chisquare(d) / n),
        "rms_std": math.sqrt(float(np.mean(var_unb)) * (n - 1) / n),
    }
    with _REF_LOCK:
        _REF_CACHE[key] = ref
        while len(_REF_CACHE) > 64:
            _REF_CACHE.popitem(last=False)
    return dict(ref)


def metrics_table(report, reference: Optional[dict] = None, probes: Optional[dict] = None) -> pd.DataFrame:
    """Companion metrics beside the N(0, I) reference of the same shape: metric, value, reference, reads.

    With ``probes`` (:func:`sigreg_core.assessment.probes.label_quality` of the set's labels) the k-NN and
    linear-probe accuracies follow, their 95 % Wilson interval and the rows used in ``reads``."""
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
    if probes:
        from sigreg_core.present.quality import probe_rows

        rows += probe_rows(probes)
    return pd.DataFrame(rows, columns=["metric", "this set", "N(0, I) reference", "reads"])
