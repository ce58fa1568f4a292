"""Where latent-health keeps what it computes once and reuses: one directory for everything.

``$LATENT_HEALTH_CACHE`` if set, else ``$XDG_CACHE_HOME/latent-health``, else
``~/.cache/latent-health``.  It holds the node-count-specialised CPU kernels
(``kernels/``), Monte Carlo nulls (``null-*.npz``) and the scores of snapshot
folders read by the Monitor page.  Deleting it only costs recomputation.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

CACHE_ENV = "LATENT_HEALTH_CACHE"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latent-health"
