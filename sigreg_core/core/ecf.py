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

The CPU kernels are compiled by numba (LLVM shipped inside llvmlite: no system
compiler at run time) on first use and cached.  The torch kernels (any device,
CUDA included) chunk over rows so that the (rows, M, K) temporaries stay under a
fixed budget, and accumulate in float64.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch

try:  # numba is a declared dependency; the torch path keeps working without it
    import numba
    from numba import njit, prange

    HAVE_NUMBA = os.environ.get("LATENT_HEALTH_DISABLE_NUMBA", "") != "1"
except Exception:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

__all__ = [
    "HAVE_NUMBA",
    "ecf_sums",
    "ecf_weighted_sum",
    "ecf_and_moment_sums",
    "moment_sums",
    "TILE",
    "BLOCK_ROWS",
]

#: slices per tile in the CPU kernel (accumulators 2 x K x TILE float32 stay in L1)
TILE = 32
#: rows summed in float32 before the block sum is flushed into float64
BLOCK_ROWS = 256
#: element budget of one torch temporary (rows x M x K)
TORCH_CHUNK_ELEMENTS = 1 << 24


if HAVE_NUMBA:
    _F = np.float32

    @njit(inline="always", fastmath=True, cache=True)
    def _sincos32(a):  # pragma: no cover - compiled
        """sin and cos of a float32 argument, branch-free so that loops vectorise.

        Cody–Waite reduction by pi/2 in three float32 parts, Taylor polynomials on
        [-pi/4, pi/4], quadrant fixed by arithmetic blends instead of selects.
        Max abs error 1.4e-7 on |a| <= 100 (tests/test_statistic.py checks it).
        """
        kf = np.floor(a * _F(0.63661975) + _F(0.5))
        r = a - kf * _F(1.5703125)
        r = r - kf * _F(4.8351287841796875e-04)
        r = r - kf * _F(3.1385570764541626e-07)
        r2 = r * r
        sp = r + r * r2 * (
            _F(-1.6666667e-01) + r2 * (_F(8.3333338e-03) + r2 * (_F(-1.9841270e-04) + r2 * _F(2.7557319e-06)))
        )
        cp = _F(1.0) + r2 * (
            _F(-0.5)
            + r2 * (_F(4.1666668e-02) + r2 * (_F(-1.3888889e-03) + r2 * (_F(2.4801587e-05) + r2 * _F(-2.7557319e-07))))
        )
        q = np.int32(kf)
        swap = _F(q & 1)
        sign_s = _F(1 - 2 * ((q >> 1) & 1))
        sign_c = _F(1 - 2 * (((q + 1) >> 1) & 1))
        return sign_s * (sp + swap * (cp - sp)), sign_c * (cp + swap * (sp - cp))

    @njit(inline="always", fastmath=True, cache=True)
    def _start(xr, h, t0, c, s, ch, sh):  # pragma: no cover - compiled
        for j in range(TILE):
            s1, c1 = _sincos32(h * xr[j])
            ch[j] = c1
            sh[j] = s1
        if t0 == 0.0:
            for j in range(TILE):
                c[j] = _F(1.0)
                s[j] = _F(0.0)
        else:
            for j in range(TILE):
                s0, c0 = _sincos32(t0 * xr[j])
                c[j] = c0
                s[j] = s0

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _ecf_sums_nb(x, t0, h, num_nodes, out_c, out_s):  # pragma: no cover - compiled
        # x: (N, Mp) float32 with Mp a multiple of TILE; out_c/out_s: (Mp, K) float64 (+=)
        n_rows, m_cols = x.shape
        hh = _F(h)
        tt = _F(t0)
        k4 = num_nodes - num_nodes % 4
        for tile in prange(m_cols // TILE):
            m0 = tile * TILE
            acc_c = np.zeros((num_nodes, TILE), np.float32)
            acc_s = np.zeros((num_nodes, TILE), np.float32)
            c = np.empty(TILE, np.float32)
            s = np.empty(TILE, np.float32)
            ch = np.empty(TILE, np.float32)
            sh = np.empty(TILE, np.float32)
            for r0 in range(0, n_rows, BLOCK_ROWS):
                r1 = min(n_rows, r0 + BLOCK_ROWS)
                acc_c[:] = 0.0
                acc_s[:] = 0.0
                for n in range(r0, r1):
                    _start(x[n, m0 : m0 + TILE], hh, tt, c, s, ch, sh)
                    # four steps of the recurrence per pass keep c, s in registers
                    for k in range(0, k4, 4):
                        for j in range(TILE):
                            cj = c[j]
                            sj = s[j]
                            chj = ch[j]
                            shj = sh[j]
                            acc_c[k, j] += cj
                            acc_s[k, j] += sj
                            cj, sj = cj * chj - sj * shj, sj * chj + cj * shj
                            acc_c[k + 1, j] += cj
                            acc_s[k + 1, j] += sj
                            cj, sj = cj * chj - sj * shj, sj * chj + cj * shj
                            acc_c[k + 2, j] += cj
                            acc_s[k + 2, j] += sj
                            cj, sj = cj * chj - sj * shj, sj * chj + cj * shj
                            acc_c[k + 3, j] += cj
                            acc_s[k + 3, j] += sj
                            c[j] = cj * chj - sj * shj
                            s[j] = sj * chj + cj * shj
                    for k in range(k4, num_nodes):
                        ack = acc_c[k]
                        ask = acc_s[k]
                        for j in range(TILE):
                            cj = c[j]
                            sj = s[j]
                            ack[j] += cj
                            ask[j] += sj
                            c[j] = cj * ch[j] - sj * sh[j]
                            s[j] = sj * ch[j] + cj * sh[j]
                for j in range(TILE):
                    for k in range(num_nodes):
                        out_c[m0 + j, k] += acc_c[k, j]
                        out_s[m0 + j, k] += acc_s[k, j]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _ecf_weighted_nb(x, t0, h, coef_c, coef_s, out):  # pragma: no cover - compiled
        # out[n, m] = sum_k coef_c[k, m] cos(t_k x[n, m]) + coef_s[k, m] sin(t_k x[n, m])
        n_rows, m_cols = x.shape
        num_nodes = coef_c.shape[0]
        hh = _F(h)
        tt = _F(t0)
        for tile in prange(m_cols // TILE):
            m0 = tile * TILE
            a_c = np.empty((num_nodes, TILE), np.float32)
            a_s = np.empty((num_nodes, TILE), np.float32)
            for k in range(num_nodes):
                for j in range(TILE):
                    a_c[k, j] = coef_c[k, m0 + j]
                    a_s[k, j] = coef_s[k, m0 + j]
            c = np.empty(TILE, np.float32)
            s = np.empty(TILE, np.float32)
            ch = np.empty(TILE, np.float32)
            sh = np.empty(TILE, np.float32)
            g = np.empty(TILE, np.float32)
            for n in range(n_rows):
                _start(x[n, m0 : m0 + TILE], hh, tt, c, s, ch, sh)
                for j in range(TILE):
                    g[j] = 0.0
                for k in range(num_nodes):
                    ak = a_c[k]
                    bk = a_s[k]
                    for j in range(TILE):
                        cj = c[j]
                        sj = s[j]
                        g[j] += ak[j] * cj + bk[j] * sj
                        c[j] = cj * ch[j] - sj * sh[j]
                        s[j] = sj * ch[j] + cj * sh[j]
                for j in range(TILE):
                    out[n, m0 + j] = g[j]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _moment_sums_nb(x, shift, out):  # pragma: no cover - compiled
        # out[m] += [sum d, sum d^2, sum d^3, sum d^4] with d = x - shift[m], in float64
        n_rows, m_cols = x.shape
        for tile in prange(m_cols // TILE):
            m0 = tile * TILE
            acc = np.zeros((4, TILE), np.float64)
            for n in range(n_rows):
                for j in range(TILE):
                    d = np.float64(x[n, m0 + j]) - shift[m0 + j]
                    d2 = d * d
                    acc[0, j] += d
                    acc[1, j] += d2
                    acc[2, j] += d2 * d
                    acc[3, j] += d2 * d2
            for j in range(TILE):
                for p in range(4):
                    out[m0 + j, p] += acc[p, j]



# --------------------------------------------------------------------------- K-specialised kernels
#: version of the generated kernel source (bump when the template changes)
_GEN_VERSION = 2
_GENERATED: dict = {}


def _generated_source(num_nodes: int, zero_start: bool, moments: bool = False) -> str:
    """Source of a sum kernel with the node loop unrolled for this K.

    With K a literal, c and s stay in registers across the whole grid walk and
    every accumulator index is a constant: measured 2.5x faster per core than
    the generic kernel.  With ``moments`` the same pass also accumulates the
    power sums of d = x - shift (p = 1..4), in float32 per block of rows and
    float64 across blocks, for the per-slice moments.  The file is written once
    into the cache directory and compiled with numba's on-disk cache, so later
    processes load it.
    """
    k = int(num_nodes)
    sig = "x, t0, h, out_c, out_s, shift, out_m" if moments else "x, t0, h, out_c, out_s"
    lines = [
        "# generated by sigreg_core.core.ecf: fused ECF sums for K = %d nodes (do not edit)" % k,
        "import numpy as np",
        "from numba import njit, prange",
        "from sigreg_core.core.ecf import _sincos32, TILE, BLOCK_ROWS",
        "_F = np.float32",
        "",
        "@njit(parallel=True, fastmath=True, cache=True, nogil=True)",
        f"def kernel({sig}):",
        "    n_rows, m_cols = x.shape",
        "    hh = _F(h)",
        "    tt = _F(t0)",
        "    for tile in prange(m_cols // TILE):",
        "        m0 = tile * TILE",
        f"        acc_c = np.zeros(({k}, TILE), np.float32)",
        f"        acc_s = np.zeros(({k}, TILE), np.float32)",
        "        c = np.empty(TILE, np.float32)",
        "        s = np.empty(TILE, np.float32)",
        "        ch = np.empty(TILE, np.float32)",
        "        sh = np.empty(TILE, np.float32)",
    ]
    if moments:
        lines += [
            "        acc_m = np.zeros((4, TILE), np.float32)",
            "        sft = np.empty(TILE, np.float32)",
            "        for j in range(TILE):",
            "            sft[j] = shift[m0 + j]",
        ]
    lines += [
        "        for r0 in range(0, n_rows, BLOCK_ROWS):",
        "            r1 = min(n_rows, r0 + BLOCK_ROWS)",
        "            acc_c[:] = 0.0",
        "            acc_s[:] = 0.0",
    ]
    if moments:
        lines.append("            acc_m[:] = 0.0")
    lines += [
        "            for n in range(r0, r1):",
        "                xr = x[n, m0 : m0 + TILE]",
        "                for j in range(TILE):",
        "                    xv = xr[j]",
        "                    s1, c1 = _sincos32(hh * xv)",
        "                    ch[j] = c1",
        "                    sh[j] = s1",
    ]
    if zero_start:
        lines += ["                    c[j] = _F(1.0)", "                    s[j] = _F(0.0)"]
    else:
        lines += [
            "                    s0, c0 = _sincos32(tt * xv)",
            "                    c[j] = c0",
            "                    s[j] = s0",
        ]
    if moments:
        lines += [
            "                    d = xv - sft[j]",
            "                    d2 = d * d",
            "                    acc_m[0, j] += d",
            "                    acc_m[1, j] += d2",
            "                    acc_m[2, j] += d2 * d",
            "                    acc_m[3, j] += d2 * d2",
        ]
    for k0 in range(0, k, 4):
        k1 = min(k, k0 + 4)
        lines += [
            "                for j in range(TILE):",
            "                    cj = c[j]",
            "                    sj = s[j]",
            "                    chj = ch[j]",
            "                    shj = sh[j]",
        ]
        for kk in range(k0, k1):
            lines += [f"                    acc_c[{kk}, j] += cj", f"                    acc_s[{kk}, j] += sj"]
            if kk < k1 - 1:
                lines.append("                    cj, sj = cj * chj - sj * shj, sj * chj + cj * shj")
        if k1 < k:
            lines += [
                "                    c[j] = cj * chj - sj * shj",
                "                    s[j] = sj * chj + cj * shj",
            ]
    lines += [
        "            for j in range(TILE):",
        f"                for kk in range({k}):",
        "                    out_c[m0 + j, kk] += acc_c[kk, j]",
        "                    out_s[m0 + j, kk] += acc_s[kk, j]",
    ]
    if moments:
        lines += [
            "                for p in range(4):",
            "                    out_m[m0 + j, p] += acc_m[p, j]",
        ]
    lines.append("")
    return "\n".join(lines)


def kernel_cache_dir() -> "os.PathLike":
    from sigreg_core.util.cache import cache_root

    return cache_root() / "kernels"


def _specialised_kernel(num_nodes: int, zero_start: bool, moments: bool = False):
    """The K-specialised kernel, or None when it cannot be built (then the generic one runs)."""
    key = (int(num_nodes), bool(zero_start), bool(moments))
    if key in _GENERATED:
        return _GENERATED[key]
    kern = None
    if HAVE_NUMBA and 2 <= num_nodes <= 256:
        try:
            import hashlib
            import importlib.util
            import tempfile

            src = _generated_source(*key)
            tag = hashlib.sha256(f"{_GEN_VERSION}:{numba.__version__}:{src}".encode()).hexdigest()[:16]
            name = f"ecf_k{key[0]}_{'z' if key[1] else 'o'}{'m' if key[2] else ''}_{tag}"
            try:
                folder = kernel_cache_dir()
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                from pathlib import Path

                folder = Path(tempfile.gettempdir()) / "latent-health-kernels"
                folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.py"
            if not path.exists():
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    f.write(src)
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(f"_latent_health_{name}", path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod  # numba's cache re-imports the module by name
            spec.loader.exec_module(mod)
            kern = mod.kernel
        except Exception:  # pragma: no cover - read-only home and tmp, odd filesystems
            kern = None
    _GENERATED[key] = kern
    return kern


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


def _grid(nodes: np.ndarray) -> tuple[float, float]:
    nodes = np.asarray(nodes, dtype=np.float64)
    h = (nodes[-1] - nodes[0]) / (len(nodes) - 1)
    if not np.allclose(np.diff(nodes), h, rtol=1e-9, atol=1e-12):
        raise ValueError("the fused ECF kernel needs equispaced nodes")
    return float(nodes[0]), float(h)


def _use_numba(x: torch.Tensor) -> bool:
    return HAVE_NUMBA and x.device.type == "cpu" and x.dtype == torch.float32


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
    if _use_numba(x):
        t0, h = _grid(nodes)
        xp = _padded(x)
        out_c = np.zeros((xp.shape[1], k), np.float64)
        out_s = np.zeros((xp.shape[1], k), np.float64)
        if x.shape[0]:
            kern = _specialised_kernel(k, t0 == 0.0)
            if kern is not None:
                kern(xp, t0, h, out_c, out_s)
            else:
                _ecf_sums_nb(xp, t0, h, k, out_c, out_s)
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
    if _use_numba(x):
        t0, h = _grid(nodes)
        xp = _padded(x)
        mp = xp.shape[1]
        cc = np.zeros((k, mp), np.float32)
        cs = np.zeros((k, mp), np.float32)
        cc[:, :m] = coef_c.detach().cpu().numpy().T
        cs[:, :m] = coef_s.detach().cpu().numpy().T
        out = np.empty((x.shape[0], mp), np.float32)
        if x.shape[0]:
            _ecf_weighted_nb(xp, t0, h, cc, cs, out)
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
    if _use_numba(x) and x.shape[0]:
        t0, h = _grid(nodes)
        kern = _specialised_kernel(len(nodes), t0 == 0.0, moments=True)
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
            _moment_sums_nb(xp, sh, out)
        return torch.from_numpy(out[:m])
    d = x.to(torch.float64) - shift.to(device=x.device, dtype=torch.float64)
    d2 = d * d
    return torch.stack([d.sum(0), d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0)], dim=1)
