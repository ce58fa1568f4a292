"""One streamed pass over the rows: finiteness, magnitude, row norms, moment sums and outlier rows.

Before anything is scored, ``assess`` needs facts that only the rows give
(SIGREG.md §7):

* every value finite, and the largest |value| (finite float32 data of any
  magnitude are scored in float64 when float32 would overflow or lose the
  projection's precision: max |z| sqrt(D) > 1e6);
* the row norms: equal norms (coefficient of variation < 1e-3) are the
  L2-normalised-rows convention of sentence and CLIP-style encoders;
* the additive float64 moment sums of :class:`~sigreg_core.assessment.metrics.MomentSums`;
* **outlier rows**: robust squared distance r_n = ||z_n - med||^2 / median_n ||z_n - med||^2
  (coordinate-wise median ``med`` and the median distance from a seeded sample of at most
  8192 rows).  Under N(0, I) r_n is about chi2(D_eff) / median(chi2(D_eff)) with
  D_eff = (tr C)^2 / tr(C^2) (the participation ratio of the covariance); a row is
  flagged when r_n > max(4, 2 q) with q that chi-square's 1 - 1e-3 / N quantile over its
  median.  The set *has outliers* when 1 <= #flagged <= 10 % of the rows and the
  flagged rows are far (their median r_n >= 2 x the threshold); a continuum of far
  rows is heavy tails, not outliers.  The flagged rows' sums are then removed
  from the moment sums to give the robust covariance of the collapse test.
  This rule decides a verdict mode, so it controls the false alarms of the whole set
  (1e-3 / N per row); the cloud view's highlight (:mod:`sigreg_core.present.cloud`) is a
  per-row display rule (0.1 % of N(0, I) rows) on the principal scores drawn, on purpose
  another rule with another question.

Under torch.distributed every rank contributes its seeded share of the sample
(the median and the median distance do not depend on the order), the counts
are all-reduced, the flagged rows' median is the median of the ranks' medians,
and row indices are global in rank order (rank 0's rows first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from sigreg_core.assessment.metrics import MomentSums
from sigreg_core.util.errors import InputError

__all__ = ["RowFacts", "row_pass", "EQUAL_NORM_CV", "MAX_LISTED_OUTLIERS", "FLOAT32_SAFE"]

EQUAL_NORM_CV = 1e-3
OUTLIER_MAX_FRACTION = 0.10
OUTLIER_FAR = 2.0
OUTLIER_MIN_RATIO = 4.0
SAMPLE_ROWS = 8192
MAX_LISTED_OUTLIERS = 10000
#: max |z| sqrt(D) above which float32 input is scored in float64
FLOAT32_SAFE = 1e6
#: max |z| above which even float64 sums may overflow (refused with one line)
FLOAT64_SAFE = 1e150


@dataclass
class RowFacts:
    n: int
    dim: int
    max_abs: float
    norm_mean: float
    norm_cv: float
    sums: MomentSums
    outlier_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    outlier_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))
    outlier_count: int = 0
    outlier_threshold: float = float("nan")
    has_outliers: bool = False
    clean_sums: Optional[MomentSums] = None  # sums without the outlier rows (when has_outliers)

    @property
    def equal_norms(self) -> bool:
        return bool(self.norm_mean > 0 and self.norm_cv < EQUAL_NORM_CV)

    def outliers_dict(self) -> dict:
        return {
            "count": int(self.outlier_count),
            "fraction": float(self.outlier_count / max(self.n, 1)),
            "threshold": float(self.outlier_threshold),
            "rows": [int(v) for v in self.outlier_rows[:MAX_LISTED_OUTLIERS]],
            "robust_distance": [float(v) for v in self.outlier_ratio[:MAX_LISTED_OUTLIERS]],
            "listed": int(min(len(self.outlier_rows), MAX_LISTED_OUTLIERS)),
            "is_mode": bool(self.has_outliers),
            "rule": "robust squared distance to the coordinate-wise median over its median > threshold; "
                    "a mode when 1..10 % of rows are flagged and they are far (median >= 2 x threshold)",
        }


def _tensor(part, dtype=torch.float64) -> torch.Tensor:
    t = part.detach() if isinstance(part, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(part))
    return t.to(device="cpu", dtype=dtype)


def _work_dtype(z, max_abs: float) -> torch.dtype:
    """float32 arithmetic for float32/16 rows of moderate size (squares stay far from overflow), else float64."""
    dt = getattr(z, "dtype", None)
    small = dt in (torch.float16, torch.bfloat16, torch.float32, np.float16, np.float32)
    return torch.float32 if small and max_abs < 1e15 else torch.float64


def _check_finite(t: torch.Tensor, r0: int) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        row = int(torch.nonzero(bad.any(1)).flatten()[0]) + r0
        raise InputError(f"embeddings contain {int(bad.sum())} non-finite value(s) (NaN or Inf), first in row {row}")


def _sample(z, n: int, seed: int) -> torch.Tensor:
    if n > SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=SAMPLE_ROWS, replace=False))
        part = z[torch.from_numpy(idx)] if isinstance(z, torch.Tensor) else z[idx]
    else:
        part = z[:n]
    return _tensor(part)


def _threshold(n: int, d_eff: float) -> float:
    from scipy import special  # not scipy.stats: its import alone costs more than the whole row pass

    d_eff = max(float(d_eff), 1.0)
    # chi2.isf(p, d) / chi2.median(d), with the very functions scipy.stats.chi2 calls (bit-identical)
    q = special.chdtri(d_eff, 1e-3 / max(n, 1)) / (2 * special.gammaincinv(d_eff / 2, 0.5))
    return float(max(OUTLIER_MIN_RATIO, OUTLIER_FAR * q))


def row_pass(z, *, distributed: bool = False, seed: int = 0, chunk: int = 32768) -> RowFacts:
    """Stream the rows once (two when outliers are removed); see the module docstring."""
    n, dim = int(z.shape[0]), int(z.shape[1])
    sums = MomentSums(dim, expect_rows=None if distributed else n)  # N x N route when narrow (budget.route)
    if distributed:
        from sigreg_core.core import distributed as _dist
        sums.set_shift(_dist.global_mean(_tensor(z[: min(n, chunk)])))  # an empty rank adds zeros
    max_abs = 0.0
    nsum = nsq = 0.0
    for r0 in range(0, n, chunk):
        part = z[r0 : r0 + chunk]
        t = part.detach().cpu() if isinstance(part, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(part))
        _check_finite(t, r0)
        if t.numel():
            max_abs = max(max_abs, float(t.abs().max()))
        if max_abs > FLOAT64_SAFE:
            raise InputError(f"embeddings reach |value| = {max_abs:.3g}: too large to score even in float64; "
                             "rescale them")
        wide = t.to(_work_dtype(t, max_abs))  # float32 GEMMs for float32 rows (MomentSums adds blocks in float64)
        norms = wide.norm(dim=1, dtype=torch.float64)
        nsum += float(norms.sum())
        nsq += float((norms * norms).sum())
        sums.update(wide)
    if distributed:
        from sigreg_core.core import distributed as _dist
        sums.all_reduce()
        tot = torch.tensor([nsum, nsq], dtype=torch.float64)
        (tot,) = _dist.all_reduce_sum(tot)
        nsum, nsq = float(tot[0]), float(tot[1])  # max_abs stays local: each rank picks its own precision
    n_all = sums.n
    mean_norm = nsum / max(n_all, 1)
    var_norm = max(nsq / max(n_all, 1) - mean_norm**2, 0.0)
    cv = math.sqrt(var_norm) / mean_norm if mean_norm > 0 else float("inf")
    facts = RowFacts(n=n_all, dim=dim, max_abs=max_abs, norm_mean=mean_norm, norm_cv=cv, sums=sums)
    if n_all >= 16:
        _outliers(z, facts, seed, chunk, distributed)
    return facts


def _global_sample(z, seed: int) -> tuple[torch.Tensor, int]:
    """Under torch.distributed: every rank's seeded share of the sample, summed into one tensor
    (order-free statistics only are taken from it), and this rank's first global row index."""
    from sigreg_core.core import distributed as _dist
    ws, rk = _dist.world_size(), _dist.rank()
    n_local = int(z.shape[0])
    part = _sample(z, n_local, seed + rk) if n_local <= SAMPLE_ROWS // ws else _tensor(
        z[torch.from_numpy(np.sort(np.random.default_rng(seed + rk).choice(n_local, SAMPLE_ROWS // ws, replace=False)))]
        if isinstance(z, torch.Tensor) else z[np.sort(np.random.default_rng(seed + rk).choice(
            n_local, SAMPLE_ROWS // ws, replace=False))])
    counts = torch.zeros(ws, 2, dtype=torch.float64)
    counts[rk, 0] = part.shape[0]
    counts[rk, 1] = n_local
    (counts,) = _dist.all_reduce_sum(counts)
    sizes = [int(v) for v in counts[:, 0]]
    buf = torch.zeros(sum(sizes), part.shape[1], dtype=torch.float64)
    off = sum(sizes[:rk])
    buf[off : off + part.shape[0]] = part
    (buf,) = _dist.all_reduce_sum(buf)
    return buf, int(sum(int(v) for v in counts[:rk, 1]))


def _outliers(z, facts: RowFacts, seed: int, chunk: int, distributed: bool = False) -> None:
    n, dim = facts.n, facts.dim
    row0 = 0
    if distributed:
        s, row0 = _global_sample(z, seed)
    else:
        s = _sample(z, n, seed)
    med = s.median(dim=0).values
    d2s = ((s - med) ** 2).sum(1)
    scale = float(d2s.median())
    if not scale > 0:
        return  # more than half the rows coincide: a collapse question, not outliers
    # effective dimension of the bulk: participation ratio of the sample's covariance without its
    # 10 % farthest rows (at most 1024 rows), so the outliers do not lower it
    keep = torch.argsort(d2s)[: max(2, int(0.9 * d2s.numel()))][:1024]
    y = s[keep] - s[keep].mean(0)
    g = y @ y.T if y.shape[0] < y.shape[1] else y.T @ y
    tr = float(torch.trace(g))
    tr2 = float((g * g).sum())
    d_eff = tr * tr / tr2 if tr2 > 0 else 1.0
    thr = _threshold(n, d_eff)
    rows, ratios = [], []
    wd = _work_dtype(z, facts.max_abs)
    med_w = med.to(wd)
    for r0 in range(0, int(z.shape[0]), chunk):
        t = _tensor(z[r0 : r0 + chunk], wd)
        r = ((t - med_w) ** 2).sum(1, dtype=torch.float64) / scale
        hit = torch.nonzero(r > thr).flatten()
        if hit.numel():
            rows.append(hit.numpy() + r0)
            ratios.append(r[hit].numpy())
    facts.outlier_threshold = thr
    idx = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    rat = np.concatenate(ratios) if ratios else np.zeros(0)
    count, med_ratio = int(idx.size), float(np.median(rat)) if rat.size else 0.0
    if distributed:  # the count and the flagged rows' median ratio over all ranks (median of rank medians)
        from sigreg_core.core import distributed as _dist
        ws, rk = _dist.world_size(), _dist.rank()
        t = torch.zeros(ws, 2, dtype=torch.float64)
        t[rk] = torch.tensor([count, med_ratio], dtype=torch.float64)
        (t,) = _dist.all_reduce_sum(t)
        count = int(t[:, 0].sum())
        meds = t[t[:, 0] > 0, 1]
        med_ratio = float(meds.median()) if meds.numel() else 0.0
    if count == 0:
        return
    facts.outlier_rows, facts.outlier_ratio, facts.outlier_count = idx + row0, rat, count
    far = med_ratio >= OUTLIER_FAR * thr
    facts.has_outliers = bool(1 <= count <= OUTLIER_MAX_FRACTION * n and far)
    if facts.has_outliers and n - count >= 2:
        gram = facts.sums.route == "gram"
        bad = MomentSums(dim, keep_rows=gram)
        bad.set_shift(facts.sums.shift)
        if idx.size:
            part = z[torch.from_numpy(idx)] if isinstance(z, torch.Tensor) else z[idx]
            bad.update(_tensor(part))
        if distributed:
            bad.all_reduce()
        facts.clean_sums = facts.sums.minus(bad, rows_index=idx if gram else None)
