"""Where latent-health keeps what it computes once and reuses: one directory for everything.

``$LATENT_HEALTH_CACHE`` if set, else ``$XDG_CACHE_HOME/latent-health``, else
``~/.cache/latent-health``.  It holds the node-count-specialised CPU kernels
(``kernels/``), Monte Carlo nulls (``null-*.npz``) and the scores of snapshot
folders read by the Monitor page.  Deleting it only costs recomputation.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root", "atomic_write"]

CACHE_ENV = "LATENT_HEALTH_CACHE"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latent-health"


def atomic_write(path, write, *, prefix: str = ".tmp-", suffix: str = ".tmp") -> None:
    """Write a file so that readers see the old content or the new, never a part: ``write(fh)`` fills
    a temporary file in the same folder, which then replaces ``path`` (``os.replace``, atomic on POSIX).
    The temporary file is removed on any error, which is raised again."""
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
