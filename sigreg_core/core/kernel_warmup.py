"""Compile the CPU kernels in the background; never make an interactive caller wait for numba.

The ECF kernels (:mod:`sigreg_core.core.ecf_kernels`) are specialised to a grid's node count K
and to whether the grid starts at t = 0.  Compiling one grid's kernels takes 3-20 s of CPU
(measured on a 2-core AVX-512 EPYC with an empty cache: lejepa 17 nodes 4 s, gist 64 nodes 12.6 s,
modulus 20 nodes 8 s), which is what the first use of a preset waited for on a fresh server with an
empty kernel cache (issue 23), although the statistic itself takes 0.1-0.3 s.

In *non-blocking* mode (the dashboard turns it on, :func:`set_nonblocking`) a caller that needs a
grid whose kernels are not loaded in this process yet gets the exact torch path of
:mod:`sigreg_core.core.ecf` instead (the same sums, ``sum_n cos(t_k x_n)`` and ``sum_n sin(t_k x_n)``
with float32 terms accumulated in float64; it agrees with the kernel to float32 rounding, a relative
1e-6 on the statistic, checked in ``tests/test_kernel_warmup.py``), and the grid is queued here:

* one worker thread per process takes the queued grids in order: the kernels generic in K first
  (one compile, every grid), then the grid asked for last;
* a Monte Carlo null (hundreds of evaluations, :func:`bulk`) waits for the generic kernels instead;
* it runs ``python -m sigreg_core.core.kernel_warmup K:Z ...`` in a child process (the generic
  kernels, which serve every grid, at normal priority; the K-specialised ones at ``nice`` +10): the child compiles into the private on-disk kernel cache
  (:mod:`sigreg_core.core.kernel_cache`), so the compile holds neither this process's GIL nor the
  cores a foreground computation needs;
* then it loads each grid's kernels in this process (from that cache: a fraction of a second) by
  calling them exactly as :mod:`sigreg_core.core.ecf` does, and marks the grid ready.

Without a usable private cache folder the child's work could not be shared, so the thread compiles
in this process instead.  Outside non-blocking mode (the library, the CLI, a training loop) nothing
changes: the first call compiles and waits, as before.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Optional

import numpy as np

__all__ = ["set_nonblocking", "nonblocking", "grid_key", "ready", "any_ready", "mode", "usable", "GENERIC", "request", "wait_ready",
           "status", "warm_in_process", "bulk"]

#: the dashboard sets it (or ``LATENT_HEALTH_KERNELS=background`` in the environment)
_NONBLOCKING = os.environ.get("LATENT_HEALTH_KERNELS", "").strip().lower() == "background"

_lock = threading.Condition()
_ready: set = set()
_queue: list = []  # grid keys, first = next
_failed: dict = {}
_thread: Optional[threading.Thread] = None
_local = threading.local()  # the worker itself compiles in blocking mode
_log: list = []  # (key, seconds compiling in the child, seconds loading here)

#: the key of the kernels generic in K (one compile serves every grid, a little slower than the specialised)
GENERIC = ("generic",)


def set_nonblocking(on: bool = True) -> None:
    """Turn non-blocking mode on (the dashboard) or off (the default: the first call compiles)."""
    global _NONBLOCKING
    _NONBLOCKING = bool(on)


def nonblocking() -> bool:
    return _NONBLOCKING and not getattr(_local, "blocking", False)


def grid_key(nodes) -> tuple:
    """The kernels a grid needs are those of (K, grid starts at 0)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    return (int(len(nodes)), bool(nodes[0] == 0.0))


def ready(key: tuple) -> bool:
    with _lock:
        return key in _ready


def any_ready() -> bool:
    with _lock:
        return bool(_ready)


def mode(nodes) -> Optional[str]:
    """Which code may score this grid now: ``"specialised"`` (the K-specialised kernels; always in
    blocking mode), ``"generic"`` (the one kernel for every K, while the grid's own compile), or None
    (nothing compiled yet: the exact torch path).  A grid not ready is queued (behind the generic
    kernels, which serve every grid)."""
    if not nonblocking():
        return "specialised"
    if nodes is None:  # the node-free moment kernel is one of the generic kernels
        return "generic" if ready(GENERIC) else None
    key = grid_key(nodes)
    with _lock:
        if key in _ready:
            return "specialised"
        queue = key not in _failed and key not in _queue
        generic = GENERIC in _ready
    if queue:
        request([key], front=True)
    if not generic and getattr(_local, "bulk", False):
        # hundreds of evaluations follow (a Monte Carlo null): waiting for the generic kernels (seconds)
        # costs far less than running them all on the torch path
        request([GENERIC], front=True)
        generic = wait_ready([GENERIC], timeout=600)
    return "generic" if generic else None


@contextmanager
def bulk():
    """Many evaluations follow on this thread (a Monte Carlo null): in non-blocking mode they wait for the
    generic kernels instead of taking the torch path (which is several times slower per evaluation)."""
    prev = getattr(_local, "bulk", False)
    _local.bulk = True
    try:
        yield
    finally:
        _local.bulk = prev


def usable(nodes) -> bool:
    """May the caller run compiled kernels (specialised or generic) on this grid now?"""
    return mode(nodes) is not None


def request(keys: Iterable[tuple], front: bool = False) -> None:
    """Queue grids (``grid_key`` tuples) to be compiled and loaded in the background."""
    global _thread
    with _lock:
        for key in (list(keys)[::-1] if front else list(keys)):
            key = GENERIC if key == GENERIC else (int(key[0]), bool(key[1]))
            if key in _ready or key in _failed:
                continue
            if key in _queue:
                _queue.remove(key)
            if front:  # next, though never ahead of the generic kernels (they serve every grid)
                _queue.insert(1 if _queue and _queue[0] == GENERIC else 0, key)
            else:
                _queue.append(key)
        _lock.notify_all()
        if _queue and (_thread is None or not _thread.is_alive()):
            _thread = threading.Thread(target=_worker, name="latent-health-kernels", daemon=True)
            _thread.start()


def wait_ready(keys: Iterable[tuple], timeout: float = 600.0) -> bool:
    """Block until every grid in keys is ready (tests, benchmarks); False on timeout or failure."""
    keys = [k if k == GENERIC else (int(k[0]), bool(k[1])) for k in keys]
    deadline = time.monotonic() + timeout
    with _lock:
        while not all(k in _ready for k in keys):
            if any(k in _failed for k in keys) or time.monotonic() > deadline:
                return False
            _lock.wait(0.2)
    return True


def status() -> dict:
    with _lock:
        return {"ready": sorted(_ready, key=str), "queued": list(_queue), "failed": dict(_failed), "log": list(_log)}


def _warm_generic() -> None:
    """The generic kernels, called with the argument types :mod:`sigreg_core.core.ecf` passes."""
    from sigreg_core.core import ecf

    nk = ecf.numba_kernels()
    if nk is None:
        raise RuntimeError("numba is not available")
    k = 5
    xp = np.ascontiguousarray(np.random.default_rng(0).standard_normal((64, ecf.TILE)).astype(np.float32))
    out_c = np.zeros((ecf.TILE, k), np.float64)
    out_s = np.zeros((ecf.TILE, k), np.float64)
    nk.ecf_sums_generic(xp, 0.25, 0.125, k, out_c, out_s)
    cc = np.zeros((k, ecf.TILE), np.float32)
    nk.ecf_weighted_generic(xp, 0.25, 0.125, cc, cc.copy(), np.empty(xp.shape, np.float32))
    nk.moment_sums_kernel(xp, np.zeros(ecf.TILE, np.float64), np.zeros((ecf.TILE, 4), np.float64))


def _nodes(key: tuple) -> np.ndarray:
    k, zero = key
    return (0.0 if zero else 0.25) + 0.125 * np.arange(k, dtype=np.float64)


def warm_in_process(key: tuple) -> None:
    """Compile (or load from the disk cache) every kernel of grid ``key`` in this process, through the
    same calls :mod:`sigreg_core.core.ecf` makes (so the same numba signatures)."""
    import torch

    from sigreg_core.core import ecf

    if key == GENERIC:
        _warm_generic()
        return
    nodes = _nodes(key)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((64, 40)).astype(np.float32))
    shift = torch.zeros(40, dtype=torch.float64)
    prev = getattr(_local, "blocking", False)
    _local.blocking = True
    try:
        ecf.ecf_sums(x, nodes)
        ecf.ecf_and_moment_sums(x, nodes, shift)
        ecf.moment_sums(x, shift)
        k = len(nodes)
        ecf.ecf_weighted_sum(x, nodes, torch.zeros(40, k, dtype=torch.float32), torch.zeros(40, k, dtype=torch.float32))
    finally:
        _local.blocking = prev


def _child_compile(keys: list) -> Optional[str]:
    """Compile keys into the on-disk cache in a niced child process; None on success, else why not."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("LATENT_HEALTH_KERNELS", None)
    args = ["generic" if k == GENERIC else f"{k[0]}:{int(k[1])}" for k in keys]
    try:
        res = subprocess.run([sys.executable, "-m", "sigreg_core.core.kernel_warmup", *args], env=env,
                             capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["failed"])[-1][:200]


def _worker() -> None:
    from sigreg_core.core import kernel_cache

    while True:
        with _lock:
            if not _queue:
                return
            key = _queue[0]
        t0 = time.perf_counter()
        why = None
        if kernel_cache.private_kernel_dir() is not None:
            why = _child_compile([key])
        t1 = time.perf_counter()
        try:
            warm_in_process(key)  # loads what the child compiled (or compiles here, without a cache folder)
        except Exception as exc:  # pragma: no cover - a broken numba: the torch path stays
            why = why or f"{type(exc).__name__}: {exc}"
            with _lock:
                _failed[key] = why
        else:
            with _lock:
                _ready.add(key)
        t2 = time.perf_counter()
        with _lock:
            _log.append((key, round(t1 - t0, 3), round(t2 - t1, 3)))
            if key in _queue:
                _queue.remove(key)
            _lock.notify_all()


def _main(argv: list) -> int:
    if argv != ["generic"]:  # the generic kernels serve every preset: at full priority; the rest below it
        try:
            os.nice(10)  # below the server's foreground work
        except (AttributeError, OSError):  # pragma: no cover - no nice on this platform
            pass
    for arg in argv:
        if arg == "generic":
            warm_in_process(GENERIC)
            continue
        k, z = arg.split(":")
        warm_in_process((int(k), bool(int(z))))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
