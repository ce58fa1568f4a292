"""Where runs are: step numbers in file names, run folders, the discovery walk, confinement, versions.

A run is a :class:`~sigreg_core.runs.writer.RunWriter` directory (it holds an ``index.sqlite``)
or a plain folder of step-numbered snapshot files (``step_000100.npy``, ``emb-1200.pt``).
Everything here only looks at names and ``stat()`` results, never at file contents, and every
path is confined (issue 24: run folders are untrusted input): symlinks are resolved and must
stay inside the allowed roots (:func:`find_runs`, :func:`resolve_run_dir`) or inside the run
folder (:func:`snapshot_files`); listings are capped (:data:`MAX_FOLDER_ENTRIES` entries per
folder, :data:`MAX_RUNS_LISTED` runs) so a folder of 10^6 files costs a bounded scan.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Optional, Union

from sigreg_core.runs.writer import INDEX_NAME

__all__ = ["step_from_name", "is_run_dir", "snapshot_files", "find_runs", "resolve_run_dir", "run_version",
           "MAX_FOLDER_ENTRIES", "MAX_FOLDER_STEPS", "MAX_RUNS_LISTED"]

#: directory entries looked at in a folder run (a folder of 50 000 files cost > 90 s per read)
MAX_FOLDER_ENTRIES = 100_000
#: snapshot files of a folder run scored per read: the latest ones (older steps are left out, and said so)
MAX_FOLDER_STEPS = 256
#: runs listed by discovery at most
MAX_RUNS_LISTED = 500


_STEP_RE = re.compile(r"(\d+)(?!.*\d)")


def step_from_name(name: str) -> Optional[int]:
    """The step number a file name carries: the last run of digits in its stem (``emb-1200.pt`` → 1200)."""
    stem = name.split(".", 1)[0] if not name.startswith(".") else ""
    m = _STEP_RE.search(stem)
    return int(m.group(1)) if m else None


def is_run_dir(path: Union[str, os.PathLike]) -> bool:
    """A directory written by :class:`RunWriter` (holds an ``index.sqlite`` entry).

    A link in place of the index counts (the run is listed), so that the reader can refuse it
    with one line instead of the run silently vanishing or being read from elsewhere.
    """
    p = Path(path) / INDEX_NAME
    return p.is_file() or p.is_symlink()


def _snapshot_files(folder: Path, stop_after: Optional[int] = None, stats: Optional[dict] = None) -> dict:
    """{step: path} of the step-numbered snapshot files directly in ``folder``.

    At most :data:`MAX_FOLDER_ENTRIES` entries are looked at (``stats["truncated"]`` says when
    more were there); ``stop_after`` ends the scan once that many are found (discovery).
    """
    from sigreg_core.inputs.loading import SUPPORTED_EXTENSIONS

    files: dict = {}
    try:
        inside = folder.resolve()
        it = os.scandir(folder)
    except (OSError, RuntimeError):
        return {}
    seen = 0
    with it:
        for entry in it:
            seen += 1
            if seen > MAX_FOLDER_ENTRIES:
                if stats is not None:
                    stats["truncated"] = True
                break
            name = entry.name
            if name.startswith("."):
                continue
            ext = os.path.splitext(name)[1].lower()
            if ext not in SUPPORTED_EXTENSIONS:
                continue
            step = step_from_name(name)
            if step is None:
                continue
            p = Path(entry.path)
            try:
                if entry.is_symlink():
                    if not _within(p, [inside]) or not p.is_file():  # never a link out of the folder
                        continue
                elif not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            if step not in files or name < files[step].name:  # deterministic whatever the directory order
                files[step] = p
            if stop_after is not None and len(files) >= stop_after:
                break
    return dict(sorted(files.items()))


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
        if len(out) >= MAX_RUNS_LISTED:
            return
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
        if len(_snapshot_files(rp, stop_after=2)) >= 2:
            out.append(rp)
        if depth >= max_depth:
            return
        try:
            children = []
            with os.scandir(rp) as it:
                for i, e in enumerate(it):
                    if i >= MAX_FOLDER_ENTRIES:
                        break
                    if not e.name.startswith(".") and e.is_dir():
                        children.append(Path(e.path))
            children.sort()
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
        if not is_run_dir(resolved) and not _snapshot_files(resolved, stop_after=1):
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
    for step, f in list(_snapshot_files(p).items())[-MAX_FOLDER_STEPS:]:
        try:
            st_ = f.stat()
            out.append((f.name, st_.st_mtime_ns, st_.st_size))
        except OSError:
            continue
    return tuple(out)


#: the public name (``_snapshot_files`` is kept for the callers of the reader)
snapshot_files = _snapshot_files
