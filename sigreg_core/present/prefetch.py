"""Make every preset ready before the user asks for it (issue 23): one background worker per process.

What a first use of a preset waits for, on a fresh server with an empty cache, is not the
statistic (0.1-0.3 s at 2048 x 64) but three things made once per grid or configuration:

* the null-law table of the grid, Q = sum_j lambda_j chi2_1 tabulated by Imhof's (1961)
  integral (:mod:`sigreg_core.core.nulllaw`, cached on disk by :mod:`sigreg_core.core.lawcache`),
  plain and per-slice standardised;
* the node-count-specialised CPU kernel of the ECF sums, compiled by numba on first use
  (:mod:`sigreg_core.core.ecf_kernels`, cached on disk);
* for presets without an exact law (the modulus form) and the principal family, the Monte
  Carlo null at the data's (N, D, M, seed) (:mod:`sigreg_core.assessment.montecarlo`, cached).

:class:`Prefetcher` runs, one job at a time on a daemon thread: first (``warm_grids``) the
tables and kernels of every shipped preset, by scoring a small N(0, I) batch under each; then
(``want_reports``) the full report of the data on the page under every other preset, with the
page's other settings, into the page's report cache.  Nothing is approximated: the tables,
kernels and reports are exactly the ones a click would build, only built earlier.  The worker
waits while any page computes in the foreground (:func:`foreground`), so it never slows a
click down; a newer request replaces an older one between two presets, and reports are only
prefetched for sets small enough to be cheap (``MAX_PREFETCH_VALUES``).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from contextlib import contextmanager
from typing import Optional

import numpy as np

__all__ = ["Prefetcher", "foreground", "warm_grid", "start_kernels", "enabled", "MAX_PREFETCH_VALUES", "PREFETCH_ENV"]

#: set to 0 to turn the background work off (the test suite does: it counts report computations)
PREFETCH_ENV = "LATENT_HEALTH_PREFETCH"


def enabled() -> bool:
    return os.environ.get(PREFETCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")

#: reports of other presets are prefetched only for sets of at most this many values (N x D)
MAX_PREFETCH_VALUES = 4_194_304

_busy = 0
_cv = threading.Condition()


@contextmanager
def foreground():
    """Mark a computation the user waits for: the background worker pauses until it ends."""
    global _busy
    with _cv:
        _busy += 1
    try:
        yield
    finally:
        with _cv:
            _busy -= 1
            _cv.notify_all()


def _wait_for_idle(stop: threading.Event, grace: float = 0.3) -> None:
    """Return once no foreground computation has run for ``grace`` seconds (or on ``stop``)."""
    while not stop.is_set():
        with _cv:
            while _busy and not stop.is_set():
                _cv.wait(0.2)
        time.sleep(grace)  # a rerun right after a compute (the page drawing) should not meet the worker
        with _cv:
            if not _busy:
                return


def start_kernels(first: Optional[str] = None, presets: Optional[list] = None) -> list:
    """Non-blocking kernels for this process (:mod:`sigreg_core.core.kernel_warmup`): a preset whose
    compiled kernels are not loaded yet is scored on the exact torch path, and every preset's kernels
    are compiled in a niced child process, ``first`` (the page's preset) first.  Returns the queue."""
    from sigreg_core.core import kernel_warmup as kw
    from sigreg_core.core.presets import PRESETS, get_preset

    names = list(presets or PRESETS)
    if first in names:
        names.remove(first)
        names.insert(0, first)
    keys = [kw.GENERIC]  # one compile that serves every preset, then each preset's own, page's first
    for name in names:
        key = kw.grid_key(get_preset(name).nodes)
        if key not in keys:
            keys.append(key)
    kw.set_nonblocking(True)
    kw.request(keys)
    return keys


def warm_grid(preset: str, compile_kernels: bool = True) -> None:
    """Build the null-law tables and compile the kernels one preset needs (exactly, once per grid)."""
    from sigreg_core.core import kernel_warmup as kw
    from sigreg_core.core import nulllaw as nl
    from sigreg_core.present.report import Settings, build_report

    if nl.has_exact_law(preset):
        nl.slice_law(preset)
        nl.slice_law(preset, standardized=True)
    if compile_kernels and kw.nonblocking():  # compiled by the kernel worker, off this process's GIL
        from sigreg_core.core.presets import get_preset

        kw.request([kw.grid_key(get_preset(preset).nodes)])
    elif compile_kernels:
        z = np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32)
        build_report(z, Settings(preset=preset, num_slices=32, null_draws=0))  # compiles this grid's kernels


class Prefetcher:
    """The background worker (one per server process: hold it in ``st.cache_resource``)."""

    def __init__(self, report_cache, presets: Optional[list] = None) -> None:
        from sigreg_core.core.presets import PRESETS

        self.cache = report_cache
        self.presets = list(presets or PRESETS)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._job = None  # (generation, digest, z, settings)
        self._gen = 0
        self._grids = False
        self._thread: Optional[threading.Thread] = None
        self.grids_ready: list[str] = []
        self.prefetched: list[tuple] = []  # (digest, settings key) of reports built here
        self.errors: list[str] = []

    # ---------------------------------------------------------------- requests
    def warm_grids(self) -> None:
        """Queue the tables and kernels of every preset (once per process)."""
        with self._lock:
            self._grids = True
        self._ensure_thread()

    def want_reports(self, digest: str, z: np.ndarray, settings) -> bool:
        """Queue the report of ``z`` under every other preset (replaces an earlier request).

        Returns False (and queues nothing) when the set is too large to prefetch cheaply."""
        if int(np.prod(z.shape)) > MAX_PREFETCH_VALUES:
            return False
        with self._lock:
            self._gen += 1
            self._job = (self._gen, digest, z, settings)
        self._ensure_thread()
        return True

    def is_prefetched(self, digest: str, settings) -> bool:
        return (digest, settings.key()) in self.prefetched

    def idle(self) -> bool:
        with self._lock:
            return not self._grids and self._job is None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # ------------------------------------------------------------------ worker
    def _ensure_thread(self) -> None:
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="latent-health-prefetch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        # No lower CPU priority for this thread: a click on a preset whose report is being prefetched
        # waits for that very build (ReportCache), which must then run at full speed.
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            # the data on the page first: its reports under the other presets compile their kernels too
            with self._lock:
                job = self._job
            if job is not None:
                self._reports(job)
                with self._lock:
                    if self._job is job:
                        self._job = None
                self._wake.set()
                continue  # a newer request may have come meanwhile; then the grids
            with self._lock:
                grids = self._grids
            if grids:
                for name in self.presets:
                    if name in self.grids_ready:
                        continue
                    _wait_for_idle(self._stop)
                    if self._stop.is_set():
                        return
                    compiled = any(k[1][0] == name for k in self.prefetched)  # Settings.key() starts with preset
                    self._attempt(lambda: warm_grid(name, compile_kernels=not compiled), f"preset {name}")
                    self.grids_ready.append(name)
                    with self._lock:
                        if self._job is not None:
                            self._wake.set()
                            break  # the page's data comes first
                else:
                    with self._lock:
                        self._grids = False

    def _generic_kernels(self, gen: int) -> bool:
        """In non-blocking mode, wait until the kernels generic in K are loaded (or failed to build): a
        report prefetched on the torch path before that is several times slower, and a click on its preset
        would wait for that slow build (measured: gist 31 s instead of 4 s at load 10).  False when the
        request was replaced or the worker stopped meanwhile."""
        from sigreg_core.core import kernel_warmup as kw

        if not kw.nonblocking():
            return True
        kw.request([kw.GENERIC])
        while not kw.wait_ready([kw.GENERIC], timeout=0.5):
            if kw.GENERIC in kw.status()["failed"]:
                return True  # no compiled kernels in this process: the torch path it is
            with self._lock:
                if self._stop.is_set() or self._gen != gen:
                    return False
        return True

    def _reports(self, job) -> None:
        gen, digest, z, settings = job
        if not self._generic_kernels(gen):
            return
        for name in self.presets:
            s = dataclasses.replace(settings, preset=name)
            if name == settings.preset or (digest, s) in self.cache:
                continue
            _wait_for_idle(self._stop)
            with self._lock:
                if self._stop.is_set() or self._gen != gen:
                    return  # a newer request (other data or settings) replaces this one
            if self._attempt(lambda: self.cache.get_or_build(digest, s, z), f"report under {name}"):
                self.prefetched.append((digest, s.key()))
                del self.prefetched[:-64]

    def _attempt(self, fn, what: str) -> bool:
        try:
            fn()
            return True
        except Exception as exc:  # a preset this set cannot be scored under: the click will say why
            self.errors.append(f"{what}: {' '.join(str(exc).split())[:200]}")
            del self.errors[:-20]
            return False
