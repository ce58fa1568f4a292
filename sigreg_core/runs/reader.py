"""Reading runs back: the reader behind the Monitor page (:class:`RunReader`, :func:`read_run`).

Where runs are (discovery below the allowed roots, step numbers, confinement) is
:mod:`sigreg_core.runs.locate`, the index rows as a typed frame :mod:`sigreg_core.runs.frames`,
the folder-run summary cache :mod:`sigreg_core.runs.folder_cache`; their public names are
importable from here too, as before.

A run is a :class:`~sigreg_core.runs.writer.RunWriter` directory (its SQLite index is read,
never the snapshots, so a 10 000-step time series loads in well under a second) or a
plain folder of step-numbered snapshot files written by any tool (``step_000100.npy``,
``emb-1200.pt``), which are loaded safely and scored here with the summaries cached in
SQLite keyed by (path, mtime, size, settings).

A run folder is untrusted input (issue 24): the index is read through
:mod:`sigreg_core.runs.safeindex` (read-only, tables only, every row count, value size and
query time bounded, settings validated like a user's), snapshots through the same bounded
loader as uploads (:func:`sigreg_core.inputs.loading.load_embeddings`, byte limit
``min(LATENT_HEALTH_MAX_BYTES, LATENT_HEALTH_MAX_MEMORY)``), folders listed and scored with
caps (:data:`MAX_FOLDER_ENTRIES`, :data:`MAX_FOLDER_STEPS`, :data:`MAX_RUNS_LISTED`), and every
file a run points to resolved inside the run folder.  Problems are one-line
:class:`~sigreg_core.runs.safeindex.RunReadError` s; :func:`read_run` returns them as data.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd

from sigreg_core.runs import safeindex as _si
from sigreg_core.runs.safeindex import RunReadError
from sigreg_core.runs.summary import (NULL_BAND_DRAWS, NULL_BAND_MAX_ROWS, SummaryConfig, sigreg_null_band,
                                      summarize)
from sigreg_core.runs.writer import INDEX_NAME, SERIES_COLUMNS, SNAPSHOT_KEY, _TEXT_COLUMNS
# the reader's public names live in three cohesive modules; importable from here as before
from sigreg_core.runs.folder_cache import _SummaryCache, default_cache_dir
from sigreg_core.runs.frames import _finish_frame
from sigreg_core.runs.locate import (MAX_FOLDER_ENTRIES, MAX_FOLDER_STEPS, MAX_RUNS_LISTED, _snapshot_files,
                                     find_runs, is_run_dir, resolve_run_dir, run_version, step_from_name)

__all__ = ["RunReader", "RunReadError", "read_run", "is_run_dir", "find_runs", "resolve_run_dir", "run_version",
           "step_from_name", "default_cache_dir", "MAX_FOLDER_ENTRIES", "MAX_FOLDER_STEPS", "MAX_RUNS_LISTED"]

#: seconds one read of a folder run spends scoring files not yet cached (the newest first); the rest
#: are scored by the next reads (cached), so a read never takes minutes
FOLDER_SCORE_SECONDS = 15.0


def _snapshot_max_bytes() -> int:
    """Byte limit of one snapshot: the loader's limit, and never more than the memory budget."""
    from sigreg_core.assessment.budget import max_memory
    from sigreg_core.inputs.limits import default_max_bytes

    return int(min(default_max_bytes(), max_memory()))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:600] or type(exc).__name__


class RunReader:
    """Read a run written by :class:`RunWriter`, or a folder of step-numbered snapshot files.

    ``timeseries()`` returns one row per step (a pandas DataFrame) with the columns
    ``step, time, snapshot, n, d, m, sigreg, null_mean, sigreg_over_null, p_value, log10_p, rankme, q50, q95, qmax, slice_null_q95, verdict, modes,
    error`` and one column per user scalar (the first :data:`~sigreg_core.runs.safeindex.MAX_SCALAR_COLUMNS`).
    For a plain folder the summaries are computed here with ``config`` (cached by path, mtime,
    size and settings).  At most the latest :data:`~sigreg_core.runs.safeindex.MAX_SERIES_ROWS`
    steps of an index (``offset`` pages back) and :data:`MAX_FOLDER_STEPS` files of a folder are
    read; ``df.attrs["notices"]`` says what was left out and ``df.attrs["errors"]`` lists the
    rows the index got wrong (also in their ``error`` column).  Whole-run problems raise
    :class:`RunReadError` (one line).
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
        if self.kind == "folder" and not _snapshot_files(self.path, stop_after=1):
            raise FileNotFoundError(
                f"{self.path}: neither a run directory ({INDEX_NAME}) nor a folder of snapshot files "
                "whose names carry a step number (step_000100.npy, emb-1200.pt, ...)")

    @property
    def name(self) -> str:
        from sigreg_core.util.text import visible

        return visible(self.path.name)

    # -- metadata
    def _index(self) -> "_si.Index":
        return _si.open_index(self.path, self.name)

    def meta(self) -> dict:
        """The run's stored configuration (summary settings, retention, user metadata); settings validated."""
        if self.kind != "run":
            cfg = self.config
            return {"format": None, "summary": cfg.to_dict(), "max_rows": self.max_rows, "metadata": {},
                    "source": "folder"}
        with self._index() as idx:
            rows = _si.read_meta(idx)
        out = rows.get("config") or {}
        if not isinstance(out, dict):
            raise RunReadError(f"{self.name}: the run configuration is not a JSON object; the index was edited or crafted")
        out = dict(out)
        out["summary"] = _si.validated_settings(out.get("summary"), self.name)
        if "created" in rows:
            out["created"] = rows["created"]
        return out

    @property
    def config(self) -> SummaryConfig:
        if self._config is not None:
            return self._config
        if self.kind == "run":
            return SummaryConfig(**self.meta().get("summary", {}))
        return SummaryConfig()

    # -- the time series
    def timeseries(self, *, progress: Optional[Callable[[int, int], None]] = None, offset: int = 0) -> pd.DataFrame:
        """One row per logged step, sorted by step (from the index only, never the snapshots).

        The latest steps first: ``offset`` skips that many of the most recent ones (paging back).
        """
        if self.kind == "run":
            return self._run_series(int(offset))
        return self._folder_series(progress)

    steps = timeseries

    def _run_series(self, offset: int = 0) -> pd.DataFrame:
        cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "scalars"]
        with self._index() as idx:
            total = _si.count_steps(idx)
            rows = _si.read_steps(idx, SERIES_COLUMNS, _TEXT_COLUMNS, limit=_si.MAX_SERIES_ROWS, offset=max(0, offset))
        df = pd.DataFrame.from_records(rows, columns=cols)
        errors: list = []
        bad = []
        for i, (n, d) in enumerate(zip(df["n"], df["d"])):
            if n is None and d is None or (isinstance(n, float) and math.isnan(n) and isinstance(d, float) and math.isnan(d)):
                continue
            why = _si.check_claimed_shape(n, d)
            if why:
                bad.append(i)
                msg = f"the index row claims {why}; shape dropped"
                df.at[i, "error"] = msg
                if len(errors) < 20:
                    errors.append(f"{self.name} step {df.at[i, 'step']}: {msg}")
        if bad:
            df.loc[bad, ["n", "d"]] = None
        notices = []
        if total > len(df) + max(0, offset):
            notices.append(f"{self.name}: showing {len(df):,} of {total:,} steps (the latest; the index holds more "
                           f"than the {_si.MAX_SERIES_ROWS:,} read at once)")
        out = _finish_frame(df, self.name, errors)
        out.attrs["notices"], out.attrs["errors"], out.attrs["total_steps"] = notices, errors, int(total)
        return out

    def _folder_series(self, progress) -> pd.DataFrame:
        stats: dict = {}
        files = _snapshot_files(self.path, stats=stats)
        total_files = len(files)
        notices = []
        if stats.get("truncated"):
            notices.append(f"{self.name}: the folder holds over {MAX_FOLDER_ENTRIES:,} entries; only the first were looked at")
        if total_files > MAX_FOLDER_STEPS:
            files = dict(list(files.items())[-MAX_FOLDER_STEPS:])
            notices.append(f"{self.name}: scoring the latest {MAX_FOLDER_STEPS:,} of {total_files:,} snapshot files")
        cache = _SummaryCache(self._cache_dir or default_cache_dir())
        settings = json.dumps({**self.config.to_dict(), "max_rows": self.max_rows, "key": self.key,
                               "max_bytes": _snapshot_max_bytes()}, sort_keys=True)
        records = []
        total = len(files)
        t_end = time.monotonic() + FOLDER_SCORE_SECONDS
        unscored = 0
        for i, (step, p) in enumerate(sorted(files.items(), reverse=True)):  # the newest first
            try:
                st_ = p.stat()
            except OSError:
                continue
            ident = (str(p.resolve()), st_.st_mtime_ns, st_.st_size, settings)
            summ = cache.get(ident)
            if summ is None:
                if time.monotonic() > t_end:
                    unscored += 1
                    continue
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
        if unscored:
            notices.append(f"{self.name}: {unscored:,} older snapshot files are not scored yet (this read's "
                           f"{FOLDER_SCORE_SECONDS:.0f} s budget); the next reads score them")
        records.sort(key=lambda r: r["step"])
        cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "scalars"]
        df = pd.DataFrame.from_records(records, columns=cols)
        errors: list = []
        out = _finish_frame(df, self.name, errors)
        out.attrs["notices"], out.attrs["errors"], out.attrs["total_steps"] = notices, errors, total_files
        return out

    def _score_file(self, p: Path) -> dict:
        from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

        try:
            emb = load_embeddings(p, key=self.key, max_rows=self.max_rows, max_bytes=_snapshot_max_bytes())
            z = emb.array
            z = z.reshape(-1, z.shape[-1])
            return summarize(z, self.config)
        except (EmbeddingLoadError, ValueError, RuntimeError, MemoryError, RecursionError) as exc:
            return {"error": _one_line(exc)}

    # -- the null band of SIGReg
    def null_band(self, n: int, d: int, *, level: float = 0.95, draws: int = NULL_BAND_DRAWS) -> tuple[float, float]:
        """Central ``level`` null interval of this run's SIGReg at (n rows, d dims) (Monte Carlo, cached on disk).

        The shape and the run's settings are checked against the memory budget and a work limit
        first (:func:`sigreg_core.runs.safeindex.check_null_band`): a shape an index merely claims
        is refused in one line instead of simulated.
        """
        cfg = self.config
        _si.check_null_band(n, d, cfg.num_slices, draws, NULL_BAND_MAX_ROWS, self.name)
        if not 0.0 < float(level) < 1.0:
            raise RunReadError(f"{self.name}: null band level must be between 0 and 1, got {level}")
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
        with self._index() as idx:
            row = _si.read_snapshot_name(idx, step)
        if row is None or (row[0] is None and row[1] == "null"):
            return None
        if row[0] is None:
            raise RunReadError(f"{self.name}: the index gives step {step} a snapshot entry that is not short text "
                               f"({row[1]}); the index was edited or crafted")
        return self._confined(str(row[0]), step)

    def _confined(self, name: str, step: int) -> Optional[Path]:
        """The index's snapshot entry as a path inside this run; absolute, ``..`` or escaping paths refused."""
        from sigreg_core.util.text import visible

        rel = Path(name)
        if not name or "\x00" in name or rel.is_absolute() or rel.drive or any(part == ".." for part in rel.parts):
            raise RunReadError(f"{self.name}: the index gives step {step} the snapshot path {visible(name)[:120]!r}, "
                               f"which is absolute or leaves the run directory; refused (the index was edited or crafted)")
        p = self.path / rel
        try:  # not strict: retention may remove the file meanwhile (then None below)
            inside = p.resolve().is_relative_to(self.path.resolve())
        except (OSError, RuntimeError):
            return None
        if not inside:
            raise RunReadError(f"{self.name}: the snapshot of step {step} links outside the run directory; refused")
        return p if p.is_file() else None

    def snapshot(self, step: int) -> np.ndarray:
        """The embeddings stored at ``step`` as float32 (N, D); KeyError when there is none.

        Loaded through the same bounded loader as uploads (byte limit: the smaller of
        ``LATENT_HEALTH_MAX_BYTES`` and ``LATENT_HEALTH_MAX_MEMORY``): a forged, truncated,
        1-D or oversized snapshot is a one-line :class:`EmbeddingLoadError`.
        """
        from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

        p = self.snapshot_path(step)
        if p is None:
            raise KeyError(f"{self.name}: no snapshot for step {step} (not logged, or dropped by retention)")
        limit = _snapshot_max_bytes()
        try:
            size = p.stat().st_size
        except OSError:
            size = 0
        if size > limit:  # a snapshot is written small by RunWriter: one this size is refused, not sampled
            raise RunReadError(f"{self.name} step {step}: the snapshot is {size / 2**30:.3g} GiB on disk, over the "
                               f"limit of {limit / 2**30:.3g} GiB (LATENT_HEALTH_MAX_BYTES / LATENT_HEALTH_MAX_MEMORY); "
                               f"refused")
        try:
            if self.kind == "run":
                arr = load_embeddings(p, key=SNAPSHOT_KEY, max_bytes=_snapshot_max_bytes()).array
            else:
                arr = load_embeddings(p, key=self.key, max_bytes=_snapshot_max_bytes()).array
        except EmbeddingLoadError as exc:
            if not p.exists():  # retention removed it after the index was read
                raise KeyError(f"{self.name}: the snapshot of step {step} was just dropped by retention") from None
            raise RunReadError(f"{self.name} step {step}: {exc}") from None
        return arr.reshape(-1, arr.shape[-1])

    def summary(self, step: int) -> dict:
        """The full stored summary of ``step`` (the assessment's dict included)."""
        if self.kind == "folder":
            row = self.timeseries()
            row = row[row["step"] == int(step)]
            if row.empty:
                raise KeyError(f"{self.name}: no step {step}")
            return row.iloc[0].to_dict()
        with self._index() as idx:
            row = _si.read_summary(idx, int(step))
        if row is None:
            raise KeyError(f"{self.name}: no step {step}")
        out = _si.bounded_json(row[0], f"{self.name}: the summary of step {int(step)}", max_len=_si.MAX_SUMMARY_TEXT)
        out = out if isinstance(out, dict) else {}
        scal = _si.bounded_json(row[1], f"{self.name}: the scalars of step {int(step)}", max_len=_si.MAX_SCALARS_TEXT)
        out["scalars"] = scal if isinstance(scal, dict) else {}
        out["error"] = row[2]
        return out


def read_run(path: Union[str, os.PathLike], **kwargs) -> tuple:
    """``(time series or None, [one-line problems])`` of a run: never raises for what the folder holds.

    The problems are the whole-run refusal (then the frame is None), the rows the index got
    wrong, and what was left out (notices); for a page that lists them beside good runs.
    """
    try:
        df = RunReader(path, **kwargs).timeseries()
    except (RunReadError, FileNotFoundError, OSError, ValueError, RecursionError, MemoryError) as exc:
        return None, [_one_line(exc)]
    return df, list(df.attrs.get("errors", [])) + list(df.attrs.get("notices", []))
