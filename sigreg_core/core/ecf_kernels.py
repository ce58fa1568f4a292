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
           "specialised_weighted_kernel", "kernel_cache_dir", "generated_name", "group_tiles", "match_torch_threads"]

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
_GEN_VERSION = 5
_GENERATED: dict = {}


#: most tiles one thread walks together through a block of rows: the block's rows of all of
#: them (BLOCK_ROWS x GROUP_TILES x TILE float32 = 256 KiB) stay in L2 while the tiles take
#: turns, instead of each tile striding through every row of x (one 4 KiB page per row at
#: M = 1024: a TLB miss per row and no reuse of the lines the prefetcher fetched)
GROUP_TILES = 8


def group_tiles(m_cols: int) -> int:
    """Tiles per group for M columns: up to GROUP_TILES, at least one group per thread if there
    are enough tiles (an argument of the kernels: numba.get_num_threads() inside a kernel would
    make it uncachable)."""
    return max(1, min(GROUP_TILES, (m_cols // TILE) // max(1, numba.get_num_threads())))


#: rows walked together in one vectorised loop body: independent recurrence chains that hide
#: the latency of the serial walk (a complex multiply per node) and share the accumulator updates
ROWS_PER_PASS = 2


def _sum_body(k: int, zero_start: bool, moments: bool, rows: int, ind: str) -> list[str]:
    """Loop body over the slices j of a tile for ``rows`` rows n0, n0 + 1, ...: sincos, walk, sums."""
    T = TILE
    r_ = range(rows)
    lines = [f"{ind}x{r} = x[n0 + {r}, m0 : m0 + {T}]" for r in r_]
    lines += [f"{ind}for j in range({T}):"]
    for r in r_:
        lines += [f"{ind}    xv{r} = x{r}[j]", f"{ind}    sh{r}, ch{r} = _sincos32(hh * xv{r})"]
    if moments:
        for r in r_:
            lines += [f"{ind}    d{r} = xv{r} - sf[j]", f"{ind}    e{r} = d{r} * d{r}"]
        lines += [
            f"{ind}    amt[j] += {' + '.join(f'd{r}' for r in r_)}",
            f"{ind}    amt[{T} + j] += {' + '.join(f'e{r}' for r in r_)}",
            f"{ind}    amt[{2 * T} + j] += {' + '.join(f'e{r} * d{r}' for r in r_)}",
            f"{ind}    amt[{3 * T} + j] += {' + '.join(f'e{r} * e{r}' for r in r_)}",
        ]
    for r in r_:
        lines.append(f"{ind}    c{r}, s{r} = ch{r}, sh{r}" if zero_start else f"{ind}    s{r}, c{r} = _sincos32(tt * xv{r})")
    first = 1 if zero_start else 0
    for kk in range(first, k):
        lines += [f"{ind}    at[{kk * T} + j] += {' + '.join(f'c{r}' for r in r_)}",
                  f"{ind}    at[{(k + kk) * T} + j] += {' + '.join(f's{r}' for r in r_)}"]
        if kk < k - 1:
            for r in r_:
                lines.append(f"{ind}    c{r}, s{r} = c{r} * ch{r} - s{r} * sh{r}, s{r} * ch{r} + c{r} * sh{r}")
    return lines


def _sum_source(k: int, zero_start: bool, moments: bool) -> list[str]:
    """Sum kernel with the node loop unrolled for this K (+ power sums of x - shift with ``moments``).

    One vectorised loop over the TILE slices of a tile does everything for ROWS_PER_PASS
    rows: the sincos, the whole grid walk (c, s, e^{i h x} of every row in registers, the
    rows' chains independent) and the K accumulator updates (the rows' values added first),
    at constant offsets ``kk * TILE + j`` of one flat float32 array.  With t_0 = 0 the
    k = 0 node is the row count (added at the flush) and k = 1 is e^{i h x} itself.  The
    power sums (p = 1..4) are accumulated in float32 per block of rows and float64 across
    blocks.
    """
    sig = "x, t0, h, out_c, out_s, shift, out_m, g" if moments else "x, t0, h, out_c, out_s, g"
    T = TILE
    R = ROWS_PER_PASS
    lines = [
        "@njit(parallel=True, fastmath=_FM, nogil=True)",
        f"def kernel({sig}):",
        "    n_rows, m_cols = x.shape",
        "    hh = _F(h)",
        "    tt = _F(t0)",
        f"    n_tiles = m_cols // {T}",
        "    for grp in prange((n_tiles + g - 1) // g):",
        "        tile0 = grp * g",
        "        tile1 = min(n_tiles, tile0 + g)",
        f"        acc = np.zeros((g, {2 * k * T}), np.float32)",
    ]
    if moments:
        lines += [
            f"        acc_m = np.zeros((g, {4 * T}), np.float32)",
            f"        sft = np.empty(m_cols, np.float32)",
            f"        for j in range(tile0 * {T}, tile1 * {T}):",
            "            sft[j] = shift[j]",
        ]
    lines += [
        "        for r0 in range(0, n_rows, BLOCK_ROWS):",
        "            r1 = min(n_rows, r0 + BLOCK_ROWS)",
        "            acc[:] = 0.0",
    ]
    if moments:
        lines.append("            acc_m[:] = 0.0")
    lines += [
        "            for tl in range(tile1 - tile0):",
        f"                m0 = (tile0 + tl) * {T}",
        "                at = acc[tl]",
        "                amt = acc_m[tl]" if moments else "                pass",
        f"                sf = sft[m0 : m0 + {T}]" if moments else "                pass",
        f"                for n0 in range(r0, r1 - {R - 1}, {R}):",
    ]
    lines += _sum_body(k, zero_start, moments, R, "                    ")
    if R > 1:
        lines += [f"                for n0 in range(r1 - (r1 - r0) % {R}, r1):"]
        lines += _sum_body(k, zero_start, moments, 1, "                    ")
    first = 1 if zero_start else 0
    lines += [
        "            for tl in range(tile1 - tile0):",
        f"                m0 = (tile0 + tl) * {T}",
        f"                for j in range({T}):",
    ]
    if zero_start:  # node 0: cos 0 = 1 per row, sin 0 = 0
        lines += ["                    out_c[m0 + j, 0] += r1 - r0"]
    lines += [
        f"                    for kk in range({first}, {k}):",
        f"                        out_c[m0 + j, kk] += acc[tl, kk * {T} + j]",
        f"                        out_s[m0 + j, kk] += acc[tl, ({k} + kk) * {T} + j]",
    ]
    if moments:
        lines += ["                    for p in range(4):",
                  f"                        out_m[m0 + j, p] += acc_m[tl, p * {T} + j]"]
    return lines


def _weighted_body(k: int, zero_start: bool, rows: int, ind: str) -> list[str]:
    """Loop body over the slices j of a tile for ``rows`` rows: sincos, walk, G of each row."""
    T = TILE
    r_ = range(rows)
    lines = [f"{ind}x{r} = x[n0 + {r}, m0 : m0 + {T}]" for r in r_]
    lines += [f"{ind}o{r} = out[n0 + {r}, m0 : m0 + {T}]" for r in r_]
    lines += [f"{ind}for j in range({T}):"]
    for r in r_:
        lines += [f"{ind}    xv{r} = x{r}[j]", f"{ind}    sh{r}, ch{r} = _sincos32(hh * xv{r})"]
    if zero_start:
        lines += [f"{ind}    a0 = at[j]"]
        lines += [f"{ind}    c{r}, s{r}, g{r} = ch{r}, sh{r}, a0" for r in r_]
    else:
        lines += [f"{ind}    s{r}, c{r} = _sincos32(tt * xv{r})" for r in r_]
        lines += [f"{ind}    g{r} = _F(0.0)" for r in r_]
    for kk in range(1 if zero_start else 0, k):
        lines += [f"{ind}    ac = at[{kk * T} + j]", f"{ind}    bs = at[{(k + kk) * T} + j]"]
        lines += [f"{ind}    g{r} += ac * c{r} + bs * s{r}" for r in r_]
        if kk < k - 1:
            lines += [f"{ind}    c{r}, s{r} = c{r} * ch{r} - s{r} * sh{r}, s{r} * ch{r} + c{r} * sh{r}" for r in r_]
    lines += [f"{ind}    o{r}[j] = g{r}" for r in r_]
    return lines


def _weighted_source(k: int, zero_start: bool) -> list[str]:
    """Gradient kernel G[n, m] = sum_k a[k, m] cos(t_k x) + b[k, m] sin(t_k x), node loop unrolled.

    Laid out like the sum kernel: groups of tiles walk blocks of rows that stay in L2, and
    one vectorised loop per tile does ROWS_PER_PASS rows (independent chains sharing each
    coefficient load).  The coefficients of a tile (2 x K x TILE float32, one flat row of
    ``a`` read at constant offsets) stay in L1.
    """
    T = TILE
    R = ROWS_PER_PASS
    lines = [
        "@njit(parallel=True, fastmath=_FM, nogil=True)",
        "def kernel(x, t0, h, coef_c, coef_s, out, g):",
        "    n_rows, m_cols = x.shape",
        "    hh = _F(h)",
        "    tt = _F(t0)",
        f"    n_tiles = m_cols // {T}",
        "    for grp in prange((n_tiles + g - 1) // g):",
        "        tile0 = grp * g",
        "        tile1 = min(n_tiles, tile0 + g)",
        f"        a = np.empty((g, {2 * k * T}), np.float32)",
        "        for tl in range(tile1 - tile0):",
        f"            m0 = (tile0 + tl) * {T}",
        f"            for kk in range({k}):",
        f"                for j in range({T}):",
        f"                    a[tl, kk * {T} + j] = coef_c[kk, m0 + j]",
        f"                    a[tl, ({k} + kk) * {T} + j] = coef_s[kk, m0 + j]",
        "        for r0 in range(0, n_rows, BLOCK_ROWS):",
        "            r1 = min(n_rows, r0 + BLOCK_ROWS)",
        "            for tl in range(tile1 - tile0):",
        f"                m0 = (tile0 + tl) * {T}",
        "                at = a[tl]",
        f"                for n0 in range(r0, r1 - {R - 1}, {R}):",
    ]
    lines += _weighted_body(k, zero_start, R, "                    ")
    if R > 1:
        lines += [f"                for n0 in range(r1 - (r1 - r0) % {R}, r1):"]
        lines += _weighted_body(k, zero_start, 1, "                    ")
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
    import tempfile

    path = folder / f"{name}.py"
    want = src.encode()
    try:
        with open(path, "rb") as f:
            same = f.read(len(want) + 1) == want
    except OSError:
        same = False
    if not same:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(want)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
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
