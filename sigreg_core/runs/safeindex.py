"""A run folder is untrusted input: its SQLite index read with every size bounded before reading.

A run's ``index.sqlite`` (written by :class:`~sigreg_core.runs.writer.RunWriter`) is a file
anyone with write access to the run folder can replace.  The audit of issue 24 read, from
tiny hostile indexes, a recursive SQL view of 30 M rows (8.2 GiB), a view returning a 900 MB
blob per row (8 GiB), run settings asking for 1e8 slices (12-17 GiB in the null band) and
rows claiming n = 4096, d = 60 000 (a null band of > 90 s).  Here the index is opened so that
none of this can happen, whatever the file holds:

* opened read-only (``mode=ro`` URI, ``PRAGMA query_only``, ``trusted_schema=OFF``, no
  memory map), the index file itself and its ``-wal`` / ``-shm`` companions resolved inside the
  run folder (a symlink to an index elsewhere is refused);
* ``steps`` and ``meta`` must be ordinary tables (``sqlite_master`` type ``table``, a plain
  ``CREATE TABLE``): any view or trigger in the schema refuses the whole index;
* every value is bounded by SQLite itself: ``SQLITE_LIMIT_LENGTH`` (a longer string or blob
  is an error, never allocated), text columns selected only when ``length()`` is within their
  limit, numbers only when ``typeof()`` says so, rows only through ``LIMIT`` (the latest
  :data:`MAX_SERIES_ROWS` steps; older ones by ``offset``), and every query interrupted by a
  progress handler after :data:`QUERY_SECONDS`;
* JSON fields are parsed only below a length and a nesting depth (:func:`bounded_json`);
* the run's settings (preset, slices, seed) are validated against the same limits as a
  user's settings (:func:`validated_settings`), and the shape of a null band against the
  memory budget (``LATENT_HEALTH_MAX_MEMORY``) and a work limit (:func:`check_null_band`).

Every refusal is a :class:`RunReadError`: one line, safe to show on a page.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Optional

from sigreg_core.inputs.errors import EmbeddingLoadError

__all__ = ["RunReadError", "Index", "open_index", "read_summary", "read_snapshot_name", "check_claimed_shape", "read_meta", "read_steps", "count_steps", "bounded_json",
           "validated_settings", "check_null_band", "MAX_SERIES_ROWS", "MAX_RUN_SLICES", "QUERY_SECONDS"]

#: steps read per time series at most (the latest ones; ``offset`` pages back)
MAX_SERIES_ROWS = 20_000
#: slices a run may ask for: the dashboard's own limit for a user's setting (sidebar "Slices M")
MAX_RUN_SLICES = 16_384
#: any single string or blob SQLite will hand over (SQLITE_LIMIT_LENGTH)
MAX_VALUE_BYTES = 2 * 1024**2
#: characters of the short text columns (snapshot path, verdict, modes, error) and of the scalars JSON
MAX_TEXT = 4096
MAX_SCALARS_TEXT = 16_384
#: characters of a meta value (the run's configuration) and of a step's full summary
MAX_META_TEXT = 65_536
MAX_SUMMARY_TEXT = 1024**2
#: nesting depth of any JSON field
MAX_JSON_DEPTH = 32
#: user scalar columns kept in a time series (the first ones met)
MAX_SCALAR_COLUMNS = 64
#: wall-clock limit of one query (a hostile index cannot keep a page busy)
QUERY_SECONDS = 10.0
#: schema entries looked at (a real index has 2 tables and their autoindex)
MAX_SCHEMA = 64
#: rows and dimensions an index may claim for a step (beyond: the row is flagged, its n/d dropped)
MAX_ROWS_CLAIM = 2**31
MAX_DIM_CLAIM = 1 << 20
#: multiply-adds of a null band (draws x rows x D x M) at most: the shipped runs need ~5e10
NULL_BAND_MAX_WORK = 4e11

_INDEX_NAME = "index.sqlite"


class RunReadError(EmbeddingLoadError):
    """A run folder (its index, settings or a snapshot) that cannot be read safely; one line."""


# ----------------------------------------------------------------------------- JSON
def _depth(text: str) -> int:
    """Maximum nesting of ``[``/``{`` in JSON text, strings skipped (one pass, no recursion)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def bounded_json(text: Any, what: str, *, max_len: int = MAX_TEXT, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` when ``text`` is a string within ``max_len`` and ``max_depth``; else RunReadError."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise RunReadError(f"{what} is not text; the index was edited or crafted")
    if len(text) > max_len:
        raise RunReadError(f"{what} is {len(text):,} characters long (limit {max_len:,}); the index was edited or crafted")
    if _depth(text) > max_depth:
        raise RunReadError(f"{what} is nested more than {max_depth} levels deep; the index was edited or crafted")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise RunReadError(f"{what} is not valid JSON; the index was edited or crafted") from None


# ----------------------------------------------------------------------------- opening
def _inside(p: Path, folder: Path) -> bool:
    try:
        rp = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return rp == folder or rp.is_relative_to(folder)


class Index:
    """An open, checked index: the connection, the run's display name and the columns of each table."""

    def __init__(self, con: sqlite3.Connection, name: str):
        self.con, self.name, self.columns = con, name, {}

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_index(run_dir: Path, name: str) -> Index:
    """A read-only, bounded connection to ``run_dir/index.sqlite`` with its schema checked."""
    try:
        folder = Path(run_dir).resolve(strict=True)
    except (OSError, RuntimeError):
        raise RunReadError(f"{name}: the run folder is gone") from None
    path = folder / _INDEX_NAME
    if not _inside(path, folder) or not path.resolve().is_file():
        raise RunReadError(f"{name}: {_INDEX_NAME} is a link to a file outside the run folder, or not a regular "
                           "file; refused (a run is read only from inside its own folder)")
    for side in ("-wal", "-shm"):
        q = folder / (_INDEX_NAME + side)
        if q.is_symlink():
            raise RunReadError(f"{name}: {_INDEX_NAME}{side} is a symbolic link; refused (the run folder was crafted)")
    uri = f"{path.as_uri()}?mode=ro"
    try:
        con = _connect(uri)
    except sqlite3.Error:
        if (folder / (_INDEX_NAME + "-wal")).exists():
            raise RunReadError(f"{name}: the index cannot be opened read-only (a writer's WAL without its shared "
                               "memory file); try again once the writer has run or closed") from None
        try:  # a WAL-mode file with no WAL left (a writer killed after its checkpoint): nothing unseen to miss
            con = _connect(f"{path.as_uri()}?mode=ro&immutable=1")
        except sqlite3.Error as exc:
            raise RunReadError(f"{name}: the index is not a readable SQLite database ({exc})") from None
    idx = Index(con, name)
    try:
        _check_schema(idx)
    except BaseException:
        con.close()
        raise
    return idx


def _connect(uri: str) -> sqlite3.Connection:
    con = sqlite3.connect(uri, uri=True, timeout=2.0, check_same_thread=False)
    try:
        con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        con.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 1 << 16)
        for pragma in ("query_only=ON", "trusted_schema=OFF", "mmap_size=0", "cache_size=-8192", "temp_store=FILE",
                       "cell_size_check=ON"):
            con.execute(f"PRAGMA {pragma}")
        con.execute("SELECT count(*) FROM (SELECT 1 FROM sqlite_master LIMIT 1)").fetchall()
    except BaseException:
        con.close()
        raise
    return con


class _Deadline:
    """A progress handler that interrupts any statement running longer than ``seconds``."""

    def __init__(self, con: sqlite3.Connection, seconds: float = QUERY_SECONDS):
        self.con, self.seconds = con, seconds

    def __enter__(self):
        end = time.monotonic() + self.seconds
        self.con.set_progress_handler(lambda: 1 if time.monotonic() > end else 0, 20_000)
        return self

    def __exit__(self, *exc):
        self.con.set_progress_handler(None, 0)
        return False


def _run(con: sqlite3.Connection, name: str, sql: str, args: tuple = (), what: str = "the index") -> list:
    try:
        with _Deadline(con):
            return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "interrupted" in text:
            raise RunReadError(f"{name}: reading {what} took over {QUERY_SECONDS:.0f} s and was stopped; "
                               "the index is damaged or crafted") from None
        raise RunReadError(f"{name}: cannot read {what} ({text}); the index is damaged or crafted") from None
    except sqlite3.DataError as exc:  # "string or blob too big": over SQLITE_LIMIT_LENGTH, never allocated
        raise RunReadError(f"{name}: {what} holds a value over {MAX_VALUE_BYTES // 1024**2} MiB ({exc}); "
                           "the index was edited or crafted") from None
    except sqlite3.Error as exc:
        raise RunReadError(f"{name}: cannot read {what} ({type(exc).__name__}: {exc}); the index is damaged or crafted") from None


_NEEDED = {"meta": ("key", "value"), "steps": ("step", "time", "snapshot")}


def _check_schema(idx: Index) -> None:
    con, name = idx.con, idx.name
    rows = _run(con, name, "SELECT type, name, substr(sql, 1, 200) FROM sqlite_master LIMIT ?", (MAX_SCHEMA + 1,),
                "the schema")
    if len(rows) > MAX_SCHEMA:
        raise RunReadError(f"{name}: the index schema has over {MAX_SCHEMA} entries; not a latent-health run index")
    kinds = {}
    for typ, nm, sql in rows:
        if typ in ("view", "trigger"):
            raise RunReadError(f"{name}: the index holds a {typ} ({str(nm)[:60]!r}); a run index has tables only "
                               "(refused: a view can compute unbounded rows)")
        kinds[nm] = (typ, sql or "")
    for table, cols in _NEEDED.items():
        typ, sql = kinds.get(table, (None, ""))
        if typ != "table" or not " ".join(sql.split()).upper().startswith("CREATE TABLE"):
            raise RunReadError(f"{name}: the index has no plain table {table!r}; not a latent-health run index")
        have = {r[1] for r in _run(con, name, f"SELECT * FROM pragma_table_info('{table}') LIMIT 256", (),
                                   "the schema")}
        missing = [c for c in cols if c not in have]
        if missing:
            raise RunReadError(f"{name}: the index table {table!r} lacks the column(s) {', '.join(missing)}; "
                               "not a latent-health run index")
        idx.columns[table] = have


# ----------------------------------------------------------------------------- reading
def read_meta(idx: Index) -> dict:
    """The ``meta`` table as {key: parsed JSON}, each value bounded in length and depth."""
    con, name = idx.con, idx.name
    rows = _run(con, name, "SELECT CASE WHEN typeof(key) = 'text' AND length(key) <= 64 THEN key END, "
                           "CASE WHEN typeof(value) = 'text' AND length(value) <= ? THEN value END, typeof(value) "
                           "FROM meta LIMIT 64", (MAX_META_TEXT,), "the run settings")
    out = {}
    for key, value, typ in rows:
        if key is None:
            continue
        if value is None:
            raise RunReadError(f"{name}: the run setting {key!r} is a {typ} over {MAX_META_TEXT:,} characters or "
                               "not text; the index was edited or crafted")
        out[key] = bounded_json(value, f"{name}: the run setting {key!r}", max_len=MAX_META_TEXT)
    return out


def validated_settings(summary: Any, name: str) -> dict:
    """The run's summary settings (preset, num_slices, seed) checked like a user's settings."""
    from sigreg_core.core.presets import get_preset

    if summary is None:
        return {}
    if not isinstance(summary, dict):
        raise RunReadError(f"{name}: the run's summary settings are not a JSON object; the index was edited or crafted")
    out = {}
    if "preset" in summary:
        preset = summary["preset"]
        try:
            if not isinstance(preset, str) or len(preset) > 64:
                raise ValueError(preset)
            get_preset(preset)
        except (ValueError, KeyError, TypeError):
            raise RunReadError(f"{name}: the run asks for an unknown preset {str(preset)[:40]!r}; "
                               "the index was edited or crafted") from None
        out["preset"] = preset
    for key, lo, hi in (("num_slices", 1, MAX_RUN_SLICES), ("seed", 0, 2**63 - 1)):
        if key not in summary:
            continue
        v = summary[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise RunReadError(f"{name}: the run asks for {key} = {str(v)[:40]} (allowed {lo:,} to {hi:,}, as for a "
                               "user's setting); the index was edited or crafted")
        out[key] = v
    return out


def count_steps(idx: Index) -> int:
    con, name = idx.con, idx.name
    return int(_run(con, name, "SELECT count(*) FROM steps", (), "the step count")[0][0])


def _num(col: str, have: set) -> str:
    return f"CASE WHEN typeof({col}) IN ('integer', 'real') THEN {col} END" if col in have else "NULL"


def _text(col: str, have: set, limit: int) -> str:
    return f"CASE WHEN typeof({col}) = 'text' AND length({col}) <= {int(limit)} THEN {col} END" if col in have else "NULL"


def read_steps(idx: Index, series_cols: tuple, text_cols: tuple, *,
               limit: int = MAX_SERIES_ROWS, offset: int = 0) -> list:
    """The latest ``limit`` steps after skipping ``offset`` from the end, in step order, every value bounded.

    Returns tuples ``(step, time, snapshot, *series_cols, *text_cols, scalars)`` where a value of
    the wrong type or over its length limit is None.
    """
    con, name, have = idx.con, idx.name, idx.columns["steps"]
    cols = (["step", _num("time", have), _text("snapshot", have, MAX_TEXT)]
            + [_num(c, have) for c in series_cols]
            + [_text(c, have, MAX_TEXT) for c in text_cols]
            + [_text("scalars", have, MAX_SCALARS_TEXT)])
    sql = (f"SELECT * FROM (SELECT {', '.join(cols)} FROM steps WHERE typeof(step) = 'integer' "
           "ORDER BY step DESC LIMIT ? OFFSET ?) ORDER BY step")
    return _run(con, name, sql, (int(limit), int(offset)), "the steps")


def read_summary(idx: Index, step: int) -> Optional[tuple]:
    con, name, have = idx.con, idx.name, idx.columns["steps"]
    rows = _run(con, name, f"SELECT {_text('summary', have, MAX_SUMMARY_TEXT)}, "
                           f"{_text('scalars', have, MAX_SCALARS_TEXT)}, {_text('error', have, MAX_TEXT)} "
                           "FROM steps WHERE step = ? LIMIT 1", (int(step),), f"step {int(step)}")
    return rows[0] if rows else None


def read_snapshot_name(idx: Index, step: int) -> Optional[tuple]:
    con, name, have = idx.con, idx.name, idx.columns["steps"]
    rows = _run(con, name, f"SELECT {_text('snapshot', have, MAX_TEXT)}, typeof(snapshot) FROM steps WHERE step = ? "
                           "LIMIT 1", (int(step),), f"step {int(step)}")
    return rows[0] if rows else None


# ----------------------------------------------------------------------------- shapes
def check_claimed_shape(n: Any, d: Any) -> Optional[str]:
    """None when an index row's (n, d) is a plausible shape; else why not (one phrase)."""
    try:
        fn, fd = float(n), float(d)
    except (TypeError, ValueError):
        return "n and d are not numbers"
    if not (math.isfinite(fn) and math.isfinite(fd)) or fn != int(fn) or fd != int(fd):
        return "n and d are not whole numbers"
    if not (2 <= fn <= MAX_ROWS_CLAIM and 1 <= fd <= MAX_DIM_CLAIM):
        return f"n = {fn:.0f}, d = {fd:.0f} is outside 2..{MAX_ROWS_CLAIM:,} rows, 1..{MAX_DIM_CLAIM:,} dimensions"
    return None


def check_null_band(n: int, d: int, num_slices: int, draws: int, sim_rows: int, name: str) -> None:
    """Refuse (one line) a null band whose simulation exceeds the memory budget or the work limit."""
    from sigreg_core.assessment.budget import MAX_MEMORY_ENV, SLICE_COPIES, max_memory

    why = check_claimed_shape(n, d)
    if why:
        raise RunReadError(f"{name}: no null band: the index claims {why}; the index was edited or crafted")
    if not 1 <= int(draws) <= 100_000:
        raise RunReadError(f"{name}: no null band: {draws} draws (allowed 1 to 100 000)")
    rows = min(int(n), int(sim_rows))
    nbytes = 4 * rows * int(d) * 2 + SLICE_COPIES * 4 * int(d) * int(num_slices) + 8 * rows * int(num_slices)
    work = float(draws) * rows * float(d) * float(num_slices)
    if nbytes > max_memory():
        raise RunReadError(f"{name}: no null band at n = {int(n):,}, d = {int(d):,}, {int(num_slices):,} slices: it "
                           f"needs about {nbytes / 1024**2:,.0f} MiB (limit {max_memory() / 1024**2:,.0f} MiB, "
                           f"{MAX_MEMORY_ENV})")
    if work > NULL_BAND_MAX_WORK:
        raise RunReadError(f"{name}: no null band at n = {int(n):,}, d = {int(d):,}, {int(num_slices):,} slices: "
                           f"{int(draws)} draws need ~{work:.1e} multiply-adds (limit {NULL_BAND_MAX_WORK:.0e}); "
                           "the chart is drawn without it")

