"""Companion metrics of an embedding batch, from additive float64 sums.

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312) compares every slice with N(0, 1).  These classical numbers
sit beside it on every page (SIGREG.md §4):

* **RankMe** (Garrido et al., ICML 2023): with sigma_k the singular values of Z
  (N x D, not centred), p_k = sigma_k / sum_j sigma_j + eps (eps = 1e-7) and
  RankMe = exp(-sum_k p_k log p_k), in [1, min(N, D)].
* **Covariance eigen-spectrum**: eigenvalues of the sample covariance
  C = (Z - mu)^T (Z - mu) / (N - 1), largest first, and the slope of
  log lambda_k against log k over the non-negligible ones (alpha-ReQ style power
  law; about 0 for an isotropic batch, steep when dimensions collapse).
* **std of L2-normalised rows** (SimSiam, Chen & He 2021): the per-dimension
  standard deviation (N - 1 in the denominator) of z_n / ||z_n||, averaged over
  dimensions: 0 at collapse, about 1/sqrt(D) for an isotropic batch.
* **VICReg** (Bardes et al., ICLR 2022) variance term mean_j relu(1 - sqrt(var_j + 1e-4))
  (unbiased var) and covariance term sum_{i != j} C_ij^2 / D.
* **Per-dimension mean and std** (population std, N in the denominator).

Everything is computed from sums that add over row chunks and over processes
(n, sum of d = z - shift, sum of d d^T, and the same two sums for the
normalised rows), so a streamed or distributed batch gives exactly the numbers
of the concatenated batch.  The shift (the first chunk's mean, or the
all-reduced mean of the first chunks) keeps the float64 sums accurate for
embeddings far from the origin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from sigreg_core.assessment.budget import check_dense_dim

__all__ = ["MomentSums", "companion_metrics", "metrics_from_sums", "rankme", "RANKME_EPS"]

RANKME_EPS = 1e-7
VICREG_EPS = 1e-4


#: rows per float32 Gram block (see MomentSums.update)
GRAM_BLOCK = 4096


def _as_tensor(z) -> torch.Tensor:
    if isinstance(z, torch.Tensor):
        t = z.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(z)))
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16, torch.uint8)):
        raise ValueError(f"embeddings must be numeric, got {t.dtype}")
    return t


@dataclass
class MomentSums:
    """Additive sums behind the companion metrics (float64 on the CPU)."""

    dim: int
    n: int = 0
    shift: Optional[torch.Tensor] = None  # (D,)
    s1: torch.Tensor = field(default=None)  # sum of d = z - shift, (D,)
    s2: torch.Tensor = field(default=None)  # sum of d d^T, (D, D)
    u1: torch.Tensor = field(default=None)  # sum of z / ||z||, (D,)
    u2: torch.Tensor = field(default=None)  # sum of (z / ||z||)^2, (D,)

    def __post_init__(self) -> None:
        d = int(self.dim)
        if self.s2 is None:
            check_dense_dim(d)  # the (D, D) sums below: refuse before allocating (assessment/budget.py)
        f64 = dict(dtype=torch.float64)
        if self.s1 is None:
            self.s1 = torch.zeros(d, **f64)
        if self.s2 is None:
            self.s2 = torch.zeros(d, d, **f64)
        if self.u1 is None:
            self.u1 = torch.zeros(d, **f64)
        if self.u2 is None:
            self.u2 = torch.zeros(d, **f64)

    def set_shift(self, shift) -> None:
        if self.n:
            raise RuntimeError("set the shift before the first update")
        self.shift = torch.as_tensor(shift, dtype=torch.float64).cpu().reshape(self.dim)

    def update(self, z) -> "MomentSums":
        """Add rows z (rows, D), any float dtype or device."""
        t = _as_tensor(z)
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise ValueError(f"expected rows of shape (rows, {self.dim}), got {tuple(t.shape)}")
        if t.shape[0] == 0:
            return self
        if self.shift is None:
            self.shift = t.to(torch.float64).mean(0).cpu()
        # float64 input keeps float64 arithmetic; otherwise the centred products run as
        # float32 GEMMs over blocks of GRAM_BLOCK rows, each block sum added in float64
        # (relative error ~1e-6, far below the sampling error of a covariance)
        work = torch.float64 if t.dtype == torch.float64 else torch.float32
        shift = self.shift.to(device=t.device, dtype=work)
        for r0 in range(0, t.shape[0], GRAM_BLOCK):
            tb = t[r0 : r0 + GRAM_BLOCK].to(work)
            d = tb - shift
            self.s1 += d.sum(0, dtype=torch.float64).cpu()
            self.s2 += (d.T @ d).to(torch.float64).cpu()
            u = tb / tb.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self.u1 += u.sum(0, dtype=torch.float64).cpu()
            self.u2 += (u * u).sum(0, dtype=torch.float64).cpu()
        self.n += int(t.shape[0])
        return self

    def all_reduce(self) -> "MomentSums":
        """Sum over the active torch.distributed group (the shift must already agree)."""
        from sigreg_core.core import distributed as _dist
        if not _dist.group_active():
            return self
        n = torch.tensor(float(self.n), dtype=torch.float64)
        self.s1, self.s2, self.u1, self.u2, n = _dist.all_reduce_sum(self.s1, self.s2, self.u1, self.u2, n)
        self.n = int(round(float(n)))
        return self

    def minus(self, other: "MomentSums") -> "MomentSums":
        """The sums of the rows of ``self`` that are not in ``other`` (same shift required)."""
        if other.shift is not None and self.shift is not None and not torch.equal(other.shift, self.shift):
            raise ValueError("MomentSums.minus needs both sums taken with the same shift")
        return MomentSums(self.dim, n=self.n - other.n, shift=self.shift, s1=self.s1 - other.s1,
                          s2=self.s2 - other.s2, u1=self.u1 - other.u1, u2=self.u2 - other.u2)

    def scaled(self, c: float) -> "MomentSums":
        """The sums of the rows multiplied by ``c`` > 0 (the normalised-row sums do not change)."""
        c = float(c)
        return MomentSums(self.dim, n=self.n, shift=None if self.shift is None else self.shift * c,
                          s1=self.s1 * c, s2=self.s2 * (c * c), u1=self.u1.clone(), u2=self.u2.clone())

    # ------------------------------------------------------------ derived
    @property
    def mean(self) -> np.ndarray:
        return (self.shift + self.s1 / self.n).numpy()

    def covariance(self, ddof: int = 1) -> np.ndarray:
        n = self.n
        dm = self.s1 / n
        c = (self.s2 - n * torch.outer(dm, dm)) / max(n - ddof, 1)
        c = 0.5 * (c + c.T)
        return c.numpy()

    def gram(self) -> np.ndarray:
        """Z^T Z of the uncentred rows (its eigenvalues are the squared singular values of Z)."""
        s = self.shift
        g = self.s2 + torch.outer(s, self.s1) + torch.outer(self.s1, s) + self.n * torch.outer(s, s)
        return (0.5 * (g + g.T)).numpy()


def rankme(singular_values, eps: float = RANKME_EPS) -> float:
    """RankMe from singular values: exp(entropy of sigma / sum sigma + eps)."""
    s = np.clip(np.asarray(singular_values, dtype=np.float64), 0.0, None)
    total = s.sum()
    if not total > 0:
        return 1.0 if s.size else float("nan")
    p = s / total + eps
    return float(math.exp(-np.sum(p * np.log(p))))


def _spectrum_slope(eig: np.ndarray) -> float:
    """Least-squares slope of log(lambda_k) on log(k) over lambda_k > 1e-12 lambda_1 (needs 3+)."""
    if eig.size == 0 or not eig[0] > 0:
        return float("nan")
    keep = eig > 1e-12 * eig[0]
    e = eig[keep]
    if e.size < 3:
        return float("nan")
    k = np.log(np.arange(1, e.size + 1))
    y = np.log(e)
    k0 = k - k.mean()
    return float(np.sum(k0 * (y - y.mean())) / np.sum(k0 * k0))


def metrics_from_sums(sums: MomentSums) -> dict:
    """Every companion metric from (all-reduced) :class:`MomentSums`."""
    n, dim = sums.n, sums.dim
    if n < 2:
        raise ValueError(f"companion metrics need at least 2 rows, got {n}")
    mean = sums.mean
    cov = sums.covariance(ddof=1)
    var_unb = np.clip(np.diag(cov), 0.0, None)
    var_pop = var_unb * (n - 1) / n
    eig = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1]
    sq_sing = np.sort(np.clip(np.linalg.eigvalsh(sums.gram()), 0.0, None))[::-1][: min(n, dim)]
    sing = np.sqrt(sq_sing)
    u_mean = (sums.u1 / n).numpy()
    u_var = np.clip(((sums.u2 / n).numpy() - u_mean**2) * n / (n - 1), 0.0, None)
    off = cov - np.diag(np.diag(cov))
    total_var = float(np.sum(var_pop))
    return {
        "n": int(n),
        "dim": int(dim),
        "rankme": rankme(sing),
        "rankme_fraction": rankme(sing) / min(n, dim),
        "singular_values": sing,
        "eigenvalues": eig,
        "spectrum_slope": _spectrum_slope(eig),
        "top_eigen_fraction": float(eig[0] / eig.sum()) if eig.sum() > 0 else float("nan"),
        "normalized_std": float(np.mean(np.sqrt(u_var))),
        "normalized_std_isotropic": 1.0 / math.sqrt(dim),
        "vicreg_variance": float(np.mean(np.maximum(0.0, 1.0 - np.sqrt(var_unb + VICREG_EPS)))),
        "vicreg_covariance": float(np.sum(off**2) / dim),
        "dim_mean": mean,
        "dim_std": np.sqrt(var_pop),
        "mean_norm": float(np.linalg.norm(mean)),
        "rms_std": math.sqrt(total_var / dim),
    }


def companion_metrics(z, *, chunk_rows: int = 65536, distributed: bool = False) -> dict:
    """Companion metrics of embeddings z (N, D) (torch tensor or numpy array), streamed over rows.

    With ``distributed=True`` the sums are all-reduced over the active
    torch.distributed group first (the shift is the all-reduced mean of the
    ranks' first chunks), so every rank gets the metrics of the global batch.
    """
    if getattr(z, "ndim", 0) != 2:
        raise ValueError(f"companion metrics expect z of shape (N, D), got {tuple(getattr(z, 'shape', ()))}")
    n, dim = int(z.shape[0]), int(z.shape[1])
    sums = MomentSums(dim)
    if distributed:
        from sigreg_core.core import distributed as _dist
        first = _as_tensor(z[: min(n, chunk_rows)]).to(torch.float64)
        shift = first.mean(0).cpu() if first.shape[0] else torch.zeros(dim, dtype=torch.float64)
        (shift,) = _dist.all_reduce_sum(shift)
        sums.set_shift(shift / _dist.world_size())
    for r0 in range(0, n, chunk_rows):
        sums.update(z[r0 : r0 + chunk_rows])
    if distributed:
        sums.all_reduce()
    return metrics_from_sums(sums)
