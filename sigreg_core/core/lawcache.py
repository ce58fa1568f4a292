"""On-disk cache of the per-slice null-law tables (:mod:`sigreg_core.core.nulllaw`).

A null law is the weighted chi-square(1) mixture Q = sum_j lambda_j chi2_1 of one
slice's N-scaled Epps–Pulley statistic (LeJEPA, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312).  Its table of log P(Q > q) takes about 140 adaptive Imhof
integrals (1961) to build, about a second per grid, and it only depends on the grid
(nodes t_k, weights c_k), on whether slices are standardised, and on the build
algorithm.  So each process reads the table back from

    cache_root() / "nulllaw" / "law-<sha256 of (version, recipe, nodes, weights, standardized)>.npz"

where the recipe fingerprints the bytecode and constants of the functions that build
the table, so editing the algorithm invalidates old entries by itself.

instead of rebuilding it.  The file is written atomically (temporary file in the same
directory, then ``os.replace``) and read with ``np.load(allow_pickle=False)``: nothing
is ever unpickled.  An entry is used only if it holds the exact same nodes and weights
(bitwise), the same version, a well-formed table (finite, q increasing, log P
non-increasing, positive descending eigenvalues) **and** its digest: the SHA-256 of
(version, the recipe's hash, standardized, nodes, weights, eigenvalues, q, log P) written
with it (issue 24).  So a table altered after it was written, even one that is still
well-formed, or a table written by other code under this name, is never used; anything
else (a truncated file, a foreign file under that name, an old version) is ignored too,
then rebuilt and overwritten.
The arrays are stored as float64 bytes, so a cached table is bit-identical to a fresh
build.  A read-only cache location only costs the rebuild.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["LAW_CACHE_VERSION", "law_cache_path", "load_law_table", "save_law_table", "table_digest"]

#: Bump when the file layout changes (changes of the table's code change the recipe by themselves).
LAW_CACHE_VERSION = 2  # 2: a digest of the table and of the code that made it is stored with it
_FIELDS = ("eigenvalues", "q_table", "logsf_table")


def _key_arrays(nodes, weights) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(nodes, dtype=np.float64).ravel(),
            np.ascontiguousarray(weights, dtype=np.float64).ravel())


def law_cache_path(nodes, weights, standardized: bool, root: Optional[Path] = None, recipe: bytes = b"") -> Path:
    """Where the table of this grid lives (the name hashes version, recipe, nodes, weights, standardized).

    ``recipe`` fingerprints the code that builds the table (:func:`nulllaw.law_recipe`), so a
    changed algorithm never reads tables written by the old one, even without a version bump.
    """
    t, c = _key_arrays(nodes, weights)
    h = hashlib.sha256()
    h.update(f"latent-health null law v{LAW_CACHE_VERSION} standardized={bool(standardized)}|".encode())
    h.update(hashlib.sha256(recipe).digest())
    h.update(t.tobytes())
    h.update(b"|")
    h.update(c.tobytes())
    if root is None:
        from sigreg_core.util.cache import cache_root  # the core imports nothing above it at module level

        root = cache_root()
    base = Path(root)
    return base / "nulllaw" / f"law-{h.hexdigest()[:24]}.npz"


def table_digest(nodes, weights, standardized: bool, eigenvalues, q_table, logsf_table,
                 recipe: bytes = b"") -> str:
    """SHA-256 (hex) of everything an entry holds, keyed to the code that built it (``recipe``).

    Written with every table and recomputed on every read: a table whose bytes changed after
    it was written does not match, and is rebuilt instead of used.
    """
    t, c = _key_arrays(nodes, weights)
    h = hashlib.sha256()
    h.update(f"latent-health null-law table v{LAW_CACHE_VERSION} standardized={bool(standardized)}|".encode())
    h.update(hashlib.sha256(recipe).digest())
    for a in (t, c, eigenvalues, q_table, logsf_table):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(f"|{a.size}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _well_formed(lam: np.ndarray, q: np.ndarray, ls: np.ndarray) -> bool:
    if lam.ndim != 1 or q.ndim != 1 or ls.shape != q.shape or lam.size == 0 or q.size < 4:
        return False
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(q)) and np.all(np.isfinite(ls))):
        return False
    return bool(np.all(lam > 0) and np.all(np.diff(lam) <= 0) and q[0] == 0.0 and np.all(np.diff(q) > 0)
                and ls[0] <= 0.0 and np.all(np.diff(ls) < 0))


def load_law_table(nodes, weights, standardized: bool, root: Optional[Path] = None,
                   recipe: bytes = b"") -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(eigenvalues, q_table, logsf_table) from the cache, or None when absent or not trustworthy."""
    path = law_cache_path(nodes, weights, standardized, root, recipe)
    if not path.is_file():
        return None
    t, c = _key_arrays(nodes, weights)
    try:
        with np.load(path, allow_pickle=False) as f:
            if set(f.files) != {*_FIELDS, "nodes", "weights", "standardized", "version", "digest"}:
                return None
            if int(f["version"]) != LAW_CACHE_VERSION or bool(f["standardized"]) != bool(standardized):
                return None
            if f["nodes"].dtype != np.float64 or not np.array_equal(f["nodes"], t):
                return None
            if f["weights"].dtype != np.float64 or not np.array_equal(f["weights"], c):
                return None
            lam, q, ls = (np.array(f[k]) for k in _FIELDS)
            stored = f["digest"]
            if stored.dtype.kind != "U" or stored.shape != ():
                return None
            stored = str(stored)
    except Exception:  # truncated zip, bad header, object array refused, ...: rebuild
        return None
    if any(a.dtype != np.float64 for a in (lam, q, ls)) or not _well_formed(lam, q, ls):
        return None
    if stored != table_digest(t, c, standardized, lam, q, ls, recipe):
        return None  # altered since it was written, or written by other code: rebuild, never use
    return lam, q, ls


def save_law_table(nodes, weights, standardized: bool, eigenvalues, q_table, logsf_table,
                   root: Optional[Path] = None, recipe: bytes = b"") -> Optional[Path]:
    """Write the table atomically; returns its path, or None if the cache location is not writable."""
    path = law_cache_path(nodes, weights, standardized, root, recipe)
    t, c = _key_arrays(nodes, weights)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".law-", suffix=".npz.tmp")
        lam, q, ls = (np.asarray(a, dtype=np.float64) for a in (eigenvalues, q_table, logsf_table))
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, eigenvalues=lam, q_table=q, logsf_table=ls,
                     nodes=t, weights=c, standardized=np.bool_(standardized),
                     version=np.int64(LAW_CACHE_VERSION),
                     digest=np.str_(table_digest(t, c, standardized, lam, q, ls, recipe)))
        os.replace(tmp, path)
        return path
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return None
