"""The column normalisation of LeJEPA's direction draw, compiled, with torch's bits.

LeJEPA draws ``A = randn(D, M)`` and divides every column by its L2 norm,
``A / A.norm(p=2, dim=0)`` (Balestriero & LeCun, arXiv 2511.08544).  On the CPU,
torch reduces a column of fewer than its parallel grain (32768) values one value
after the other in float32,

    s_m <- s_m + a_dm * a_dm   (d = 0 .. D-1; a rounded product, then a rounded sum),

takes the float32 square root and divides.  Its reduction over the outer axis is a
scalar loop over strided memory: 4.6 ms for a 1024 x 1024 draw here, more than the
``randn`` itself (2.6 ms).  The kernel below performs exactly those operations in that
order per column (no fused multiply-add, no reassociation: compiled without
fast-math), vectorised across the columns (whose sums are independent) and run in
parallel over blocks of columns; the result is the same bits, about 10x faster.

That equality is a property of torch's CPU kernel, not a promise of its API, so it is
checked at first use on a draw of odd size (and by the tests over many shapes); on a
mismatch the torch path is used from then on.  The compiled code is cached on disk only in
the checked private folder of :mod:`sigreg_core.core.kernel_cache`.
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

__all__ = ["normalise_columns", "normalise_columns_serial", "kernel_agrees_with_torch"]

#: columns per block: 64 float32 = 4 cache lines of a row, the running sums stay in registers
_BLOCK = 64


def _normalise_block(a, j0, j1, acc):  # pragma: no cover - compiled below (twice)
    d_rows = a.shape[0]
    w = j1 - j0
    for j in range(w):
        acc[j] = np.float32(0.0)
    for d in range(d_rows):
        for j in range(w):
            v = a[d, j0 + j]
            acc[j] = acc[j] + v * v
    for j in range(w):
        acc[j] = np.sqrt(acc[j])
    for d in range(d_rows):
        for j in range(w):
            a[d, j0 + j] = a[d, j0 + j] / acc[j]


_block = njit(inline="always")(_normalise_block)


@njit(parallel=True, nogil=True)
def _normalise_parallel(a):  # pragma: no cover - compiled
    m = a.shape[1]
    for b in prange((m + _BLOCK - 1) // _BLOCK):
        acc = np.empty(_BLOCK, np.float32)
        _block(a, b * _BLOCK, min(m, (b + 1) * _BLOCK), acc)


@njit(nogil=True)
def _normalise_serial(a):  # pragma: no cover - compiled
    m = a.shape[1]
    acc = np.empty(_BLOCK, np.float32)
    for b in range((m + _BLOCK - 1) // _BLOCK):
        _block(a, b * _BLOCK, min(m, (b + 1) * _BLOCK), acc)


def _attach_caches() -> None:
    # numba's disk cache (index pickles + object code) only in the checked private folder
    from sigreg_core.core import kernel_cache

    kernel_cache.attach(_normalise_parallel)
    kernel_cache.attach(_normalise_serial)


_attach_caches()

_AGREES: "bool | None" = None

#: draws of fewer values are normalised on the calling thread: below ~0.3 ms of serial work a
#: parallel launch saves little (512 x 1024: 0.6 ms serial, 0.47 ms on two threads, quiet 2-core
#: machine) and, when the cores are busy, waits a scheduler timeslice (~5 ms measured) for its second thread
PARALLEL_MIN_VALUES = 1 << 18

#: torch reduces a column of this many values or more in parallel pieces (its GRAIN_SIZE)
TORCH_GRAIN = 32768


def _eligible(a: torch.Tensor) -> bool:
    return (a.ndim == 2 and a.dtype == torch.float32 and a.device.type == "cpu" and a.is_contiguous()
            and a.shape[1] >= 2 and 1 <= a.shape[0] < TORCH_GRAIN)


def kernel_agrees_with_torch() -> bool:
    """Whether the kernel gives torch's bits here (checked once per process, on a 301 x 97 draw)."""
    global _AGREES
    if _AGREES is None:
        g = torch.Generator().manual_seed(20251110)
        a = torch.randn(301, 97, generator=g)
        ref = a / a.norm(p=2, dim=0, keepdim=True)
        ours = a.clone()
        _normalise_serial(ours.numpy())
        _AGREES = bool(torch.equal(ours, ref))
        if _AGREES:
            ours = a.clone()
            _normalise_parallel(ours.numpy())
            _AGREES = bool(torch.equal(ours, ref))
    return _AGREES


def normalise_columns(a: torch.Tensor) -> bool:
    """Divide the columns of a contiguous float32 CPU ``a`` (D, M) by their norms, in place.

    Returns False (and leaves ``a`` untouched) when the kernel cannot promise torch's bits:
    a single column (torch then reduces a contiguous run, vectorised, in another order),
    columns of torch's parallel grain or more, or a torch that reduces otherwise.
    """
    if not _eligible(a) or not kernel_agrees_with_torch():
        return False
    if a.numel() < PARALLEL_MIN_VALUES:  # a parallel launch costs more than it saves (and a timeslice under load)
        _normalise_serial(a.numpy())
        return True
    from sigreg_core.core.ecf_kernels import match_torch_threads

    match_torch_threads()
    _normalise_parallel(a.numpy())
    return True


def normalise_columns_serial(a: torch.Tensor) -> bool:
    """:func:`normalise_columns` on the calling thread only (for the background draw)."""
    if not _eligible(a) or not kernel_agrees_with_torch():
        return False
    _normalise_serial(a.numpy())
    return True
