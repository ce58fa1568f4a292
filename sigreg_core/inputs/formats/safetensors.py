"""``.safetensors``: header parsed and validated here, tensors memory-mapped (bf16 widened exactly).

As strict as the format's own reader (huggingface/safetensors ``Metadata::validate``): keys
unique (a JSON object with a key twice is refused, not "last one wins"), tensors laid end to end
(sorted by offset, each begins where the previous ends, the last ends at the end of the file: no
overlap, no gap), and every dtype of the format either read or refused by name.  Read: F64, F32,
F16, BF16 (exact shift into float32), the integers, and the 8-bit floats F8_E4M3 (E4M3FN: bias 7,
no infinities, S.1111.111 is NaN), F8_E5M2 (IEEE-like: bias 15, infinities and NaNs) and F8_E8M0
(a power of two 2^(e-127), 0xFF is NaN), decoded exactly through a 256-entry table (OCP 8-bit
floating point specification, 2023).  Refused by name: BOOL, C64 (complex), F4 and the F6
formats (packed sub-byte floats).
"""
from __future__ import annotations

import json
import math
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


#: bits per element of every dtype the format defines (sub-byte ones pack several per byte)
_ST_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
            "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4,
            "F6_E2M3": 6, "F6_E3M2": 6}
#: dtypes of the format that are not read, and why
_ST_REFUSED = {"BOOL": "booleans, not embeddings", "C64": "complex numbers; save the real embeddings",
               "F4": "packed 4-bit floats, which are not read; save float16/bfloat16/float32",
               "F6_E2M3": "packed 6-bit floats, which are not read; save float16/bfloat16/float32",
               "F6_E3M2": "packed 6-bit floats, which are not read; save float16/bfloat16/float32"}
_F8 = ("F8_E4M3", "F8_E5M2", "F8_E8M0")


def f8_table(dt: str) -> np.ndarray:
    """float32 value of each of the 256 codes of an 8-bit float format (OCP 8-bit FP spec)."""
    code = np.arange(256)
    if dt == "F8_E8M0":  # unsigned exponent only: 2^(e - 127), 0xFF is NaN
        out = np.ldexp(1.0, code - 127)
        out[255] = np.nan
        return out.astype(np.float32)
    ebits, mbits, bias = (4, 3, 7) if dt == "F8_E4M3" else (5, 2, 15)
    sign = np.where(code >> 7, -1.0, 1.0)
    e = (code >> mbits) & ((1 << ebits) - 1)
    m = code & ((1 << mbits) - 1)
    frac = m / float(1 << mbits)
    value = np.where(e == 0, np.ldexp(frac, 1 - bias), np.ldexp(1.0 + frac, e - bias))
    emax = (1 << ebits) - 1
    if dt == "F8_E4M3":  # E4M3FN: no infinities; only S.1111.111 is NaN
        value = np.where((e == emax) & (m == (1 << mbits) - 1), np.nan, value)
    else:  # E5M2: IEEE-like top exponent
        value = np.where(e == emax, np.where(m == 0, np.inf, np.nan), value)
    return (sign * value).astype(np.float32)


def _unique_object(pairs):
    keys = [k for k, _v in pairs]
    if len(set(keys)) != len(keys):
        seen, dup = set(), None
        for k in keys:
            if k in seen:
                dup = k
                break
            seen.add(k)
        raise _DuplicateKey(dup)
    return dict(pairs)


class _DuplicateKey(ValueError):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


_ST_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
             "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
             "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0", "C64": "complex64",
             "F4": "float4_e2m1", "F6_E2M3": "float6_e2m3", "F6_E3M2": "float6_e3m2"}


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
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_object)
    except _DuplicateKey as dup:
        ctx.fail(f"has the key {dup.key!r} twice in its header (readers disagree on which one is meant); re-save with safetensors")
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
        if dt not in _ST_BITS:
            ctx.fail(f"tensor {name!r} has dtype {dt[:40]!r}, which is not a safetensors dtype; re-save with safetensors")
        bits = math.prod(shape) * _ST_BITS[dt]
        if bits % 8:
            ctx.fail(f"tensor {name!r}: shape {tuple(shape)} of {dt} does not fill whole bytes; re-save with safetensors")
        nbytes = bits // 8
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
    # laid end to end, as the format's own reader requires: no overlap (two tensors sharing bytes) and no gap
    pos = 0
    for name, (_dt, _shape, begin, end) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != pos:
            what = "overlaps the tensor before it" if begin < pos else f"leaves a gap of {begin - pos:,} bytes before it"
            ctx.fail(f"tensor {name!r} (bytes {begin:,}..{end:,}) {what}; tensors must lie end to end (corrupt or "
                     f"crafted file), re-save with safetensors")
        pos = end
    if pos != data_len:
        ctx.fail(f"has {data_len - pos:,} bytes after its last tensor that no tensor owns; the file is corrupt or crafted, "
                 f"re-save with safetensors")
    return hlen, entries


def _st_entries(ctx: _Ctx) -> list:
    _hlen, entries = _st_header(ctx)
    return [
        ArrayEntry(k, shape, _ST_NAMES.get(dt, dt.lower()), _readable(dt) and len(shape) in (2, 3))
        for k, (dt, shape, _b, _e) in entries.items()
    ]


def _readable(dt: str) -> bool:
    return dt in _ST_DTYPES or dt in _F8


def _load_safetensors(ctx: _Ctx) -> LoadedEmbeddings:
    src = ctx.src
    hlen, raw_entries = _st_header(ctx)
    entries = [
        ArrayEntry(k, shape, _ST_NAMES.get(dt, dt.lower()), _readable(dt) and len(shape) in (2, 3))
        for k, (dt, shape, _b, _e) in raw_entries.items()
    ]
    entry = _pick_key(ctx, entries, "file")
    dt, shape, begin, end = raw_entries[entry.key]
    if dt in _ST_REFUSED:
        ctx.fail(f"tensor {entry.key!r} has dtype {dt}: {_ST_REFUSED[dt]}")
    shape, view_index, idx, out_shape = ctx.plan(shape)
    lut = f8_table(dt) if dt in _F8 else None
    np_dtype = np.dtype("u1" if lut is not None else _ST_DTYPES[dt])
    offset = 8 + hlen + begin
    count = math.prod(shape)
    if src.data is not None:
        arr = np.frombuffer(src.data, dtype=np_dtype, count=count, offset=offset).reshape(shape)
    else:
        arr = np.memmap(src.path, dtype=np_dtype, mode="r", offset=offset, shape=shape)
    out = _gather(arr, shape, view_index, idx, out_shape, bf16=(dt == "BF16"), lut=lut)
    del arr
    name = _ST_NAMES.get(dt, np_dtype.name)
    return _finish(ctx, out, "safetensors", entry.key, shape, name, idx)

