"""Every run below the allowed roots: found once, re-found only when a directory changed; one name and colour each.

The walk itself is :func:`sigreg_core.runs.locate.find_runs` (which confines every run to
the allowed roots, symlinks resolved).  This module adds what a dashboard with hundreds of
runs needs:

* **a cheap change check** — after a walk, the modification times of the directories that
  could gain a run (every directory down to the walk's depth that is not itself a
  ``RunWriter`` run) are kept; the next call only ``stat()``s those.  A new run directory,
  a new ``index.sqlite`` or a new snapshot file changes the mtime of the directory that
  holds it, so the walk is redone exactly when the set of runs can have changed;
* **newest first** — runs sorted by their last write (the index or newest snapshot file)
  as of the walk, newest first, so the order does not jump on every refresh of a live run;
* :func:`run_name` — one stable name per run: its path below the allowed root that holds it
  (POSIX separators); the same on every page and across reloads;
* :func:`run_colour` — one stable colour per run: a hash (SHA-1) of that name into
  :data:`RUN_COLOURS`, a palette of blues, purples, pinks, browns and greys kept apart from
  the verdict colours of :mod:`sigreg_core.assessment.severity` (green, amber, vermilion, red).
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from sigreg_core.runs.locate import find_runs, is_run_dir
from sigreg_core.runs.writer import INDEX_NAME

__all__ = ["RunInfo", "discover_runs", "run_name", "run_colour", "RUN_COLOURS", "clear_cache", "names_unique", "newest",
           "run_config"]

#: run colours: none of them a verdict colour (green, amber, vermilion, red and the ramp between)
RUN_COLOURS = ("#0072B2", "#CC79A7", "#6A3D9A", "#56B4E9", "#1B1B1B", "#8C564B", "#17BECF", "#9E9AC8",
               "#1F3A5F", "#B07AA1", "#3F7FBF", "#7B4F9E", "#5E5E5E", "#2C8FA3", "#A05195", "#4B6A88")

_MAX_DEPTH = 3


@dataclass(frozen=True)
class RunInfo:
    """One discovered run: its resolved path, stable name and colour, last write (epoch s), kind."""

    path: str
    name: str
    colour: str
    mtime: float
    kind: str  # "run" (RunWriter) or "folder" (step-numbered snapshot files)


def run_name(path: Union[str, os.PathLike], roots: Sequence[Union[str, os.PathLike]]) -> str:
    """The run's path below the first allowed root that holds it (the root's own name for the root itself)."""
    p = Path(path)
    try:
        p = p.resolve()
    except (OSError, RuntimeError):
        pass
    for r in roots:
        try:
            root = Path(r).resolve()
        except (OSError, RuntimeError):
            continue
        if p == root:
            return root.name
        if p.is_relative_to(root):
            return p.relative_to(root).as_posix()
    return p.as_posix()


def run_colour(name: str) -> str:
    """A colour of :data:`RUN_COLOURS` fixed by the run's name alone (same on every page, every reload)."""
    h = int.from_bytes(hashlib.sha1(str(name).encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return RUN_COLOURS[h % len(RUN_COLOURS)]


def _last_write(p: Path) -> float:
    names = [INDEX_NAME, INDEX_NAME + "-wal"] if is_run_dir(p) else None
    best = 0.0
    try:
        if names:
            for n in names:
                try:
                    best = max(best, (p / n).stat().st_mtime)
                except OSError:
                    pass
        else:
            with os.scandir(p) as it:
                for e in it:
                    try:
                        if e.is_file(follow_symlinks=False):
                            best = max(best, e.stat(follow_symlinks=False).st_mtime)
                    except OSError:
                        continue
    except OSError:
        pass
    return best


def _watch_dirs(roots: Sequence[Path], max_depth: int) -> dict:
    """{directory: mtime_ns} of every directory (not a RunWriter run) down to ``max_depth`` below the roots."""
    out: dict = {}

    def visit(p: Path, depth: int) -> None:
        try:
            out[str(p)] = p.stat().st_mtime_ns
        except OSError:
            return
        if depth >= max_depth:
            return
        try:
            with os.scandir(p) as it:
                kids = [Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for k in kids:
            if not is_run_dir(k):
                visit(k, depth + 1)

    for r in roots:
        visit(r, 0)
    return out


def _unchanged(watch: dict) -> bool:
    for d, mt in watch.items():
        try:
            if os.stat(d).st_mtime_ns != mt:
                return False
        except OSError:
            return False
    return True


_cache: dict = {}
_lock = threading.Lock()
stats = {"walks": 0, "checks": 0}  # how often the full walk ran vs. the cheap check sufficed (tests, benchmarks)


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def discover_runs(roots: Iterable[Union[str, os.PathLike]], *, max_depth: int = _MAX_DEPTH,
                  extra: Iterable[Union[str, os.PathLike]] = ()) -> list[RunInfo]:
    """Every run below ``roots`` (plus ``extra`` run directories already confined), newest first.

    Cached per ``roots``: a call costs one ``stat()`` per watched directory unless one of
    them changed, in which case :func:`find_runs` walks again.
    """
    root_list = []
    for r in roots:
        try:
            root_list.append(Path(r).resolve())
        except (OSError, RuntimeError):
            continue
    key = (tuple(str(r) for r in root_list), int(max_depth))
    with _lock:
        hit = _cache.get(key)
        if hit is not None and _unchanged(hit[0]):
            stats["checks"] += 1
            found = hit[1]
        else:
            stats["walks"] += 1
            watch = _watch_dirs(root_list, max_depth)
            paths = find_runs(root_list, max_depth=max_depth)
            found = [RunInfo(str(p), run_name(p, root_list), run_colour(run_name(p, root_list)), _last_write(p),
                             "run" if is_run_dir(p) else "folder") for p in paths]
            found.sort(key=lambda i: (-i.mtime, i.name))
            _cache[key] = (watch, found)
    out = list(found)
    have = {i.path for i in out}
    for e in extra:
        p = Path(e)
        if str(p) not in have:
            nm = run_name(p, root_list)
            out.append(RunInfo(str(p), nm, run_colour(nm), _last_write(p), "run" if is_run_dir(p) else "folder"))
            have.add(str(p))
    return out


def names_unique(infos: Sequence[RunInfo]) -> dict:
    """{path: name}, a name shared by two runs (two roots holding the same relative path) suffixed with its root."""
    count: dict = {}
    for i in infos:
        count[i.name] = count.get(i.name, 0) + 1
    return {i.path: (i.name if count[i.name] == 1 else f"{i.name} [{Path(i.path).as_posix()}]") for i in infos}


def newest(infos: Sequence[RunInfo], pattern: Optional[str] = None, limit: Optional[int] = None) -> list[RunInfo]:
    """The runs whose name matches ``pattern`` (regex, case-insensitive; plain text if not a regex), newest first,
    at most ``limit``."""
    import re

    out = list(infos)
    if pattern:
        try:
            rx = re.compile(pattern, re.IGNORECASE)
            out = [i for i in out if rx.search(i.name)]
        except re.error:
            out = [i for i in out if pattern.lower() in i.name.lower()]
    return out[:limit] if limit else out


def run_config(path: Union[str, os.PathLike]) -> dict:
    """The hyper-parameters a run recorded (``RunWriter(..., config={...})``); {} for runs without (or folders)."""
    p = Path(path)
    if not is_run_dir(p):
        return {}
    try:
        from sigreg_core.runs.reader import RunReader

        cfg = RunReader(p).meta().get("run_config") or {}
    except Exception:  # a corrupt or hostile index: no config, the page reports the run's error elsewhere
        return {}
    return {str(k): v for k, v in cfg.items()} if isinstance(cfg, dict) else {}
