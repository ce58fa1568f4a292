"""Loading class labels for the rows of an embeddings file, as safely as the embeddings themselves.

Labels turn on the probes of :mod:`sigreg_core.assessment.probes` (k-NN and
linear-probe accuracy).  They come as one value per row, in the order of the rows:

``.npy``           a 1-D array (or (N, 1)); header parsed and checked against the file size first.
``.npz``           member ``key`` (default: the only member), its declared size checked
                   before decompressing (zip bombs refused).
``.pt`` / ``.pth`` dotted ``key`` of a tensor, ``torch.load(weights_only=True)`` only.
``.safetensors``   tensor ``key`` (header validated, memory-mapped).
``.csv`` / ``.tsv`` column ``key`` (default: the only column, else one named label, labels,
                   y, target, class or category).
``.parquet``       column ``key`` (same default).

"A key in the same container" is the embeddings file itself with a key
(``load_labels(path_of_embeddings, key="y")``).  Text classes (CSV / parquet strings)
are encoded in sorted order; numbers must be whole.  Nothing is ever unpickled; every
refusal is one line (:class:`~sigreg_core.inputs.errors.EmbeddingLoadError`, a
``ValueError``).  :func:`align_labels` follows the embeddings loader's row subsampling
(``LoadedEmbeddings.row_indices``) so labels stay matched to their rows.
"""
from __future__ import annotations

import io
import math
from typing import Optional, Union

import numpy as np

from sigreg_core.inputs.context import _Ctx
from sigreg_core.inputs.errors import EmbeddingLoadError, LoadedEmbeddings, _first_line
from sigreg_core.inputs.limits import default_max_bytes, parse_byte_size
from sigreg_core.inputs.sniff import _Source

__all__ = ["load_labels", "align_labels", "align_to_rows", "label_keys", "LABEL_COLUMNS", "LABEL_TYPES"]

#: the file types labels are read from (the pages' upload filters; one list with the refusal below)
LABEL_TYPES = ("npy", "npz", "pt", "safetensors", "csv", "tsv", "parquet")

#: column names taken as the labels when a table has several columns and no key is given
LABEL_COLUMNS = ("label", "labels", "y", "target", "class", "category")


def _ctx(source, name, key, max_bytes) -> _Ctx:
    src = _Source(source, name)
    if src.format is None:
        raise EmbeddingLoadError(f"{src.name}: unknown extension {src.ext or '(none)'} for labels; "
                                 "use " + ", ".join("." + t for t in LABEL_TYPES[:-1]) + f" or .{LABEL_TYPES[-1]}")
    if src.size == 0:
        raise EmbeddingLoadError(f"{src.name}: is empty (0 bytes)")
    limit = default_max_bytes() if max_bytes is None else parse_byte_size(max_bytes)
    return _Ctx(src, None if key is None else str(key), None, None, False, limit, 0)


def _one_d(ctx: _Ctx, arr, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        ctx.fail(f"{what} has shape {tuple(a.shape)}; labels must be one value per row (1-D)")
    if a.dtype.hasobject or a.dtype.fields is not None:
        ctx.fail(f"{what} has dtype {a.dtype}; labels must be numbers or text")
    if a.dtype.kind in "US":
        return _encode_text(a)
    if a.dtype.kind not in "fiub":
        ctx.fail(f"{what} has dtype {a.dtype}; labels must be integer class numbers")
    return a


def _encode_text(a) -> np.ndarray:
    _, codes = np.unique(np.asarray(a).astype(str), return_inverse=True)
    return codes.astype(np.int64).reshape(-1)


def _npy(ctx: _Ctx) -> np.ndarray:
    from numpy.lib import format as npformat

    from sigreg_core.inputs.formats.npy import _read_npy_header

    with ctx.src.open() as f:
        shape, fortran, dtype, offset = _read_npy_header(f, ctx, "")
    need = math.prod(shape) * dtype.itemsize
    if need != ctx.src.size - offset:
        ctx.fail(f"header promises shape {shape} {dtype.name} but the file holds {ctx.src.size - offset} bytes of data; "
                 f"re-save it with numpy.save")
    ctx.check_bytes(need, "the labels")
    with ctx.src.open() as f:
        return _one_d(ctx, npformat.read_array(f, allow_pickle=False), "the array")


def _npz(ctx: _Ctx) -> np.ndarray:
    from numpy.lib import format as npformat

    from sigreg_core.inputs.formats.zipfiles import _check_zip_member, _open_zip

    with _open_zip(ctx, ".npz archive") as zf:
        members = [i for i in zf.infolist() if i.filename.endswith(".npy")]
        names = [i.filename[:-4] for i in members]
        if ctx.key is None:
            if len(members) == 1:
                pick = members[0]
            else:
                ctx.fail(f"holds {len(members)} arrays ({', '.join(names[:8])}); name the labels' key")
        else:
            found = [i for i in members if i.filename[:-4] == ctx.key]
            if not found:
                ctx.fail(f"has no array {ctx.key!r}; it holds {', '.join(names[:8]) or 'none'}")
            pick = found[0]
        _check_zip_member(ctx, pick)
        with zf.open(pick) as f:
            return _one_d(ctx, npformat.read_array(f, allow_pickle=False), f"array {pick.filename[:-4]!r}")


def _pt(ctx: _Ctx) -> np.ndarray:
    import torch

    from sigreg_core.inputs.formats.pt import _pt_leaves, _pt_load

    obj = _pt_load(ctx)
    if isinstance(obj, torch.Tensor):
        leaves = [(None, obj)]
    else:
        leaves = _pt_leaves(obj, ctx)
    if ctx.key is not None:
        leaves = [(k, t) for k, t in leaves if k == ctx.key]
        if not leaves:
            ctx.fail(f"has no tensor {ctx.key!r}")
    elif len(leaves) != 1:
        ctx.fail(f"holds {len(leaves)} tensors ({', '.join(str(k) for k, _ in leaves[:8])}); name the labels' key")
    key, t = leaves[0]
    if t.is_complex() or t.dtype == torch.bfloat16:
        t = t.float()
    return _one_d(ctx, t.detach().cpu().numpy(), f"tensor {key!r}" if key else "the tensor")


def _safetensors(ctx: _Ctx) -> np.ndarray:
    from safetensors.numpy import load as st_load

    from sigreg_core.inputs.formats.safetensors import _st_entries

    entries = _st_entries(ctx)  # validates the header against the file size
    keys = [e.key for e in entries]
    key = ctx.key
    if key is None:
        if len(keys) != 1:
            ctx.fail(f"holds {len(keys)} tensors ({', '.join(keys[:8])}); name the labels' key")
        key = keys[0]
    elif key not in keys:
        ctx.fail(f"has no tensor {key!r}; it holds {', '.join(keys[:8])}")
    ctx.check_bytes(ctx.src.size, "the safetensors file")
    data = ctx.src.data if ctx.src.data is not None else ctx.src.path.read_bytes()
    return _one_d(ctx, st_load(data)[key], f"tensor {key!r}")


def _pick_column(ctx: _Ctx, columns: list) -> str:
    if ctx.key is not None:
        if ctx.key not in columns:
            ctx.fail(f"has no column {ctx.key!r}; it has {', '.join(map(str, columns[:12]))}")
        return ctx.key
    if len(columns) == 1:
        return columns[0]
    named = [c for c in columns if str(c).strip().lower() in LABEL_COLUMNS]
    if len(named) == 1:
        return named[0]
    ctx.fail(f"has {len(columns)} columns ({', '.join(map(str, columns[:12]))}); name the labels' column")


def _table_values(ctx: _Ctx, values, col) -> np.ndarray:
    import pandas as pd

    s = pd.Series(values)
    if s.dtype.kind in "fiub":
        return _one_d(ctx, s.to_numpy(), f"column {col!r}")
    if s.isna().any():
        ctx.fail(f"column {col!r} has {int(s.isna().sum())} empty value(s) (first at row {int(s.isna().to_numpy().argmax())})")
    return _encode_text(s.astype(str).to_numpy())


def _csv(ctx: _Ctx, sep: str) -> np.ndarray:
    import pandas as pd

    ctx.check_bytes(ctx.src.size * 8, "the parsed labels table")
    text = io.BytesIO(ctx.src.data) if ctx.src.data is not None else ctx.src.path
    head = pd.read_csv(text, sep=sep, nrows=1, header=0)
    cols = [str(c) for c in head.columns]
    numeric_header = all(_is_number(c) for c in cols)
    text = io.BytesIO(ctx.src.data) if ctx.src.data is not None else ctx.src.path
    if numeric_header:  # no header row: the first line is data
        df = pd.read_csv(text, sep=sep, header=None)
        df.columns = [str(i) for i in range(df.shape[1])]
    else:
        df = pd.read_csv(text, sep=sep, header=0)
        df.columns = [str(c) for c in df.columns]
    col = _pick_column(ctx, list(df.columns))
    return _table_values(ctx, df[col].to_numpy(), col)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _parquet(ctx: _Ctx) -> np.ndarray:
    import pyarrow.parquet as pq

    f = io.BytesIO(ctx.src.data) if ctx.src.data is not None else str(ctx.src.path)
    pf = pq.ParquetFile(f)
    cols = list(pf.schema_arrow.names)
    col = _pick_column(ctx, cols)
    rows = int(pf.metadata.num_rows)
    ctx.check_bytes(rows * 8, "the labels column")
    arr = pf.read(columns=[col]).column(col).to_pandas().to_numpy()
    return _table_values(ctx, arr, col)


def load_labels(source, *, name: Optional[str] = None, key: Optional[str] = None,
                max_bytes: Optional[Union[int, str]] = None) -> np.ndarray:
    """Labels (1-D numpy array: integers, whole floats or text codes) from a path, bytes or an upload.

    Validate them against the rows with :func:`sigreg_core.assessment.probes.check_labels`
    (or :func:`align_labels`, which also follows the loader's subsampling).
    """
    ctx = _ctx(source, name, key, max_bytes)
    fmt = ctx.src.format
    try:
        if fmt == "npy":
            return _npy(ctx)
        if fmt == "npz":
            return _npz(ctx)
        if fmt == "pt":
            return _pt(ctx)
        if fmt == "safetensors":
            return _safetensors(ctx)
        if fmt in ("csv", "tsv"):
            return _csv(ctx, "," if fmt == "csv" else "\t")
        if fmt == "parquet":
            return _parquet(ctx)
    except EmbeddingLoadError:
        raise
    except MemoryError:
        raise EmbeddingLoadError(f"{ctx.src.name}: ran out of memory while reading the labels") from None
    except Exception as exc:
        raise EmbeddingLoadError(f"{ctx.src.name}: cannot read labels as {fmt} ({type(exc).__name__}: "
                                 f"{_first_line(exc)})") from None
    raise EmbeddingLoadError(f"{ctx.src.name}: unsupported format {fmt} for labels")


def align_to_rows(labels, original_rows: int, row_indices=None) -> np.ndarray:
    """The class codes of the rows kept from a file of ``original_rows`` rows (``row_indices``: the rows
    the loader kept, None for all); a one-line ``ValueError`` (:class:`InputError`) otherwise."""
    from sigreg_core.assessment.probes import check_labels

    y = np.asarray(labels)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim == 1 and y.shape[0] == int(original_rows) and row_indices is not None:
        y = y[np.asarray(row_indices, dtype=np.int64)]
        return check_labels(y, len(row_indices))
    return check_labels(y, int(original_rows) if row_indices is None else len(row_indices))


def align_labels(labels, loaded: LoadedEmbeddings) -> np.ndarray:
    """The labels of the rows the embeddings loader kept, as class codes (one-line ``ValueError`` otherwise).

    ``labels`` has one value per row of the original file (``loaded.original_shape[-2]``);
    ``loaded.row_indices`` (subsampling, dropped rows) picks the kept ones.
    """
    n_orig = int(loaded.original_shape[-2]) if loaded.original_shape else int(loaded.array.shape[-2])
    return align_to_rows(labels, n_orig, loaded.row_indices)


def label_keys(source, rows: int, *, name: Optional[str] = None, exclude: Optional[str] = None,
               max_bytes=None, named_columns_only: bool = False) -> list:
    """Keys of ``source`` that could hold the labels of its ``rows`` rows: 1-D arrays (or (rows, 1)) of
    length ``rows`` in .npz / .pt / .safetensors, scalar columns of a .parquet file of ``rows`` rows, and
    the columns of a .csv / .tsv header.  Headers only where the format allows; [] when none or unreadable.

    ``named_columns_only``: of a table, only the columns named like labels (:data:`LABEL_COLUMNS`) — for
    the embeddings' own table, whose other numeric columns are the embedding's dimensions."""
    from sigreg_core.inputs.loading import list_keys

    rows = int(rows)
    try:
        ctx = _ctx(source, name, None, max_bytes)
        fmt = ctx.src.format
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            f = io.BytesIO(ctx.src.data) if ctx.src.data is not None else str(ctx.src.path)
            pf = pq.ParquetFile(f)
            if int(pf.metadata.num_rows) != rows:
                return []
            cols = [fl.name for fl in pf.schema_arrow
                    if (pa.types.is_integer(fl.type) or pa.types.is_string(fl.type) or pa.types.is_large_string(fl.type)
                        or pa.types.is_floating(fl.type) or pa.types.is_boolean(fl.type)) and fl.name != exclude]
            return [c for c in cols if not named_columns_only or c.strip().lower() in LABEL_COLUMNS]
        if fmt in ("csv", "tsv"):
            import pandas as pd

            text = io.BytesIO(ctx.src.data) if ctx.src.data is not None else ctx.src.path
            cols = [str(c) for c in pd.read_csv(text, sep="," if fmt == "csv" else "\t", nrows=0).columns]
            if all(_is_number(c) for c in cols):
                return []
            return [c for c in cols if c != exclude and (not named_columns_only or c.strip().lower() in LABEL_COLUMNS)]
        if fmt not in ("npz", "pt", "safetensors"):
            return []
        entries = list_keys(source, name=name, max_bytes=max_bytes)
    except (EmbeddingLoadError, OSError, ValueError):
        return []
    out = []
    for e in entries:
        shape = tuple(int(x) for x in e.shape)
        if e.key is not None and e.key != exclude and shape in ((rows,), (rows, 1), (1, rows)):
            out.append(str(e.key))
    return out


def labels_for(loaded: LoadedEmbeddings, embeddings_source, labels_source=None, key: Optional[str] = None,
               max_bytes=None) -> np.ndarray:
    """The class codes of the rows of ``loaded``: from ``labels_source``, or (None) from ``key`` in the
    embeddings' own container ``embeddings_source``; aligned with the rows the loader kept."""
    source = embeddings_source if labels_source is None else labels_source
    if labels_source is None and key is None:
        raise EmbeddingLoadError("labels: give a labels file, or the key of the labels in the embeddings' container")
    return align_labels(load_labels(source, key=key, max_bytes=max_bytes), loaded)
