"""The folder-run summary cache: SQLite rows of (path, mtime_ns, size, settings) -> summary JSON.

A folder of snapshot files has no index, so each file is scored once
(:func:`sigreg_core.runs.summary.summarize`) and its summary kept here, keyed by what would
change it: the file's path, modification time and size, and the scoring settings (slices,
seed, preset, row and byte limits) as canonical JSON.  A cache that cannot be opened
(read-only disk, locked file) is no cache: every file is scored again, nothing fails.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Optional

from sigreg_core.runs.summary import _jsonable
from sigreg_core.util.cache import cache_root

__all__ = ["default_cache_dir", "SummaryCache"]


def default_cache_dir() -> Path:
    """The package's cache directory (:func:`sigreg_core.util.cache.cache_root`)."""
    return cache_root()


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


SummaryCache = _SummaryCache
