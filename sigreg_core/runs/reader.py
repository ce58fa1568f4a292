"""Reading runs back: discovery below the allowed roots, and the reader behind the Monitor page.

A run is a :class:`~sigreg_core.runs.writer.RunWriter` directory (its SQLite index is read,
never the snapshots, so a 10 000-step time series loads in well under a second) or a
plain folder of step-numbered snapshot files written by any tool (``step_000100.npy``,
``emb-1200.pt``), which are loaded safely and scored here with the summaries cached in
SQLite keyed by (path, mtime, size, settings).
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import numpy as np
import pandas as pd

from sigreg_core.util.cache import cache_root
from sigreg_core.runs.summary import NULL_BAND_DRAWS, SummaryConfig, _jsonable, sigreg_null_band, summarize
from sigreg_core.runs.writer import (INDEX_NAME, SERIES_COLUMNS, SNAPSHOT_KEY, _TEXT_COLUMNS, _connect)

__all__ = ["RunReader", "is_run_dir", "find_runs", "resolve_run_dir", "run_version", "step_from_name", "default_cache_dir"]


# ----------------------------------------------------------------------------- reader
_STEP_RE = re.compile(r"(\d+)(?!.*\d)")


def step_from_name(name: str) -> Optional[int]:
    """The step number a file name carries: the last run of digits in its stem (``emb-1200.pt`` → 1200)."""
    stem = name.split(".", 1)[0] if not name.startswith(".") else ""
    m = _STEP_RE.search(stem)
    return int(m.group(1)) if m else None


def is_run_dir(path: Union[str, os.PathLike]) -> bool:
    """A directory written by :class:`RunWriter` (holds ``index.sqlite``)."""
    return (Path(path) / INDEX_NAME).is_file()


def _snapshot_files(folder: Path) -> dict:
    from sigreg_core.inputs.loading import SUPPORTED_EXTENSIONS

    files = {}
    try:
        entries = sorted(folder.iterdir())
        inside = folder.resolve()
    except (OSError, RuntimeError):
        return {}
    for p in entries:
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.is_symlink() and not _within(p, [inside]):  # a folder run never follows a link out of itself
            continue
        ext = "".join(p.suffixes[-1:]).lower()
        if ext not in SUPPORTED_EXTENSIONS:
            continue
        step = step_from_name(p.name)
        if step is None or step in files:
            continue
        files[step] = p
    return files


def _within(p: Path, roots: list) -> bool:
    """``p`` with every symlink resolved lies at or below one of the (resolved) ``roots``."""
    try:
        rp = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return any(rp == r or rp.is_relative_to(r) for r in roots)


def find_runs(roots: Iterable[Union[str, os.PathLike]], max_depth: int = 3) -> list[Path]:
    """Run directories (and folders of step-numbered snapshot files) below ``roots``.

    Symlinks are resolved and checked: a link inside an allowed root that points outside
    every root is skipped, so discovery never lists (and the Monitor page never scores) a
    run outside the allowed directories.
    """
    out: list[Path] = []
    seen = set()
    resolved_roots = []
    for r in roots:
        try:
            resolved_roots.append(Path(r).resolve())
        except (OSError, RuntimeError):
            continue

    def visit(p: Path, depth: int) -> None:
        try:
            rp = p.resolve()
        except (OSError, RuntimeError):
            return
        if not any(rp == r or rp.is_relative_to(r) for r in resolved_roots):
            return
        if rp in seen or not rp.is_dir():
            return
        seen.add(rp)
        if is_run_dir(rp):
            out.append(rp)
            return
        if len(_snapshot_files(rp)) >= 2:
            out.append(rp)
        if depth >= max_depth:
            return
        try:
            children = sorted(c for c in rp.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            return
        for c in children:
            visit(c, depth + 1)

    for r in roots:
        visit(Path(r), 0)
    return out


def resolve_run_dir(path: Union[str, os.PathLike], roots: Optional[Iterable] = None) -> Path:
    """A run directory typed by a dashboard user, confined to the allowed roots.

    Same rules as :func:`sigreg_core.inputs.loading.resolve_server_path` (no ``..``, no NUL,
    symlinks resolved and checked, relative paths looked up below each root), for a
    directory: a :class:`RunWriter` run or a folder of step-numbered snapshot files.
    Raises :class:`sigreg_core.inputs.loading.EmbeddingLoadError` with one line.
    """
    from sigreg_core.inputs.loading import ALLOWED_ROOTS_ENV, EmbeddingLoadError, allowed_roots

    root_list = allowed_roots(roots)
    text = (os.fspath(path) if not isinstance(path, str) else path).strip()
    if not text:
        raise EmbeddingLoadError("empty run directory; type a directory below an allowed root")
    if "\x00" in text:
        raise EmbeddingLoadError("run directory contains a NUL byte; type a plain path")
    if not root_list:
        raise EmbeddingLoadError(f"no allowed directories are configured; set {ALLOWED_ROOTS_ENV}")
    shown = ", ".join(str(r) for r in root_list)
    p = Path(text)
    if any(part == ".." for part in p.parts):
        raise EmbeddingLoadError(f"run directory {text!r} contains '..'; give a path below {shown}")
    for cand in ([p] if p.is_absolute() else [r / p for r in root_list]):
        try:
            resolved = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not any(resolved == r or resolved.is_relative_to(r) for r in root_list):
            raise EmbeddingLoadError(f"run directory {text!r} resolves to {resolved}, outside the allowed "
                                     f"directories ({shown}); add it to {ALLOWED_ROOTS_ENV}")
        if not resolved.is_dir():
            raise EmbeddingLoadError(f"{text!r} is not a directory; give a run directory")
        if not is_run_dir(resolved) and not _snapshot_files(resolved):
            raise EmbeddingLoadError(f"{text!r} is neither a run directory ({INDEX_NAME}) nor a folder of "
                                     "snapshot files whose names carry a step number (step_000100.npy, ...)")
        return resolved
    raise EmbeddingLoadError(f"run directory {text!r} not found below the allowed directories ({shown})")


def run_version(path: Union[str, os.PathLike]) -> tuple:
    """A cheap signature that changes whenever the run gains or changes steps (for caches)."""
    p = Path(path)
    out = []
    if is_run_dir(p):
        names = [INDEX_NAME, INDEX_NAME + "-wal"]
        for n in names:
            try:
                st_ = (p / n).stat()
                out.append((n, st_.st_mtime_ns, st_.st_size))
            except OSError:
                out.append((n, None, None))
        return tuple(out)
    for step, f in sorted(_snapshot_files(p).items()):
        try:
            st_ = f.stat()
            out.append((f.name, st_.st_mtime_ns, st_.st_size))
        except OSError:
            continue
    return tuple(out)


def default_cache_dir() -> Path:
    """The package's cache directory (:func:`sigreg_core.util.cache.cache_root`)."""
    return cache_root()


class RunReader:
    """Read a run written by :class:`RunWriter`, or a folder of step-numbered snapshot files.

    ``timeseries()`` returns one row per step (a pandas DataFrame) with the columns
    ``step, time, snapshot, n, d, m, sigreg, null_mean, sigreg_over_null, p_value, log10_p, rankme, q50, q95, qmax, slice_null_q95, verdict, modes,
    error`` and one column per user scalar.  For a plain folder the summaries are
    computed here with ``config`` (cached by path, mtime, size and settings).
    """

    def __init__(
        self,
        run_dir: Union[str, os.PathLike],
        *,
        config: Optional[SummaryConfig] = None,
        max_rows: Optional[int] = 4096,
        cache_dir: Union[str, os.PathLike, None] = None,
        key: Optional[str] = None,
    ) -> None:
        self.path = Path(run_dir)
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: not a directory")
        self.kind = "run" if is_run_dir(self.path) else "folder"
        self.max_rows = max_rows
        self.key = key
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._config = config
        if self.kind == "folder" and not _snapshot_files(self.path):
            raise FileNotFoundError(
                f"{self.path}: neither a run directory ({INDEX_NAME}) nor a folder of snapshot files "
                "whose names carry a step number (step_000100.npy, emb-1200.pt, ...)")

    @property
    def name(self) -> str:
        return self.path.name

    # -- metadata
    def _con(self) -> sqlite3.Connection:
        return _connect(self.path / INDEX_NAME, readonly=True)

    def meta(self) -> dict:
        """The run's stored configuration (summary settings, retention, user metadata)."""
        if self.kind != "run":
            cfg = self.config
            return {"format": None, "summary": cfg.to_dict(), "max_rows": self.max_rows, "metadata": {},
                    "source": "folder"}
        con = self._con()
        try:
            rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
        out = json.loads(rows.get("config", "{}"))
        if "created" in rows:
            out["created"] = json.loads(rows["created"])
        return out

    @property
    def config(self) -> SummaryConfig:
        if self._config is not None:
            return self._config
        if self.kind == "run":
            s = self.meta().get("summary", {})
            return SummaryConfig(**{k: s[k] for k in ("preset", "num_slices", "seed") if k in s})
        return SummaryConfig()

    # -- the time series
    def timeseries(self, *, progress: Optional[Callable[[int, int], None]] = None) -> pd.DataFrame:
        """One row per logged step, sorted by step (from the index only, never the snapshots)."""
        if self.kind == "run":
            return self._run_series()
        return self._folder_series(progress)

    steps = timeseries

    def _run_series(self) -> pd.DataFrame:
        con = self._con()
        try:
            cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "scalars"]
            cur = con.execute(f"SELECT {', '.join(cols)} FROM steps ORDER BY step")
            rows = cur.fetchall()
        finally:
            con.close()
        df = pd.DataFrame.from_records(rows, columns=cols)
        return _finish_frame(df)

    def _folder_series(self, progress) -> pd.DataFrame:
        files = _snapshot_files(self.path)
        cache = _SummaryCache(self._cache_dir or default_cache_dir())
        settings = json.dumps({**self.config.to_dict(), "max_rows": self.max_rows, "key": self.key}, sort_keys=True)
        records = []
        total = len(files)
        for i, (step, p) in enumerate(sorted(files.items())):
            try:
                st_ = p.stat()
            except OSError:
                continue
            ident = (str(p.resolve()), st_.st_mtime_ns, st_.st_size, settings)
            summ = cache.get(ident)
            if summ is None:
                summ = self._score_file(p)
                cache.put(ident, summ)
            rec = {"step": step, "time": st_.st_mtime, "snapshot": str(p)}
            rec.update({c: summ.get(c) for c in SERIES_COLUMNS})
            rec["verdict"] = summ.get("verdict")
            rec["modes"] = json.dumps(summ.get("modes", [])) if "modes" in summ else None
            rec["error"] = summ.get("error")
            rec["scalars"] = None
            records.append(rec)
            if progress is not None:
                progress(i + 1, total)
        cache.close()
        cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "scalars"]
        df = pd.DataFrame.from_records(records, columns=cols)
        return _finish_frame(df)

    def _score_file(self, p: Path) -> dict:
        from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

        try:
            emb = load_embeddings(p, key=self.key, max_rows=self.max_rows)
            z = emb.array
            z = z.reshape(-1, z.shape[-1])
            return summarize(z, self.config)
        except (EmbeddingLoadError, ValueError, RuntimeError) as exc:
            return {"error": " ".join(str(exc).split())}

    # -- the null band of SIGReg
    def null_band(self, n: int, d: int, *, level: float = 0.95, draws: int = NULL_BAND_DRAWS) -> tuple[float, float]:
        """Central ``level`` null interval of this run's SIGReg at (n rows, d dims) (Monte Carlo, cached on disk)."""
        cfg = self.config
        cache = _SummaryCache(self._cache_dir or default_cache_dir())
        ident = ("null-band", int(n), int(d), json.dumps({**cfg.to_dict(), "level": level, "draws": draws},
                                                          sort_keys=True))
        try:
            hit = cache.get(ident)
            if hit is not None:
                return float(hit["lo"]), float(hit["hi"])
            lo, hi = sigreg_null_band(int(n), int(d), cfg, level=level, draws=draws)
            cache.put(ident, {"lo": lo, "hi": hi})
            return lo, hi
        finally:
            cache.close()

    # -- snapshots
    def snapshot_path(self, step: int) -> Optional[Path]:
        """The snapshot file of ``step``, or None when retention dropped it (or the step is unknown)."""
        step = int(step)
        if self.kind == "folder":
            return _snapshot_files(self.path).get(step)
        con = self._con()
        try:
            row = con.execute("SELECT snapshot FROM steps WHERE step = ?", (step,)).fetchone()
        finally:
            con.close()
        if row is None or row[0] is None:
            return None
        return self._confined(str(row[0]), step)

    def _confined(self, name: str, step: int) -> Optional[Path]:
        """The index's snapshot entry as a path inside this run; absolute, ``..`` or escaping paths refused."""
        from sigreg_core.inputs.loading import EmbeddingLoadError
        from sigreg_core.util.text import visible

        rel = Path(name)
        if not name or "\x00" in name or rel.is_absolute() or rel.drive or any(part == ".." for part in rel.parts):
            raise EmbeddingLoadError(f"{self.name}: the index gives step {step} the snapshot path {visible(name)[:120]!r}, "
                                     f"which is absolute or leaves the run directory; refused (the index was edited or crafted)")
        p = self.path / rel
        try:  # not strict: retention may remove the file meanwhile (then None below)
            inside = p.resolve().is_relative_to(self.path.resolve())
        except (OSError, RuntimeError):
            return None
        if not inside:
            raise EmbeddingLoadError(f"{self.name}: the snapshot of step {step} links outside the run directory; refused")
        return p if p.is_file() else None

    def snapshot(self, step: int) -> np.ndarray:
        """The embeddings stored at ``step`` as float32 (N, D); KeyError when there is none."""
        p = self.snapshot_path(step)
        if p is None:
            raise KeyError(f"{self.name}: no snapshot for step {step} (not logged, or dropped by retention)")
        if self.kind == "run":
            from safetensors.numpy import load_file

            try:
                return np.asarray(load_file(str(p))[SNAPSHOT_KEY], dtype=np.float32)
            except FileNotFoundError:  # retention removed it after the index was read
                raise KeyError(f"{self.name}: the snapshot of step {step} was just dropped by retention") from None
        from sigreg_core.inputs.loading import load_embeddings

        arr = load_embeddings(p, key=self.key).array
        return arr.reshape(-1, arr.shape[-1])

    def summary(self, step: int) -> dict:
        """The full stored summary of ``step`` (the assessment's dict included)."""
        if self.kind == "folder":
            row = self.timeseries()
            row = row[row["step"] == int(step)]
            if row.empty:
                raise KeyError(f"{self.name}: no step {step}")
            return row.iloc[0].to_dict()
        con = self._con()
        try:
            row = con.execute("SELECT summary, scalars, error FROM steps WHERE step = ?", (int(step),)).fetchone()
        finally:
            con.close()
        if row is None:
            raise KeyError(f"{self.name}: no step {step}")
        out = json.loads(row[0]) if row[0] else {}
        out["scalars"] = json.loads(row[1]) if row[1] else {}
        out["error"] = row[2]
        return out


def _finish_frame(df: pd.DataFrame) -> pd.DataFrame:
    for c in SERIES_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["step"] = df["step"].astype("int64")
    for c in ("n", "d", "m"):
        df[c] = df[c].astype("Int64") if df[c].isna().any() else df[c].astype("int64")
    df["snapshot"] = df["snapshot"].astype(object).where(df["snapshot"].notna(), None)
    df["modes"] = [", ".join(json.loads(m)) if isinstance(m, str) and m else "" for m in df["modes"]]
    scal = df.pop("scalars")
    parsed = [json.loads(s) if isinstance(s, str) and s else {} for s in scal]
    if any(parsed):
        sf = pd.DataFrame.from_records(parsed, index=df.index)
        sf.columns = [c if c not in df.columns else f"user_{c}" for c in sf.columns]
        df = pd.concat([df, sf], axis=1)
    df.attrs["scalar_columns"] = [c for c in df.columns if c not in
                                  ("step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS)]
    return df


class _SummaryCache:
    """SQLite cache of folder-snapshot summaries keyed by (path, mtime_ns, size, settings)."""

    def __init__(self, cache_dir: Path) -> None:
        self.con: Optional[sqlite3.Connection] = None
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(str(cache_dir / "folder-summaries.sqlite"), timeout=10.0)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS summaries (path TEXT, mtime INTEGER, size INTEGER, "
                        "settings TEXT, summary TEXT NOT NULL, PRIMARY KEY (path, mtime, size, settings))")
            self.con = con
        except (OSError, sqlite3.Error):
            self.con = None  # no cache: score every time

    def get(self, ident: tuple) -> Optional[dict]:
        if self.con is None:
            return None
        try:
            row = self.con.execute("SELECT summary FROM summaries WHERE path=? AND mtime=? AND size=? AND settings=?",
                                   ident).fetchone()
        except sqlite3.Error:
            return None
        return json.loads(row[0]) if row else None

    def put(self, ident: tuple, summ: dict) -> None:
        if self.con is None:
            return
        try:
            with self.con:
                self.con.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?)",
                                 (*ident, json.dumps(_jsonable(summ))))
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

