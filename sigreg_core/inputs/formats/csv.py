"""``.csv`` / ``.tsv``: numeric columns, id/label and text columns set aside, header row detected."""
from __future__ import annotations


import numpy as np

from sigreg_core.inputs.context import _META_COLUMNS, _Ctx, _dtype_name, _finish, _note_set_aside
from sigreg_core.inputs.errors import LoadedEmbeddings, _first_line, _human
from sigreg_core.inputs.limits import MAX_BYTES_ENV, MAX_COLUMNS_ENV, max_columns
from sigreg_core.inputs.sniff import _sniff


def _is_number(text: str) -> bool:
    t = text.strip().strip('"').strip("'")
    if not t:
        return False
    try:
        float(t)
        return True
    except ValueError:
        return False


def _first_data_line(ctx: _Ctx, sep: str) -> tuple:
    """``(line_bytes, columns)`` of the first non-blank line, read in 1 MiB blocks.

    Reading stops as soon as the separators counted exceed the column limit (then
    ``line_bytes`` is None and ``columns`` is a lower bound), so a one-line file of
    10^6 columns costs one block, not a parse.  The line is decoded whole, never cut
    inside a multi-byte UTF-8 character.
    """
    limit = max_columns()
    sep_b = sep.encode()
    with ctx.src.open() as f:
        while True:
            buf = bytearray()
            ncols = 1
            end = False
            while True:
                block = f.read(1 << 20)
                if not block:
                    end = True
                    break
                cut = block.find(b"\n")
                part = block if cut < 0 else block[:cut]
                ncols += part.count(sep_b)
                buf += part
                if ncols > limit:
                    return None, ncols
                if cut >= 0:
                    f.seek(f.tell() - (len(block) - cut - 1))
                    break
            if buf.strip() or end:
                return bytes(buf).rstrip(b"\r"), ncols


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
    raw_line, ncols = _first_data_line(ctx, sep)
    limit = max_columns()
    if ncols > limit:
        ctx.fail(
            f"has {f'more than {limit:,}' if raw_line is None else f'{ncols:,}'} columns on its first line, over the column limit of "
            f"{limit:,} (parsing that many columns takes minutes); save wide embeddings as .npy/.safetensors/.parquet "
            f"or raise {MAX_COLUMNS_ENV}"
        )
    try:
        first_line = raw_line.decode("utf-8")
    except UnicodeDecodeError:
        ctx.fail(f"is not UTF-8 text; save the {fmt.upper()} as UTF-8")
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

