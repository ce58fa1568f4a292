"""The verdict: health first, then the distance from N(0, I), then the conventions — one home for every rule.

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312)
pushes embeddings towards N(0, I), but most encoders users open first were never trained
towards it: contrastive and sentence encoders sit in a cone, use part of their dimensions
and normalise their rows (SIGREG.md §7-8).  So the questions stay apart (thresholds quoted
in docs/calibration.md and on the card; every level, edge and ordering lives here):

1. **Health: how many directions do the rows use?** (:mod:`sigreg_core.assessment.health`)
   ``r = exp S(ρ)``, the effective rank of the unit rows' density matrix
   ``ρ = (1/N) Σ u uᵀ``, and ``q = r / r_ref`` against N(0, I) at the same (N, D).  Invariant
   to row normalisation and a global scale.  ``collapsed`` when ``r < COLLAPSE_DIRECTIONS = 2``
   and the mean cosine between rows is above ``COLLAPSE_COSINE = 0.9`` (the rows point one way:
   full collapse, the rank collapse of untrained networks)
   or on an exact rank loss (``DEAD_FRACTION`` of the covariance eigenvalues below
   ``DEAD_EIGEN`` x their mean; ``NEAR_ZERO_EIGEN`` below N = 2D, 100x above float32's floor so
   float32 and float64 copies agree).  Otherwise graded by q at powers of four
   (``HEALTH_EDGES``): ``healthy`` >= 1/4 > ``mild`` >= 1/16 > ``marked`` >= 1/64 > ``severe``.
2. **Is the departure real?**  The gate: the overall p-value (Cauchy–Bonferroni minimum over
   the random, axes and principal screens, calibrated on a Monte Carlo null; Bonferroni when
   there is none) below ``GATE_P`` (divided by V for V views).  Not significant: ``healthy``.
   A significant departure is at least ``mild`` when a mode is detected (shift, scale,
   anisotropy, tails, clusters, outliers) or some screen's effect is not negligible.
3. **How far from N(0, I), once the conventions are undone?**
   (:mod:`sigreg_core.assessment.distance`) After centring and one global scale, as a fraction
   of a set on one line (0 = N(0, I), 1 = rank 1, clipped): ``at target`` < 0.01 <= ``near``
   < 0.05 <= ``moderate`` < 0.25 <= ``far``.  Reported beside the verdict, not in it: an
   untrained network can be closer to Gaussian in shape than a good trained one.
4. **Conventions**: equal-norm rows (scored after the x sqrt(D) rescale), an uncentred mean,
   a global scale, each named with the score after the matching rescale.

The verdict is ``collapsed``, else the graded health word; below ``MIN_ROWS`` rows it is
``too few rows`` (nothing is judged; ``--fail-on`` fails closed on it).  One ordering of sets
(:func:`rank_key`): the verdict, then q, then the distance.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "VERDICTS", "TOO_FEW", "VERDICT_RANK", "NEGLIGIBLE", "GATE_P", "MIN_ROWS",
    "FULL_SPREAD", "RANK_FRACTION", "COLLAPSE_DIRECTIONS", "COLLAPSE_COSINE", "HEALTH_EDGES", "DISTANCE_LEVELS", "DISTANCE_EDGES",
    "health_level", "distance_level", "grade_verdict", "verdict_rank", "rank_key", "FAIL_ON_LEVELS", "fail_on_met", "is_unhealthy", "relative_distance",
    "collapse_answer", "describe_verdict", "describe_health", "describe_distance",
]

#: the graded levels, mildest first
VERDICTS = ("healthy", "mild", "marked", "severe", "collapsed")
#: the answer below MIN_ROWS rows
TOO_FEW = "too few rows"
#: rows needed before anything is judged (the exact law is accurate from N of about 32)
MIN_ROWS = 16
#: significance gate on the calibrated overall p-value
GATE_P = 1e-3
#: a significant departure whose largest screen effect (relative distance as given, a fraction of a
#: collapse onto 0) is below this is negligible: it does not make the verdict mild by itself
NEGLIGIBLE = 0.002
#: full collapse: the directions' effective rank exp S(ρ) below this (fewer than two directions in use) ...
COLLAPSE_DIRECTIONS = 2.0
#: ... and the rows point one way: mean cosine between rows above this (direction spread below 0.32).
#: Both are needed: a trained text recogniser's pooled rows use 2.0 directions at mean cosine 0.86 and
#: are not collapsed; every untrained twin of eight public encoders sits at 1.25-1.42 directions and 0.94-0.97
COLLAPSE_COSINE = 0.9
#: the direction spread sqrt(1 - mean cosine) under which the rows "point one way" (reported beside it)
FULL_SPREAD = 0.25
#: health edges on q = effective directions / those of N(0, I) at the same (N, D), powers of four:
#: q < 1/64 severe, < 1/16 marked, < 1/4 mild (only when the departure from N(0, I) is significant)
HEALTH_EDGES = (1 / 64, 1 / 16, 1 / 4)
#: the distance from N(0, I) after the conventions (centring, one global scale): words, nearest first,
#: and edges as fractions of the distance of a set that lives on one line (the rank-1 reference)
DISTANCE_LEVELS = ("at target", "near", "moderate", "far")
DISTANCE_EDGES = (0.01, 0.05, 0.25)
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

    The one ordering of sets that Compare, the CLI and the report use (the headline): the
    verdict's rank, then the health ``q`` (more effective directions first), then the distance
    from N(0, I); unknown or missing values sort last.
    """
    a = answers or {}
    v = verdict_rank(a.get("verdict", "marked"))
    v = 99 if v < 0 else v

    def num(x):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return float("nan")
        return x

    q = num((a.get("health") or {}).get("relative_effective_rank"))
    d = num((a.get("distance") or {}).get("relative_distance"))
    return (v, -q if math.isfinite(q) else float("inf"), d if math.isfinite(d) else float("inf"))


def describe_health(health: dict, level: str) -> str:
    """One sentence on the health numbers (the card's second line)."""
    r = health.get("effective_directions", float("nan"))
    ref = health.get("reference_directions", float("nan"))
    q = health.get("relative_effective_rank", float("nan"))
    return (f"uses {r:.3g} effective directions, {100 * q:.3g} % of the {ref:.4g} that N(0, I) uses at this "
            f"N x D (mean cosine between rows {health.get('mean_cosine', float('nan')):.2f})")


def describe_distance(level: str, shape: dict) -> str:
    """One sentence on the convention-free distance from N(0, I)."""
    rho = shape.get("relative_distance", float("nan"))
    extra = " (clipped: at least as far as a set on one line)" if shape.get("clipped") else ""
    return (f"{level}: {rho:.3g} of the way from N(0, I) (0) to a set that lives on one line (1), after centring "
            f"and one global scale{extra}")


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


def health_level(q: float) -> str:
    """The health word of q (effective directions relative to N(0, I)): healthy / mild / marked / severe."""
    if not np.isfinite(q):
        return "marked"
    below = int(np.sum(q < np.asarray(HEALTH_EDGES)))  # 0: q >= 1/4 ... 3: q < 1/64
    return VERDICTS[below]


def distance_level(rho: float) -> str:
    """The word of the convention-free distance from N(0, I) (a fraction of the rank-1 reference)."""
    if not np.isfinite(rho):
        return DISTANCE_LEVELS[-1]
    return DISTANCE_LEVELS[int(np.searchsorted(np.asarray(DISTANCE_EDGES), rho, side="right"))]


def grade_verdict(collapsing: bool, significant: bool, q: float, has_mode: bool, effect: float = 0.0) -> str:
    """The verdict: ``collapsed``; else ``healthy`` when N(0, I) is not rejected; else the health word
    of q, at least ``mild`` when a departure mode (shift, scale, tails, clusters, anisotropy, outliers)
    was detected or the effect on some screen is not negligible (``effect`` = the largest screen's
    relative distance as given, >= ``NEGLIGIBLE``)."""
    if collapsing:
        return "collapsed"
    if not significant:
        return "healthy"
    level = VERDICTS.index(health_level(q))
    if has_mode or (np.isfinite(effect) and effect >= NEGLIGIBLE):
        level = max(level, 1)
    return VERDICTS[level]


def collapse_answer(health: dict, dead: int, k: int, robust_note: str = "") -> dict:
    """The first answer, "is it collapsing?": ``{"answer": "no" | "dimensional" | "full", numbers, evidence}``.

    ``full``: fewer than ``COLLAPSE_DIRECTIONS`` effective directions (the rows point one way:
    :mod:`sigreg_core.assessment.health`); ``dimensional``: an exact rank loss, at least
    ``DEAD_FRACTION`` of the first k = min(N - 1, D) covariance eigenvalues dead (below ``DEAD_EIGEN``,
    or ``NEAR_ZERO_EIGEN`` below N = 2D, times their mean).  A spectrum that decays without dying is
    graded by the health q instead (a trained encoder uses few directions without having lost the rest).
    """
    r = float(health.get("effective_directions", float("nan")))
    spread = float(health.get("direction_spread", float("nan")))
    cos = 1.0 - spread**2 if math.isfinite(spread) else float("nan")
    full = bool(math.isfinite(r) and r < COLLAPSE_DIRECTIONS and math.isfinite(cos) and cos > COLLAPSE_COSINE)
    dim = bool(dead >= max(1.0, DEAD_FRACTION * k))
    answer = "full" if full else ("dimensional" if dim else "no")
    parts = [f"{r:.3g} effective directions (N(0, I) at this shape: {health.get('reference_directions', float('nan')):.4g})",
             f"mean cosine between rows {cos:.3g}; the rows point one way below {COLLAPSE_DIRECTIONS:g} directions "
             f"with a mean cosine above {COLLAPSE_COSINE:g}"]
    if dead:
        parts.append(f"{dead} dead covariance eigenvalues of {k} (rank loss from {max(1, math.ceil(DEAD_FRACTION * k))})")
    if robust_note:
        parts.append(robust_note)
    return {
        "answer": answer,
        "collapsing": answer != "no",
        "effective_directions": r,
        "effective_directions_threshold": COLLAPSE_DIRECTIONS,
        "relative_spread": spread,
        "relative_spread_threshold": FULL_SPREAD,
        "mean_cosine_approx": float(1.0 - spread**2) if math.isfinite(spread) else float("nan"),
        "dead_eigenvalues": int(dead),
        "rank_k": int(k),
        "evidence": "; ".join(parts),
    }
