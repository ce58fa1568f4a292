"""The eigen-spectrum a healthy set of this shape has: Marchenko–Pastur quantiles.

For rows z_1..z_N ~ N(0, I_D), the centred sample covariance S = (1/(N-1)) sum (z - zbar)(z - zbar)^T
is Wishart(N - 1, I) / (N - 1), and its D eigenvalues spread, as N, D grow with
gamma = D / (N - 1) fixed, over the Marchenko–Pastur law (Marchenko & Pastur, 1967)

    f(x) = sqrt((b - x)(x - a)) / (2 pi gamma x),   a = (1 - sqrt(gamma))^2,  b = (1 + sqrt(gamma))^2,

(gamma <= 1).  So a healthy 2048 x 64 set does not have a flat spectrum at 1: its eigenvalues run
from about 0.69 to 1.40.  The k-th largest of D eigenvalues is drawn at the MP quantile
F^{-1}(1 - (k - 1/2) / D).  For gamma > 1 (more dims than rows) only N - 1 eigenvalues are
non-zero; they are those of the (N-1) x (N-1) dual, gamma times an MP law of ratio 1 / gamma.
The CDF is integrated on x = a + (b - a)(1 - cos theta) / 2, where the square roots at the edges
become smooth, and inverted by interpolation.
"""
from __future__ import annotations

import numpy as np

__all__ = ["mp_edges", "mp_quantiles"]


def mp_edges(gamma: float) -> tuple[float, float]:
    """Support [a, b] of the MP law of ratio gamma <= 1 (unit variance)."""
    r = float(np.sqrt(gamma))
    return (1.0 - r) ** 2, (1.0 + r) ** 2


def _mp_sorted(gamma: float, count: int) -> np.ndarray:
    a, b = mp_edges(gamma)
    theta = np.linspace(0.0, np.pi, 4001)
    x = a + (b - a) * (1.0 - np.cos(theta)) / 2.0
    dx = (b - a) * np.sin(theta) / 2.0
    dens = np.sqrt(np.clip((b - x) * (x - a), 0.0, None)) / (2.0 * np.pi * gamma * np.maximum(x, 1e-300))
    g = dens * dx
    cdf = np.concatenate([[0.0], np.cumsum((g[1:] + g[:-1]) / 2.0 * np.diff(theta))])
    cdf /= cdf[-1]
    probs = 1.0 - (np.arange(1, count + 1) - 0.5) / count  # largest first
    return np.interp(probs, cdf, x)


def mp_quantiles(n: int, d: int) -> np.ndarray:
    """The D covariance eigenvalues (largest first) of an N(0, I) set of n rows and d dims, at MP quantiles."""
    n, d = int(n), int(d)
    if n < 2 or d < 1:
        raise ValueError(f"need n >= 2 rows and d >= 1 dims, got {n} x {d}")
    dof = n - 1
    gamma = d / dof
    if gamma <= 1.0:
        return _mp_sorted(gamma, d)
    out = np.zeros(d)
    out[:dof] = gamma * _mp_sorted(1.0 / gamma, dof)
    return out
