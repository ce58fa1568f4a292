"""LiDAR: the effective rank of the regularised LDA matrix of views (Thilak et al. 2023).

LiDAR (Thilak, Huang, Saremi, Dinh, Goh, Susskind, Littwin and Grover, "LiDAR: Sensing
Linear Probing Performance in Joint Embedding SSL Architectures", arXiv 2312.04000,
ICLR 2024) treats each source sample with its q augmented views as a class.  From
embeddings of shape (V, N, D) — V = q views of N samples — with class means
mu_n = (1/V) sum_v z_vn and grand mean mu = (1/N) sum_n mu_n:

    Sigma_b = 1/(N - 1)   sum_n (mu_n - mu)(mu_n - mu)^T                      (between classes)
    Sigma_w = 1/(N (V-1)) sum_n sum_v (z_vn - mu_n)(z_vn - mu_n)^T + delta I   (within classes)
    Sigma_lidar = Sigma_w^{-1/2} Sigma_b Sigma_w^{-1/2}
    p_i = lambda_i / ||lambda||_1 + eps,   LiDAR = exp(-sum_i p_i log p_i)

with lambda_i the eigenvalues of Sigma_lidar (the same as those of Sigma_w^{-1} Sigma_b),
delta = 1e-4 and eps = 1e-8 (the paper's constants; p_i in RankMe's form, Garrido et al.
2023).  LiDAR lies in [1, min(N - 1, D)] up to eps; it tracks linear-probe accuracy
better than RankMe in the paper.  delta is absolute, so LiDAR depends on the scale of
the embeddings when the within-class spread is tiny (that is the paper's definition).

:func:`lidar_reference` draws the value for N(0, I) views of the same shape (every view
independent) from the exact laws: (N - 1) V Sigma_b ~ Wishart(N - 1, I) and
N (V - 1) Sigma_w ~ Wishart(N (V - 1), I), independent (Bartlett factors), in O(D^3).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["LIDAR_DELTA", "LIDAR_EPS", "lidar", "lidar_from_scatter", "lidar_reference", "effective_rank"]

LIDAR_DELTA = 1e-4
LIDAR_EPS = 1e-8

_REF_CACHE: "OrderedDict[tuple, float]" = OrderedDict()
_REF_LOCK = threading.Lock()


def effective_rank(eigenvalues, eps: float = LIDAR_EPS) -> float:
    """exp(entropy of lambda / ||lambda||_1 + eps) over non-negative eigenvalues: RankMe's formula
    (:func:`sigreg_core.assessment.metrics.rankme`) applied to the LDA eigenvalues with LiDAR's eps."""
    from sigreg_core.assessment.metrics import rankme

    return rankme(eigenvalues, eps=eps)


def lidar_from_scatter(sigma_b: np.ndarray, sigma_w: np.ndarray, *, delta: float = LIDAR_DELTA,
                       eps: float = LIDAR_EPS) -> float:
    """LiDAR from the between- and (unregularised) within-class covariances (D x D, float64)."""
    d = sigma_w.shape[0]
    sw = 0.5 * (sigma_w + sigma_w.T) + float(delta) * np.eye(d)
    ev, vec = np.linalg.eigh(sw)
    ev = np.clip(ev, float(delta), None)  # Sigma_w + delta I is >= delta I; round-off aside
    inv_sqrt = (vec / np.sqrt(ev)) @ vec.T
    m = inv_sqrt @ sigma_b @ inv_sqrt
    return effective_rank(np.linalg.eigvalsh(0.5 * (m + m.T)), eps)


def _scatters(z: torch.Tensor, chunk: int = 16384) -> tuple:
    """(Sigma_b, Sigma_w) of views z (V, N, D), float64 sums over row chunks."""
    v, n, d = z.shape
    work = torch.float64 if z.dtype == torch.float64 else torch.float32
    means = torch.zeros(n, d, dtype=torch.float64)
    sw = torch.zeros(d, d, dtype=torch.float64)
    for r0 in range(0, n, chunk):
        block = z[:, r0 : r0 + chunk].to(work)               # (V, b, D)
        mb = block.mean(0, dtype=torch.float64)              # class means of these rows
        means[r0 : r0 + block.shape[1]] = mb
        dev = (block - mb.to(work)).reshape(-1, d)
        sw += (dev.T @ dev).to(torch.float64).cpu()
    c = means - means.mean(0)
    sb = (c.T @ c) / (n - 1)
    sw = sw / (n * (v - 1))
    return sb.numpy(), (0.5 * (sw + sw.T)).numpy()


def lidar(z, *, delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS) -> float:
    """LiDAR of views ``z`` of shape (V, N, D) (V >= 2 views of N >= 2 samples); torch or numpy."""
    t = z.detach() if isinstance(z, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(z)))
    if t.ndim != 3:
        raise ValueError(f"LiDAR needs views of shape (V, N, D), got {tuple(t.shape)}")
    v, n, d = (int(s) for s in t.shape)
    if v < 2 or n < 2 or d < 1:
        raise ValueError(f"LiDAR needs at least 2 views of at least 2 samples, got shape {(v, n, d)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    sb, sw = _scatters(t.cpu())
    return lidar_from_scatter(sb, sw, delta=delta, eps=eps)


def _bartlett(dof: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """A Wishart(dof, I_d) matrix: L L^T with the Bartlett factor (dof >= d) or G G^T (dof < d)."""
    if dof >= d:
        low = np.tril(rng.standard_normal((d, d)), -1)
        low[np.diag_indices(d)] = np.sqrt(rng.chisquare(dof - np.arange(d)))
        return low @ low.T
    g = rng.standard_normal((d, dof))
    return g @ g.T


def lidar_reference(views: int, n: int, d: int, *, seed: int = 0, delta: float = LIDAR_DELTA,
                    eps: float = LIDAR_EPS) -> float:
    """LiDAR of N(0, I) views of shape (views, n, d), every view independent (seeded, cached)."""
    views, n, d = int(views), int(n), int(d)
    key = (views, n, d, int(seed), float(delta), float(eps))
    with _REF_LOCK:
        if key in _REF_CACHE:
            return _REF_CACHE[key]
    if views < 2 or n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    # class means of V independent N(0, I) views are N(0, I / V); the within-class scatter is
    # independent of them (Cochran), with N (V - 1) degrees of freedom
    sb = _bartlett(n - 1, d, rng) / ((n - 1) * views)
    sw = _bartlett(n * (views - 1), d, rng) / (n * (views - 1))
    val = lidar_from_scatter(sb, sw, delta=delta, eps=eps)
    with _REF_LOCK:
        _REF_CACHE[key] = val
        while len(_REF_CACHE) > 64:
            _REF_CACHE.popitem(last=False)
    return val


def views_metrics(z, distributed: bool = False) -> dict:
    """``{"lidar": ...}`` for views (V, N, D) with V >= 2 (the companion metric of a multi-view batch);
    ``{}`` for a single batch, one view, or a distributed batch (each rank holds only its rows, and the
    scatters are not all-reduced); NaN when the D x D work is over the budget
    (:mod:`sigreg_core.assessment.budget`)."""
    shape = tuple(int(s) for s in getattr(z, "shape", ()))
    if distributed or len(shape) != 3 or shape[0] < 2 or shape[1] < 2:
        return {}
    from sigreg_core.assessment import budget
    try:
        budget.check_dense_dim(shape[2], "LiDAR")
    except budget.WorkBudgetError:
        return {"lidar": float("nan")}
    return {"lidar": lidar(z)}
