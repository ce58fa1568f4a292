"""Long Monte Carlo nulls in the background, with a time estimate and a cancel (issue 23).

A Monte Carlo null of B draws scores B batches Z ~ N(0, I) at the data's (N, D, M, preset,
family, seed) by the very code that scores the data (:mod:`sigreg_core.assessment.montecarlo`;
LeJEPA, arXiv 2511.08544, gives the statistic).  At B = 1000 that takes about a minute on two
cores, far too long to hold the page.  So the Inspect page shows at once the report that needs no
simulation (the exact per-slice law where it applies: :func:`quick_settings`) and builds the full
report here, on a thread, into the page's report cache; the page polls :class:`Job` for its
progress and swaps the full report in when it is done.

Time estimate: after a fraction f of the work in t seconds, t (1 - f) / f seconds are left (the
draws cost the same each: the estimate is the measured rate, shown from f >= 2 %).  Cancel: the
progress callback raises :class:`Cancelled` at the next draw; nothing partial is cached (the null
is written to disk only when complete).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["Cancelled", "Job", "BackgroundBuilds", "quick_settings", "runs_in_background", "BACKGROUND_DRAWS"]

#: explicit Monte Carlo null sizes from this many draws on run in the background
BACKGROUND_DRAWS = 200


class Cancelled(Exception):
    """The user cancelled the background build."""


def runs_in_background(settings) -> bool:
    """True when the settings ask for a Monte Carlo null large enough to build in the background."""
    return settings.null_draws is not None and int(settings.null_draws) >= BACKGROUND_DRAWS


def quick_settings(settings):
    """The settings of the report shown while the background build runs: the same, with the null
    draws on ``auto`` (none where the exact per-slice law applies, the small cached null elsewhere)."""
    return dataclasses.replace(settings, null_draws=None)


@dataclass
class Job:
    key: tuple
    started: float = field(default_factory=time.perf_counter)
    fraction: float = 0.0
    message: str = "starting"
    done: bool = False
    error: Optional[str] = None
    cancelled: bool = False
    finished: Optional[float] = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def seconds_left(self) -> Optional[float]:
        """Measured-rate estimate t (1 - f) / f, or None before 2 % of the work."""
        f = self.fraction
        if self.done or f < 0.02:
            return None if not self.done else 0.0
        return self.elapsed * (1.0 - f) / f

    @property
    def running(self) -> bool:
        return not (self.done or self.error or self.cancelled)


class BackgroundBuilds:
    """The page's background builds (one per process: hold it in ``st.cache_resource``)."""

    def __init__(self, report_cache) -> None:
        self.cache = report_cache
        self._jobs: dict[tuple, Job] = {}
        self._lock = threading.Lock()

    def job(self, digest: str, settings) -> Optional[Job]:
        with self._lock:
            return self._jobs.get((digest, settings.key()))

    def start(self, digest: str, settings, z: np.ndarray, *, again: bool = False) -> Job:
        """Start the build of (digest, settings) unless one runs, is done or was cancelled (``again``
        restarts a cancelled or failed one)."""
        key = (digest, settings.key())
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and (job.running or job.done or not again):
                return job
            job = self._jobs[key] = Job(key=key)
        threading.Thread(target=self._run, args=(job, digest, settings, z), daemon=True,
                         name="latent-health-background-report").start()
        return job

    def cancel(self, digest: str, settings) -> None:
        job = self.job(digest, settings)
        if job is not None and job.running:
            job._cancel.set()

    def _run(self, job: Job, digest: str, settings, z: np.ndarray) -> None:
        def progress(fraction: float, message: str) -> None:
            if job._cancel.is_set():
                raise Cancelled()
            job.fraction = min(1.0, max(0.0, float(fraction)))
            job.message = str(message)[:120]

        try:
            self.cache.get_or_build(digest, settings, z, progress=progress)
            job.done = True
        except Cancelled:
            job.cancelled = True
        except Exception as exc:  # shown on the page as one line
            job.error = " ".join(str(exc).split())[:300] or type(exc).__name__
        finally:
            job.finished = time.perf_counter()
            with self._lock:  # keep the newest few (their states answer the page)
                for k in list(self._jobs)[:-16]:
                    if not self._jobs[k].running:
                        del self._jobs[k]
