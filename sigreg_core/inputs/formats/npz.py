"""``.npz``: pick a member by key; members streamed out of the zip after their declared sizes are checked."""
from __future__ import annotations

import math
import struct
import zipfile
from typing import Optional

import numpy as np

from sigreg_core.inputs.context import _STREAM_CHUNK, _Ctx, _finish, _gather, _pick_key, _to_f32
from sigreg_core.inputs.errors import ArrayEntry, EmbeddingLoadError, LoadedEmbeddings, _first_line, _human
from sigreg_core.inputs.limits import MAX_BYTES_ENV
from sigreg_core.inputs.formats.npy import _read_npy_header
from sigreg_core.inputs.formats.zipfiles import _check_zip_member, _open_zip, _read_exact


def _npz_members(zf: zipfile.ZipFile) -> list:
    return [i for i in zf.infolist() if i.filename.endswith(".npy") and not i.is_dir()]


def _npz_entries(ctx: _Ctx, zf: zipfile.ZipFile, errors: Optional[dict] = None) -> list:
    entries = []
    for info in _npz_members(zf):
        key = info.filename[:-4]
        try:
            _check_zip_member(ctx, info)
            with zf.open(info) as f:
                shape, _fortran, dtype, _off = _read_npy_header(f, ctx, f"member {key!r}")
            usable = len(shape) in (2, 3)
            entries.append(ArrayEntry(key, shape, dtype.name, usable))
        except EmbeddingLoadError as exc:
            if errors is not None:
                errors[key] = exc
            entries.append(ArrayEntry(key, (), f"unreadable: {str(exc).split(': ', 1)[-1][:80]}", False))
        except Exception as exc:
            if errors is not None:
                errors[key] = EmbeddingLoadError(
                    f"{ctx.src.name}: member {key!r} cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
                    f"the archive is corrupt or its sizes are forged, re-save it"
                )
            entries.append(ArrayEntry(key, (), f"unreadable ({type(exc).__name__})", False))
    return entries


def _load_npz(ctx: _Ctx) -> LoadedEmbeddings:
    with _open_zip(ctx, ".npz archive") as zf:
        members = {i.filename[:-4]: i for i in _npz_members(zf)}
        errors: dict = {}
        entries = _npz_entries(ctx, zf, errors)
        if ctx.key in errors:  # the member asked for is the broken one: say why
            raise errors[ctx.key]
        if ctx.key is None and errors and not any(e.usable for e in entries):
            raise next(iter(errors.values()))
        entry = _pick_key(ctx, entries, ".npz archive")
        info = members[entry.key]
        _check_zip_member(ctx, info)
        try:
            with zf.open(info) as f:
                shape, fortran, dtype, offset = _read_npy_header(f, ctx, f"member {entry.key!r}")
                data_bytes = math.prod(shape) * dtype.itemsize
                if data_bytes + offset != info.file_size:
                    ctx.fail(
                        f"member {entry.key!r}: header promises shape {shape} {dtype.name} = {_human(data_bytes)} "
                        f"but the member holds {_human(max(info.file_size - offset, 0))}; the archive is corrupt"
                    )
                shape, view_index, idx, out_shape = ctx.plan(shape)
                if fortran:  # rows are not contiguous: read the whole member (within the limit)
                    ctx.check_bytes(data_bytes, f"member {entry.key!r} (Fortran order, read whole)")
                    raw = _read_exact(f, data_bytes, ctx, entry.key)
                    arr = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F")
                    out = _gather(arr, shape, view_index, idx, out_shape)
                else:
                    out = _stream_rows(f, ctx, entry.key, shape, dtype, view_index, idx, out_shape)
        except EmbeddingLoadError:
            raise
        except MemoryError:
            ctx.fail(f"ran out of memory decompressing member {entry.key!r}; pass max_rows (CLI --max-rows) or lower "
                     f"max_bytes / {MAX_BYTES_ENV} so such members are refused up front")
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, struct.error) as exc:
            ctx.fail(f"member {entry.key!r} cannot be decompressed ({_first_line(exc)}); the archive is corrupt, re-save it")
        except Exception as exc:
            ctx.fail(f"member {entry.key!r} cannot be decompressed ({type(exc).__name__}); the archive is corrupt, re-save it")
    return _finish(ctx, out, "npz", entry.key, shape, dtype.name, idx)


def _stream_rows(f, ctx, key, shape, dtype, view_index, idx, out_shape) -> np.ndarray:
    """Read a C-ordered array row by row from a stream, keeping only the chosen views/rows."""
    d = shape[-1]
    n = shape[-2]
    v_count = shape[0] if len(shape) == 3 else 1
    row_bytes = d * dtype.itemsize
    out = np.empty(out_shape, dtype=np.float32)
    out3 = out.reshape((1,) + out.shape) if out.ndim == 2 else out
    keep_views = [view_index] if view_index is not None else list(range(v_count))
    rows_per = max(1, _STREAM_CHUNK // max(row_bytes, 1))
    for v in range(v_count):
        dst = out3[keep_views.index(v)] if v in keep_views else None
        a = 0
        while a < n:
            b = min(n, a + rows_per)
            raw = f.read((b - a) * row_bytes)
            if len(raw) != (b - a) * row_bytes:
                ctx.fail(f"member {key!r} ends early (row {a} of {n}); the archive is truncated")
            if dst is not None:
                block = np.frombuffer(raw, dtype=dtype).reshape(b - a, d)
                if idx is None:
                    dst[a:b] = _to_f32(block)
                else:
                    lo, hi = np.searchsorted(idx, [a, b])
                    if hi > lo:
                        dst[lo:hi] = _to_f32(block[idx[lo:hi] - a])
            a = b
    if f.read(1):
        ctx.fail(f"member {key!r} has bytes after its array data; the archive is corrupt")
    return out

