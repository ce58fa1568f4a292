"""Random slicing directions, drawn exactly as LeJEPA draws them.

LeJEPA's ``SlicingUnivariateTest`` (Balestriero & LeCun, arXiv 2511.08544) seeds a
CPU generator with the step number, draws ``A = randn(D, M)`` in float32 and
divides each column by its L2 norm.  Drawing on the CPU and only then moving
``A`` to the device makes the directions (and so every statistic) identical on
every device, so a value computed here can be held against a training log.

The column norms are taken by a compiled kernel that reproduces torch's float32
reduction bit for bit (:mod:`sigreg_core.core.draw_kernel`, ~3x faster than
``A.norm(dim=0)``) when numba is there and the draw is large enough to pay for it.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

__all__ = ["sample_directions", "sample_directions_serial", "check_directions", "DrawCache"]


def sample_directions(dim: int, num_slices: int, seed: int = 0) -> torch.Tensor:
    """Unit directions (dim, num_slices), float32, on the CPU.

    ``g = torch.Generator().manual_seed(seed); A = torch.randn(dim, num_slices, generator=g)``,
    then ``A / ||A||_2`` column by column (LeJEPA, SlicingUnivariateTest).
    """
    dim, num_slices, seed = int(dim), int(num_slices), int(seed)
    if dim < 1:
        raise ValueError(f"sample_directions: dim must be >= 1, got {dim}")
    if num_slices < 1:
        raise ValueError(f"sample_directions: num_slices must be >= 1, got {num_slices}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, num_slices, generator=g, dtype=torch.float32)
    if _kernel_normalised(a, serial=False):
        return a
    return a.div_(a.norm(p=2, dim=0, keepdim=True))


#: draws of fewer values than this are normalised by torch (the kernel's import would not pay)
KERNEL_MIN_VALUES = 1 << 15


def _kernel_normalised(a: torch.Tensor, serial: bool) -> bool:
    """``a /= a.norm(p=2, dim=0)`` in place by the compiled kernel (torch's bits); False when it does not apply."""
    if a.numel() < KERNEL_MIN_VALUES or not _numba_available():
        return False
    from sigreg_core.core import draw_kernel

    return (draw_kernel.normalise_columns_serial if serial else draw_kernel.normalise_columns)(a)


def _numba_available() -> bool:
    from sigreg_core.core import ecf

    return ecf.HAVE_NUMBA


#: largest D for which :func:`sample_directions_serial` keeps every op below torch's
#: parallel grain (32768 elements), so a background thread never starts an OpenMP team
SERIAL_MAX_DIM = 16384


def sample_directions_serial(dim: int, num_slices: int, seed: int = 0) -> torch.Tensor:
    """:func:`sample_directions`, bit for bit, in single-threaded pieces (for a background thread).

    ``torch.randn`` with a generator is serial; the column norms and the division
    are taken by the serial compiled kernel, or without it on blocks of columns small
    enough (D x block <= 16384 elements) that torch runs them on the calling thread.  A column's norm is the same reduction
    over the same D values either way (tests/test_statistic.py checks equality
    across shapes).  For D > ``SERIAL_MAX_DIM`` it falls back to the plain draw.
    """
    dim, num_slices, seed = int(dim), int(num_slices), int(seed)
    if dim > SERIAL_MAX_DIM:
        return sample_directions(dim, num_slices, seed)
    if dim < 1 or num_slices < 1:
        return sample_directions(dim, num_slices, seed)  # raises the clear error
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, num_slices, generator=g, dtype=torch.float32)
    if _kernel_normalised(a, serial=True):
        return a
    block = max(1, SERIAL_MAX_DIM // dim)
    for j in range(0, num_slices, block):
        part = a[:, j : j + block]
        part.div_(part.norm(p=2, dim=0, keepdim=True))
    return a


def check_directions(directions: torch.Tensor, dim: int) -> torch.Tensor:
    """Validate user-supplied directions (dim, M): finite, no zero-norm column.

    Columns are used as given (not re-normalised), as the reference code does
    with directions it has drawn itself; a zero column would silently score a
    constant slice, so it is refused.
    """
    if not isinstance(directions, torch.Tensor):
        directions = torch.as_tensor(directions)
    if directions.ndim != 2:
        raise ValueError(f"directions must be 2-D (D, M), got shape {tuple(directions.shape)}")
    if directions.shape[0] != dim:
        raise ValueError(
            f"directions have {directions.shape[0]} rows but the embeddings have D = {dim} dimensions"
        )
    if not directions.is_floating_point():
        raise ValueError(f"directions must be floating point, got {directions.dtype}")
    if not torch.isfinite(directions).all():
        raise ValueError("directions contain NaN or Inf")
    norms = directions.detach().norm(dim=0)
    bad = torch.nonzero(norms <= 0).flatten()
    if bad.numel():
        raise ValueError(f"direction {int(bad[0])} has zero norm; every slice needs a non-zero direction")
    return directions


class DrawCache:
    """A training loop's seeded draws: the last one, and the next one drawn ahead in a thread.

    Every entry is ``sample_directions(dim, m, seed)`` exactly (LeJEPA's draw, on the
    CPU), moved to the device the embeddings live on; it is keyed by
    (dim, m, seed, device), so a changed step counter or dimension simply draws anew.
    """

    _POOL = None
    _POOL_PID = 0

    def __init__(self) -> None:
        self._last: Optional[tuple] = None
        self._ahead: Optional[tuple] = None

    @classmethod
    def _pool(cls):
        if cls._POOL is None or cls._POOL_PID != os.getpid():  # a forked child has no worker thread
            from concurrent.futures import ThreadPoolExecutor

            cls._POOL_PID = os.getpid()

            # one worker whose torch ops stay below the parallel grain: no second OpenMP team
            cls._POOL = ThreadPoolExecutor(1, thread_name_prefix="sigreg-directions")
        return cls._POOL

    @staticmethod
    def _draw(dim: int, m: int, seed: int, device, serial: bool = False) -> torch.Tensor:
        a = (sample_directions_serial if serial else sample_directions)(dim, m, seed)
        if device is not None and torch.device(device).type != "cpu":
            a = a.to(device, non_blocking=False)
        return a

    def get(self, dim: int, m: int, seed: int, device=None) -> torch.Tensor:
        key = (dim, m, seed, "cpu" if device is None else str(device))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        a = None
        if self._ahead is not None and self._ahead[0] == key and self._ahead[2] == os.getpid():
            a = self._ahead[1].result()
        self._ahead = None
        if a is None:
            a = self._draw(dim, m, seed, device)
        self._last = (key, a)
        return a

    def prefetch(self, dim: int, m: int, seed: int, device=None) -> None:
        key = (dim, m, seed, "cpu" if device is None else str(device))
        if dim > SERIAL_MAX_DIM:
            return  # the serial draw would not be serial: draw on the caller's thread instead
        if self._ahead is None or self._ahead[0] != key:
            self._ahead = (key, self._pool().submit(self._draw, dim, m, seed, device, True), os.getpid())
