"""SIGReg: the sliced Epps–Pulley statistic, exact to the references, streaming and differentiable.

For embeddings Z (N x D) and unit directions A (D x M), every slice x = Z a_m is
tested against N(0, 1) through its empirical characteristic function:

    EP_m = s(N) * sum_k c_k [ (Cbar_mk - phi(t_k))^2 + Sbar_mk^2 ],   SIGReg = mean_m EP_m,

with Cbar_mk = mean_n cos(t_k x_nm), Sbar_mk = mean_n sin(t_k x_nm), phi(t) = exp(-t^2/2),
c_k the preset's weights (quadrature x window) and s(N) = N for the lejepa
presets (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel, arXiv
2603.19312).  No standardisation is applied unless the preset asks for it, as
in the reference code.

How it is computed
------------------
* The sums C_mk, S_mk are accumulated over row chunks in float64
  (:mod:`sigreg_core.core.ecf`); no (N, M, K) tensor is built.  Under an initialised
  torch.distributed group they are all-reduced, so every rank gets the
  statistic of the global batch (N = global rows), as lejepa does.
* The gradient streams too.  With gC_mk = dEP_m/dCbar_mk and gS_mk = dEP_m/dSbar_mk,

      dEP_m/dx_nm = sum_k (t_k / N) [ gS_mk cos(t_k x_nm) - gC_mk sin(t_k x_nm) ],

  which for the ECF form is 2 sum_k c_k t_k [Sbar cos - (Cbar - phi) sin] x s(N)/N
  (SIGREG.md §3).  A second pass over the chunks evaluates it with the same
  fused kernel (node-count specialised, like the sums) and returns dZ = G A^T.
  The projection Z A is kept from the forward pass when it fits
  ``KEEP_PROJECTION_BYTES`` (all views together; two GEMMs per step, not three) and recomputed
  chunk by chunk otherwise.  Under distributed training each rank's rows get
  exactly the gradient they have in the single-process computation on the
  global batch.
* A training step pays only for the arithmetic: directions the ``SIGReg``
  module drew itself are not re-validated, the grid constants are built once
  per preset and device, and the module's next seeded draw is prepared while
  the current step runs (it stays LeJEPA's draw, bit for bit).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from sigreg_core.core import distributed as _dist
from sigreg_core.core.directions import check_directions, sample_directions
from sigreg_core.core.ecf import ecf_sums, ecf_weighted_sum
from sigreg_core.core.presets import Preset, get_preset

__all__ = [
    "epps_pulley",
    "sigreg",
    "statistic_from_sums",
    "check_embeddings",
    "check_shape",
    "as_float_tensor",
    "default_chunk_rows",
]

#: elements of one (rows x M) projected chunk (64 MiB in float32)
CHUNK_ELEMENTS = 1 << 24
#: the forward keeps the projection Z A for the backward up to this size (else recomputes it)
KEEP_PROJECTION_BYTES = 1 << 28

_CONSTANTS: dict = {}


def _grid_constants(preset: Preset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(nodes t_k, weights c_k) as float64 tensors on ``device``, built once per preset and device."""
    key = (preset, device)
    got = _CONSTANTS.get(key)
    if got is None:
        got = _CONSTANTS[key] = (
            torch.as_tensor(preset.nodes, dtype=torch.float64, device=device),
            torch.as_tensor(preset.weights, dtype=torch.float64, device=device),
        )
    return got


def default_chunk_rows(num_slices: int) -> int:
    return max(256, CHUNK_ELEMENTS // max(1, int(num_slices)))


# --------------------------------------------------------------------------- input checks
_ACCEPTED = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_float_tensor(z, name: str = "z") -> torch.Tensor:
    """A torch view of ``z`` (tensor or array); refuses non-float dtypes clearly."""
    if isinstance(z, torch.Tensor):
        t = z
    else:
        arr = np.asarray(z)
        if arr.dtype.kind not in "f":
            raise ValueError(
                f"{name} must hold floating-point numbers (float16/32/64), got dtype {arr.dtype}"
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype not in _ACCEPTED:
        raise ValueError(
            f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}; cast it first"
        )
    return t


def check_shape(z: torch.Tensor, name: str = "z", *, min_ndim: int = 2, min_rows: int = 2) -> None:
    """Refuse shapes the statistic cannot score (the cheap part of the checks).

    ``min_rows=0`` under torch.distributed: a rank may hold few or no rows of the global batch
    (the global count is checked after the all-reduce, on every rank alike).
    """
    if z.ndim < min_ndim:
        raise ValueError(
            f"{name} must have shape (..., N, D) with N rows and D dimensions, got shape {tuple(z.shape)}"
        )
    if z.shape[-2] < min_rows:
        raise ValueError(f"{name} has {z.shape[-2]} row(s); the statistic needs at least 2 rows")
    if z.shape[-1] < 1:
        raise ValueError(f"{name} has no columns (shape {tuple(z.shape)})")


def check_embeddings(z: torch.Tensor, name: str = "z", *, min_ndim: int = 2, min_rows: int = 2) -> None:
    """Refuse what would silently give NaN or a meaningless number (shape and finiteness)."""
    check_shape(z, name, min_ndim=min_ndim, min_rows=min_rows)
    bad = ~torch.isfinite(z.detach())
    if bool(bad.any()):
        count = int(bad.sum())
        flat_rows = bad.reshape(-1, z.shape[-2], z.shape[-1]).any(-1)
        first = int(torch.nonzero(flat_rows.any(0)).flatten()[0])
        raise ValueError(
            f"{name} contains {count} non-finite value(s) (NaN or Inf), first in row {first}; "
            "drop or fix those rows"
        )


# --------------------------------------------------------------------------- the formula
def statistic_from_sums(
    sum_cos: torch.Tensor, sum_sin: torch.Tensor, n: "int | float | torch.Tensor", preset: Preset
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-slice statistic from the ECF sums (float64, (M, K) each).

    Returns ``(statistic (M,), weighted_error (M, K), gC, gS)`` where
    ``weighted_error`` sums over k to the statistic and gC/gS are the partial
    derivatives of the statistic with respect to Cbar and Sbar (for the gradient).
    """
    dev = sum_cos.device
    nodes, c = _grid_constants(preset, dev)
    n = torch.as_tensor(n, dtype=torch.float64, device=dev)
    cbar = sum_cos / n
    sbar = sum_sin / n
    scale = n if preset.scale_by_n else torch.ones((), dtype=torch.float64, device=dev)
    if preset.form == "ecf":
        phi = torch.exp(-0.5 * nodes**2)
        dc = cbar - phi
        werr = scale * c * (dc * dc + sbar * sbar)
        g_c = 2 * scale * c * dc
        g_s = 2 * scale * c * sbar
    else:  # modulus: (|ECF|^2 - exp(-t^2))^2
        u = cbar * cbar + sbar * sbar - torch.exp(-(nodes**2))
        werr = scale * c * u * u
        g_c = 4 * scale * c * u * cbar
        g_s = 4 * scale * c * u * sbar
    return werr.sum(-1), werr, g_c, g_s


class _SlicedEppsPulley(torch.autograd.Function):
    """Per-slice statistic of z @ A (or of z itself when A is None), streamed over rows."""

    @staticmethod
    def forward(ctx, z, directions, preset, chunk_rows, reduce, keep_bytes=0):  # type: ignore[override]
        n_local = z.shape[0]
        m = z.shape[1] if directions is None else directions.shape[1]
        # keep Z A for the backward when a gradient is wanted and it fits the budget
        keep = directions is not None and ctx.needs_input_grad[0] and n_local * m * z.element_size() <= keep_bytes
        kept = []
        sum_c = sum_s = None
        if n_local == 0:  # a rank without rows joins the all-reduce with zero sums (it never hangs the others)
            k = len(preset.nodes)
            sum_c = torch.zeros(m, k, dtype=torch.float64, device=z.device)
            sum_s = torch.zeros(m, k, dtype=torch.float64, device=z.device)
        for r0 in range(0, n_local, chunk_rows):
            x = z[r0 : r0 + chunk_rows]
            if directions is not None:
                x = x @ directions
                if keep:
                    kept.append(x)
            cs, ss = ecf_sums(x, preset.nodes)
            if sum_c is None:
                sum_c, sum_s = cs.to(z.device), ss.to(z.device)
            else:
                sum_c += cs.to(z.device)
                sum_s += ss.to(z.device)
        n = torch.tensor(float(n_local), dtype=torch.float64, device=z.device)
        if reduce:
            sum_c, sum_s, n = _dist.all_reduce_sum(sum_c, sum_s, n)
            n_global = int(round(float(n)))  # the same on every rank: all raise or all go on
            if n_global < 2:
                raise ValueError(f"the global batch has {n_global} row(s) over all ranks; the statistic needs at least 2 rows")
        stat, _, g_c, g_s = statistic_from_sums(sum_c, sum_s, n, preset)
        if reduce and float(n) < preset.min_rows:  # as without DDP: 0 below the preset's minimum (global rows)
            stat, g_c, g_s = stat * 0.0, g_c * 0.0, g_s * 0.0
        ctx.save_for_backward(z, directions if directions is not None else torch.empty(0))
        ctx.has_dirs = directions is not None
        ctx.preset = preset
        ctx.chunk_rows = chunk_rows
        ctx.kept = kept
        ctx.g = (g_c, g_s, n)
        return stat.to(z.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        z, directions = ctx.saved_tensors
        directions = directions if ctx.has_dirs else None
        kept, ctx.kept = ctx.kept, None
        if z.shape[0] == 0:  # a rank without rows: an empty gradient (nothing to reduce in the backward)
            return torch.zeros_like(z), None, None, None, None, None
        g_c, g_s, n = ctx.g
        preset = ctx.preset
        nodes, _ = _grid_constants(preset, g_c.device)
        w = grad_out.to(torch.float64)[:, None] * nodes / n
        coef_cos = w * g_s  # multiplies cos(t_k x)
        coef_sin = -w * g_c  # multiplies sin(t_k x)
        rows = ctx.chunk_rows
        if z.shape[0] <= rows:  # one chunk: no copy into a preallocated gradient
            x = kept[0] if kept else (z @ directions if directions is not None else z)
            g = ecf_weighted_sum(x, preset.nodes, coef_cos, coef_sin).to(device=z.device, dtype=z.dtype)
            return (g @ directions.T if directions is not None else g), None, None, None, None, None
        grad_z = torch.empty_like(z)
        for i, r0 in enumerate(range(0, z.shape[0], rows)):
            zc = z[r0 : r0 + rows]
            x = kept[i] if kept else (zc @ directions if directions is not None else zc)
            g = ecf_weighted_sum(x, preset.nodes, coef_cos, coef_sin).to(device=z.device, dtype=z.dtype)
            if directions is not None:
                torch.matmul(g, directions.T, out=grad_z[r0 : r0 + rows])
            else:
                grad_z[r0 : r0 + rows] = g
        return grad_z, None, None, None, None, None


def _standardize(z: torch.Tensor, reduce: bool, ddof: int = 0) -> torch.Tensor:
    if reduce:
        raise ValueError(
            "per-dimension standardisation (this preset) is not supported under torch.distributed; "
            "use a preset without standardize, or score on one process"
        )
    mean = z.mean(-2, keepdim=True)
    std = z.std(-2, correction=int(ddof), keepdim=True)
    return (z - mean) / std.clamp_min(torch.finfo(z.dtype).tiny ** 0.5)


def _ensure_finite(per_slice: torch.Tensor, data: torch.Tensor, name: str, min_rows: int = 2) -> None:
    """The statistic is finite iff the data are: check the M results, not the N x D input.

    A NaN or Inf anywhere in a slice makes its ECF sums NaN, so a full scan of the
    input (to say where) is only needed when something is wrong.
    """
    if bool(torch.isfinite(per_slice.detach()).all()):
        return
    check_embeddings(data, name, min_rows=min_rows)
    raise ValueError(
        f"the statistic of {name} is not finite although {name} is: the projections overflow "
        f"{data.dtype}; rescale the embeddings"
    )


def _compute_dtype(z: torch.Tensor) -> torch.Tensor:
    # half precisions are computed in float32 (the ECF sums are float64 anyway)
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def epps_pulley(
    x,
    preset: "str | Preset" = "lejepa",
    *,
    distributed: "bool | str" = "auto",
    chunk_rows: Optional[int] = None,
) -> torch.Tensor:
    """Per-slice Epps–Pulley statistic of already-projected samples ``x`` (N, M) → (M,).

    Leading axes (..., N, M) are allowed and kept: the result is (..., M).
    Differentiable with respect to ``x``.  Under an initialised torch.distributed
    group (``distributed="auto"``) the ECF sums are all-reduced and N is the
    global number of rows.
    """
    p = get_preset(preset)
    x = as_float_tensor(x, "x")
    reduce = _dist.resolve_distributed(distributed)
    check_shape(x, "x", min_rows=0 if reduce else 2)
    xc = _compute_dtype(x)
    if p.standardize:
        xc = _standardize(xc, reduce, p.std_ddof)
    if not reduce and xc.shape[-2] < p.min_rows:  # e.g. the blog's modulus code: 0 below 4 rows
        return (xc.sum(-2) * 0.0).to(x.dtype if x.dtype == torch.float64 else torch.float32)
    lead = xc.shape[:-2]
    flat = xc.reshape(int(np.prod(lead, dtype=np.int64)), xc.shape[-2], xc.shape[-1])  # explicit: a rank may hold 0 rows
    rows = chunk_rows or default_chunk_rows(flat.shape[-1])
    out = torch.stack([_SlicedEppsPulley.apply(v, None, p, rows, reduce, 0) for v in flat])
    _ensure_finite(out, x, "x", min_rows=0 if reduce else 2)
    return out.reshape(*lead, flat.shape[-1]).to(x.dtype if x.dtype == torch.float64 else torch.float32)


def sigreg(
    z,
    num_slices: int = 1024,
    seed: int = 0,
    preset: "str | Preset" = "lejepa",
    directions: Optional[torch.Tensor] = None,
    *,
    distributed: "bool | str" = "auto",
    chunk_rows: Optional[int] = None,
    return_slices: bool = False,
    global_weight: bool = False,
):
    """SIGReg of embeddings ``z`` (..., N, D): the mean over slices of the per-slice statistic.

    Directions: ``directions`` (D, M) if given, else ``sample_directions(D, num_slices, seed)``
    (drawn on the CPU, then moved to z's device: identical on every device).
    Leading axes (views, time steps) are scored separately on the same
    directions and averaged, as lejepa does.  Returns a 0-d tensor,
    differentiable with respect to ``z``; with ``return_slices=True`` also the
    per-slice statistics (..., M).

    Under torch.distributed every rank returns the statistic of the global batch, a rank
    with few or no rows included (it joins every collective with zero sums), and
    ``global_weight`` keeps λ per global batch under DDP (see :class:`SIGReg`).
    """
    p = get_preset(preset)
    z = as_float_tensor(z, "z")
    reduce = _dist.resolve_distributed(distributed)
    check_shape(z, "z", min_rows=0 if reduce else 2)
    d = z.shape[-1]
    if directions is None:
        a = sample_directions(d, num_slices, seed)
    else:
        a = check_directions(directions, d)
    out = _sigreg(z, a, p, reduce, chunk_rows, return_slices)
    if global_weight and reduce:
        return (_ddp_global_weight(out[0]), out[1]) if return_slices else _ddp_global_weight(out)
    return out


def _sigreg(z: torch.Tensor, a: torch.Tensor, p: Preset, reduce: bool, chunk_rows, return_slices: bool):
    """The statistic of a checked ``z`` on directions ``a`` that are known to be valid."""
    zc = _compute_dtype(z)
    d = zc.shape[-1]
    a = a.to(device=zc.device, dtype=zc.dtype)
    if p.standardize:
        zc = _standardize(zc, reduce, p.std_ddof)
    if not reduce and zc.shape[-2] < p.min_rows:  # e.g. the blog's modulus code: 0 below 4 rows (DDP: global rows, in the kernel)
        zero = zc.sum() * 0.0
        return (zero, torch.zeros(*zc.shape[:-2], a.shape[1], dtype=zc.dtype)) if return_slices else zero
    rows = chunk_rows or default_chunk_rows(a.shape[1])
    if zc.ndim == 2:
        per = _SlicedEppsPulley.apply(zc, a, p, rows, reduce, KEEP_PROJECTION_BYTES)[None]
    else:
        flat = zc.reshape(int(np.prod(zc.shape[:-2], dtype=np.int64)), zc.shape[-2], d)  # a rank may hold 0 rows
        keep = KEEP_PROJECTION_BYTES // flat.shape[0]  # the budget holds for all views together
        per = torch.stack([_SlicedEppsPulley.apply(v, a, p, rows, reduce, keep) for v in flat])
    _ensure_finite(per, z, "z", min_rows=0 if reduce else 2)
    value = per.mean()
    if return_slices:
        return value, per.reshape(*zc.shape[:-2], a.shape[1])
    return value


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward (bit for bit); multiplies the incoming gradient by ``factor``."""

    @staticmethod
    def forward(ctx, value, factor):  # type: ignore[override]
        ctx.factor = factor
        return value.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad * ctx.factor, None


def _ddp_global_weight(value: torch.Tensor) -> torch.Tensor:
    """The loss value unchanged, its gradient times the world size (undoes DDP's gradient mean)."""
    w = _dist.world_size()
    return _ScaleGradient.apply(value, float(w)) if w > 1 else value


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _prefetch_pays(prefetch: "bool | str", device: torch.device) -> bool:
    """Whether the next draw goes to the background thread (see ``SIGReg``'s ``prefetch``)."""
    if prefetch != "auto":
        return bool(prefetch)
    return device.type != "cpu" or torch.get_num_threads() < _usable_cores()
