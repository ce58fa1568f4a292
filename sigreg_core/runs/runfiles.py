"""A run folder on disk: its layout, the one-writer lock, and durable atomic writes.

Layout of a run written by :class:`sigreg_core.runs.writer.RunWriter`: ``index.sqlite`` (SQLite in
WAL mode while written; one row per logged step, :data:`SERIES_COLUMNS` as real columns, the
summary and the user's scalars as JSON) and ``snapshots/step_<step>.safetensors``.

* Durability: a snapshot is written to a temporary file in the same directory, ``fsync``'ed,
  renamed over its name (``os.replace``, atomic on POSIX) and the directory is ``fsync``'ed
  (:func:`_atomic_write`), so a crash leaves either the old file or the new one, never half.
* One writer per run: an exclusive non-blocking ``flock`` on ``.writer.lock`` (:func:`_acquire_lock`),
  released by the OS when the process dies; DDP ranks k > 0 write ``<run>-rank<k>`` beside it
  (:func:`rank_run_dir`).
* Clean-up: snapshot files no index row references (a writer killed between the two) are
  removed when a writer opens the run (:func:`_remove_orphans`).
"""
from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from pathlib import Path
from typing import Optional, Union

__all__ = ["INDEX_NAME", "SNAPSHOT_DIR", "SNAPSHOT_KEY", "FORMAT_VERSION", "LOCK_NAME", "SERIES_COLUMNS",
           "RunLockedError", "rank_run_dir"]

INDEX_NAME = "index.sqlite"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_KEY = "embeddings"
FORMAT_VERSION = 1
_TMP_MARK = ".tmp-"
LOCK_NAME = ".writer.lock"  # flock'ed by the one writer of a run (the OS releases it when that process dies)
_SNAPSHOT_RE = re.compile(r"step_-?\d+\.safetensors")  # the names _snapshot_name produces

#: real columns of the index, in order (the time series; ``summary`` and ``scalars`` are JSON)
SERIES_COLUMNS = (
    "n", "d", "m", "sigreg", "null_mean", "sigreg_over_null",
    "p_value", "log10_p", "rankme", "q50", "q95", "qmax", "slice_null_q95", "summary_seconds",
)
_TEXT_COLUMNS = ("verdict", "modes", "error")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    step INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    snapshot TEXT,
    {", ".join(f"{c} REAL" for c in SERIES_COLUMNS)},
    verdict TEXT,
    modes TEXT,
    error TEXT,
    summary TEXT,
    scalars TEXT
);
"""



# ----------------------------------------------------------------------------- helpers
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _snapshot_name(step: int) -> str:
    return f"step_{step:09d}.safetensors"


# ----------------------------------------------------------------------------- one writer per run
class RunLockedError(RuntimeError):
    """A second writer on a run folder another live process (or object) is writing; one line."""


def rank_run_dir(run_dir: Union[str, os.PathLike], rank: Optional[int]) -> Path:
    """The folder rank ``rank`` writes: the run itself for rank 0 / None, ``<run>-rank<k>`` beside it otherwise."""
    p = Path(run_dir)
    if rank is None or int(rank) == 0:
        return p
    if int(rank) < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    return p.with_name(f"{p.name}-rank{int(rank)}")


def _acquire_lock(run_dir: Path) -> int:
    """An exclusive, non-blocking ``flock`` on ``run_dir/.writer.lock``; returns its fd.

    The lock belongs to the open file, so it dies with the process that holds it (SIGKILL
    included) and never needs cleaning up; a stale lock file is harmless.  Raises
    :class:`RunLockedError` (one line) when another writer holds it, ``OSError`` when the
    folder cannot be written at all.
    """
    path = run_dir / LOCK_NAME
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise RunLockedError(
            f"run folder {run_dir} is already being written by another writer{who}; one writer per run: "
            "write from rank 0 only, or give each DDP rank its own folder with RunWriter(..., rank=rank)") from None
    except OSError:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError:
        pass  # the pid is only shown to a refused second writer
    return fd


def _release_lock(fd: Optional[int]) -> None:
    if fd is not None:
        try:
            os.close(fd)  # closing the last descriptor releases the flock
        except OSError:
            pass


def _remove_orphans(run_dir: Path, con: sqlite3.Connection) -> int:
    """Delete snapshot files the index does not reference; returns how many.

    A writer killed between forgetting a snapshot in the index and unlinking it (retention),
    or between writing a snapshot and indexing it, leaves files no step points to; under
    ``keep_last=3`` repeated kills left 8 files for 3 references.  Only names this writer
    produces (``step_<digits>.safetensors``) are touched.
    """
    try:
        referenced = {Path(s).name for (s,) in con.execute("SELECT snapshot FROM steps WHERE snapshot IS NOT NULL")}
    except sqlite3.Error:
        return 0
    removed = 0
    try:
        entries = list((run_dir / SNAPSHOT_DIR).iterdir())
    except OSError:
        return 0
    for p in entries:
        if _SNAPSHOT_RE.fullmatch(p.name) and p.name not in referenced and not p.is_symlink():
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed

