"""Health: how many directions do the embeddings really use?  (Is it collapsing?)

A collapsing encoder maps different inputs to the same direction (full collapse; the rank
collapse of untrained transformers, Dong et al., ICML 2021; Noci et al., NeurIPS 2022) or into a
few directions (dimensional collapse, Jing et al., ICLR 2022).  Both are questions about the
*directions* of the rows, not their size, their offset or their distribution along a direction,
so this answer is computed on the L2-normalised rows ``u_n = z_n / ||z_n||`` and is invariant to
every convention the verdict names (row normalisation, a global scale; see
:mod:`sigreg_core.assessment.verdict`):

* **effective directions** ``r = exp(S(ρ))``: the rows' directions define the density matrix
  ``ρ = (1/N) Σ_n u_n u_nᵀ`` (positive semi-definite, trace 1); with ``λ_k`` its eigenvalues,
  ``S = -Σ λ_k log λ_k`` (the von Neumann entropy) and ``r`` is the effective rank of Roy &
  Vetterli (EUSIPCO 2007) of the directions' second moment, in ``[1, min(N, D)]``: RankMe
  (Garrido et al., ICML 2023) with the energy ``λ_k = σ_k^2 / N`` of each singular direction
  of the unit rows in place of ``σ_k``, so a direction is weighted by the share of the rows'
  energy it carries.  Rows that share one direction give r = 1; a common direction carrying
  most of the energy (a mean cosine near 1: rank collapse) pulls r towards 1 however the rest
  varies, and variation on a few axes pulls it towards their number.
* **relative effective rank** ``q = r / r_ref``, with ``r_ref`` the same RankMe for N(0, I)
  rows at the same (N, D) (a seeded Gaussian draw, exact to about 1e-3, cached): 1 for an
  isotropic set at any N, so sets of different shapes sit on one scale from 0 (one direction)
  to 1 (as many directions as a healthy set).
* **direction spread** ``s = sqrt(1 - ||mean_n u_n||^2)``: 1 - s^2 is the mean pairwise cosine
  (up to 1/N); the rows "point one way" when s < ``FULL_SPREAD`` (mean cosine above 0.94).

The level words and edges live in :mod:`sigreg_core.assessment.verdict` (``HEALTH_EDGES``):
they are powers of four of q (1/4, 1/16, 1/64), chosen from the meaning of q, not fitted to any
encoder; ``docs/calibration.md`` lists where public encoders, their untrained twins and the
reference sets fall (``scripts/atlas.py``).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["HEALTH_MAX_ROWS", "effective_directions", "reference_directions", "measure_health"]

#: rows used for the health answer (a seeded subsample beyond; r_ref is taken at the same N)
HEALTH_MAX_ROWS = 8192


def _effective_rank(lam: np.ndarray) -> float:
    """exp of the entropy of the normalised eigenvalues (Roy & Vetterli 2007)."""
    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    tot = float(lam.sum())
    if tot <= 0:
        return 1.0
    p = lam[lam > 0] / tot
    return float(math.exp(-np.sum(p * np.log(p))))


def _direction_spectrum(z, distributed: bool = False) -> tuple[np.ndarray, float]:
    """Eigenvalues of the directions' density matrix (1/N) U^T U (float64) and the direction spread s.

    ``distributed``: every rank adds its rows' U^T U, sum of u and count (one all-reduce), so each
    rank gets the numbers of the whole batch.
    """
    t = z.detach().to("cpu", torch.float64) if isinstance(z, torch.Tensor) else torch.from_numpy(
        np.asarray(z, dtype=np.float64))
    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    u = t / norms.clamp_min(1e-300)
    u = u[norms[:, 0] > 0]  # an all-zero row has no direction
    n, d = int(u.shape[0]), int(t.shape[1])
    if distributed:
        from sigreg_core.core import distributed as _dist

        g, m_sum, cnt = _dist.all_reduce_sum(u.T @ u, u.sum(0), torch.tensor([float(n)], dtype=torch.float64))
        n = int(round(float(cnt[0])))
        if n == 0:
            return np.zeros(1), 0.0
        ev = torch.linalg.eigvalsh(g / n).clamp_min(0.0).numpy()[::-1]
        m = m_sum / n
        return ev, math.sqrt(max(0.0, 1.0 - float(m @ m)))
    if n == 0:
        return np.zeros(1), 0.0
    g = (u.T @ u if d <= n else u @ u.T) / n  # the smaller Gram matrix: the same non-zero eigenvalues
    ev = torch.linalg.eigvalsh(g).clamp_min(0.0).numpy()[::-1]
    m = u.mean(0)
    spread = math.sqrt(max(0.0, 1.0 - float(m @ m)))
    return ev, spread


def effective_directions(z, distributed: bool = False) -> tuple[float, float]:
    """(effective directions r = exp S(ρ), direction spread s) of an (N, D) array or tensor."""
    lam, spread = _direction_spectrum(z, distributed)
    return _effective_rank(lam), spread


@lru_cache(maxsize=64)
def reference_directions(n: int, d: int) -> float:
    """Effective directions of N(0, I) rows at (n, d): mean of seeded draws (the scale's 1)."""
    rng = np.random.Generator(np.random.PCG64(0x5EED + 31 * int(d) + int(n)))
    draws = 2 if n * d <= 4_000_000 else 1
    vals = [effective_directions(rng.standard_normal((int(n), int(d))))[0] for _ in range(draws)]
    return float(np.mean(vals))


def _subsample(z, seed: int):
    n = int(z.shape[0])
    if n <= HEALTH_MAX_ROWS:
        return z
    idx = np.sort(np.random.default_rng([int(seed), 0x4845]).choice(n, HEALTH_MAX_ROWS, replace=False))
    return z[torch.from_numpy(idx)] if isinstance(z, torch.Tensor) else np.asarray(z)[idx]


def measure_health(z, seed: int = 0, distributed: bool = False) -> dict:
    """The numbers of the health answer: effective directions r, reference r_ref, q = r / r_ref, spread s.

    ``z``: (N, D), rows as given (no rescale needed: everything here is per-row scale free).
    """
    zs = _subsample(z, seed)
    n, d = int(zs.shape[0]), int(zs.shape[1])
    if distributed:
        from sigreg_core.core import distributed as _dist

        (cnt,) = _dist.all_reduce_sum(torch.tensor([float(n)], dtype=torch.float64))
        n = int(round(float(cnt[0])))  # the rows of every rank (each subsampled to HEALTH_MAX_ROWS)
    r, spread = effective_directions(zs, distributed)
    ref = reference_directions(n, d)
    return {
        "effective_directions": r,
        "reference_directions": ref,
        "relative_effective_rank": r / ref if ref > 0 else float("nan"),
        "direction_spread": spread,
        "mean_cosine": 1.0 - spread**2,
        "rows_used": n,
        "dim": d,
    }
