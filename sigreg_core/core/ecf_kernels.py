"""The compiled CPU kernels of the ECF sums (numba), imported only at first CPU use.

Kept apart from :mod:`sigreg_core.core.ecf` so that ``from sigreg_core import SIGReg``
does not pay for numba (and the SciPy it imports) until a float32 CPU statistic is
first computed.  What they compute, on the equispaced grid t_k = t_0 + k h:

    C_k = sum_n cos(t_k x_n),  S_k = sum_n sin(t_k x_n)                    (sums),
    G_n = sum_k a_k cos(t_k x_n) + b_k sin(t_k x_n)                        (gradient),

with one sincos of ``h x`` (and of ``t_0 x`` when t_0 != 0) per value and the
angle-addition recurrence e^{i t_{k+1} x} = e^{i t_k x} e^{i h x} in float32, block
sums flushed into float64 (LeJEPA, arXiv 2511.08544, gives the statistic; the
recurrence and blocking are ours).  Node-count-specialised versions (the node loop
unrolled with constant indices) are generated here and compiled from memory; numba's
on-disk cache keeps them (and the kernels below) only in the checked, owner-only folder
of :mod:`sigreg_core.core.kernel_cache` (llvmlite ships LLVM: no compiler at run time).
"""
from __future__ import annotations

import os
import sys

import numba
import numpy as np
from numba import njit, prange

from sigreg_core.core.ecf import BLOCK_ROWS, TILE

__all__ = ["ecf_sums_generic", "ecf_weighted_generic", "moment_sums_kernel", "specialised_kernel",
           "specialised_weighted_kernel", "kernel_cache_dir", "generated_name", "match_torch_threads"]

_F = np.float32

#: LLVM fast-math flags of every kernel: contraction into FMAs, no signed zeros, reciprocals,
#: approximate functions -- but no reassociation ("reassoc", part of ``fastmath=True``), which
#: would fold the Cody-Waite steps below into one rounded product and lose the reduction
#: (measured: 2.7e-6 at |a| <= 100, 2.8e-4 at 1e4 with it).  The loops vectorise without it:
#: every accumulator is elementwise over the slices of a tile, none is a reduction.
_FM = {"nsz", "arcp", "contract", "afn"}

#: beyond 2**24 a float32 argument has no fractional part (its phase is noise); it is clamped
#: there so that the reduction stays in range and the result stays on the unit circle
_ARG_MAX = 16777216.0


@njit(inline="always", fastmath=_FM)
def _sincos32(a):  # pragma: no cover - compiled
    """sin and cos of a float32 argument, branch-free so that loops vectorise.

    Cody-Waite reduction by pi/2 in float64 (r = a - k pi/2 with one rounded float64
    product: exact to float32 for |a| <= 2**24), Taylor polynomials on [-pi/4, pi/4] in
    float32, quadrant fixed by arithmetic blends instead of selects.  Max abs error,
    measured against float64 numpy by tests/test_kernel_accuracy.py: the table in
    docs/statistic.md (about 1.2e-7 at every |a| <= 2**24).
    """
    nan = a - a  # 0, or NaN for a NaN or infinite a: a non-finite input must give NaN sums
    a64 = np.float64(min(max(a, _F(-_ARG_MAX)), _F(_ARG_MAX)))
    kf = np.floor(a64 * 0.6366197723675814 + 0.5)
    r = _F(a64 - kf * 1.5707963267948966)
    r2 = r * r
    sp = r + r * r2 * (
        _F(-1.6666667e-01) + r2 * (_F(8.3333338e-03) + r2 * (_F(-1.9841270e-04) + r2 * _F(2.7557319e-06)))
    )
    cp = _F(1.0) + r2 * (
        _F(-0.5)
        + r2 * (_F(4.1666668e-02) + r2 * (_F(-1.3888889e-03) + r2 * (_F(2.4801587e-05) + r2 * _F(-2.7557319e-07))))
    )
    # quadrant m = k mod 4 in float arithmetic (exact: |k| < 2**24); integer ops on a float32
    # would be widened to int64 by numba and cost more than the polynomials
    q = _F(kf)
    m = q - _F(4.0) * np.floor(q * _F(0.25))
    hm = np.floor(m * _F(0.5))
    swap = m - _F(2.0) * hm
    sign_s = _F(1.0) - _F(2.0) * hm
    sign_c = sign_s * (_F(1.0) - _F(2.0) * swap)
    return sign_s * (sp + swap * (cp - sp)) + nan, sign_c * (cp + swap * (sp - cp)) + nan

@njit(inline="always", fastmath=_FM)
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

@njit(parallel=True, fastmath=_FM, nogil=True)
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

@njit(parallel=True, fastmath=_FM, nogil=True)
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

@njit(parallel=True, fastmath=_FM, nogil=True)
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
#: version of the generated kernel source (bump when the templates change)
_GEN_VERSION = 6
_GENERATED: dict = {}


def _sum_source(k: int, zero_start: bool, moments: bool) -> list[str]:
    """Sum kernel with the node loop unrolled for this K (+ power sums of x - shift with ``moments``).

    With K a literal, c and s stay in registers across the whole grid walk and every
    accumulator index is a constant: measured 2.5x faster per core than the generic
    kernel.  The power sums (p = 1..4) are accumulated in float32 per block of rows
    and float64 across blocks, for the per-slice moments.
    """
    sig = "x, t0, h, out_c, out_s, shift, out_m" if moments else "x, t0, h, out_c, out_s"
    lines = [
        "@njit(parallel=True, fastmath=_FM, nogil=True)",
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
    lines += ["            for n in range(r0, r1):", "                xr = x[n, m0 : m0 + TILE]"]
    lines += _start_lines("                ", zero_start)
    if moments:
        lines += [
            "                for j in range(TILE):",
            "                    d = xr[j] - sft[j]",
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
            lines += ["                    c[j] = cj * chj - sj * shj", "                    s[j] = sj * chj + cj * shj"]
    lines += [
        "            for j in range(TILE):",
        f"                for kk in range({k}):",
        "                    out_c[m0 + j, kk] += acc_c[kk, j]",
        "                    out_s[m0 + j, kk] += acc_s[kk, j]",
    ]
    if moments:
        lines += ["                for p in range(4):", "                    out_m[m0 + j, p] += acc_m[p, j]"]
    return lines


def _start_lines(ind: str, zero_start: bool) -> list[str]:
    """e^{i h x} and the starting value e^{i t_0 x} for one row of a tile."""
    lines = [
        f"{ind}for j in range(TILE):",
        f"{ind}    xv = xr[j]",
        f"{ind}    s1, c1 = _sincos32(hh * xv)",
        f"{ind}    ch[j] = c1",
        f"{ind}    sh[j] = s1",
    ]
    if zero_start:
        return lines + [f"{ind}    c[j] = _F(1.0)", f"{ind}    s[j] = _F(0.0)"]
    return lines + [f"{ind}    s0, c0 = _sincos32(tt * xv)", f"{ind}    c[j] = c0", f"{ind}    s[j] = s0"]


def _weighted_source(k: int, zero_start: bool) -> list[str]:
    """Gradient kernel G[n, m] = sum_k a[k, m] cos(t_k x) + b[k, m] sin(t_k x), node loop unrolled.

    The per-slice coefficients of a tile (2 x K x TILE float32) are loaded once and stay
    in L1; c, s and the running G stay in registers across the grid walk.
    """
    lines = [
        "@njit(parallel=True, fastmath=_FM, nogil=True)",
        "def kernel(x, t0, h, coef_c, coef_s, out):",
        "    n_rows, m_cols = x.shape",
        "    hh = _F(h)",
        "    tt = _F(t0)",
        "    for tile in prange(m_cols // TILE):",
        "        m0 = tile * TILE",
        f"        a_c = np.empty(({k}, TILE), np.float32)",
        f"        a_s = np.empty(({k}, TILE), np.float32)",
        f"        for kk in range({k}):",
        "            for j in range(TILE):",
        "                a_c[kk, j] = coef_c[kk, m0 + j]",
        "                a_s[kk, j] = coef_s[kk, m0 + j]",
        "        c = np.empty(TILE, np.float32)",
        "        s = np.empty(TILE, np.float32)",
        "        ch = np.empty(TILE, np.float32)",
        "        sh = np.empty(TILE, np.float32)",
        "        for n in range(n_rows):",
        "            xr = x[n, m0 : m0 + TILE]",
    ]
    lines += _start_lines("            ", zero_start)
    lines += [
        "            for j in range(TILE):",
        "                cj = c[j]",
        "                sj = s[j]",
        "                chj = ch[j]",
        "                shj = sh[j]",
        "                g = _F(0.0)",
    ]
    for kk in range(k):
        lines.append(f"                g += a_c[{kk}, j] * cj + a_s[{kk}, j] * sj")
        if kk < k - 1:
            lines.append("                cj, sj = cj * chj - sj * shj, sj * chj + cj * shj")
    lines.append("                out[n, m0 + j] = g")
    return lines


def _module_digest() -> str:
    """sha256 of this module's source: the generated kernels inline its _sincos32 and constants."""
    import hashlib

    global _SELF_DIGEST
    if _SELF_DIGEST is None:
        with open(__file__, "rb") as f:
            _SELF_DIGEST = hashlib.sha256(f.read()).hexdigest()
    return _SELF_DIGEST


_SELF_DIGEST = None


def _generated_source(num_nodes: int, zero_start: bool, what: str) -> str:
    k = int(num_nodes)
    head = [
        f"# generated by sigreg_core.core.ecf_kernels: {what} kernel for K = {k} nodes (do not edit)",
        f"# kernel source {_GEN_VERSION}, numba {numba.__version__}, ecf_kernels.py sha256 {_module_digest()}",
        "import numpy as np",
        "from numba import njit, prange",
        "from sigreg_core.core.ecf_kernels import _sincos32, _FM, TILE, BLOCK_ROWS",
        "_F = np.float32",
        "",
    ]
    if what == "weighted":
        body = _weighted_source(k, zero_start)
    else:
        body = _sum_source(k, zero_start, moments=what == "moments")
    return "\n".join(head + body + [""])


def kernel_cache_dir() -> "os.PathLike":
    from sigreg_core.core.kernel_cache import kernel_dir

    return kernel_dir()


def generated_name(num_nodes: int, zero_start: bool, what: str) -> str:
    """File stem of a generated kernel: its kind, K, and a digest of its source (which embeds
    the digest of this module), so that changed code never meets an old cache entry."""
    import hashlib

    src = _generated_source(num_nodes, zero_start, what)
    tag = hashlib.sha256(src.encode()).hexdigest()[:16]
    return f"ecf_k{int(num_nodes)}_{'z' if zero_start else 'o'}_{what}_{tag}"


def _stamp_file(folder, name: str, src: str):
    """Make ``folder/name.py`` hold exactly ``src`` (the stamp numba's cache index is keyed to).

    Its bytes are compared with the source generated here; anything else found under that
    name (a planted or truncated file) is replaced atomically, never executed.
    """
    path = folder / f"{name}.py"
    want = src.encode()
    try:
        with open(path, "rb") as f:
            same = f.read(len(want) + 1) == want
    except OSError:
        same = False
    if not same:
        from sigreg_core.util.cache import atomic_write  # lazily: the statistic core imports nothing above it

        atomic_write(path, lambda f: f.write(want))
    return path


def _build(num_nodes: int, zero_start: bool, what: str):
    """Compile the generated kernel from the source generated here; None when impossible.

    The source is compiled from memory, never imported from the cache folder.  When the
    private kernel folder is usable (:mod:`sigreg_core.core.kernel_cache`), the same bytes
    are written there as the file numba's on-disk cache is stamped with, and the kernel's
    cache points there; otherwise it compiles in memory on every process start.
    """
    key = (int(num_nodes), bool(zero_start), what)
    if key in _GENERATED:
        return _GENERATED[key]
    kern = None
    if 2 <= num_nodes <= 256:
        try:
            import types

            from sigreg_core.core import kernel_cache

            src = _generated_source(*key)
            name = generated_name(*key)
            folder = kernel_cache.private_kernel_dir()
            filename = f"<sigreg_core generated {name}>"
            if folder is not None:
                try:
                    filename = str(_stamp_file(folder, name, src))
                except OSError:  # pragma: no cover - full disk: compile in memory
                    folder = None
            mod = types.ModuleType(f"_latent_health_{name}")
            mod.__file__ = filename
            sys.modules[mod.__name__] = mod  # numba resolves the kernel's globals through its module
            exec(compile(src, filename, "exec"), mod.__dict__)
            kern = mod.kernel
            if folder is not None:
                kernel_cache.attach(kern, folder)
        except Exception:  # pragma: no cover - odd installs: the generic kernel runs
            kern = None
    _GENERATED[key] = kern
    return kern


def specialised_kernel(num_nodes: int, zero_start: bool, moments: bool = False):
    """The K-specialised sum kernel, or None (then the generic one runs)."""
    return _build(num_nodes, zero_start, "moments" if moments else "sums")


def specialised_weighted_kernel(num_nodes: int, zero_start: bool):
    """The K-specialised gradient kernel, or None (then the generic one runs)."""
    return _build(num_nodes, zero_start, "weighted")


def match_torch_threads() -> None:
    """Run the kernels on as many threads as torch's intra-op pool (``torch.set_num_threads``).

    Both pools then share the same cores: ``torch.set_num_threads(1)`` (a DataLoader
    worker, a job packed with others) also keeps the kernel on one core, instead of
    numba's default of every core.  numba's setting is per calling thread, so it is
    checked on every call (two cheap function calls).
    """
    import torch

    want = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)


def _attach_caches() -> None:
    from sigreg_core.core import kernel_cache

    for disp in (_ecf_sums_nb, _ecf_weighted_nb, _moment_sums_nb):
        kernel_cache.attach(disp)


_attach_caches()
ecf_sums_generic = _ecf_sums_nb
ecf_weighted_generic = _ecf_weighted_nb
moment_sums_kernel = _moment_sums_nb
