"""``.safetensors``: header parsed and validated here, tensors memory-mapped (bf16 widened exactly)."""
from __future__ import annotations

import json
import math
import re
import struct

import numpy as np

from sigreg_core.inputs.context import _Ctx, _finish, _gather, _pick_key
from sigreg_core.inputs.errors import ArrayEntry, LoadedEmbeddings, _human
from sigreg_core.inputs.sniff import _sniff

_SAFETENSORS_MAX_HEADER = 16 * 1024**2
_ST_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}


_ST_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
             "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def _st_header(ctx: _Ctx):
    src = ctx.src
    if src.size < 8:
        ctx.fail(f"is {'empty' if src.size == 0 else 'truncated'} ({src.size} bytes), too short for a safetensors header; re-save it")
    (hlen,) = struct.unpack("<Q", src.head(8))
    if hlen > min(_SAFETENSORS_MAX_HEADER, src.size - 8):
        if hlen > src.size - 8:
            ctx.fail(
                f"header length field says {hlen:,} bytes but the file holds only {src.size - 8:,} after it "
                f"(truncated or forged); re-save with safetensors"
            )
        ctx.fail(f"header of {_human(hlen)} is over the {_human(_SAFETENSORS_MAX_HEADER)} sanity limit; re-save with safetensors")
    raw = src.head(8 + hlen)[8:]
    try:
        header = json.loads(raw.decode("utf-8"))
    except Exception as exc:
        kind = _sniff(src.head(16))
        extra = f" (it looks like {kind})" if kind and kind != "a safetensors file" else ""
        ctx.fail(f"has a corrupt safetensors header ({type(exc).__name__}){extra}; re-save with safetensors")
    if not isinstance(header, dict):
        ctx.fail("has a safetensors header that is not a JSON object; re-save with safetensors")
    data_len = src.size - 8 - hlen
    entries = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict):
            ctx.fail(f"tensor {name!r} has a malformed header entry; re-save with safetensors")
        dt, shape, offs = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
        if (
            not isinstance(dt, str)
            or not isinstance(shape, list)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
            or not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offs)
        ):
            ctx.fail(f"tensor {name!r} has a malformed header entry (dtype/shape/data_offsets); re-save with safetensors")
        begin, end = offs
        itemsize = int(re.sub(r"\D", "", dt) or 8) // 8 if dt != "BOOL" else 1
        itemsize = max(itemsize, 1)
        nbytes = math.prod(shape) * itemsize
        if end < begin or end > data_len:
            ctx.fail(
                f"tensor {name!r} claims bytes {begin}..{end} but the data section holds {data_len:,} bytes "
                f"(truncated or forged header); re-save with safetensors"
            )
        if end - begin != nbytes:
            ctx.fail(
                f"tensor {name!r}: shape {tuple(shape)} {dt} needs {nbytes:,} bytes but the header gives it "
                f"{end - begin:,} (forged header); re-save with safetensors"
            )
        entries[name] = (dt, tuple(shape), begin, end)
    return hlen, entries


def _st_entries(ctx: _Ctx) -> list:
    _hlen, entries = _st_header(ctx)
    return [
        ArrayEntry(k, shape, _ST_NAMES.get(dt, dt.lower()), dt in _ST_DTYPES and len(shape) in (2, 3))
        for k, (dt, shape, _b, _e) in entries.items()
    ]


def _load_safetensors(ctx: _Ctx) -> LoadedEmbeddings:
    src = ctx.src
    hlen, raw_entries = _st_header(ctx)
    entries = [
        ArrayEntry(k, shape, _ST_NAMES.get(dt, dt.lower()), dt in _ST_DTYPES and len(shape) in (2, 3))
        for k, (dt, shape, _b, _e) in raw_entries.items()
    ]
    entry = _pick_key(ctx, entries, "file")
    dt, shape, begin, end = raw_entries[entry.key]
    if dt not in _ST_DTYPES:
        ctx.fail(f"tensor {entry.key!r} has dtype {dt}, which is not a supported number type; save float32/float16/bfloat16")
    shape, view_index, idx, out_shape = ctx.plan(shape)
    np_dtype = np.dtype(_ST_DTYPES[dt])
    offset = 8 + hlen + begin
    count = math.prod(shape)
    if src.data is not None:
        arr = np.frombuffer(src.data, dtype=np_dtype, count=count, offset=offset).reshape(shape)
    else:
        arr = np.memmap(src.path, dtype=np_dtype, mode="r", offset=offset, shape=shape)
    out = _gather(arr, shape, view_index, idx, out_shape, bf16=(dt == "BF16"))
    del arr
    name = _ST_NAMES.get(dt, np_dtype.name)
    return _finish(ctx, out, "safetensors", entry.key, shape, name, idx)

