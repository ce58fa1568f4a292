"""Zip containers (``.npz``, torch zip files): opening and member checks before any decompression."""
from __future__ import annotations

import io
import struct
import zipfile
from typing import Optional


from sigreg_core.inputs.context import _STREAM_CHUNK, _Ctx
from sigreg_core.inputs.errors import _first_line, _human
from sigreg_core.inputs.limits import MAX_BYTES_ENV, MAX_COMPRESSION_RATIO
from sigreg_core.inputs.formats.npy import _NPY_MAX_HEADER

_METHODS = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def _open_zip(ctx: _Ctx, what: str) -> zipfile.ZipFile:
    try:
        src = ctx.src
        zf = zipfile.ZipFile(io.BytesIO(src.data) if src.data is not None else src.path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        ctx.fail(f"is not a readable {what} ({_first_line(exc)}); the file is corrupt or truncated, re-save it")
    except Exception as exc:  # any other parse failure of a hostile archive
        ctx.fail(f"is not a readable {what} ({type(exc).__name__}); re-save it")
    seen: set = set()
    for info in zf.infolist():  # the directory lists one name twice: one reader lists one member, loads the other
        if info.filename in seen:
            zf.close()
            ctx.fail(f"holds the member {info.filename!r} twice (a duplicated zip entry; readers disagree on which one "
                     f"is meant); re-save the {what}")
        seen.add(info.filename)
    return zf


def _check_zip_member(ctx: _Ctx, info: zipfile.ZipInfo, budget: Optional[int] = None):
    if info.flag_bits & 0x1:
        ctx.fail(f"member {info.filename!r} is encrypted; save an unencrypted archive")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        ctx.fail(f"member {info.filename!r} uses unsupported compression method {info.compress_type}; re-save with numpy.savez")
    limit = ctx.max_bytes if budget is None else budget
    if info.file_size > limit + _NPY_MAX_HEADER + 64:
        ctx.fail(
            f"member {info.filename!r} declares {_human(info.file_size)} uncompressed, over the limit of "
            f"{_human(ctx.max_bytes)} (zip bomb?); raise max_bytes / {MAX_BYTES_ENV} if the file is genuine"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        ctx.fail(f"member {info.filename!r} is stored uncompressed but its sizes disagree; the archive is corrupt")
    # every method, not only deflate: bzip2 and lzma squeeze gigabytes of zeros into a few KB, and
    # decompressing them costs minutes before any size check could fire; embeddings compress < 10:1
    ratio = info.file_size / max(info.compress_size, 1)
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 4096:
        method = _METHODS.get(info.compress_type, str(info.compress_type))
        ctx.fail(
            f"member {info.filename!r} ({method}) claims {_human(info.file_size)} from {_human(info.compress_size)}, a "
            f"compression ratio of {ratio:,.0f}:1, beyond what {method} can produce from embeddings (limit "
            f"{MAX_COMPRESSION_RATIO:,}:1; zip bomb or forged header); re-save with numpy.savez or numpy.savez_compressed"
        )


def _read_exact(f, nbytes: int, ctx: _Ctx, key) -> bytes:
    buf = bytearray(nbytes)
    view = memoryview(buf)
    pos = 0
    while pos < nbytes:
        chunk = f.read(min(_STREAM_CHUNK, nbytes - pos))
        if not chunk:
            ctx.fail(f"member {key!r} ends after {pos} of {nbytes} bytes; the archive is truncated")
        view[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
    return buf

