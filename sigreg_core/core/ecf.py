"""Streaming sums of the empirical characteristic function (ECF) on a node grid.

Everything SIGReg needs from the data of one slice is the pair of sums

    C_k = sum_n cos(t_k x_n),   S_k = sum_n sin(t_k x_n)      (k = 0..K-1),

which are additive over rows: they can be accumulated chunk by chunk (and
across processes) and combined exactly, and the nonlinear statistic is formed
only from the full sums.  No (N, M, K) tensor is ever built.

On an equispaced grid t_k = t_0 + k h the CPU kernel evaluates one sincos of
``h x`` and one of ``t_0 x`` per projected value and walks the grid with the
angle-addition recurrence

    e^{i t_{k+1} x} = e^{i t_k x} e^{i h x},

in float32 over slice tiles that stay in L1 cache, flushing the block sums into
float64 every ``BLOCK_ROWS`` rows (LeJEPA, arXiv 2511.08544, gives the
statistic; the recurrence and blocking are ours, see ``benchmarks/bench_sigreg.py``).
The gradient pass uses the same recurrence:

    G_n = sum_k a_k cos(t_k x_n) + b_k sin(t_k x_n).

The CPU kernels live in :mod:`sigreg_core.core.ecf_kernels`, compiled by numba
(LLVM shipped inside llvmlite: no system compiler at run time) and imported at the
first float32 CPU call, so importing the loss costs neither numba nor SciPy.  The
torch kernels (any device, CUDA included) chunk over rows so that the (rows, M, K)
temporaries stay under a fixed budget, and accumulate in float64.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch

__all__ = [
    "HAVE_NUMBA",
    "ecf_sums",
    "ecf_weighted_sum",
    "ecf_and_moment_sums",
    "moment_sums",
    "grid_of",
    "numba_kernels",
    "TILE",
    "BLOCK_ROWS",
]

#: numba is a declared dependency; the torch path keeps working without it.  Only
#: looked up here (importing it costs ~0.15 s and SciPy): see :func:`numba_kernels`.
HAVE_NUMBA = (
    os.environ.get("LATENT_HEALTH_DISABLE_NUMBA", "") != "1" and importlib.util.find_spec("numba") is not None
)

#: slices per tile in the CPU kernel (accumulators 2 x K x TILE float32 stay in L1)
TILE = 32
#: rows summed in float32 before the block sum is flushed into float64
BLOCK_ROWS = 256
#: element budget of one torch temporary (rows x M x K)
TORCH_CHUNK_ELEMENTS = 1 << 24

_KERNELS = None


def _kernel_mode(nodes):
    from sigreg_core.core import kernel_warmup

    if not kernel_warmup.nonblocking():
        return "specialised"
    return kernel_warmup.mode(nodes)


#: which compiled kernels a call may run: "specialised", "generic" or None (the torch path); the
#: dashboard's non-blocking mode (:mod:`sigreg_core.core.kernel_warmup`) never waits for a compile
_KERNEL_MODE = _kernel_mode


def numba_kernels():
    """The compiled-kernel module (imports numba on first call), or None without numba."""
    global _KERNELS, HAVE_NUMBA
    if _KERNELS is None and HAVE_NUMBA:
        try:
            from sigreg_core.core import ecf_kernels
        except Exception:  # pragma: no cover - a broken numba install: the torch path runs
            HAVE_NUMBA = False
            return None
        _KERNELS = ecf_kernels
    return _KERNELS


def _padded(x: torch.Tensor) -> np.ndarray:
    """x as a C-contiguous float32 numpy array whose column count is a multiple of TILE."""
    arr = x.numpy()
    m = arr.shape[1]
    mp = -(-m // TILE) * TILE
    if mp == m:
        return np.ascontiguousarray(arr)
    out = np.zeros((arr.shape[0], mp), np.float32)
    out[:, :m] = arr
    return out


_GRIDS: dict = {}


def grid_of(nodes: np.ndarray) -> tuple[float, float]:
    """(t_0, h) of an equispaced node grid, checked once per grid and then cached."""
    nodes = np.asarray(nodes, dtype=np.float64)
    key = nodes.tobytes()
    got = _GRIDS.get(key)
    if got is None:
        h = (nodes[-1] - nodes[0]) / (len(nodes) - 1)
        if not np.allclose(np.diff(nodes), h, rtol=1e-9, atol=1e-12):
            raise ValueError("the fused ECF kernel needs equispaced nodes")
        got = _GRIDS[key] = (float(nodes[0]), float(h))
    return got


_grid = grid_of  # the name the tests and older callers use


def _use_numba(x: torch.Tensor, nodes=None):
    """None (the torch path), or which compiled kernels to run: "specialised" or "generic"."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    mode = _KERNEL_MODE(nodes)
    if mode is None:
        return None  # the dashboard: nothing compiled yet for this grid; the exact torch path meanwhile
    nk = numba_kernels()
    if nk is None:
        return None
    nk.match_torch_threads()
    return mode


def _rows_per_chunk(m: int, k: int) -> int:
    return max(1, TORCH_CHUNK_ELEMENTS // max(1, m * k))


def ecf_sums(x: torch.Tensor, nodes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over rows of cos/sin(t_k x): two float64 tensors (M, K) on x's device.

    float32 CPU input uses the fused numba kernel; float64 input or another
    device uses chunked torch arithmetic in x's precision, accumulated in float64.
    """
    if x.ndim != 2:
        raise ValueError(f"ecf_sums expects (N, M), got {tuple(x.shape)}")
    x = x.detach()
    k = len(nodes)
    m = x.shape[1]
    mode = _use_numba(x, nodes)
    if mode:
        t0, h = _grid(nodes)
        xp = _padded(x)
        out_c = np.zeros((xp.shape[1], k), np.float64)
        out_s = np.zeros((xp.shape[1], k), np.float64)
        if x.shape[0]:
            nk = numba_kernels()
            kern = nk.specialised_kernel(k, t0 == 0.0) if mode == "specialised" else None
            if kern is not None:
                kern(xp, t0, h, out_c, out_s)
            else:
                nk.ecf_sums_generic(xp, t0, h, k, out_c, out_s)
        return torch.from_numpy(out_c[:m]), torch.from_numpy(out_s[:m])
    t = torch.as_tensor(nodes, dtype=x.dtype, device=x.device)
    out_c = torch.zeros(m, k, dtype=torch.float64, device=x.device)
    out_s = torch.zeros(m, k, dtype=torch.float64, device=x.device)
    step = _rows_per_chunk(m, k)
    for r0 in range(0, x.shape[0], step):
        xt = x[r0 : r0 + step, :, None] * t
        out_c += torch.cos(xt).sum(0, dtype=torch.float64)
        out_s += torch.sin(xt).sum(0, dtype=torch.float64)
    return out_c, out_s


def ecf_weighted_sum(
    x: torch.Tensor, nodes: np.ndarray, coef_c: torch.Tensor, coef_s: torch.Tensor
) -> torch.Tensor:
    """G[n, m] = sum_k coef_c[m, k] cos(t_k x[n, m]) + coef_s[m, k] sin(t_k x[n, m]), in x's dtype."""
    x = x.detach()
    m, k = coef_c.shape
    mode = _use_numba(x, nodes)
    if mode:
        t0, h = _grid(nodes)
        xp = _padded(x)
        mp = xp.shape[1]
        cc = np.zeros((k, mp), np.float32)
        cs = np.zeros((k, mp), np.float32)
        cc[:, :m] = coef_c.detach().cpu().numpy().T
        cs[:, :m] = coef_s.detach().cpu().numpy().T
        out = np.empty((x.shape[0], mp), np.float32)
        if x.shape[0]:
            nk = numba_kernels()
            kern = nk.specialised_weighted_kernel(k, t0 == 0.0) if mode == "specialised" else None
            if kern is not None:
                kern(xp, t0, h, cc, cs, out)
            else:
                nk.ecf_weighted_generic(xp, t0, h, cc, cs, out)
        return torch.from_numpy(out[:, :m] if mp != m else out)
    t = torch.as_tensor(nodes, dtype=x.dtype, device=x.device)
    cc = coef_c.to(device=x.device, dtype=x.dtype)
    cs = coef_s.to(device=x.device, dtype=x.dtype)
    out = torch.empty_like(x)
    step = _rows_per_chunk(m, k)
    for r0 in range(0, x.shape[0], step):
        xt = x[r0 : r0 + step, :, None] * t
        out[r0 : r0 + step] = (torch.cos(xt) * cc).sum(-1) + (torch.sin(xt) * cs).sum(-1)
    return out


def ecf_and_moment_sums(
    x: torch.Tensor, nodes: np.ndarray, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ECF sums (M, K) x 2 and power sums of (x - shift)^p, p = 1..4 (M, 4), in one pass where possible."""
    if _use_numba(x, nodes) == "specialised" and x.shape[0]:
        t0, h = _grid(nodes)
        kern = numba_kernels().specialised_kernel(len(nodes), t0 == 0.0, moments=True)
        if kern is not None:
            x = x.detach()
            m, k = x.shape[1], len(nodes)
            xp = _padded(x)
            mp = xp.shape[1]
            out_c = np.zeros((mp, k), np.float64)
            out_s = np.zeros((mp, k), np.float64)
            out_m = np.zeros((mp, 4), np.float64)
            sh = np.zeros(mp, np.float32)
            sh[:m] = shift.detach().cpu().numpy()
            kern(xp, t0, h, out_c, out_s, sh, out_m)
            return torch.from_numpy(out_c[:m]), torch.from_numpy(out_s[:m]), torch.from_numpy(out_m[:m])
    c, s = ecf_sums(x, nodes)
    return c, s, moment_sums(x, shift)


def moment_sums(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Sums of (x - shift)^p for p = 1..4 per column: float64 (M, 4) on x's device."""
    x = x.detach()
    m = x.shape[1]
    if _use_numba(x):
        xp = _padded(x)
        sh = np.zeros(xp.shape[1], np.float64)
        sh[:m] = shift.detach().cpu().numpy()
        out = np.zeros((xp.shape[1], 4), np.float64)
        if x.shape[0]:
            numba_kernels().moment_sums_kernel(xp, sh, out)
        return torch.from_numpy(out[:m])
    d = x.to(torch.float64) - shift.to(device=x.device, dtype=torch.float64)
    d2 = d * d
    return torch.stack([d.sum(0), d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0)], dim=1)
