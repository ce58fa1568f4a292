"""``.pt`` / ``.pth``: ``torch.load(weights_only=True)`` only, memory-mapped from a path; a tensor or a
dict/list/tuple of tensors picked by a dotted key."""
from __future__ import annotations

import io
import re
import warnings
import zipfile
from typing import Optional

import numpy as np

from sigreg_core.inputs.context import _STREAM_CHUNK, _Ctx, _finish, _numpy_dtype_problem, _pick_key
from sigreg_core.inputs.errors import ArrayEntry, EmbeddingLoadError, LoadedEmbeddings, _first_line, _human
from sigreg_core.inputs.sniff import _sniff
from sigreg_core.inputs.formats.zipfiles import _open_zip
from sigreg_core.inputs.limits import MAX_NODES_ENV, max_nodes

#: pickle bytes allowed per object-graph node before unpickling (a tensor entry takes ~100 bytes)
_PICKLE_BYTES_PER_NODE = 64


def _load_pt(ctx: _Ctx) -> LoadedEmbeddings:
    obj, key, t = _pt_object_and_tensor(ctx)
    import torch

    shape = tuple(t.shape)
    shape, view_index, idx, out_shape = ctx.plan(shape)
    dtype_name = str(t.dtype).replace("torch.", "")
    src_t = t
    if view_index is not None:
        src_t = src_t[view_index]
    out = np.empty(out_shape, dtype=np.float32)
    rows_axis = src_t.dim() - 2
    n_out = out_shape[-2]
    rows_per = max(1, _STREAM_CHUNK // max(1, shape[-1] * 4 * (out_shape[0] if len(out_shape) == 3 else 1)))
    idx_t = None if idx is None else torch.from_numpy(idx)
    with torch.no_grad():
        for a in range(0, n_out, rows_per):
            b = min(n_out, a + rows_per)
            if idx_t is None:
                block = src_t.narrow(rows_axis, a, b - a)
            else:
                block = src_t.index_select(rows_axis, idx_t[a:b])
            out[..., a:b, :] = block.to(torch.float32).numpy()
    del obj, t, src_t
    return _finish(ctx, out, "pt", key, shape, dtype_name, idx)


def _pt_load(ctx: _Ctx):
    import pickle

    import torch

    src = ctx.src
    version = tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2])
    if version < (2, 10):
        ctx.fail(
            f"refusing to read a .pt file with torch {torch.__version__}: weights_only loading has known "
            f"bypasses before torch 2.10 (CVE-2025-32434, CVE-2026-24747); upgrade torch or use safetensors"
        )
    head = src.head(8)
    if not head:
        ctx.fail("is empty (0 bytes); re-save the tensors")
    if not head.startswith(b"PK"):
        kind = _sniff(head)
        if kind == "a raw Python pickle":
            ctx.fail(
                "is a raw pickle (legacy torch format or pickle.dump), which is refused; "
                "re-save with a current torch.save of tensors only, or as .safetensors"
            )
        ctx.fail(f"is not a PyTorch zip file{' (it looks like ' + kind + ')' if kind else ''}; re-save it with torch.save")
    with _open_zip(ctx, "PyTorch file") as zf:
        total = 0
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                ctx.fail(f"member {info.filename!r} is compressed, which torch.save never does; the file was crafted or corrupted")
            if info.file_size != info.compress_size:
                ctx.fail(f"member {info.filename!r} has inconsistent sizes; the file is corrupt")
            total += info.file_size
            if info.filename.endswith("data.pkl") and info.file_size > _PICKLE_BYTES_PER_NODE * max_nodes():
                ctx.fail(
                    f"its object pickle is {_human(info.file_size)}, more than a graph of {max_nodes():,} nodes needs "
                    f"(unpickling it alone would take long; crafted or corrupt?); save the embeddings tensor alone, "
                    f"or raise {MAX_NODES_ENV}"
                )
    if src.data is not None:
        ctx.check_bytes(total, "the tensors in this file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol ..." on hostile files: refused below anyway
            if src.path is not None:
                return torch.load(src.path, map_location="cpu", weights_only=True, mmap=True)
            return torch.load(io.BytesIO(src.data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"GLOBAL ([\w\.]+)", text) or re.search(r"Unsupported global: ([\w\.]+)", text)
        if m:
            ctx.fail(
                f"refused: its pickle calls {m.group(1)}, which is not a tensor or a plain container "
                f"(weights_only loading never runs code); save only tensors, e.g. torch.save({{'z': z}}) or safetensors"
            )
        ctx.fail(
            f"refused by weights_only loading ({_first_line(exc)}); save only tensors and dicts/lists of tensors, or use safetensors"
        )
    except EmbeddingLoadError:
        raise
    except MemoryError:
        ctx.fail(f"needs more memory than available; pass max_rows or use .npy/.safetensors from a server path")
    except Exception as exc:
        ctx.fail(f"cannot be read as a PyTorch file ({_first_line(exc)}); the file is corrupt or truncated, re-save it")


def _pt_leaves(obj, ctx: Optional[_Ctx] = None, prefix="", depth=0, out=None, seen=None):
    """``[(dotted key, tensor)]`` of a loaded object graph, depth <= 20.

    Every container or tensor reached counts towards :func:`~sigreg_core.inputs.limits.max_nodes`,
    *including each further path to a shared object*: pickle memoises shared references, so
    ``c = [c] * 10`` nested 12 times loads from 1.7 KB but has 10^12 paths; the walk stops
    with one line as soon as the count passes the limit.
    """
    import torch

    if out is None:
        out = []
        seen = [0, max_nodes()]
    seen[0] += 1
    if seen[0] > seen[1]:
        who = f"{ctx.src.name}: " if ctx is not None else ""
        raise EmbeddingLoadError(
            f"{who}its object graph has more than {seen[1]:,} containers/tensors (counting every path to a shared "
            f"object; crafted or corrupt?); save the embeddings tensor alone, or raise {MAX_NODES_ENV}"
        )
    if depth > 20:
        return out
    if isinstance(obj, torch.Tensor):
        out.append((prefix or None, obj))
    elif isinstance(obj, np.ndarray):
        out.append((prefix or None, obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _pt_leaves(v, ctx, f"{prefix}.{k}" if prefix else str(k), depth + 1, out, seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _pt_leaves(v, ctx, f"{prefix}.{i}" if prefix else str(i), depth + 1, out, seen)
    return out


def _tensor_problem(t) -> Optional[str]:
    import torch

    if isinstance(t, np.ndarray):
        return _numpy_dtype_problem(t.dtype)
    if t.layout != torch.strided:
        return f"is a {t.layout} tensor; save a dense tensor (t.to_dense())"
    if t.is_quantized:
        return "is a quantized tensor; save t.dequantize()"
    if t.is_complex():
        return "holds complex numbers; save the real embeddings"
    if t.dtype == torch.bool:
        return "holds booleans, not embeddings"
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        return f"has unsupported dtype {t.dtype}"
    return _view_problem(t)


def _view_problem(t) -> Optional[str]:
    """A view that describes more elements than its storage holds (zero strides, overlapping strides).

    ``torch.save`` keeps views as (storage, offset, size, stride): a 4-byte storage with strides
    (0, 0) reads as a 1 GiB tensor.  Every element of a usable embeddings tensor must be its own
    stored number: numel * itemsize <= the bytes the view can reach, and no stride 0 on an axis
    longer than 1.
    """
    if t.numel() <= 1:
        return None
    shape, strides = tuple(t.shape), tuple(t.stride())
    need = t.numel() * t.element_size()
    try:
        stored = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
    except (RuntimeError, NotImplementedError):
        stored = need
    if any(s == 0 and n > 1 for s, n in zip(strides, shape)) or need > stored:
        return (f"is a zero-stride or overlapping view (shape {shape}, strides {strides}: {_human(need)} described, "
                f"{_human(max(stored, 0))} stored); save a real copy with t.clone() or t.contiguous()")
    return None


def _pt_object_and_tensor(ctx: _Ctx):
    import torch

    obj = _pt_load(ctx)
    leaves = _pt_leaves(obj, ctx)
    entries = []
    by_key = {}
    for k, t in leaves:
        prob = _tensor_problem(t)
        shape = tuple(t.shape)
        entries.append(ArrayEntry(k, shape, str(getattr(t, "dtype", "?")).replace("torch.", ""), prob is None and len(shape) in (2, 3)))
        by_key[k] = (t, prob)
    if not leaves:
        ctx.fail(f"holds no tensors (it holds a {type(obj).__name__}); save the embeddings tensor")
    if len(leaves) == 1 and leaves[0][0] is None:  # a bare tensor
        if ctx.key is not None:
            ctx.fail(f"holds a single tensor, not a dict; leave key unset (got key={ctx.key!r})")
        entry = entries[0]
    else:
        entry = _pick_key(ctx, entries, "file")
    t, prob = by_key[entry.key]
    if prob:
        ctx.fail(f"tensor {entry.key or ''} {prob}".replace("tensor  ", "tensor "))
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(t))
    return obj, entry.key, t

