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
* **alpha-ReQ** (Agrawal et al., NeurIPS 2022): the decay exponent alpha of
  lambda_k ~ k^(-alpha), fitted over k = 6 .. 100 of the same eigenvalues
  (:mod:`sigreg_core.assessment.alpha_req`, which states the range).
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

from sigreg_core.assessment import budget
from sigreg_core.assessment.alpha_req import alpha_req as _alpha_req

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
    """Additive sums behind the companion metrics (float64 on the CPU).

    Two exact routes for the second moments (assessment/budget.py): ``s2`` = sum of
    d d^T (D x D, the dense route) or, while the batch is narrow (N <= D, D > 512, the
    rows within ``GRAM_ROWS_BYTES``), ``rows`` = the float64 rows d = z - shift
    themselves, whose N x N Gram gives the same non-zero spectrum.  ``expect_rows``
    (the batch's N, when known) picks the route up front; ``keep_rows`` forces it
    (True: Gram route, False: dense).  Rows past the Gram limit switch to the dense
    route (s2 = R^T R, exact) on the fly.
    """

    dim: int
    n: int = 0
    shift: Optional[torch.Tensor] = None  # (D,)
    s1: torch.Tensor = field(default=None)  # sum of d = z - shift, (D,)
    s2: torch.Tensor = field(default=None)  # sum of d d^T, (D, D) (None on the Gram route)
    u1: torch.Tensor = field(default=None)  # sum of z / ||z||, (D,)
    u2: torch.Tensor = field(default=None)  # sum of (z / ||z||)^2, (D,)
    rows: Optional[torch.Tensor] = None  # (n, D) float64 d = z - shift (the Gram route)
    expect_rows: Optional[int] = None
    keep_rows: Optional[bool] = None
    _spec: Optional[tuple] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = int(self.dim)
        f64 = dict(dtype=torch.float64)
        if self.s1 is None:
            self.s1 = torch.zeros(d, **f64)
        if self.u1 is None:
            self.u1 = torch.zeros(d, **f64)
        if self.u2 is None:
            self.u2 = torch.zeros(d, **f64)
        if self.s2 is None and self.rows is None:
            if self.keep_rows is None:
                gram = self.expect_rows is not None and budget.route(self.expect_rows, d) == "gram"
            else:
                gram = bool(self.keep_rows)
            if gram:
                self.rows = torch.zeros(0, d, **f64)
            else:
                budget.check_dense_dim(d)  # the (D, D) sums below: refuse before allocating
                self.s2 = torch.zeros(d, d, **f64)

    @property
    def route(self) -> str:
        """``"gram"`` while the rows are kept (N x N spectra), else ``"dense"``."""
        return "gram" if self.rows is not None else "dense"

    def _to_dense(self) -> None:
        if self.rows is None:
            return
        budget.check_dense_dim(self.dim)
        r = self.rows
        self.s2 = 0.5 * ((r.T @ r) + (r.T @ r).T) if r.shape[0] else torch.zeros(self.dim, self.dim, dtype=torch.float64)
        self.rows = None
        self._spec = None

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
        self._spec = None
        if self.rows is not None and (self.keep_rows is not True) and (
                self.rows.shape[0] + t.shape[0] > self.dim
                or 8 * (self.rows.shape[0] + t.shape[0]) * self.dim > budget.GRAM_ROWS_BYTES):
            self._to_dense()  # no longer narrow: the D x D sums are cheaper from here on
        # float64 input keeps float64 arithmetic; otherwise the centred products run as
        # float32 GEMMs over blocks of GRAM_BLOCK rows, each block sum added in float64
        # (relative error ~1e-6, far below the sampling error of a covariance)
        work = torch.float64 if t.dtype == torch.float64 else torch.float32
        shift = self.shift.to(device=t.device, dtype=work)
        for r0 in range(0, t.shape[0], GRAM_BLOCK):
            tb = t[r0 : r0 + GRAM_BLOCK].to(work)
            d = tb - shift
            self.s1 += d.sum(0, dtype=torch.float64).cpu()
            if self.rows is not None:
                self.rows = torch.cat([self.rows, d.to(torch.float64).cpu()])
            else:
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
        self._to_dense()  # rows of different ranks do not add: the D x D sums do
        n = torch.tensor(float(self.n), dtype=torch.float64)
        self.s1, self.s2, self.u1, self.u2, n = _dist.all_reduce_sum(self.s1, self.s2, self.u1, self.u2, n)
        self.n = int(round(float(n)))
        self._spec = None
        return self

    def minus(self, other: "MomentSums", rows_index=None) -> "MomentSums":
        """The sums of the rows of ``self`` that are not in ``other`` (same shift required).

        On the Gram route ``rows_index`` (the positions of ``other``'s rows in ``self``) keeps
        it there; without it both sides go dense.
        """
        if other.shift is not None and self.shift is not None and not torch.equal(other.shift, self.shift):
            raise ValueError("MomentSums.minus needs both sums taken with the same shift")
        common = dict(n=self.n - other.n, shift=self.shift, u1=self.u1 - other.u1, u2=self.u2 - other.u2)
        if self.rows is not None and rows_index is not None:
            keep = torch.ones(self.rows.shape[0], dtype=torch.bool)
            keep[torch.as_tensor(np.asarray(rows_index, dtype=np.int64))] = False
            r = self.rows[keep]
            return MomentSums(self.dim, s1=r.sum(0), rows=r, **common)
        self._to_dense()
        other._to_dense()
        return MomentSums(self.dim, s1=self.s1 - other.s1, s2=self.s2 - other.s2, **common)

    def scaled(self, c: float) -> "MomentSums":
        """The sums of the rows multiplied by ``c`` > 0 (the normalised-row sums do not change)."""
        c = float(c)
        return MomentSums(self.dim, n=self.n, shift=None if self.shift is None else self.shift * c,
                          s1=self.s1 * c, s2=None if self.s2 is None else self.s2 * (c * c),
                          rows=None if self.rows is None else self.rows * c,
                          u1=self.u1.clone(), u2=self.u2.clone())

    # ------------------------------------------------------------ derived
    @property
    def mean(self) -> np.ndarray:
        return (self.shift + self.s1 / self.n).numpy()

    def variances(self, ddof: int = 1) -> np.ndarray:
        """The diagonal of the covariance (per-dimension variances), without forming it."""
        n = self.n
        dm = self.s1 / n
        sq = (self.rows * self.rows).sum(0) if self.rows is not None else torch.diagonal(self.s2)
        return ((sq - n * dm * dm) / max(n - ddof, 1)).numpy()

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """The D x D covariance (forms it: on the Gram route this switches the sums to dense)."""
        self._to_dense()
        n = self.n
        dm = self.s1 / n
        c = (self.s2 - n * torch.outer(dm, dm)) / max(n - ddof, 1)
        c = 0.5 * (c + c.T)
        return c.numpy()

    def gram(self) -> np.ndarray:
        """Z^T Z of the uncentred rows (its eigenvalues are the squared singular values of Z)."""
        self._to_dense()
        s = self.shift
        g = self.s2 + torch.outer(s, self.s1) + torch.outer(self.s1, s) + self.n * torch.outer(s, s)
        return (0.5 * (g + g.T)).numpy()

    def _row_grams(self) -> tuple:
        """(Zc Zc^T, Z Z^T), both n x n float64, from the kept rows (the Gram route)."""
        r = self.rows
        g = r @ r.T
        g = 0.5 * (g + g.T)
        m = g.mean(0)
        gc = g - m[:, None] - m[None, :] + g.mean()  # H G H with H = I - 11^T / n: the centred rows' Gram
        rs = r @ self.shift
        gu = g + rs[:, None] + rs[None, :] + float(self.shift @ self.shift)
        return (0.5 * (gc + gc.T)).numpy(), (0.5 * (gu + gu.T)).numpy()

    def spectrum(self) -> tuple:
        """``(eigenvalues, axes, sq_singular)``: the covariance eigenvalues largest first (D of
        them on the dense route, N on the Gram route, where the rest are exactly 0), the
        eigenvectors that define the axes (dense: the (D, D) unit eigenvectors; Gram: the
        (N, k) eigenvectors v of Zc Zc^T with non-zero eigenvalue, turned into axes by
        :meth:`principal`), and the squared singular values of the uncentred Z.
        Computed once and kept until the next update."""
        if self._spec is not None:
            return self._spec
        n = self.n
        if self.rows is not None:
            gc, gu = self._row_grams()
            sq = np.sort(np.clip(np.linalg.eigvalsh(gu), 0.0, None))[::-1]
            del gu
            mu, v = np.linalg.eigh(gc)
            del gc
            order = np.argsort(mu)[::-1]
            mu, v = np.clip(mu[order], 0.0, None), v[:, order]
            eig = mu / max(n - 1, 1)
            nz = int(np.sum(mu > max(mu[0], 0.0) * 1e-12 * max(n, 1))) if mu.size and mu[0] > 0 else 0
            nz = min(nz, max(n - 1, 0))
            axes = v[:, :nz] - v[:, :nz].mean(0, keepdims=True)  # exact for mu > 0 (orthogonal to 1)
        else:
            evals, axes = np.linalg.eigh(self.covariance(ddof=1))
            order = np.argsort(evals)[::-1]
            eig, axes = np.clip(evals[order], 0.0, None), axes[:, order]
            sq = np.sort(np.clip(np.linalg.eigvalsh(self.gram()), 0.0, None))[::-1][: min(n, self.dim)]
        self._spec = (eig, axes, sq)
        return self._spec

    def principal(self, num: Optional[int] = None) -> tuple:
        """(D, k) principal axes (float64, largest variance first) and their covariance eigenvalues.

        Gram route: u_i = Zc^T v_i / sqrt(mu_i) (mu_i = (N - 1) lambda_i), only for the k <= N - 1
        axes of non-zero variance, formed for the first ``num`` only (D x num memory)."""
        eig, vecs, _sq = self.spectrum()
        k = vecs.shape[1] if num is None else min(int(num), vecs.shape[1])
        if self.rows is None:
            return vecs[:, :k], eig[:k]
        if k == 0:  # every row equal: no axis has variance; one coordinate axis (eigenvalue 0) stands in
            axes = np.zeros((self.dim, 1))
            axes[0, 0] = 1.0
            return axes, eig[:1]
        mu = eig[:k] * max(self.n - 1, 1)
        axes = (self.rows.numpy().T @ vecs[:, :k]) / np.sqrt(mu)[None, :]
        axes /= np.maximum(np.linalg.norm(axes, axis=0, keepdims=True), 1e-300)
        return axes, eig[:k]


def rankme(singular_values, eps: float = RANKME_EPS) -> float:
    """RankMe from singular values: exp(entropy of sigma / sum sigma + eps)."""
    s = np.clip(np.asarray(singular_values, dtype=np.float64), 0.0, None)
    total = s.sum()
    if not total > 0:
        return 1.0 if s.size else float("nan")
    p = s / total + eps
    return float(math.exp(-np.sum(p * np.log(p))))


def _spectrum_slope(eig: np.ndarray, rank: Optional[int] = None) -> float:
    """Least-squares slope of log(lambda_k) on log(k) over the first ``rank`` eigenvalues
    (the non-zero ones: rank = min(N - 1, D) for a sample covariance) that are also
    > 1e-12 lambda_1 (needs 3+).  Without ``rank`` the float round-off of the zero
    eigenvalues of an N <= D batch would be fitted as a steep power law."""
    eig = np.asarray(eig, dtype=np.float64)
    if rank is not None:
        eig = eig[: max(int(rank), 0)]
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
    var_unb = np.clip(sums.variances(ddof=1), 0.0, None)
    var_pop = var_unb * (n - 1) / n
    eig, _axes, sq_sing = sums.spectrum()  # D x D or N x N route (budget.route): the same non-zero values
    sing = np.sqrt(sq_sing[: min(n, dim)])
    u_mean = (sums.u1 / n).numpy()
    u_var = np.clip(((sums.u2 / n).numpy() - u_mean**2) * n / (n - 1), 0.0, None)
    # sum_{i != j} C_ij^2 = ||C||_F^2 - sum_j C_jj^2, and ||C||_F^2 = sum_k lambda_k^2 (no D x D needed)
    off_sq = max(float(np.sum(eig**2)) - float(np.sum(sums.variances(ddof=1) ** 2)), 0.0)
    total_var = float(np.sum(var_pop))
    aq = _alpha_req(eig, min(n - 1, dim))
    return {
        "n": int(n),
        "dim": int(dim),
        "rankme": rankme(sing),
        "rankme_fraction": rankme(sing) / min(n, dim),
        "singular_values": sing,
        "eigenvalues": eig,
        "spectrum_slope": _spectrum_slope(eig, min(n - 1, dim)),
        "top_eigen_fraction": float(eig[0] / eig.sum()) if eig.sum() > 0 else float("nan"),
        "alpha_req": aq["alpha"],
        "alpha_req_k_lo": aq["k_lo"],
        "alpha_req_k_hi": aq["k_hi"],
        "normalized_std": float(np.mean(np.sqrt(u_var))),
        "normalized_std_isotropic": 1.0 / math.sqrt(dim),
        "vicreg_variance": float(np.mean(np.maximum(0.0, 1.0 - np.sqrt(var_unb + VICREG_EPS)))),
        "vicreg_covariance": off_sq / dim,
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
    sums = MomentSums(dim, expect_rows=None if distributed else n)
    if distributed:
        from sigreg_core.core import distributed as _dist
        first = _as_tensor(z[: min(n, chunk_rows)]).to(torch.float64).reshape(-1, dim)
        sums.set_shift(_dist.global_mean(first))  # an empty rank adds zeros
    for r0 in range(0, n, chunk_rows):
        sums.update(z[r0 : r0 + chunk_rows])
    if distributed:
        sums.all_reduce()
    return metrics_from_sums(sums)
