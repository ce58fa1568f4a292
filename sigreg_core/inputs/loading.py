"""Loading embeddings safely: one loader for uploads, server paths, the monitor and the CLI.

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel, arXiv
2603.19312) scores a batch ``Z`` of shape (N, D): N rows (samples) of dimension D.
A batch of shape (V, N, D) holds V batches scored separately (views or time
steps, as lejepa does: the statistic is taken over axis -2).  This module turns
a file written by any common stack into such an array, and refuses everything
that could run code or exhaust memory, each time with one line saying what is
wrong, where, and how to fix it (:class:`EmbeddingLoadError`).

Formats
-------
``.npy``           one array; header parsed and checked against the file size before
                   anything is allocated; memory-mapped when read from a path.
``.npz``           pick a member by ``key``; members are streamed out of the zip with
                   the declared sizes checked first (zip bombs refused).
``.pt`` / ``.pth`` a tensor, or a dict/list/tuple of tensors (dotted ``key`` path such
                   as ``model.z`` or ``outputs.0``); ``torch.load(weights_only=True)``
                   only, memory-mapped from a path.
``.safetensors``   header parsed and validated here, tensors memory-mapped (bf16 widened
                   exactly to float32).
``.csv`` / ``.tsv`` numeric columns; non-numeric and id/label columns set aside with a
                   notice; header row detected.
``.parquet``       numeric columns, or one list / fixed-size-list column of vectors.

Whatever the input dtype (float16, bfloat16, float32, float64, integers), the array
is returned as float32; the statistic accumulates in float64.

Safety rules (see docs/loading.md)
----------------------------------
* Nothing is ever unpickled: ``numpy`` with ``allow_pickle=False`` semantics (object
  and structured dtypes refused), ``torch.load(..., weights_only=True)`` (refusals
  explained), safetensors/parquet/CSV parsed without pickle.
* Every size a header promises is checked against the bytes really present and
  against a byte limit (``max_bytes``, default from the environment variable
  ``LATENT_HEALTH_MAX_BYTES``, else 8 GiB) *before* allocating.
* Non-finite values are counted and the first bad row reported (or the rows dropped
  with ``drop_nonfinite=True``); fewer than 2 rows or a shape other than 2-D/3-D is
  refused.
* Server paths (:func:`resolve_server_path`) must lie below allowed root directories
  (``LATENT_HEALTH_ALLOWED_ROOTS``), with ``..`` components and symlink escapes refused.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

__all__ = [
    "EmbeddingLoadError",
    "LoadedEmbeddings",
    "ArrayEntry",
    "load_embeddings",
    "load_server_path",
    "check_source",
    "list_keys",
    "resolve_server_path",
    "allowed_roots",
    "default_max_bytes",
    "parse_byte_size",
    "source_digest",
    "SUPPORTED_EXTENSIONS",
    "MAX_BYTES_ENV",
    "ALLOWED_ROOTS_ENV",
]

MAX_BYTES_ENV = "LATENT_HEALTH_MAX_BYTES"
ALLOWED_ROOTS_ENV = "LATENT_HEALTH_ALLOWED_ROOTS"
DEFAULT_MAX_BYTES = 8 * 1024**3

#: extension -> format name
SUPPORTED_EXTENSIONS = {
    ".npy": "npy",
    ".npz": "npz",
    ".pt": "pt",
    ".pth": "pt",
    ".safetensors": "safetensors",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_NPY_MAX_HEADER = 10_000  # numpy's own default limit for a safe header
_SAFETENSORS_MAX_HEADER = 16 * 1024**2
_DEFLATE_MAX_RATIO = 1100  # deflate cannot compress better than ~1032:1
_STREAM_CHUNK = 4 * 1024**2  # bytes per read / per gathered block
_META_COLUMNS = {
    "id", "ids", "idx", "index", "label", "labels", "target", "targets", "class",
    "classes", "y", "step", "epoch", "name", "names", "path", "paths", "file", "filename",
}


class EmbeddingLoadError(ValueError):
    """A file could not be used as embeddings; the message is one line: what, where, how to fix."""

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line, always
        if len(message) > 600:
            message = message[:597] + "..."
        super().__init__(message)


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayEntry:
    """One array inside a source (what :func:`list_keys` returns)."""

    key: Optional[str]
    shape: tuple
    dtype: str
    usable: bool  # numeric and 2-D or 3-D

    def __str__(self) -> str:
        shape = " x ".join(str(s) for s in self.shape) if self.shape else "scalar"
        label = self.key if self.key is not None else "(whole file)"
        return f"{label}: {shape} {self.dtype}" + ("" if self.usable else " (not usable)")


@dataclass
class LoadedEmbeddings:
    """Embeddings read from one source.

    ``array`` is float32 of shape (N, D), or (V, N, D) for V views / time steps
    scored separately.  ``notices`` are the non-fatal things the loader did
    (columns set aside, rows subsampled, rows dropped, dtype converted).
    """

    array: np.ndarray
    name: str
    format: str
    key: Optional[str] = None
    notices: list = field(default_factory=list)
    original_shape: tuple = ()
    original_dtype: str = ""
    row_indices: Optional[np.ndarray] = None  # original rows kept (None: all, in order)
    _digest: Optional[str] = field(default=None, repr=False)
    _digest_source: Any = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        """sha256 of the source bytes (computed once, lazily for server paths)."""
        if self._digest is None:
            self._digest = source_digest(self._digest_source)
        return self._digest

    @property
    def num_views(self) -> int:
        return 1 if self.array.ndim == 2 else int(self.array.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.array.shape[-2])

    @property
    def dim(self) -> int:
        return int(self.array.shape[-1])

    @property
    def views(self) -> list:
        """The (N, D) batches: one for a 2-D array, V for a 3-D one."""
        return [self.array] if self.array.ndim == 2 else [self.array[v] for v in range(self.array.shape[0])]

    def describe(self) -> str:
        shape = " x ".join(f"{s:,}" for s in self.array.shape)
        src = f"{self.name}" + (f"[{self.key}]" if self.key else "")
        return f"{shape} ({self.original_dtype} → float32) from {src}"


# ----------------------------------------------------------------------------
# configuration: limits and allowed roots
# ----------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_byte_size(text: Union[str, int]) -> int:
    """``"8GiB"``, ``"512M"``, ``"1e9"``, ``1000`` → bytes (K/M/G/T are powers of 1024)."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        if int(text) <= 0:
            raise EmbeddingLoadError(f"byte limit must be positive, got {text}")
        return int(text)
    s = str(text).strip()
    m = _SIZE_RE.match(s)
    try:
        if m:
            value = float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2).lower() or "_")
        else:
            value = float(s)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise EmbeddingLoadError(
            f"cannot read byte limit {text!r}; write it like 8GiB, 512MiB or 1000000000"
        )
    return int(value)


def default_max_bytes() -> int:
    """The byte limit: ``$LATENT_HEALTH_MAX_BYTES`` if set, else 8 GiB."""
    env = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_byte_size(env)
    except EmbeddingLoadError:
        raise EmbeddingLoadError(
            f"environment variable {MAX_BYTES_ENV}={env!r} is not a byte size; write it like 8GiB or 2000000000"
        ) from None


def allowed_roots(roots: Optional[Iterable[Union[str, os.PathLike]]] = None) -> list:
    """Directories below which server paths may be read.

    ``roots`` if given; else ``$LATENT_HEALTH_ALLOWED_ROOTS`` (``os.pathsep``-separated);
    else the default: the repository's ``sample_data/`` and ``runs/`` directories
    (next to the ``sigreg_core`` package).  The current directory and home are *not*
    allowed by default: a dashboard served to others must not read arbitrary files.
    """
    if roots is None:
        env = os.environ.get(ALLOWED_ROOTS_ENV, "")
        if env.strip():
            roots = [r for r in env.split(os.pathsep) if r.strip()]
        else:
            repo = Path(__file__).resolve().parents[2]
            roots = [repo / "sample_data", repo / "runs"]
    out = []
    for r in roots:
        p = Path(os.path.expanduser(str(r)))
        try:
            out.append(p.resolve())
        except (OSError, RuntimeError):
            continue
    return out


def resolve_server_path(path: Union[str, os.PathLike], roots: Optional[Iterable] = None) -> Path:
    """Resolve a path typed by a user of the dashboard, confined to the allowed roots.

    Refuses ``..`` components, NUL bytes, anything that after resolving symlinks is not
    below one of the allowed roots, and anything that is not a regular file.  A relative
    path is looked up below each root in turn.
    """
    root_list = allowed_roots(roots)
    text = os.fspath(path) if not isinstance(path, str) else path
    text = text.strip()
    if not text:
        raise EmbeddingLoadError("empty server path; type a path to a file below an allowed directory")
    if "\x00" in text:
        raise EmbeddingLoadError("server path contains a NUL byte; type a plain file path")
    if not root_list:
        raise EmbeddingLoadError(
            f"no allowed directories are configured for server paths; set {ALLOWED_ROOTS_ENV}"
        )
    shown = ", ".join(str(r) for r in root_list)
    p = Path(text)
    if any(part == ".." for part in p.parts):
        raise EmbeddingLoadError(f"server path {text!r} contains '..'; give a path below {shown}")
    candidates = [p] if p.is_absolute() else [r / p for r in root_list]
    for cand in candidates:
        try:
            resolved = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not any(resolved == r or resolved.is_relative_to(r) for r in root_list):
            raise EmbeddingLoadError(
                f"server path {text!r} resolves to {resolved}, outside the allowed directories ({shown}); "
                f"copy the file there or add its directory to {ALLOWED_ROOTS_ENV}"
            )
        try:
            st = resolved.stat()
        except OSError as exc:
            raise EmbeddingLoadError(f"cannot stat server path {text!r}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise EmbeddingLoadError(f"server path {text!r} is not a regular file; give the path of an embeddings file")
        return resolved
    raise EmbeddingLoadError(f"server path {text!r} not found below the allowed directories ({shown})")


def load_server_path(path, roots: Optional[Iterable] = None, **kwargs) -> LoadedEmbeddings:
    """:func:`resolve_server_path` then :func:`load_embeddings` (memory-mapped where possible)."""
    return load_embeddings(resolve_server_path(path, roots), **kwargs)


# ----------------------------------------------------------------------------
# sources
# ----------------------------------------------------------------------------


class _Source:
    """A path or in-memory bytes, with a display name and a format."""

    def __init__(self, source, name: Optional[str]):
        self.path: Optional[Path] = None
        self.data: Optional[bytes] = None
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(source)
            self.name = name or self.path.name
            try:
                st = self.path.stat()
            except FileNotFoundError:
                raise EmbeddingLoadError(f"{self.path}: file not found; check the path") from None
            except OSError as exc:
                raise EmbeddingLoadError(f"{self.path}: cannot open ({exc.strerror})") from None
            if stat.S_ISDIR(st.st_mode):
                raise EmbeddingLoadError(f"{self.path}: is a directory; give an embeddings file inside it")
            if not stat.S_ISREG(st.st_mode):
                raise EmbeddingLoadError(f"{self.path}: not a regular file; give an embeddings file")
            self.size = int(st.st_size)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
            self.name = name or "upload"
            self.size = len(self.data)
        elif hasattr(source, "read"):  # file-like, e.g. Streamlit's UploadedFile
            if hasattr(source, "seek"):
                try:
                    source.seek(0)
                except (OSError, ValueError):
                    pass
            data = source.read()
            if isinstance(data, str):
                data = data.encode("utf-8")
            self.data = bytes(data)
            self.name = name or getattr(source, "name", None) or "upload"
            self.size = len(self.data)
        else:
            raise EmbeddingLoadError(
                f"cannot load embeddings from a {type(source).__name__}; pass a file path or the file's bytes"
            )
        self.name = os.path.basename(str(self.name)) or str(self.name)
        ext = os.path.splitext(str(name or (self.path.name if self.path else self.name)))[1].lower()
        self.ext = ext
        self.format = SUPPORTED_EXTENSIONS.get(ext)

    def head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def open(self):
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def digest_source(self):
        return self.data if self.data is not None else self.path


def source_digest(source) -> str:
    """sha256 hex digest of bytes or of a file's content (streamed in 1 MiB blocks)."""
    h = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        h.update(source)
    else:
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x93NUMPY"):
        return "a .npy array"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "a zip archive (.npz or .pt)"
    if head.startswith(b"PAR1"):
        return "a parquet file"
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a raw Python pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file"
    return ""


# ----------------------------------------------------------------------------
# dtype handling
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# the common finishing step
# ----------------------------------------------------------------------------


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
        n = shape[-2]
        idx = None
        if self.max_rows is not None:
            m = int(self.max_rows)
            if m < 2:
                self.fail(f"max_rows={m} is too small; SIGReg needs at least 2 rows")
            if m < n:
                rng = np.random.default_rng(self.seed)
                idx = np.sort(rng.choice(n, size=m, replace=False))
                self.notices.append(f"subsampled {n:,} → {m:,} rows at random (seed {self.seed})")
        rows = n if idx is None else len(idx)
        if len(shape) == 3 and view_index is None:
            out_shape = (shape[0], rows, shape[-1])
        else:
            out_shape = (rows, shape[-1])
        self.check_bytes(4 * math.prod(out_shape), f"the float32 array {out_shape}")
        return shape, view_index, idx, out_shape


def _human(nbytes: int) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _to_f32(block: np.ndarray, bf16: bool = False) -> np.ndarray:
    if bf16:  # bfloat16 stored as uint16: the upper half of a float32, exact
        return (np.asarray(block, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 range become Inf, reported later
        return np.asarray(block, dtype=np.float32)


def _gather(arr: np.ndarray, shape: tuple, view_index, idx, out_shape, bf16: bool = False) -> np.ndarray:
    """Copy the chosen views/rows of an (possibly memory-mapped) array into float32, chunk by chunk."""
    out = np.empty(out_shape, dtype=np.float32)
    d = shape[-1]
    itemsize = max(arr.dtype.itemsize, 4)
    rows_per = max(1, _STREAM_CHUNK // max(1, d * itemsize))
    if len(shape) == 3:
        views = [view_index] if view_index is not None else list(range(shape[0]))
        for j, v in enumerate(views):
            dst = out if view_index is not None else out[j]
            _gather2(arr[v], idx, dst, rows_per, bf16)
    else:
        _gather2(arr, idx, out, rows_per, bf16)
    return out


def _gather2(arr2, idx, dst, rows_per, bf16):
    n = dst.shape[0]
    for a in range(0, n, rows_per):
        b = min(n, a + rows_per)
        block = arr2[a:b] if idx is None else arr2[idx[a:b]]
        dst[a:b] = _to_f32(block, bf16)


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


# ----------------------------------------------------------------------------
# .npy
# ----------------------------------------------------------------------------


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]


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


# ----------------------------------------------------------------------------
# .npz
# ----------------------------------------------------------------------------


def _open_zip(ctx: _Ctx, what: str) -> zipfile.ZipFile:
    try:
        src = ctx.src
        return zipfile.ZipFile(io.BytesIO(src.data) if src.data is not None else src.path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        ctx.fail(f"is not a readable {what} ({_first_line(exc)}); the file is corrupt or truncated, re-save it")
    except Exception as exc:  # any other parse failure of a hostile archive
        ctx.fail(f"is not a readable {what} ({type(exc).__name__}); re-save it")


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
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > _DEFLATE_MAX_RATIO * max(info.compress_size, 1) + 4096:
        ctx.fail(
            f"member {info.filename!r} claims a compression ratio of {info.file_size / max(info.compress_size, 1):,.0f}:1, "
            f"beyond what deflate can produce (zip bomb or forged header); re-save the archive"
        )


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
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, struct.error) as exc:
            ctx.fail(f"member {entry.key!r} cannot be decompressed ({_first_line(exc)}); the archive is corrupt, re-save it")
        except Exception as exc:
            ctx.fail(f"member {entry.key!r} cannot be decompressed ({type(exc).__name__}); the archive is corrupt, re-save it")
    return _finish(ctx, out, "npz", entry.key, shape, dtype.name, idx)


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


# ----------------------------------------------------------------------------
# .pt / .pth
# ----------------------------------------------------------------------------


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


def _pt_leaves(obj, prefix="", depth=0, out=None):
    import torch

    if out is None:
        out = []
    if depth > 20:
        return out
    if isinstance(obj, torch.Tensor):
        out.append((prefix or None, obj))
    elif isinstance(obj, np.ndarray):
        out.append((prefix or None, obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _pt_leaves(v, f"{prefix}.{k}" if prefix else str(k), depth + 1, out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _pt_leaves(v, f"{prefix}.{i}" if prefix else str(i), depth + 1, out)
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
    return None


def _pt_object_and_tensor(ctx: _Ctx):
    import torch

    obj = _pt_load(ctx)
    leaves = _pt_leaves(obj)
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


# ----------------------------------------------------------------------------
# .safetensors
# ----------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}


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


_ST_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
             "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


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


# ----------------------------------------------------------------------------
# .csv / .tsv
# ----------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    t = text.strip().strip('"').strip("'")
    if not t:
        return False
    try:
        float(t)
        return True
    except ValueError:
        return False


def _note_set_aside(ctx: _Ctx, meta_cols: Sequence, other_cols: Sequence) -> None:
    """Tell which table columns were not used as dimensions (CSV/TSV and Parquet alike)."""

    def names(cols: Sequence) -> str:
        return f"{', '.join(map(str, cols[:10]))}{' …' if len(cols) > 10 else ''}"

    if meta_cols:
        ctx.notices.append(f"set aside id/label columns {names(meta_cols)}")
    if other_cols:
        ctx.notices.append(f"set aside non-numeric columns {names(other_cols)}")


def _load_csv(ctx: _Ctx, sep: str, fmt: str) -> LoadedEmbeddings:
    import pandas as pd

    src = ctx.src
    if src.size == 0:
        ctx.fail(f"is empty (0 bytes); write one row per embedding, one column per dimension")
    # parsing expands text to float64 (>= 4x for the shortest numbers) and builds Python objects
    if src.size * 4 > ctx.max_bytes:
        ctx.fail(
            f"is {_human(src.size)} of text, too large to parse within the limit of {_human(ctx.max_bytes)}; "
            f"convert it to .npy/.parquet/.safetensors or raise max_bytes / {MAX_BYTES_ENV}"
        )
    head = src.head(min(src.size, 1 << 16))
    if b"\x00" in head:
        kind = _sniff(head)
        ctx.fail(f"is binary, not {fmt.upper()} text{' (it looks like ' + kind + ')' if kind else ''}; check the file and its extension")
    if len(head) < src.size:  # a partial read may cut a multi-byte character: decode whole lines only
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        first = head.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        ctx.fail(f"is not UTF-8 text; save the {fmt.upper()} as UTF-8")
    first_line = next((ln for ln in first if ln.strip()), "")
    has_header = not all(_is_number(c) for c in first_line.split(sep)) if first_line else True
    try:
        with src.open() as f:
            df = pd.read_csv(
                f, sep=sep, header=0 if has_header else None, encoding="utf-8", skip_blank_lines=True,
                engine="c", low_memory=False,
            )
    except pd.errors.EmptyDataError:
        ctx.fail(f"has no data rows; write one row per embedding, one column per dimension")
    except UnicodeDecodeError:
        ctx.fail(f"is not UTF-8 text; save the {fmt.upper()} as UTF-8")
    except (pd.errors.ParserError, ValueError, OverflowError, MemoryError) as exc:
        ctx.fail(f"cannot be parsed as {fmt.upper()} ({_first_line(exc)}); check the separator and that every row has the same number of fields")
    except Exception as exc:
        ctx.fail(f"cannot be parsed as {fmt.upper()} ({type(exc).__name__}: {_first_line(exc)})")
    return _frame_to_embeddings(ctx, df, fmt, has_header)


def _frame_to_embeddings(ctx: _Ctx, df, fmt: str, has_header: bool) -> LoadedEmbeddings:
    import pandas as pd

    numeric_cols, aside_text, aside_meta = [], [], []
    for col in df.columns:
        s = df[col]
        label = str(col)
        if has_header and (label.strip().lower() in _META_COLUMNS or label.startswith("Unnamed:")):
            aside_meta.append(label)
            continue
        if pd.api.types.is_bool_dtype(s):
            aside_text.append(label)
            continue
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_complex_dtype(s):
            numeric_cols.append(col)
            continue
        conv = pd.to_numeric(s, errors="coerce")
        present = s.notna() & (s.astype(str).str.strip() != "")
        parsed = conv.notna() & present
        if present.sum() and parsed.sum() >= 0.5 * present.sum():
            bad_rows = np.flatnonzero((present & ~parsed).to_numpy())
            r = int(bad_rows[0])
            ctx.fail(
                f"column {label!r} is numeric except for {len(bad_rows)} cell(s), first {str(s.iloc[r])[:40]!r} at data row {r}; "
                f"fix those cells (leave them empty for missing values)"
            )
        aside_text.append(label)
    _note_set_aside(ctx, aside_meta, aside_text)
    if not numeric_cols:
        ctx.fail(f"has no numeric columns (columns: {', '.join(map(str, list(df.columns)[:10]))}); write one numeric column per dimension")
    shape = (len(df), len(numeric_cols))
    shape, _view, idx, out_shape = ctx.plan(shape)
    out = np.empty(out_shape, dtype=np.float32)
    rows = slice(None) if idx is None else idx
    dtypes = set()
    for j, col in enumerate(numeric_cols):
        values = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
        dtypes.add(df[col].dtype)
        out[:, j] = values[rows]
    orig = _dtype_name(dtypes.pop()) if len(dtypes) == 1 else "mixed numeric"
    return _finish(ctx, out, fmt, None, shape, orig, idx)


# ----------------------------------------------------------------------------
# .parquet
# ----------------------------------------------------------------------------


def _parquet_file(ctx: _Ctx):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = ctx.src
    if src.size == 0:
        ctx.fail("is empty (0 bytes); re-save the table")
    try:
        source = pa.BufferReader(src.data) if src.data is not None else str(src.path)
        pf = pq.ParquetFile(source, memory_map=src.path is not None)
        schema = pf.schema_arrow
        meta = pf.metadata
    except Exception as exc:
        kind = _sniff(src.head(16))
        ctx.fail(f"is not a readable parquet file ({_first_line(exc)}){' — it looks like ' + kind if kind else ''}; re-save it")
    return pf, schema, meta


def _parquet_kinds(schema):
    import pyarrow as pa

    vec, num, other = [], [], []
    for f in schema:
        t = f.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            vt = t.value_type
            if pa.types.is_floating(vt) or pa.types.is_integer(vt):
                vec.append(f.name)
            else:
                other.append(f.name)
        elif (pa.types.is_floating(t) or pa.types.is_integer(t)) and not pa.types.is_boolean(t):
            num.append(f.name)
        else:
            other.append(f.name)
    return vec, num, other


def _parquet_entries(ctx: _Ctx) -> list:
    pf, schema, meta = _parquet_file(ctx)
    vec, num, _other = _parquet_kinds(schema)
    n = meta.num_rows
    entries = []
    for name in vec:
        t = schema.field(name).type
        d = t.list_size if hasattr(t, "list_size") else -1
        entries.append(ArrayEntry(name, (n, d) if d >= 0 else (n,), f"list<{t.value_type}>", True))
    num = [c for c in num if not (c.strip().lower() in _META_COLUMNS or c.startswith("Unnamed:") or c == "__index_level_0__")]
    if num:
        entries.append(ArrayEntry(None, (n, len(num)), "numeric columns", True))
    return entries


def _load_parquet(ctx: _Ctx) -> LoadedEmbeddings:
    import pyarrow as pa

    pf, schema, meta = _parquet_file(ctx)
    total = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    ctx.check_bytes(int(total), "the parquet table (uncompressed)")
    vec, num, other = _parquet_kinds(schema)
    names = list(schema.names)
    if ctx.key is not None:
        if ctx.key not in vec:
            if ctx.key in names:
                ctx.fail(f"column {ctx.key!r} is not a list column of numbers; pick a vector column ({', '.join(vec) or 'none'}) or leave key unset")
            ctx.fail(f"has no column {ctx.key!r} (columns: {', '.join(names[:10])}); pick one of those")
        vec_col = ctx.key
    elif len(vec) == 1:
        vec_col = vec[0]
    elif len(vec) > 1:
        ctx.fail(f"has several vector columns ({', '.join(vec[:8])}); choose one with key='{vec[0]}' (CLI: --key {vec[0]})")
    else:
        vec_col = None
    try:
        if vec_col is not None:
            aside = [c for c in names if c != vec_col]
            if aside:
                ctx.notices.append(f"set aside columns {', '.join(aside[:10])}{' …' if len(aside) > 10 else ''} (used vector column {vec_col!r})")
            col = pf.read(columns=[vec_col]).column(0).combine_chunks()
            return _vectors_to_embeddings(ctx, col, vec_col)
        meta_cols = [c for c in num if c.strip().lower() in _META_COLUMNS or c.startswith("Unnamed:") or c == "__index_level_0__"]
        use = [c for c in num if c not in meta_cols]
        _note_set_aside(ctx, meta_cols, other)
        if not use:
            ctx.fail(f"has no numeric columns (columns: {', '.join(names[:10])}); write one numeric column per dimension or one list column of vectors")
        shape = (meta.num_rows, len(use))
        shape, _v, idx, out_shape = ctx.plan(shape)
        table = pf.read(columns=use)
        out = np.empty(out_shape, dtype=np.float32)
        dtypes = set()
        for j, c in enumerate(use):
            arr = table.column(j).combine_chunks()
            dtypes.add(str(arr.type))
            values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
            out[:, j] = values if idx is None else values[idx]
        orig = _arrow_name(dtypes)
        return _finish(ctx, out, "parquet", None, shape, orig, idx)
    except EmbeddingLoadError:
        raise
    except Exception as exc:
        ctx.fail(f"cannot be read as parquet ({_first_line(exc)}); the file is corrupt, re-save it")


def _arrow_name(types: set) -> str:
    names = {"double": "float64", "float": "float32", "halffloat": "float16"}
    conv = {names.get(t, t) for t in types}
    return conv.pop() if len(conv) == 1 else "mixed numeric"


def _vectors_to_embeddings(ctx: _Ctx, col, name: str) -> LoadedEmbeddings:
    import pyarrow as pa

    n = len(col)
    if col.null_count:
        nulls = np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))
        ctx.fail(f"vector column {name!r} has {len(nulls)} empty (null) rows, first at row {int(nulls[0])}; fill or drop them")
    if pa.types.is_fixed_size_list(col.type):
        d = col.type.list_size
        values = col.flatten()
    else:
        offsets = col.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        lengths = np.diff(offsets)
        if n == 0:
            d = 0
        else:
            d = int(lengths[0])
            bad = np.flatnonzero(lengths != d)
            if bad.size:
                r = int(bad[0])
                ctx.fail(f"vector column {name!r} is ragged: row 0 has {d} values but row {r} has {int(lengths[r])}; all embeddings need the same length")
        values = col.flatten()
    shape = (n, d)
    shape, _v, idx, out_shape = ctx.plan(shape)
    orig = _arrow_name({str(col.type.value_type)})
    flat = values.cast(pa.float64()).to_numpy(zero_copy_only=False).reshape(n, d)
    out = np.empty(out_shape, dtype=np.float32)
    out[...] = flat if idx is None else flat[idx]
    return _finish(ctx, out, "parquet", name, shape, orig, idx)


# ----------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------


def _make_ctx(source, name, key, max_rows, view, drop_nonfinite, max_bytes, seed) -> _Ctx:
    src = _Source(source, name)
    if src.format is None:
        kind = _sniff(src.head(16)) if src.size else ""
        shown = src.ext or "(none)"
        ctx_name = src.name
        raise EmbeddingLoadError(
            f"{ctx_name}: unknown extension {shown}{' (it looks like ' + kind + ')' if kind else ''}; "
            f"supported: {', '.join(sorted(set(SUPPORTED_EXTENSIONS)))}"
        )
    limit = default_max_bytes() if max_bytes is None else parse_byte_size(max_bytes)
    if key is not None:
        key = str(key)
    if max_rows is not None:
        try:
            max_rows = int(max_rows)
        except (TypeError, ValueError):
            raise EmbeddingLoadError(f"max_rows must be a whole number, got {max_rows!r}") from None
    if view is not None:
        try:
            view = int(view)
        except (TypeError, ValueError):
            raise EmbeddingLoadError(f"view must be a whole number, got {view!r}") from None
    return _Ctx(src, key, max_rows, view, bool(drop_nonfinite), limit, int(seed))


def check_source(source, name: Optional[str] = None) -> str:
    """Cheap checks before any reading: the file exists, is a regular non-empty file, with a known
    extension.  Returns the format name; raises :class:`EmbeddingLoadError` otherwise."""
    src = _Source(source, name)
    if src.format is None:
        _make_ctx(source, name, None, None, None, False, DEFAULT_MAX_BYTES, 0)  # raises the unknown-extension error
    if src.size == 0:
        raise EmbeddingLoadError(f"{src.name}: is empty (0 bytes); export the embeddings again")
    return src.format


def load_embeddings(
    source,
    *,
    name: Optional[str] = None,
    key: Optional[str] = None,
    max_rows: Optional[int] = None,
    view: Optional[int] = None,
    drop_nonfinite: bool = False,
    max_bytes: Optional[Union[int, str]] = None,
    seed: int = 0,
) -> LoadedEmbeddings:
    """Read embeddings from a file path, bytes or a file-like object.

    Parameters
    ----------
    source: path (``str``/``Path``), ``bytes``, or an object with ``.read()`` (an upload).
    name: file name giving the format (required for bytes; defaults to the path's name).
    key: which array of a container (.npz member, .safetensors tensor, dotted .pt path,
        parquet vector column); when omitted the single 2-D/3-D array is taken, and
        several candidates are refused with the list of keys.
    max_rows: keep at most this many rows, chosen uniformly at random without
        replacement (``seed``), in their original order; memory-mapped formats read
        only those rows.
    view: for a (V, N, D) array, keep only view ``view`` (returns (N, D)); ``None``
        keeps all views.
    drop_nonfinite: drop rows holding NaN/Inf (with a notice) instead of refusing.
    max_bytes: byte limit for what is allocated or decompressed (default
        ``$LATENT_HEALTH_MAX_BYTES`` or 8 GiB); accepts ints or strings like ``"2GiB"``.

    Raises
    ------
    EmbeddingLoadError: with a one-line message for every refusal.
    """
    ctx = _make_ctx(source, name, key, max_rows, view, drop_nonfinite, max_bytes, seed)
    src = ctx.src
    if src.size == 0:
        raise EmbeddingLoadError(f"{src.name}: is empty (0 bytes); export the embeddings again")
    fmt = src.format
    try:
        if fmt == "npy":
            return _load_npy(ctx)
        if fmt == "npz":
            return _load_npz(ctx)
        if fmt == "pt":
            return _load_pt(ctx)
        if fmt == "safetensors":
            return _load_safetensors(ctx)
        if fmt == "csv":
            return _load_csv(ctx, ",", "csv")
        if fmt == "tsv":
            return _load_csv(ctx, "\t", "tsv")
        if fmt == "parquet":
            return _load_parquet(ctx)
    except EmbeddingLoadError:
        raise
    except MemoryError:
        raise EmbeddingLoadError(
            f"{src.name}: ran out of memory while reading; pass max_rows (CLI --max-rows) or lower the limit"
        ) from None
    except RecursionError:
        raise EmbeddingLoadError(f"{src.name}: nested too deeply to read safely; the file is corrupt or crafted") from None
    except Exception as exc:  # a parser failed in a way not anticipated above: still one line
        raise EmbeddingLoadError(
            f"{src.name}: cannot be read as {fmt} ({type(exc).__name__}: {_first_line(exc)}); the file is corrupt, re-save it"
        ) from None
    raise EmbeddingLoadError(f"{src.name}: unsupported format {fmt}")  # pragma: no cover


def list_keys(source, name: Optional[str] = None, *, max_bytes: Optional[Union[int, str]] = None) -> list:
    """The arrays a source holds, as :class:`ArrayEntry` (key, shape, dtype, usable).

    Containers (.npz, .pt, .safetensors, parquet vector columns) list their arrays;
    single-array formats return one entry with ``key=None``.  Reads headers only
    (except .pt, which must be loaded with ``weights_only=True`` to see its structure).
    """
    ctx = _make_ctx(source, name, None, None, None, False, max_bytes, 0)
    src = ctx.src
    if src.size == 0:
        raise EmbeddingLoadError(f"{src.name}: is empty (0 bytes); export the embeddings again")
    fmt = src.format
    try:
        if fmt == "npy":
            with src.open() as f:
                shape, _fortran, dtype, _off = _read_npy_header(f, ctx, "")
            return [ArrayEntry(None, shape, dtype.name, len(shape) in (2, 3))]
        if fmt == "npz":
            with _open_zip(ctx, ".npz archive") as zf:
                return _npz_entries(ctx, zf)
        if fmt == "safetensors":
            return _st_entries(ctx)
        if fmt == "pt":
            obj = _pt_load(ctx)
            out = []
            for k, t in _pt_leaves(obj):
                shape = tuple(t.shape)
                out.append(ArrayEntry(k, shape, str(t.dtype).replace("torch.", ""), _tensor_problem(t) is None and len(shape) in (2, 3)))
            return out
        if fmt == "parquet":
            return _parquet_entries(ctx)
        # csv/tsv: one table
        emb = load_embeddings(source, name=name, max_bytes=max_bytes, drop_nonfinite=True)
        return [ArrayEntry(None, emb.original_shape, emb.original_dtype, True)]
    except EmbeddingLoadError:
        raise
    except Exception as exc:
        raise EmbeddingLoadError(f"{src.name}: cannot list arrays ({type(exc).__name__}: {_first_line(exc)}); the file is corrupt") from None
