"""P-value combinations for dependent per-slice tests of one embedding.

Combinations of dependent per-slice p-values (slices share the data):

* Cauchy combination (Liu & Xie 2020, JASA 115:393): T = sum_i w_i tan((1/2 - p_i) pi),
  p = 1/2 - arctan(T) / pi.  Its tail is exact under arbitrary dependence as p -> 0,
  and it stays close to nominal at alpha = 0.05 (tested in tests/test_calibration.py).
* Bonferroni: min(1, m * min_i p_i), valid under any dependence, conservative.
* Cauchy–Bonferroni minimum (:func:`cauchy_bonferroni`, the verdict's rule):
  p = min(1, 2 min(p_Cauchy, p_Bonferroni)), with every p_i capped at ``P_CAP`` = 0.99
  inside the Cauchy sum.  One p_i near 1 drives the plain Cauchy statistic towards
  -inf (tan((1/2 - p) pi) -> -inf) and can hide every small p-value (a set of uniform
  columns plus one Gaussian-looking column read p = 1 while Bonferroni gave 3e-5); the
  cap bounds that term at tan(-0.49 pi) = -31.8 and the Bonferroni arm cannot be
  hidden at all (a union bound of two valid tests is valid, hence the factor 2).  The
  cap and the min change the statistic's law in the bulk, so the assessment calibrates
  it on a Monte Carlo null (SIGREG.md §8; Chen, Xu & Gao 2025, arXiv 2506.12489, on
  why a few large p-values must not drive the combination).
* Monte Carlo: (1 + #{null >= observed}) / (B + 1), exact for B null draws but
  never below 1 / (B + 1).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["cauchy_combination", "cauchy_bonferroni", "P_CAP", "bonferroni", "empirical_pvalue", "pvalue_floor"]

_LOG_PI = math.log(math.pi)
#: per-slice p-values are capped here inside the verdict's Cauchy sum (one p near 1 cannot hide the rest)
P_CAP = 0.99


def cauchy_combination(p=None, *, log_p=None, weights=None) -> tuple[float, float]:
    """Cauchy combination test (Liu & Xie 2020) of dependent p-values.

    T = sum_i w_i tan((1/2 - p_i) pi) with sum w_i = 1; p = 1/2 - arctan(T)/pi.
    Computed in log space for tiny p_i (tan((1/2 - p) pi) = cot(p pi) ~ 1/(p pi)), so
    the combined p keeps its meaning far below 1e-300.  NaN entries are ignored.
    Returns (p, log_p).
    """
    if log_p is None:
        if p is None:
            raise ValueError("cauchy_combination needs p or log_p")
        p = np.asarray(p, dtype=np.float64).ravel()
        with np.errstate(divide="ignore"):
            log_p = np.log(p)
    log_p = np.asarray(log_p, dtype=np.float64).ravel()
    w = np.ones_like(log_p) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    ok = ~np.isnan(log_p)
    log_p, w = log_p[ok], w[ok]
    if log_p.size == 0:
        return float("nan"), float("nan")
    w = w / w.sum()
    log_p = np.minimum(log_p, math.log1p(-1e-15))  # p = 1 would give T = -inf
    small = log_p < math.log(1e-12)
    t_reg = np.tan((0.5 - np.exp(log_p[~small])) * math.pi)
    reg = float(np.sum(w[~small] * t_reg))
    if np.any(small):
        # large terms w / (pi p): add in log space
        log_big = special.logsumexp(np.log(w[small]) - _LOG_PI - log_p[small])
        if log_big > math.log(1e12):
            log_t = log_big + math.log1p(reg / math.exp(log_big)) if log_big < 700 else log_big
            log_pc = -_LOG_PI - log_t  # arctan tail: p = 1/(pi T) (1 + O(T^-2))
            return float(max(math.exp(log_pc), 0.0)), float(log_pc)
        reg += math.exp(log_big)
    T = reg
    if T > 1e12:
        log_pc = -_LOG_PI - math.log(T)
        return float(math.exp(log_pc)), float(log_pc)
    pc = 0.5 - math.atan(T) / math.pi
    pc = min(max(pc, 0.0), 1.0)
    return float(pc), float(math.log(pc)) if pc > 0 else float("-inf")


def cauchy_bonferroni(p=None, *, log_p=None, weights=None) -> tuple[float, float]:
    """The verdict's combination: min(1, 2 min(Cauchy with p_i capped at P_CAP, Bonferroni)). (p, log p)."""
    if log_p is None:
        with np.errstate(divide="ignore"):
            log_p = np.log(np.asarray(p, dtype=np.float64).ravel())
    log_p = np.asarray(log_p, dtype=np.float64).ravel()
    _, lc = cauchy_combination(log_p=np.minimum(log_p, math.log(P_CAP)), weights=weights)
    _, lb = bonferroni(log_p=log_p)
    if math.isnan(lc) and math.isnan(lb):
        return float("nan"), float("nan")
    lm = min(v for v in (lc, lb) if not math.isnan(v)) + math.log(2.0)
    lm = min(lm, 0.0)
    return float(math.exp(lm)), float(lm)


def bonferroni(p=None, *, log_p=None) -> tuple[float, float]:
    """Bonferroni: min(1, m * min p_i).  Returns (p, log_p); NaNs ignored."""
    if log_p is None:
        with np.errstate(divide="ignore"):
            log_p = np.log(np.asarray(p, dtype=np.float64).ravel())
    log_p = np.asarray(log_p, dtype=np.float64).ravel()
    log_p = log_p[~np.isnan(log_p)]
    if log_p.size == 0:
        return float("nan"), float("nan")
    lb = min(0.0, float(np.min(log_p)) + math.log(log_p.size))
    return float(math.exp(lb)), lb


def empirical_pvalue(observed, null_draws) -> np.ndarray:
    """Monte Carlo p-value (1 + #{null >= observed}) / (B + 1) (never below 1/(B+1))."""
    null = np.sort(np.asarray(null_draws, dtype=np.float64).ravel())
    obs = np.asarray(observed, dtype=np.float64)
    ge = null.size - np.searchsorted(null, obs, side="left")
    return (1.0 + ge) / (null.size + 1.0)


def pvalue_floor(num_draws: int) -> float:
    """The smallest p-value a Monte Carlo null of ``num_draws`` draws can give."""
    return 1.0 / (int(num_draws) + 1.0)
