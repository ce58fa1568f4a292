"""alpha-ReQ: the power-law decay exponent of the covariance eigenspectrum (Agrawal et al. 2022).

alpha-ReQ (Agrawal, Mondal, Ghosh and Richards, "alpha-ReQ: Assessing Representation
Quality in Self-Supervised Learning by measuring eigenspectrum decay", NeurIPS 2022)
models the eigenvalues of the feature covariance, largest first, as a power law

    lambda_k  ~  c k^(-alpha),

and reads alpha: near 1 generalises best, far below means a noisy high-rank
representation, far above means a collapsing one.  Here alpha is the ordinary
least-squares slope of log lambda_k on log k, negated,

    alpha = - sum_k (x_k - xbar)(y_k - ybar) / sum_k (x_k - xbar)^2,   x = log k,  y = log lambda_k,

over the stated range k = K_LO .. K_HI: 6 .. 100 (the default range of the authors'
reptrix code, which skips the first few eigenvalues and fits the body of the spectrum),
clipped to the non-zero rank r = min(N - 1, D) of a sample covariance; when r < 15 that
leaves under 10 points and the fit uses every non-zero eigenvalue, k = 1 .. r.  The
eigenvalues are those of :class:`sigreg_core.assessment.metrics.MomentSums` (no second
decomposition).  :func:`alpha_req_reference` is the value for an N(0, I) set of the same
shape, from a Wishart(N - 1, I_D) / (N - 1) spectrum (Dumitriu–Edelman tridiagonal model).
"""
from __future__ import annotations

import numpy as np

__all__ = ["K_LO", "K_HI", "fit_range", "alpha_req", "alpha_req_reference"]

K_LO = 6
K_HI = 100
MIN_POINTS = 10


def fit_range(rank: int) -> tuple:
    """(k_lo, k_hi), 1-based and inclusive, of the fit for ``rank`` non-zero eigenvalues; (0, 0) if < 3."""
    r = int(rank)
    if r < 3:
        return 0, 0
    hi = min(K_HI, r)
    if hi - K_LO + 1 >= MIN_POINTS:
        return K_LO, hi
    return 1, r


def alpha_req(eigenvalues, rank=None) -> dict:
    """``{"alpha": ..., "k_lo": ..., "k_hi": ...}`` from covariance eigenvalues (any order).

    ``rank`` (default: the count of eigenvalues) caps the fit at the non-zero rank, so the
    round-off of the zero eigenvalues of an N <= D batch is never fitted.  Eigenvalues in the
    range that are not > 0 (an exact rank deficit) end the range early.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64).reshape(-1))[::-1]
    r = lam.size if rank is None else min(int(rank), lam.size)
    if r > 0 and lam[0] > 0:
        r = min(r, int(np.sum(lam[:r] > 1e-12 * lam[0])))
    else:
        r = 0
    lo, hi = fit_range(r)
    if hi == 0:
        return {"alpha": float("nan"), "k_lo": 0, "k_hi": 0}
    k = np.arange(lo, hi + 1, dtype=np.float64)
    x = np.log(k)
    y = np.log(lam[lo - 1 : hi])
    x0 = x - x.mean()
    slope = float(np.dot(x0, y - y.mean()) / np.dot(x0, x0))
    return {"alpha": -slope, "k_lo": int(lo), "k_hi": int(hi)}


def alpha_req_reference(n: int, d: int, *, seed: int = 0) -> dict:
    """alpha-ReQ of an N(0, I) set with n rows and d dims (seeded)."""
    from sigreg_core.present.reading import _wishart_eigenvalues  # numpy/scipy only, no streamlit

    n, d = int(n), int(d)
    if n < 2 or d < 1:
        return {"alpha": float("nan"), "k_lo": 0, "k_hi": 0}
    eig = _wishart_eigenvalues(n - 1, d, np.random.default_rng(seed)) / (n - 1)
    return alpha_req(eig, min(n - 1, d))
