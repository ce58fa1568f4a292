"""``.parquet``: numeric columns, or one list / fixed-size-list column of vectors.

A row subset (``max_rows`` below the row count, or a table over the row limit of
:func:`sigreg_core.inputs.limits.row_limit`) is read in bounded slices (``iter_batches`` of at
most ``_SLICE_BYTES`` decoded, even inside one huge row group): decode a slice, keep its rows that
are in the planned ``idx``, drop it.  The memory is then one slice plus the result, whatever the
row groups (a dictionary + zstd row group of 40 M x 2 zeros is a few hundred KB on disk); the
values, notices and errors are those of the whole-column decode.
"""
from __future__ import annotations


import math

import numpy as np

from sigreg_core.inputs.context import _META_COLUMNS, _Ctx, _finish, _note_set_aside
from sigreg_core.inputs.errors import ArrayEntry, EmbeddingLoadError, LoadedEmbeddings, _first_line, _human
from sigreg_core.inputs.limits import MAX_BYTES_ENV, MAX_COLUMNS_ENV, max_columns, row_limit
from sigreg_core.inputs.sniff import _sniff


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
    sizes = [int(meta.row_group(i).total_byte_size) for i in range(meta.num_row_groups)]
    limit = max_columns()
    if meta.num_columns > limit:
        ctx.fail(f"has {meta.num_columns:,} columns, over the column limit of {limit:,}; store the vectors in one "
                 f"list column or as .npy/.safetensors, or raise {MAX_COLUMNS_ENV}")
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
            _check_vector_column(ctx, pf, schema, meta, vec_col)  # decoded size from metadata, before decoding
            if _subset(ctx, meta, _vector_width(schema.field(vec_col).type, meta, vec_col)):
                return _vectors_by_row_group(ctx, pf, meta, vec_col, schema.field(vec_col).type)
            ctx.check_bytes(sum(sizes), "the parquet table (uncompressed)")
            col = pf.read(columns=[vec_col]).column(0).combine_chunks()
            return _vectors_to_embeddings(ctx, col, vec_col)
        meta_cols = [c for c in num if c.strip().lower() in _META_COLUMNS or c.startswith("Unnamed:") or c == "__index_level_0__"]
        use = [c for c in num if c not in meta_cols]
        _note_set_aside(ctx, meta_cols, other)
        if not use:
            ctx.fail(f"has no numeric columns (columns: {', '.join(names[:10])}); write one numeric column per dimension or one list column of vectors")
        shape = (meta.num_rows, len(use))
        shape, _v, idx, out_shape = ctx.plan(shape)
        row_bytes = sum(max(_width(schema.field(c).type), 1) for c in use)
        if idx is not None:  # a subset: decoded in bounded slices, whatever the row groups
            rows = _slice_rows(ctx, row_bytes + 16 * len(use))
            ctx.check_bytes(rows * (row_bytes + 16 * len(use)) + 4 * math.prod(out_shape),
                            f"decoding {len(use):,} numeric columns in slices of {rows:,} rows plus the result")
            return _numeric_by_row_group(ctx, pf, meta, use, shape, idx, out_shape, rows)
        else:
            ctx.check_bytes(sum(sizes), "the parquet table (uncompressed)")
            ctx.check_bytes(meta.num_rows * row_bytes + 4 * math.prod(out_shape) + 8 * meta.num_rows,
                            f"decoding {len(use):,} numeric columns of {meta.num_rows:,} rows")
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


def _width(arrow_type) -> int:
    """Bytes per value of a fixed-width arrow type (8 when unknown)."""
    try:
        return max(int(arrow_type.bit_width) // 8, 1)
    except (ValueError, AttributeError):
        return 8


def _leaf_values(meta, column: str) -> list:
    """Values stored in the leaf column of ``column``, per row group, from the footer alone."""
    per_group = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        total = 0
        for j in range(rg.num_columns):
            cc = rg.column(j)
            if cc.path_in_schema == column or cc.path_in_schema.startswith(column + "."):
                total += int(cc.num_values)
        per_group.append(total)
    return per_group


#: decoded bytes of one slice of a subset read
_SLICE_BYTES = 64 * 1024**2


def _slice_rows(ctx: _Ctx, row_bytes: int) -> int:
    """Rows per decoded slice: ``_SLICE_BYTES`` (at most an eighth of the byte limit) of decoded values."""
    return max(256, min(_SLICE_BYTES, ctx.max_bytes // 8) // max(int(row_bytes), 1))


def _vector_width(t, meta, name: str) -> int:
    """Values per row of a vector column: the list size, else the footer's values per row."""
    if hasattr(t, "list_size"):
        return int(t.list_size)
    return max(1, sum(_leaf_values(meta, name)) // max(int(meta.num_rows), 1))


def _subset(ctx: _Ctx, meta, width: int = 1) -> bool:
    """True when fewer rows than the file has will be kept (``ctx.plan`` will draw ``idx``): the caller
    asked for fewer, or the table is over the row limit at ``width`` values per row."""
    n = int(meta.num_rows)
    asked = ctx.rows_asked(width)[0]
    if asked is not None and 2 <= asked < n:
        return True
    return row_limit(width)[0] < n


def _check_vector_column(ctx: _Ctx, pf, schema, meta, name: str, d: int | None = None) -> None:
    """Refuse a list / fixed-size-list column whose decoded size is over the limit, before decoding it.

    Compressed pages of zeros (zstd, RLE, dictionary) are tiny, so neither the file size nor the row
    groups' encoded ``total_byte_size`` bounds the decoded column: a 3.5 KB file can hold 1.75 GB.
    A fixed-size list holds rows x list_size values; a variable list holds the leaf column's
    ``num_values`` from the footer.  Decoding keeps the arrow values, a float64 copy and the float32
    result: (itemsize + 8 + 4) bytes per value.  For a max_rows subset (read one row group at a
    time) the largest row group counts instead: its arrow values, float64 copy and gathered rows,
    (itemsize + 8 + 8) bytes per value and 24 bytes of offsets per row, plus the float32 result of
    max_rows x D (D of a variable list: ``d`` once known, else the footer's values per row).
    """
    import pyarrow as pa

    t = schema.field(name).type
    n = int(meta.num_rows)
    fixed = pa.types.is_fixed_size_list(t)
    if fixed:
        values = [int(meta.row_group(i).num_rows) * int(t.list_size) for i in range(meta.num_row_groups)]
    else:
        values = _leaf_values(meta, name)
    width = int(t.list_size) if fixed else (d if d is not None else max(1, sum(values) // max(n, 1)))
    if _subset(ctx, meta, width):  # decoded in slices: one slice and the result count
        per_row = width * (_width(t.value_type) + 16) + (0 if fixed else 24)
        rows = _slice_rows(ctx, per_row)
        asked = ctx.rows_asked(width)[0]
        kept = min(n, row_limit(width)[0], asked if asked is not None else n)
        group, result = rows * per_row, 4 * kept * width
        if group + result > ctx.max_bytes:
            ctx.fail(f"vector column {name!r}: a slice of {rows:,} rows decodes to {_human(group)}, plus "
                     f"{_human(result)} for the result, over the limit of {_human(ctx.max_bytes)} (checked from the "
                     f"footer before decoding); pass max_rows (CLI --max-rows) or raise max_bytes / {MAX_BYTES_ENV}")
        return
    per_value = _width(t.value_type) + 8 + 4
    need = sum(values) * per_value
    if need > ctx.max_bytes:  # the whole column is decoded
        ctx.fail(f"vector column {name!r} decodes to {sum(values):,} values needing {_human(need)}, over the limit of "
                 f"{_human(ctx.max_bytes)} (checked from the footer before decoding); raise max_bytes / {MAX_BYTES_ENV} "
                 f"or save fewer rows")


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



def _take_rows(block, columns, start: int, idx, out) -> None:
    """Write the rows of ``idx`` that fall in this block (rows ``start`` onwards) into ``out``.

    ``columns`` is [(j, arrow array)]: j=None for a vector column (the whole row of ``out``),
    else the output column.  Converted exactly as the whole-column path does (arrow cast to
    float64, then numpy to float32), the whole block even where no row is kept, so that a value
    arrow refuses to cast is refused whichever rows were drawn.
    """
    import pyarrow as pa

    lo, hi = np.searchsorted(idx, [start, start + block])
    local = idx[lo:hi] - start
    for j, values in columns:
        flat = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if j is None:
            out[lo:hi] = flat.reshape(block, -1)[local]
        else:
            out[lo:hi, j] = flat[local]


def _vectors_by_row_group(ctx: _Ctx, pf, meta, name: str, t) -> LoadedEmbeddings:
    """A max_rows subset of a vector column, decoded one row group at a time.

    Same checks and messages as :func:`_vectors_to_embeddings`, in the same order: null rows
    (counted over the whole column) first, then ragged rows, then the shape plan; so once one of
    them is found the later row groups are still decoded, one at a time, to find an earlier-ranked
    error (and the total null count).
    """
    import pyarrow as pa

    n = int(meta.num_rows)
    d = int(t.list_size) if pa.types.is_fixed_size_list(t) else None
    nulls, first_null, ragged, deferred, plan, out = 0, None, None, None, None, None
    start = 0
    width = _vector_width(t, meta, name)
    rows = _slice_rows(ctx, width * (_width(t.value_type) + 16) + 24)
    for batch in pf.iter_batches(batch_size=rows, columns=[name], use_threads=False):
        col = batch.column(0)
        block = len(col)
        if col.null_count:
            nulls += int(col.null_count)
            if first_null is None:
                first_null = start + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        if first_null is None and ragged is None and block:
            if not pa.types.is_fixed_size_list(t):
                lengths = np.diff(col.offsets.to_numpy(zero_copy_only=False).astype(np.int64))
                d = int(lengths[0]) if d is None else d
                bad = np.flatnonzero(lengths != d)
                if bad.size:
                    ragged = (d, start + int(bad[0]), int(lengths[bad[0]]))
            if ragged is None and deferred is None:
                if plan is None:
                    try:
                        plan = ctx.plan((n, d))
                        _check_vector_column(ctx, pf, pf.schema_arrow, meta, name, d)  # D now known
                        out = np.empty(plan[3], dtype=np.float32)
                    except EmbeddingLoadError as exc:
                        deferred = exc
                if deferred is None:
                    _take_rows(block, [(None, col.flatten())], start, plan[2], out)
        start += block
        del col, batch
    if first_null is not None:
        ctx.fail(f"vector column {name!r} has {nulls} empty (null) rows, first at row {first_null}; fill or drop them")
    if ragged is not None:
        ctx.fail(f"vector column {name!r} is ragged: row 0 has {ragged[0]} values but row {ragged[1]} has {ragged[2]}; "
                 f"all embeddings need the same length")
    if deferred is not None:
        raise deferred
    shape, _v, idx, _out_shape = plan
    return _finish(ctx, out, "parquet", name, shape, _arrow_name({str(t.value_type)}), idx)


def _numeric_by_row_group(ctx: _Ctx, pf, meta, use: list, shape, idx, out_shape, rows: int) -> LoadedEmbeddings:
    """A row subset of one-column-per-dimension numbers, decoded in slices of ``rows`` rows."""
    out = np.empty(out_shape, dtype=np.float32)
    dtypes = set()
    start = 0
    for table in pf.iter_batches(batch_size=rows, columns=use, use_threads=False):
        columns = [(j, table.column(j)) for j in range(len(use))]
        dtypes.update(str(arr.type) for _j, arr in columns)
        _take_rows(table.num_rows, columns, start, idx, out)
        start += table.num_rows
        del table, columns
    return _finish(ctx, out, "parquet", None, shape, _arrow_name(dtypes), idx)
