"""The per-load context shared by every format: shape plan, byte checks, row gathering, finishing."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from sigreg_core.inputs.errors import ArrayEntry, EmbeddingLoadError, LoadedEmbeddings, _human
from sigreg_core.inputs.limits import MAX_BYTES_ENV, MAX_VIEWS_ENV, max_views, row_limit
from sigreg_core.inputs.sniff import _Source

_STREAM_CHUNK = 4 * 1024**2  # bytes per read / per gathered block
_META_COLUMNS = {
    "id", "ids", "idx", "index", "label", "labels", "target", "targets", "class",
    "classes", "y", "step", "epoch", "name", "names", "path", "paths", "file", "filename",
}


def _numpy_dtype_problem(dt: np.dtype) -> Optional[str]:
    """None if the dtype can be converted to float32, else why not."""
    if dt.hasobject:
        return "holds Python objects (dtype object), which could only be read by unpickling"
    if dt.fields is not None or dt.subdtype is not None:
        return f"has a structured dtype {dt}; save a plain numeric array"
    if dt.kind in "fiu":
        return None
    if dt.kind == "b":
        return "holds booleans, not embeddings"
    if dt.kind == "c":
        return "holds complex numbers; save the real embeddings"
    if dt.kind in "USV":
        return f"holds {'text' if dt.kind in 'US' else 'raw bytes'} (dtype {dt}), not numbers"
    return f"has unsupported dtype {dt}"


def _dtype_name(dt) -> str:
    try:
        return np.dtype(dt).name
    except TypeError:
        return str(dt)


#: above this many rows the draw goes block by block (numpy's choice would permute all n indices)
_DRAW_WHOLE_MAX = 1 << 23
_DRAW_BLOCK = 1 << 20


def draw_rows(n: int, m: int, seed: int) -> np.ndarray:
    """``m`` of ``range(n)`` uniformly without replacement, sorted, in O(m + block) memory.

    Up to 2^23 rows this is ``np.sort(default_rng(seed).choice(n, m, replace=False))`` (the
    draw of earlier releases, kept bit for bit).  Beyond, selection sampling by blocks of
    2^20 consecutive rows: the count taken from a block is hypergeometric (block size, rows
    after it, picks still to make), which is exactly the law of a uniform m-subset, and the
    picks inside the block are a uniform subset of it.  numpy's choice would permute all n
    indices (400 MB at n = 5 * 10^7) when m > n / 50.
    """
    n, m = int(n), int(m)
    rng = np.random.default_rng(seed)
    if n <= _DRAW_WHOLE_MAX:
        return np.sort(rng.choice(n, size=m, replace=False))
    out = np.empty(m, dtype=np.int64)
    taken, left = 0, m
    for start in range(0, n, _DRAW_BLOCK):
        size = min(_DRAW_BLOCK, n - start)
        rest = n - start - size
        k = left if rest == 0 else (int(rng.hypergeometric(size, rest, left)) if left else 0)
        if k:
            out[taken:taken + k] = start + np.sort(rng.choice(size, size=k, replace=False))
            taken += k
            left -= k
    return out


class _Ctx:
    def __init__(self, src: _Source, key, max_rows, view, drop_nonfinite, max_bytes, seed):
        self.src = src
        self.key = key
        self.max_rows = max_rows
        self.view = view
        self.drop_nonfinite = drop_nonfinite
        self.max_bytes = max_bytes
        self.seed = seed
        self.notices: list = []

    def fail(self, what: str):
        raise EmbeddingLoadError(f"{self.src.name}: {what}")

    def check_bytes(self, nbytes: int, what: str):
        if nbytes > self.max_bytes:
            self.fail(
                f"{what} needs {_human(nbytes)}, over the limit of {_human(self.max_bytes)}; "
                f"pass max_rows (CLI --max-rows) or raise the limit (max_bytes / {MAX_BYTES_ENV})"
            )

    def check_shape(self, shape: tuple, what: str = "the array"):
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3):
            hint = (
                "a 1-D vector is a single embedding; save a batch of shape (N, D)"
                if len(shape) == 1
                else "save a batch of shape (N, D) or views (V, N, D)"
            )
            self.fail(f"{what} has shape {shape} ({len(shape)}-D), but embeddings must be 2-D (N, D) or 3-D (V, N, D); {hint}")
        if any(s < 0 for s in shape):
            self.fail(f"{what} has a negative dimension in shape {shape}; the file is corrupt")
        if shape[-1] < 1:
            self.fail(f"{what} has shape {shape}: zero dimensions per row; save the embedding vectors")
        if len(shape) == 3 and shape[0] < 1:
            self.fail(f"{what} has shape {shape}: zero views")
        if shape[-2] < 2:
            self.fail(f"{what} has {shape[-2]} row(s); SIGReg needs at least 2 rows (ideally hundreds)")
        return shape

    def rows_asked(self, dim: int, views: int = 1) -> tuple:
        """``(rows or None, why)`` asked for: ``max_rows`` as given, or, when it is a callable
        ``(dim, views) -> (rows, why)`` (the CLI's scoring default), its answer for this shape."""
        if callable(self.max_rows):
            m, why = self.max_rows(int(dim), int(views))
            return int(m), str(why)
        return (None if self.max_rows is None else int(self.max_rows)), ""

    def plan(self, shape: tuple) -> tuple:
        """Validate the shape and choose views/rows; returns (shape, view_index, row_idx, out_shape)."""
        shape = self.check_shape(shape)
        view_index = None
        if len(shape) == 3 and self.view is not None:
            v = int(self.view)
            if not -shape[0] <= v < shape[0]:
                self.fail(f"view {self.view} does not exist: the array has {shape[0]} views (0..{shape[0] - 1}); pick one of them")
            view_index = v % shape[0]
        elif len(shape) == 2 and self.view not in (None, 0):
            self.fail(f"view {self.view} asked for, but the array is 2-D {shape} (a single batch); leave view unset")
        views = shape[0] if len(shape) == 3 and view_index is None else 1
        if views > max_views():
            self.fail(
                f"holds {views:,} views of {shape[-2]:,} x {shape[-1]:,} (shape {shape}), over the limit of "
                f"{max_views():,} views (each view is one whole assessment); pick one view (view=, CLI --view) "
                f"or raise {MAX_VIEWS_ENV}"
            )
        n = shape[-2]
        if n > 10**9:  # beyond what the row draw supports (numpy's hypergeometric: fewer than 10^9 items)
            self.fail(f"has {n:,} rows per view, more than 10^9; split the file")
        idx = None
        cap, why = row_limit(shape[-1], views)
        m, asked_why = self.rows_asked(shape[-1], views)
        if m is not None and m < 2:
            self.fail(f"max_rows={m} is too small; SIGReg needs at least 2 rows")
        limited = m is None or cap < m
        if limited:
            m = cap
        if m < n:
            idx = draw_rows(n, m, self.seed)
            because = (f" to stay within {why} (max_rows, CLI --max-rows, chooses fewer)" if limited
                       else f" {asked_why}" if asked_why else "")
            self.notices.append(f"subsampled {n:,} → {m:,} rows at random (seed {self.seed}){because}")
        rows = n if idx is None else len(idx)
        if len(shape) == 3 and view_index is None:
            out_shape = (shape[0], rows, shape[-1])
        else:
            out_shape = (rows, shape[-1])
        self.check_bytes(4 * math.prod(out_shape), f"the float32 array {out_shape}")
        return shape, view_index, idx, out_shape


def _to_f32(block: np.ndarray, bf16: bool = False, lut: Optional[np.ndarray] = None) -> np.ndarray:
    if lut is not None:  # an 8-bit float format: one float32 per code (see formats/safetensors.py)
        return lut[np.asarray(block, dtype=np.uint8)]
    if bf16:  # bfloat16 stored as uint16: the upper half of a float32, exact
        return (np.asarray(block, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 range become Inf, reported later
        return np.asarray(block, dtype=np.float32)


def _gather(arr: np.ndarray, shape: tuple, view_index, idx, out_shape, bf16: bool = False,
            lut: Optional[np.ndarray] = None) -> np.ndarray:
    """Copy the chosen views/rows of an (possibly memory-mapped) array into float32, chunk by chunk."""
    out = np.empty(out_shape, dtype=np.float32)
    d = shape[-1]
    itemsize = max(arr.dtype.itemsize, 4)
    rows_per = max(1, _STREAM_CHUNK // max(1, d * itemsize))
    if len(shape) == 3:
        views = [view_index] if view_index is not None else list(range(shape[0]))
        for j, v in enumerate(views):
            dst = out if view_index is not None else out[j]
            _gather2(arr[v], idx, dst, rows_per, bf16, lut)
    else:
        _gather2(arr, idx, out, rows_per, bf16, lut)
    return out


def _mapping_of(arr):
    """The ``mmap.mmap`` behind a memory-mapped array (or one of its views), else None."""
    import mmap

    seen = 0
    while arr is not None and seen < 32:
        if isinstance(arr, mmap.mmap):
            return arr
        arr = getattr(arr, "base", None)
        seen += 1
    return None


def _release(mapping) -> None:
    """Drop the file pages read so far from this process's resident set (they stay in the page
    cache): a sparse 1.5 GiB file sampled row by row must not count 1.5 GiB against the budget."""
    import mmap

    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


def _gather2(arr2, idx, dst, rows_per, bf16, lut=None):
    n = dst.shape[0]
    mapping = _mapping_of(arr2)
    for a in range(0, n, rows_per):
        b = min(n, a + rows_per)
        block = arr2[a:b] if idx is None else arr2[idx[a:b]]
        dst[a:b] = _to_f32(block, bf16, lut)
        _release(mapping)


def _finish(ctx: _Ctx, arr: np.ndarray, fmt: str, key, original_shape, original_dtype, idx) -> LoadedEmbeddings:
    """Non-finite handling, final checks, the result object."""
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if original_dtype not in ("float32", "float16", "bfloat16", "float64"):
        ctx.notices.append(f"converted {original_dtype} values to float32")
    finite_rows = np.isfinite(arr).all(axis=-1)  # (N,) or (V, N)
    if finite_rows.ndim == 2:
        finite_rows = finite_rows.all(axis=0)
    bad = np.flatnonzero(~finite_rows)
    if bad.size:
        orig_rows = bad if idx is None else idx[bad]
        first = int(orig_rows[0])
        sample = arr[..., bad[0], :]
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        kinds = ", ".join(k for k, c in (("NaN", n_nan), ("Inf", n_inf)) if c) or "non-finite"
        col = int(np.flatnonzero(~np.isfinite(sample).reshape(-1, arr.shape[-1]).all(axis=0))[0])
        where = f"first at row {first}, column {col}"
        if not ctx.drop_nonfinite:
            ctx.fail(
                f"{bad.size:,} of {arr.shape[-2]:,} rows contain {kinds} values ({where}; "
                f"values beyond float32 range count as Inf); fix the file, or drop those rows with "
                f"drop_nonfinite=True (CLI --drop-nonfinite)"
            )
        keep = np.flatnonzero(finite_rows)
        arr = np.ascontiguousarray(arr[..., keep, :])
        idx = keep if idx is None else idx[keep]
        ctx.notices.append(f"dropped {bad.size:,} rows with {kinds} values ({where})")
        if arr.shape[-2] < 2:
            ctx.fail(f"only {arr.shape[-2]} finite row(s) left after dropping non-finite rows; SIGReg needs at least 2")
    return LoadedEmbeddings(
        array=np.ascontiguousarray(arr),
        name=ctx.src.name,
        format=fmt,
        key=key,
        notices=list(ctx.notices),
        original_shape=tuple(int(s) for s in original_shape),
        original_dtype=original_dtype,
        row_indices=idx,
        _digest_source=ctx.src.digest_source(),
    )


def _pick_key(ctx: _Ctx, entries: list, what: str) -> ArrayEntry:
    if ctx.key is not None:
        for e in entries:
            if e.key == ctx.key:
                return e
        listing = _listing(entries)
        ctx.fail(f"has no array named {ctx.key!r} (it holds: {listing}); pick one of those keys")
    usable = [e for e in entries if e.usable]
    if len(usable) == 1:
        if len(entries) > 1:
            ctx.notices.append(f"picked {usable[0].key!r}, the only 2-D/3-D array in the {what}")
        return usable[0]
    if not entries:
        ctx.fail(f"holds no arrays; save the embeddings into it")
    if not usable and len(entries) == 1:  # one array, unusable: let the caller say exactly why
        return entries[0]
    if not usable:
        ctx.fail(f"holds no 2-D or 3-D numeric array (it holds: {_listing(entries)}); save a batch of shape (N, D)")
    ctx.fail(
        f"holds several arrays ({_listing(usable)}); choose one with key='{usable[0].key}' (CLI: --key {usable[0].key})"
    )


def _listing(entries: Sequence[ArrayEntry], limit: int = 8) -> str:
    parts = [str(e) for e in entries[:limit]]
    if len(entries) > limit:
        parts.append(f"and {len(entries) - limit} more")
    return "; ".join(parts) if parts else "nothing"


def _note_set_aside(ctx: _Ctx, meta_cols: Sequence, other_cols: Sequence) -> None:
    """Tell which table columns were not used as dimensions (CSV/TSV and Parquet alike)."""

    def names(cols: Sequence) -> str:
        return f"{', '.join(map(str, cols[:10]))}{' …' if len(cols) > 10 else ''}"

    if meta_cols:
        ctx.notices.append(f"set aside id/label columns {names(meta_cols)}")
    if other_cols:
        ctx.notices.append(f"set aside non-numeric columns {names(other_cols)}")

