"""Slice families: which unit directions the sliced Epps–Pulley statistic looks along.

SIGReg (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) averages
EP(Z a_m) over random unit directions a_m.  Random slices of a batch whose
coordinates are *independent* but non-Gaussian look Gaussian in high D (central
limit theorem): a bimodal +-1 batch scores at the null level.  Other families
see it (SIGREG.md §2):

``random``      ``sample_directions(D, M, seed)``: LeJEPA's seeded draw (default);
                fixed before seeing the data, so the exact per-slice law applies.
``coordinate``  the D coordinate axes (M = D); fixed, exact law applies.
``principal``   eigenvectors of the sample covariance, largest eigenvalue first
                (M = D, or the top ``num_slices``).  Chosen from the data: the top
                axis has more than unit variance under the null, so its raw
                statistic needs a Monte Carlo null of the same choice (see
                :mod:`sigreg_core.assessment.assess`).
``worst``       directions found by projected gradient ascent of the slice
                statistic on the unit sphere, from several restarts (the best of
                a pool of random directions).  Maximised over the data, so the
                per-slice law does not apply: its p-values are descriptive.

``make_directions(z, family, num_slices, seed, preset) -> (A (D, M) float32 CPU, info)``.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from sigreg_core.core.directions import sample_directions
from sigreg_core.assessment.family_names import FAMILIES
from sigreg_core.core.presets import Preset, get_preset

__all__ = ["FAMILIES", "make_directions", "principal_axes", "coordinate_axes", "search_worst_directions"]

#: the worst-direction search uses at most this many restarts and rows
MAX_RESTARTS = 32
MAX_SEARCH_ROWS = 16384


@lru_cache(maxsize=8)
def _random_directions(dim: int, num_slices: int, seed: int) -> torch.Tensor:
    # memoised for Monte Carlo nulls, which score many batches on the same directions
    return sample_directions(dim, num_slices, seed)


def coordinate_axes(dim: int) -> torch.Tensor:
    return torch.eye(int(dim), dtype=torch.float32)


def principal_axes(cov, num: Optional[int] = None) -> tuple[torch.Tensor, np.ndarray]:
    """Eigenvectors of a covariance (D, num) largest eigenvalue first, sign fixed (largest |entry| > 0).

    ``cov`` is a (D, D) covariance, or the batch's
    :class:`~sigreg_core.assessment.metrics.MomentSums`: then its cached spectrum is used,
    on the N x N Gram route when the batch is narrow (u_i = Zc^T v_i / sigma_i, only the
    axes of non-zero variance, at most min(N - 1, D)), so no D x D matrix is formed.
    Float32 axes as a tensor (slices); :func:`principal_eig` gives them in float64.
    This is the one home of principal axes: the cloud view
    (:func:`sigreg_core.present.cloud.principal_axes`) decomposes its subsample's scatter here.
    """
    evecs, evals = principal_eig(cov, num)
    return torch.from_numpy(evecs.astype(np.float32)), evals


def principal_eig(cov, num: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(float64 eigenvectors (D, num), eigenvalues), largest first, signs fixed: see :func:`principal_axes`."""
    if hasattr(cov, "principal"):
        evecs, evals = cov.principal(num)
        evecs = np.array(evecs, dtype=np.float64, copy=True)
    else:
        cov = np.asarray(cov, dtype=np.float64)
        evals, evecs = np.linalg.eigh(0.5 * (cov + cov.T))
        order = np.argsort(evals)[::-1]
        evals, evecs = evals[order], evecs[:, order]
        if num is not None:
            evals, evecs = evals[:num], evecs[:, :num]
    if evecs.shape[1]:
        idx = np.argmax(np.abs(evecs), axis=0)
        signs = np.sign(evecs[idx, np.arange(evecs.shape[1])])
        signs[signs == 0] = 1.0
        evecs = evecs * signs
    return evecs, evals


def _rows_tensor(z, max_rows: int, seed: int) -> torch.Tensor:
    n = int(z.shape[0])
    if n > max_rows:
        g = np.random.default_rng(seed)
        idx = np.sort(g.choice(n, size=max_rows, replace=False))
        part = z[idx] if not isinstance(z, torch.Tensor) else z[torch.from_numpy(idx)]
    else:
        part = z
    t = part.detach() if isinstance(part, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(part))
    return t.to(device="cpu", dtype=torch.float32)


def search_worst_directions(
    z,
    num_restarts: int = 16,
    seed: int = 0,
    preset: "str | Preset" = "lejepa",
    *,
    steps: int = 60,
    pool: int = 256,
    max_rows: int = MAX_SEARCH_ROWS,
) -> tuple[torch.Tensor, dict]:
    """Local maxima of the slice statistic on the sphere (projected gradient ascent).

    Restarts start from the ``num_restarts`` best of ``pool`` seeded random
    directions; each step moves along the geodesic in the direction of the
    tangent gradient of ``epps_pulley(z @ a)`` with a per-restart step length
    that grows after an improvement and halves otherwise (monotone ascent).
    Returns (A (D, R) float32, info), sorted by the final statistic.
    """
    from sigreg_core.core.statistic import epps_pulley

    p = get_preset(preset)
    x = _rows_tensor(z, max_rows, seed)
    n, dim = x.shape
    r = int(max(1, min(num_restarts, MAX_RESTARTS)))
    cand = sample_directions(dim, max(pool, r), seed)
    with torch.no_grad():
        ep0 = epps_pulley(x @ cand, p, distributed=False)
    top = torch.argsort(ep0, descending=True)[:r]
    u = cand[:, top].clone()
    eta = torch.full((r,), 0.3)
    with torch.no_grad():
        cur = epps_pulley(x @ u, p, distributed=False)
    start = cur.clone()
    for _ in range(int(steps)):
        uu = u.clone().requires_grad_(True)
        ep = epps_pulley(x @ uu, p, distributed=False)
        (g,) = torch.autograd.grad(ep.sum(), uu)
        g = g - u * (u * g).sum(0, keepdim=True)
        gn = g.norm(dim=0)
        ok = gn > 1e-12
        if not bool(ok.any()):
            break
        d = torch.where(ok, g / gn.clamp_min(1e-12), torch.zeros_like(g))
        cand_u = u * torch.cos(eta) + d * torch.sin(eta)
        cand_u = cand_u / cand_u.norm(dim=0, keepdim=True)
        with torch.no_grad():
            new = epps_pulley(x @ cand_u, p, distributed=False)
        better = (new > cur) & ok
        u = torch.where(better, cand_u, u)
        cur = torch.where(better, new, cur)
        eta = torch.where(better, (eta * 1.3).clamp(max=0.8), eta * 0.5)
        if bool((eta < 1e-4).all()):
            break
    order = torch.argsort(cur, descending=True)
    u = u[:, order].contiguous()
    info = {
        "restarts": r,
        "steps": int(steps),
        "pool": int(max(pool, r)),
        "search_rows": int(n),
        "start_statistic": [float(v) for v in start[order]],
        "found_statistic_on_search_rows": [float(v) for v in cur[order]],
    }
    return u.float(), info


def make_directions(
    z,
    family: str = "random",
    num_slices: int = 1024,
    seed: int = 0,
    preset: "str | Preset" = "lejepa",
    *,
    cov: Optional[np.ndarray] = None,
) -> tuple[torch.Tensor, dict]:
    """Directions (D, M) float32 on the CPU for a slice family, and what was done.

    ``cov`` (the batch covariance, e.g. all-reduced under torch.distributed) is used
    by ``principal`` instead of recomputing it from ``z``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown slice family {family!r}; choose one of {', '.join(FAMILIES)}")
    dim = int(z.shape[-1])
    m = int(num_slices)
    if m < 1:
        raise ValueError(f"num_slices must be >= 1, got {m}")
    info: dict = {"family": family, "seed": int(seed), "data_dependent": family in ("principal", "worst")}
    if family == "random":
        a = _random_directions(dim, m, int(seed)).clone()
        info["p_values"] = "exact per-slice law (directions fixed before seeing the data)"
    elif family == "coordinate":
        a = coordinate_axes(dim)
        info["p_values"] = "exact per-slice law (fixed axes)"
        info["note"] = f"M = D = {dim} coordinate axes (num_slices ignored)"
    elif family == "principal":
        if cov is None:
            from sigreg_core.assessment.metrics import MomentSums

            s = MomentSums(dim, expect_rows=int(z.shape[0]))
            for r0 in range(0, int(z.shape[0]), 65536):
                s.update(z[r0 : r0 + 65536])
            cov = s
        num = min(dim, m) if m < dim else dim
        a, evals = principal_axes(cov, num)
        info["eigenvalues"] = [float(v) for v in evals]
        info["p_values"] = "Monte Carlo null of the same principal index (axes chosen from the data)"
        if a.shape[1] < num:  # the N x N route: beyond the rank the sample covariance has no axes
            info["note"] = (f"top {a.shape[1]} principal axes of the sample covariance (its rank; the other "
                            f"{num - a.shape[1]} requested have zero variance)")
            num = a.shape[1]
        else:
            info["note"] = f"top {num} principal axes of the sample covariance"
    else:  # worst
        r = int(min(m, MAX_RESTARTS))
        a, search = search_worst_directions(z, num_restarts=r, seed=seed, preset=preset)
        info.update(search)
        info["p_values"] = "descriptive: exact per-slice law, NOT corrected for the search"
        info["note"] = f"{r} searched directions (restarts = min(num_slices, {MAX_RESTARTS}))"
    return a, info
