"""The on-disk cache of the compiled CPU kernels: one private folder, checked, or none.

The compiled kernels (:mod:`sigreg_core.core.ecf_kernels`, :mod:`sigreg_core.core.draw_kernel`)
are cached by numba, whose cache is an index *pickle* plus object code per function: whoever
can write the folder it is read from can run code in this process.  The generated
node-count-specialised kernel sources are Python.  So both live only in

    <cache root>/kernels     (``$LATENT_HEALTH_CACHE``, ``$XDG_CACHE_HOME/latent-health`` or
                              ``~/.cache/latent-health``; see :mod:`sigreg_core.util.cache`)

created owner-only (mode 0700) and, before every first use in a process, checked to be a
real directory (not a symlink) owned by this user (``st_uid == os.getuid()``) that neither
group nor others can write.  A folder that fails the check, or cannot be created, is
refused with one line (a :class:`KernelCacheWarning`) and the kernels are compiled in
memory instead (slower first call, same results).  There is no shared fallback folder
(``$TMPDIR`` is writable by everyone), and numba's own locations (``__pycache__`` next to
the module, ``$NUMBA_CACHE_DIR``, ``~/.cache/numba``, ``$NUMBA_CACHE_LOCATOR_CLASSES``) are
never used for these kernels: :func:`attach` gives each dispatcher a cache whose only
locator is the checked folder.  Generated sources are never imported from disk either:
:mod:`sigreg_core.core.ecf_kernels` compiles the source it generates itself and writes the
file only as the stamp numba's index is keyed to (rewritten when its bytes differ).
"""
from __future__ import annotations

import inspect
import os
import stat
import sys
import warnings
from pathlib import Path

from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator, _SourceFileBackedLocatorMixin

__all__ = ["KernelCacheWarning", "check_private", "private_kernel_dir", "attach"]


class KernelCacheWarning(UserWarning):
    """The kernel cache folder was refused; kernels are compiled in memory."""


def kernel_dir() -> Path:
    from sigreg_core.util.cache import cache_root

    return cache_root() / "kernels"


def check_private(folder: Path) -> "str | None":
    """Why ``folder`` may not hold code for this process, or None when it may."""
    try:
        st = os.lstat(folder)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


_STATE: dict = {}


def private_kernel_dir() -> "Path | None":
    """The checked private kernel folder (created 0700 if absent), or None after one warning line.

    Decided once per process and cache root.
    """
    folder = kernel_dir()
    key = str(folder)
    if key in _STATE:
        return _STATE[key]
    why = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    except OSError as e:
        why = f"cannot be created ({e.strerror or e})"
    if why is None:
        why = check_private(folder)
    if why is not None:
        warnings.warn(f"latent-health: kernel cache {folder} refused: it {why}; compiling the kernels in "
                      "memory (no disk cache)", KernelCacheWarning, stacklevel=3)
        _STATE[key] = None
        return None
    _STATE[key] = folder
    return folder


class _PrivateLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """numba cache locator that points into the checked private folder only."""

    folder: Path = Path()

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(self.folder / "numba" / self.get_suitable_cache_subpath(py_file))

    def ensure_cache_path(self):
        os.makedirs(self._cache_path, mode=0o700, exist_ok=True)

    def get_cache_path(self):
        return self._cache_path


def _cache_class(folder: Path):
    locator = type("_Locator", (_PrivateLocator,), {"folder": folder})

    class _Impl(CompileResultCacheImpl):
        def __init__(self, py_func):  # the locator search of numba, with ours as the only locator
            self._lineno = py_func.__code__.co_firstlineno
            qualname = getattr(py_func, "__qualname__", py_func.__name__)
            source = inspect.getfile(py_func)
            found = locator.from_function(py_func, source)
            if found is None:
                raise RuntimeError(f"no private cache for {qualname}")
            self._locator = found
            modname = os.path.splitext(os.path.basename(source))[0]
            self._filename_base = self.get_filename_base(f"{modname}.{qualname}", getattr(sys, "abiflags", ""))

    return type("_PrivateFunctionCache", (FunctionCache,), {"_impl_class": _Impl})


_CLASSES: dict = {}


def attach(dispatcher, folder: "Path | None" = None):
    """Give a numba dispatcher (compiled without ``cache=True``) a disk cache in the private folder.

    ``folder`` defaults to :func:`private_kernel_dir`; when that is refused the dispatcher
    keeps no disk cache.  Returns the dispatcher.
    """
    if folder is None:
        folder = private_kernel_dir()
    if folder is None:
        return dispatcher
    cls = _CLASSES.get(str(folder))
    if cls is None:
        cls = _CLASSES[str(folder)] = _cache_class(folder)
    try:
        dispatcher._cache = cls(dispatcher.py_func)
    except Exception:  # pragma: no cover - an odd filesystem: compile in memory
        pass
    return dispatcher
