"""The per-slice report: statistic, moments and ECF of every slice, accumulated over row chunks.

:class:`SliceAccumulator` follows the torchmetrics ``Metric`` shape:
``update(x)`` adds a chunk of projected rows, ``sync()`` all-reduces the sums
over a torch.distributed group (the one distributed concern), ``compute()``
returns a :class:`SliceStats`, ``reset()`` starts again.  Everything it keeps is
additive (ECF sums, shifted power sums, the row count), so chunks, processes
and machines combine exactly.

Moments use power sums of d = x - shift, with the shift fixed from the first
chunk (all-reduced under distributed), so that float64 sums stay accurate for
shifted data: mean = shift + S1/n, m2 = S2/n - d^2, m3 = S3/n - 3 d S2/n + 2 d^3,
m4 = S4/n - 4 d S3/n + 6 d^2 S2/n - 3 d^4 with d = S1/n;
skewness m3 / m2^1.5, excess kurtosis m4 / m2^2 - 3 (reported as 0 for a
constant slice, whose std is 0).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch

from sigreg_core.core import distributed as _dist
from sigreg_core.core.device import resolve_device
from sigreg_core.core.directions import check_directions
from sigreg_core.core.ecf import ecf_and_moment_sums
from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.core.statistic import as_float_tensor, default_chunk_rows, statistic_from_sums

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SliceStats", "SliceAccumulator", "score_slices", "project"]


@dataclass
class SliceStats:
    """Everything the pages plot about the slices of one batch (numpy float64 arrays)."""

    preset: Preset
    n: int
    statistic: np.ndarray  # (M,) in the preset's own units
    mean: np.ndarray  # (M,)
    std: np.ndarray  # (M,)
    skew: np.ndarray  # (M,)
    kurtosis: np.ndarray  # (M,) excess
    ecf_real: np.ndarray  # (M, K) mean cos(t_k x)
    ecf_imag: np.ndarray  # (M, K) mean sin(t_k x)
    weighted_error: np.ndarray  # (M, K), sums over k to statistic
    nodes: np.ndarray  # (K,)
    meta: dict = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        return int(self.statistic.shape[0])

    @property
    def sigreg(self) -> float:
        return float(self.statistic.mean())

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd  # only for tables: the score path never imports pandas

        return pd.DataFrame(
            {
                "slice": np.arange(self.num_slices),
                "statistic": self.statistic,
                "mean": self.mean,
                "std": self.std,
                "skew": self.skew,
                "kurtosis": self.kurtosis,
            }
        )

    def subset(self, idx) -> "SliceStats":
        idx = np.asarray(idx)
        return SliceStats(
            preset=self.preset,
            n=self.n,
            statistic=self.statistic[idx],
            mean=self.mean[idx],
            std=self.std[idx],
            skew=self.skew[idx],
            kurtosis=self.kurtosis[idx],
            ecf_real=self.ecf_real[idx],
            ecf_imag=self.ecf_imag[idx],
            weighted_error=self.weighted_error[idx],
            nodes=self.nodes,
            meta=dict(self.meta),
        )


class SliceAccumulator:
    """Additive per-slice sums of projected rows (update / sync / compute / reset)."""

    def __init__(self, num_slices: int, preset: "str | Preset" = "lejepa", device="cpu") -> None:
        self.preset = get_preset(preset)
        self.num_slices = int(num_slices)
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        m, k = self.num_slices, self.preset.num_nodes
        kw = dict(dtype=torch.float64, device=self.device)
        self.sum_cos = torch.zeros(m, k, **kw)
        self.sum_sin = torch.zeros(m, k, **kw)
        self.power = torch.zeros(m, 4, **kw)
        self.shift: Optional[torch.Tensor] = None
        self.n = 0
        self._synced = False

    def set_shift(self, shift: torch.Tensor) -> None:
        if self.n:
            raise RuntimeError("the moment shift must be set before the first update")
        self.shift = shift.to(device=self.device, dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        """Add projected rows x (rows, M) (float32 or float64, any device)."""
        if x.ndim != 2 or x.shape[1] != self.num_slices:
            raise ValueError(f"expected projected rows (rows, {self.num_slices}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        if self.shift is None:
            self.shift = x.detach().to(torch.float64).mean(0).to(self.device)
        cs, ss, pw = ecf_and_moment_sums(x, self.preset.nodes, self.shift)
        self.sum_cos += cs.to(self.device)
        self.sum_sin += ss.to(self.device)
        self.power += pw.to(self.device)
        self.n += int(x.shape[0])

    def sync(self) -> None:
        """All-reduce the sums over the active torch.distributed group (once)."""
        if self._synced or not _dist.group_active():
            return
        n = torch.tensor(float(self.n), dtype=torch.float64)
        self.sum_cos, self.sum_sin, self.power, n = _dist.all_reduce_sum(
            self.sum_cos, self.sum_sin, self.power, n
        )
        self.n = int(round(float(n)))
        self._synced = True

    def expand(self, index, sign) -> None:
        """Slices from the sums of distinct ones: slice j is ``sign[j]`` times slice ``index[j]``.

        Projections on -u are the negated projections on u, so the cosine sums are unchanged and
        the sine sums, the shift and the odd power sums change sign (exact, any preset)."""
        i = torch.as_tensor(np.asarray(index, dtype=np.int64), device=self.device)
        sg = torch.as_tensor(np.asarray(sign, dtype=np.float64), device=self.device)
        odd = torch.stack([sg, torch.ones_like(sg), sg, torch.ones_like(sg)], dim=1)
        self.sum_cos = self.sum_cos[i]
        self.sum_sin = self.sum_sin[i] * sg[:, None]
        self.power = self.power[i] * odd
        if self.shift is not None:
            self.shift = self.shift[i] * sg
        self.num_slices = int(i.numel())

    def compute(self) -> SliceStats:
        if self.n < 2:
            raise ValueError(f"the statistic needs at least 2 rows, got {self.n}")
        n = float(self.n)
        stat, werr, _, _ = statistic_from_sums(self.sum_cos, self.sum_sin, n, self.preset)
        p = (self.power / n).cpu().numpy()
        d = p[:, 0]
        m2 = np.maximum(p[:, 1] - d * d, 0.0)
        m3 = p[:, 2] - 3 * d * p[:, 1] + 2 * d**3
        m4 = p[:, 3] - 4 * d * p[:, 2] + 6 * d * d * p[:, 1] - 3 * d**4
        shift = self.shift.cpu().numpy() if self.shift is not None else np.zeros(self.num_slices)
        std = np.sqrt(m2)
        # a slice is constant when its spread is at rounding level of its location
        scale = np.maximum(np.abs(shift + d), 1.0)
        const = std <= 1e-6 * scale
        with np.errstate(divide="ignore", invalid="ignore"):
            skew = np.where(const, 0.0, m3 / np.where(const, 1.0, m2) ** 1.5)
            kurt = np.where(const, 0.0, m4 / np.where(const, 1.0, m2) ** 2 - 3.0)
        return SliceStats(
            preset=self.preset,
            n=self.n,
            statistic=stat.cpu().numpy(),
            mean=shift + d,
            std=np.where(const, 0.0, std),
            skew=skew,
            kurtosis=kurt,
            ecf_real=(self.sum_cos / n).cpu().numpy(),
            ecf_imag=(self.sum_sin / n).cpu().numpy(),
            weighted_error=werr.cpu().numpy(),
            nodes=np.asarray(self.preset.nodes, dtype=np.float64),
        )


def _row_chunks(n: int, rows: int):
    for r0 in range(0, n, rows):
        yield r0, min(n, r0 + rows)


def _chunk_tensor(z, r0: int, r1: int, device: torch.device) -> torch.Tensor:
    part = z[r0:r1]
    t = as_float_tensor(part if isinstance(part, torch.Tensor) else np.asarray(part), "z")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    t = t.to(device=device, non_blocking=True)
    return t if t.dtype == torch.float64 else t.float()


def _check_chunk(t: torch.Tensor, r0: int) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(1)).flatten()
        raise ValueError(
            f"z contains {int(bad.sum())} non-finite value(s) (NaN or Inf) in this chunk, first in row "
            f"{r0 + int(rows[0])}; drop or fix those rows"
        )


#: directions are checked for repeats (up to sign) when D is at most this: in one dimension all M
#: random slices are +-the same axis, so one is scored instead of M (in more dimensions random
#: directions do not repeat, and the check is skipped)
DEDUP_MAX_DIM = 8


def distinct_slices(a: torch.Tensor) -> Optional[tuple]:
    """``(keep, index, sign)`` when some columns of ``a`` (D, M) repeat up to sign, else None.

    Column j equals ``sign[j] * a[:, keep[index[j]]]`` exactly (columns are compared after a sign
    that makes their first non-zero entry positive).  Only for D <= :data:`DEDUP_MAX_DIM`."""
    dim, m = int(a.shape[0]), int(a.shape[1])
    if dim > DEDUP_MAX_DIM or m < 2:
        return None
    an = a.detach().cpu().to(torch.float64).numpy()
    first = np.argmax(an != 0, axis=0)
    sign = np.sign(an[first, np.arange(m)])
    sign[sign == 0] = 1.0
    canon = (an * sign).T  # (M, D)
    _, keep, inverse = np.unique(canon, axis=0, return_index=True, return_inverse=True)
    if len(keep) == m:
        return None
    inverse = inverse.reshape(-1)
    return keep, inverse, sign * sign[keep][inverse]  # relative to the kept column's own sign


def score_slices(
    z,
    directions,
    preset: "str | Preset" = "lejepa",
    *,
    device="auto",
    chunk_rows: Optional[int] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    distributed: "bool | str" = False,
) -> SliceStats:
    """Score every slice of ``z`` (N, D) on ``directions`` (D, M), streaming over rows.

    ``z`` may be a torch tensor, a numpy array or a numpy memmap: only one chunk
    of rows is on the device at a time.  Returns a :class:`SliceStats` with the
    statistic, moments and ECF of each slice.  ``progress(done_rows, total_rows)``
    is called after each chunk.  ``distributed=True`` all-reduces the sums so the
    result is that of the concatenated batch of all ranks; a rank with no rows (``z`` of
    shape (0, D)) joins the same collectives with zero sums and gets that result too.
    """
    t_start = time.perf_counter()
    p = get_preset(preset)
    dev = resolve_device(device)
    reduce = _dist.resolve_distributed(distributed)
    if getattr(z, "ndim", 0) != 2:
        raise ValueError(f"score_slices expects z of shape (N, D), got {tuple(getattr(z, 'shape', ()))}")
    n_rows, dim = int(z.shape[0]), int(z.shape[1])
    if n_rows < 2 and not reduce:
        raise ValueError(f"z has {n_rows} row(s); the statistic needs at least 2 rows")
    a = check_directions(torch.as_tensor(directions), dim)
    m = a.shape[1]
    rows = chunk_rows or default_chunk_rows(max(m, dim))
    work_dtype = torch.float64 if getattr(z, "dtype", None) in (torch.float64, np.float64) else torch.float32
    a_dev = a.to(device=dev, dtype=work_dtype)

    mu = sd = None
    if p.standardize:  # first pass: per-dimension mean and std (float64, additive)
        s1 = torch.zeros(dim, dtype=torch.float64)
        s2 = torch.zeros(dim, dtype=torch.float64)
        for r0, r1 in _row_chunks(n_rows, rows):
            t = _chunk_tensor(z, r0, r1, dev).to(torch.float64)
            _check_chunk(t, r0)
            s1 += t.sum(0).cpu()
            s2 += (t * t).sum(0).cpu()
        cnt = torch.tensor(float(n_rows), dtype=torch.float64)
        if reduce:
            s1, s2, cnt = _dist.all_reduce_sum(s1, s2, cnt)
        mu = s1 / cnt
        var = torch.clamp(s2 / cnt - mu * mu, min=0.0) * cnt / (cnt - p.std_ddof).clamp_min(1.0)
        sd = torch.sqrt(var).clamp_min(1e-12)
        mu, sd = mu.to(dev, work_dtype), sd.to(dev, work_dtype)

    # the coordinate axes need no projection: the slices are the columns themselves
    identity = m == dim and bool(torch.equal(a, torch.eye(dim, dtype=a.dtype)))
    # repeated slices (D = 1: every direction is +-1) are scored once and expanded exactly after
    dedup = None if identity else distinct_slices(a)
    if dedup is not None:
        a_dev = a_dev[:, torch.from_numpy(dedup[0])]
    acc = SliceAccumulator(a_dev.shape[1], p, device="cpu" if dev.type == "cpu" else dev)
    done = 0
    for i, (r0, r1) in enumerate(_row_chunks(n_rows, rows)):
        t = _chunk_tensor(z, r0, r1, dev).to(work_dtype)
        if p.standardize:
            t = (t - mu) / sd
        x = t if identity else t @ a_dev
        if i == 0 and reduce:
            acc.set_shift(_dist.global_mean(x))
        acc.update(x)
        done = r1
        if progress is not None:
            progress(done, n_rows)
    if reduce:
        if acc.shift is None:  # this rank has no rows: it joins the same collectives with zeros
            acc.set_shift(_dist.global_mean(torch.zeros(0, acc.num_slices, dtype=torch.float64)))
        acc.sync()
    if dedup is not None:
        acc.expand(dedup[1], dedup[2])
    stats = acc.compute()
    if not (np.isfinite(stats.statistic).all() and np.isfinite(stats.kurtosis).all()):
        # a NaN/Inf anywhere in a slice poisons its sums: only now scan the input to say where
        for r0, r1 in _row_chunks(n_rows, rows):
            _check_chunk(_chunk_tensor(z, r0, r1, dev), r0)
        raise ValueError(
            "the slice statistics are not finite although z is: the projections overflow float32; "
            "rescale the embeddings"
        )
    stats.meta.update(
        device=str(dev),
        seconds=time.perf_counter() - t_start,
        chunk_rows=rows,
        distributed=bool(reduce),
        distinct_slices=int(m if dedup is None else len(dedup[0])),
        world_size=_dist.world_size() if reduce else 1,
    )
    return stats


def project(z, directions, slices=None) -> np.ndarray:
    """Projected values of the chosen slices: (N, len(slices)) float32 numpy (for histograms)."""
    a = torch.as_tensor(directions)
    if slices is not None:
        a = a[:, np.atleast_1d(np.asarray(slices))]
    t = as_float_tensor(z, "z")
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return (t.to(dtype) @ a.to(device=t.device, dtype=dtype)).cpu().numpy()
