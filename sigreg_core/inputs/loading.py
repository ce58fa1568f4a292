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

from typing import Iterable, Optional, Union

from sigreg_core.inputs.context import _Ctx
from sigreg_core.inputs.errors import ArrayEntry, EmbeddingLoadError, LoadedEmbeddings, _first_line
from sigreg_core.inputs.formats.csv import _load_csv
from sigreg_core.inputs.formats.npy import _load_npy, _read_npy_header
from sigreg_core.inputs.formats.npz import _load_npz, _npz_entries
from sigreg_core.inputs.formats.parquet import _load_parquet, _parquet_entries
from sigreg_core.inputs.formats.pt import _load_pt, _pt_leaves, _pt_load, _tensor_problem
from sigreg_core.inputs.formats.safetensors import _load_safetensors, _st_entries
from sigreg_core.inputs.formats.zipfiles import _open_zip
from sigreg_core.inputs.limits import DEFAULT_MAX_BYTES, MAX_BYTES_ENV, default_max_bytes, parse_byte_size
from sigreg_core.inputs.serverpaths import ALLOWED_ROOTS_ENV, allowed_roots, resolve_server_path
from sigreg_core.inputs.sniff import SUPPORTED_EXTENSIONS, _sniff, _Source, source_digest

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



def load_server_path(path, roots: Optional[Iterable] = None, **kwargs) -> LoadedEmbeddings:
    """:func:`resolve_server_path` then :func:`load_embeddings` (memory-mapped where possible)."""
    return load_embeddings(resolve_server_path(path, roots), **kwargs)


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
    if max_rows is not None and not callable(max_rows):
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


def _nonempty_ctx(*args):
    """The loading context of a source (see ``_make_ctx``), refusing an empty file in one line."""
    ctx = _make_ctx(*args)
    if ctx.src.size == 0:
        raise EmbeddingLoadError(f"{ctx.src.name}: is empty (0 bytes); export the embeddings again")
    return ctx


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
        only those rows.  May be a callable ``(dim, views) -> (rows, why)`` deciding from
        the header's shape before anything is read (``sigreg score``'s default,
        :func:`sigreg_core.assessment.budget.score_rows`); ``why`` ends the notice.
    view: for a (V, N, D) array, keep only view ``view`` (returns (N, D)); ``None``
        keeps all views.
    drop_nonfinite: drop rows holding NaN/Inf (with a notice) instead of refusing.
    max_bytes: byte limit for what is allocated or decompressed (default
        ``$LATENT_HEALTH_MAX_BYTES`` or 8 GiB); accepts ints or strings like ``"2GiB"``.

    Raises
    ------
    EmbeddingLoadError: with a one-line message for every refusal.
    """
    ctx = _nonempty_ctx(source, name, key, max_rows, view, drop_nonfinite, max_bytes, seed)
    src, fmt = ctx.src, ctx.src.format
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
    ctx = _nonempty_ctx(source, name, None, None, None, False, max_bytes, 0)
    src, fmt = ctx.src, ctx.src.format
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
            for k, t in _pt_leaves(obj, ctx):
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

