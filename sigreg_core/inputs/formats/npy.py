"""``.npy``: header parsed and checked against the file size before anything is allocated;
memory-mapped when read from a path."""
from __future__ import annotations

import math

import numpy as np

from sigreg_core.inputs.context import _Ctx, _finish, _gather, _numpy_dtype_problem
from sigreg_core.inputs.errors import EmbeddingLoadError, LoadedEmbeddings, _first_line, _human
from sigreg_core.inputs.sniff import _sniff

_NPY_MAX_HEADER = 10_000  # numpy's own default limit for a safe header


def _read_npy_header(f, ctx: _Ctx, where: str):
    from numpy.lib import format as npformat

    lead = f"{where} " if where else ""
    magic = f.read(8)
    if len(magic) < 8 or not magic.startswith(b"\x93NUMPY"):
        kind = _sniff(magic)
        if kind == "a raw Python pickle":
            ctx.fail(f"{lead}is a raw Python pickle, which is refused (it could run code); save a numeric array with numpy.save")
        looks = f" (it looks like {kind})" if kind else ""
        ctx.fail(f"{lead}is not a valid .npy array (bad magic bytes){looks}; re-save it with numpy.save")
    version = (magic[6], magic[7])
    try:
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f, max_header_size=_NPY_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npformat.read_array_header_2_0(f, max_header_size=_NPY_MAX_HEADER)
        else:
            ctx.fail(f"{lead}uses unknown .npy format version {version}; re-save it with numpy.save")
    except EmbeddingLoadError:
        raise
    except Exception as exc:
        ctx.fail(f"{lead}has a corrupt .npy header ({_first_line(exc)}); re-save it with numpy.save")
    problem = _numpy_dtype_problem(np.dtype(dtype))
    if problem:
        ctx.fail(f"{lead}{problem}; save float32/float16/float64 numbers (refused without unpickling)")
    return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype), f.tell()


def _load_npy(ctx: _Ctx) -> LoadedEmbeddings:
    src = ctx.src
    with src.open() as f:
        shape, fortran, dtype, offset = _read_npy_header(f, ctx, "")
    data_bytes = math.prod(shape) * dtype.itemsize
    available = src.size - offset
    if data_bytes != available:
        if data_bytes > available:
            ctx.fail(
                f"header promises shape {shape} {dtype.name} = {_human(data_bytes)} but the file holds only "
                f"{_human(available)} of data (truncated or forged header); re-save the array"
            )
        ctx.fail(
            f"{available - data_bytes} unexpected bytes after the array data of shape {shape}; "
            f"the file is corrupt, re-save it with numpy.save"
        )
    shape, view_index, idx, out_shape = ctx.plan(shape)
    order = "F" if fortran else "C"
    count = math.prod(shape)
    if src.data is not None:
        flat = np.frombuffer(src.data, dtype=dtype, count=count, offset=offset)
        arr = flat.reshape(shape, order=order)
    else:
        arr = np.memmap(src.path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    out = _gather(arr, shape, view_index, idx, out_shape)
    del arr
    return _finish(ctx, out, "npy", None, shape, dtype.name, idx)

