"""The verdict: three separate answers, then one graded level.

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312) pushes embeddings towards N(0, I).  A verdict users can
trust on real encoders keeps three questions apart (thresholds also in
docs/calibration.md):

1. **Is it collapsing?**  Scale-invariant tests only.

   * *full collapse*: the rows are (nearly) identical relative to their own size,
     ``relative spread = sqrt(tr Cov) / sqrt(mean ||z_n||^2) < 0.25``
     (1 for a centred cloud; 1 - spread^2 is about the mean pairwise cosine, so
     0.25 means the rows point one way with mean cosine above ~0.94).  An
     untrained transformer (rank collapse at initialisation: Dong et al., ICML
     2021) scores 0.22; a trained sentence encoder 0.94.
   * *dimensional collapse*: rank loss of the centred cloud (Jing et al., ICLR
     2022), robust to a few outlier rows (they are set aside first):
     centred RankMe (Garrido et al., ICML 2023) < 0.2 min(N - 1, D), or some
     at least 5 % of the first min(N - 1, D) covariance eigenvalues below 1e-4 x their
     mean (only numerically zero ones, < 1e-9, below N = 2D, where the healthy
     Marchenko–Pastur edge reaches 0).

2. **How far from N(0, I), and in which way?**  The effect size is the
   N-free *relative distance*

       rho = max over screens of (mean_m EP_m / N - E0 / N) / (sum_k c_k (1 - phi_k)^2),

   the unbiased estimate of the weighted squared ECF distance, as a fraction of
   the distance of a full collapse onto 0 (rho = 1), taken over the random,
   coordinate-axis and standardised principal-axis screens (``lejepa`` grid).
   Graded: ``healthy`` < 0.002 <= ``mild`` < 0.02 <= ``marked`` < 0.1 <=
   ``severe``; significance (the calibrated overall p-value < 1e-3) is only the
   gate (not significant: healthy), and a detected mode makes it at least mild.
   SIGReg's multiple of its null mean is reported beside it (it grows with N; rho
   does not).

3. **Which conventions does it follow?**  L2-normalised (equal-norm) rows, an
   uncentred mean, a global scale: named as conventions, never as collapse, with
   the score after the matching rescale (x sqrt(D) / norm, centring, global
   standardisation).  Equal-norm rows are scored after the rescale, so
   normalising the rows of a set does not change its verdict.

The verdict is ``collapsed`` when (1) says so, else the level of (2); below
``MIN_ROWS`` rows it is ``too few rows`` (nothing is judged).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "VERDICTS", "TOO_FEW", "VERDICT_RANK", "LEVEL_EDGES", "GATE_P", "MIN_ROWS",
    "FULL_SPREAD", "RANK_FRACTION", "verdict_rank", "rank_key", "FAIL_ON_LEVELS", "fail_on_met", "is_unhealthy", "relative_distance", "grade",
    "collapse_answer", "describe_verdict",
]

#: the graded levels, mildest first
VERDICTS = ("healthy", "mild", "marked", "severe", "collapsed")
#: the answer below MIN_ROWS rows
TOO_FEW = "too few rows"
#: rows needed before anything is judged (the exact law is accurate from N of about 32)
MIN_ROWS = 16
#: significance gate on the calibrated overall p-value
GATE_P = 1e-3
#: relative-distance edges: healthy < 0.002 <= mild < 0.02 <= marked < 0.1 <= severe
LEVEL_EDGES = (0.002, 0.02, 0.1)
#: full collapse: relative spread below this
FULL_SPREAD = 0.25
#: dimensional collapse: centred RankMe below this fraction of min(N - 1, D)
RANK_FRACTION = 0.2
#: covariance eigenvalues below this multiple of their mean are "dead"
DEAD_EIGEN = 1e-4
#: below N = 2D (where the healthy Marchenko–Pastur lower edge reaches 0) only eigenvalues below this
#: multiple of their mean are dead: 100x above the float32 arithmetic floor (~1e-7), so float32 and
#: float64 copies of one set get one verdict (it was 1e-9: float32 rank loss went unseen)
NEAR_ZERO_EIGEN = 1e-5
#: dimensional collapse by dead eigenvalues: at least this fraction of min(N - 1, D) dead
DEAD_FRACTION = 0.05

#: order of every verdict string a page may meet ("suspicious" is the pre-levels name of mild..severe)
VERDICT_RANK = {TOO_FEW: -1, "healthy": 0, "mild": 1, "marked": 2, "suspicious": 2, "severe": 3, "collapsed": 4}
#: colours: :func:`sigreg_core.assessment.severity.verdict_colour` (one ramp for every page)


#: what ``sigreg score --fail-on`` accepts, each with the rank from which it fails ("suspicious" = mild)
FAIL_ON_LEVELS = {"healthy": 0, "mild": 1, "suspicious": 1, "marked": 2, "severe": 3, "collapsed": 4}


def fail_on_met(verdict, fail_on: str) -> tuple:
    """(met, why) for the ``--fail-on`` gate: met when ``verdict`` ranks at ``fail_on`` or worse.

    Fails closed: a verdict the gate cannot rank (``too few rows``, an unknown word, none) meets
    it, with ``why`` saying so; ``why`` is empty for an ordinary ranked verdict."""
    text = str(verdict) if verdict is not None else ""
    rank = VERDICT_RANK.get(text)
    if rank is None or rank < 0:
        return True, f"verdict {text or 'none'!r} is not ranked, so the gate fails closed"
    return rank >= FAIL_ON_LEVELS[fail_on], ""


def verdict_rank(verdict: str) -> int:
    """Order of a verdict string (unknown strings rank as ``marked``)."""
    return VERDICT_RANK.get(str(verdict), 2)


def is_unhealthy(verdict: str) -> bool:
    """True for every level above healthy (mild ... collapsed, legacy "suspicious")."""
    return verdict_rank(verdict) >= 1


def rank_key(answers: dict) -> tuple:
    """Sort key of one assessment's ``answers`` (``Assessment.answers`` or ``to_dict()["answers"]``), best first.

    The one ordering of sets that Compare, the CLI and the report use (the headline: the verdict's
    rank, then the distance); unknown or missing values sort last.
    """
    a = answers or {}
    v = verdict_rank(a.get("verdict", "marked"))
    v = 99 if v < 0 else v
    d = (a.get("distance") or {}).get("relative_distance", float("nan"))
    try:
        d = float(d)
    except (TypeError, ValueError):
        d = float("nan")
    return (v, d if math.isfinite(d) else float("inf"))


def describe_verdict(verdict: str) -> str:
    """One plain sentence per level (the Inspect card and the report)."""
    return {
        "healthy": "healthy: no departure from N(0, I) that matters (not significant, or a negligible effect)",
        "mild": "mild: a small but real departure from N(0, I)",
        "marked": "marked: a clear departure from N(0, I)",
        "severe": "severe: far from N(0, I)",
        "collapsed": "collapsed: the rows point one way or span too few dimensions",
        TOO_FEW: "too few rows to judge",
        "suspicious": "suspicious (earlier rules)",
    }.get(str(verdict), str(verdict))


def collapse_reference(nodes, weights) -> float:
    """sum_k c_k (1 - phi_k)^2: the per-row distance of a full collapse onto 0 (0.402 for lejepa)."""
    t = np.asarray(nodes, dtype=np.float64)
    c = np.asarray(weights, dtype=np.float64)
    return float(np.sum(c * (1.0 - np.exp(-t**2 / 2)) ** 2))


def relative_distance(mean_scaled: float, null_mean_scaled: float, n: int, reference: float) -> float:
    """rho = (mean EP / N - E0 / N) / reference, clipped at 0 (N-scaled units in)."""
    if not (np.isfinite(mean_scaled) and n > 0 and reference > 0):
        return float("nan")
    return float(max(0.0, (mean_scaled - null_mean_scaled) / n) / reference)


def grade(rho: float, significant: bool, has_mode: bool) -> str:
    """Level from the effect size, gated by significance; a detected mode makes it at least mild."""
    if not significant:
        return "healthy"
    level = 0 if not np.isfinite(rho) else int(np.searchsorted(np.asarray(LEVEL_EDGES), rho, side="right"))
    if has_mode:
        level = max(level, 1)
    return VERDICTS[level]


def collapse_answer(spread: float, rankme_fraction: float, dead: int, k: int, robust_note: str) -> dict:
    """The first answer: ``{"answer": "no" | "dimensional" | "full", numbers, thresholds, evidence}``."""
    full = bool(spread < FULL_SPREAD)
    dim = bool(rankme_fraction < RANK_FRACTION or dead >= max(1.0, DEAD_FRACTION * k))
    answer = "full" if full else ("dimensional" if dim else "no")
    parts = [f"relative spread {spread:.3g} (full collapse below {FULL_SPREAD})",
             f"centred RankMe {rankme_fraction:.3g} of min(N - 1, D) = {k} (dimensional collapse below {RANK_FRACTION})"]
    if dead:
        parts.append(f"{dead} dead covariance eigenvalues (collapse from {max(1, math.ceil(DEAD_FRACTION * k))})")
    if robust_note:
        parts.append(robust_note)
    return {
        "answer": answer,
        "collapsing": answer != "no",
        "relative_spread": float(spread),
        "relative_spread_threshold": FULL_SPREAD,
        "mean_cosine_approx": float(1.0 - spread**2) if math.isfinite(spread) else float("nan"),
        "centred_rankme_fraction": float(rankme_fraction),
        "rankme_fraction_threshold": RANK_FRACTION,
        "dead_eigenvalues": int(dead),
        "rank_k": int(k),
        "evidence": "; ".join(parts),
    }
