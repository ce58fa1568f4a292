"""The bounded LRU of Inspect reports, keyed on (sha256 of the data, settings).

Selecting another slice or switching pages is a hit and never recomputes the
statistic; only a new digest or a changed setting builds a report
(:func:`sigreg_core.present.report.build_report`).

The digest must be that of the bytes actually scored: the page passes
:attr:`~sigreg_core.inputs.errors.LoadedEmbeddings.data_sha256` (the loaded array's own
digest, :func:`data_digest`), never a digest of the source file taken after loading it (a
server file replaced in between would cache the old report under the new file's digest,
shared with every session).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

from sigreg_core.present import report as _report  # build_report looked up at call time (tests count its calls)
from sigreg_core.present.report import Report, Settings

__all__ = ["ReportCache", "data_digest"]


def data_digest(z: np.ndarray) -> str:
    """The digest a report of ``z`` is cached under: sha256 of its dtype, shape and bytes."""
    from sigreg_core.inputs.errors import array_digest

    return array_digest(z)


class ReportCache:
    """Bounded LRU of reports keyed on (sha256 of the data, settings key).

    ``computations`` counts how many reports were actually computed (misses);
    selecting another slice or switching pages is a hit and never recomputes.
    """

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = int(max_entries)
        self._data: "OrderedDict[tuple, Report]" = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Event] = {}  # key -> set when that build ends
        self.hits = 0
        self.computations = 0

    def get(self, digest: str, settings: Settings) -> Optional[Report]:
        key = (digest, settings.key())
        with self._lock:
            rep = self._data.get(key)
            if rep is not None:
                self._data.move_to_end(key)
                self.hits += 1
            return rep

    def __contains__(self, key: tuple) -> bool:
        """``(digest, settings) in cache``, without counting a hit."""
        digest, settings = key
        with self._lock:
            return (digest, settings.key()) in self._data

    def building(self, digest: str, settings: Settings) -> bool:
        """True while another thread (the background prefetch) builds this report."""
        with self._lock:
            return (digest, settings.key()) in self._building

    def get_or_build(self, digest: str, settings: Settings, z: np.ndarray,
                     progress: Optional[Callable[[float, str], None]] = None) -> Report:
        """The cached report, or one built now; a report another thread is building is waited
        for, not built twice."""
        key = (digest, settings.key())
        while True:
            rep = self.get(digest, settings)
            if rep is not None:
                return rep
            with self._lock:
                if key in self._data:
                    continue
                done = self._building.get(key)
                if done is None:
                    done = self._building[key] = threading.Event()
                    break
            done.wait()  # the other build failed if the key is still missing: then build here
        try:
            rep = _report.build_report(z, settings, progress=progress)
            with self._lock:
                self.computations += 1
                self._data[key] = rep
                while len(self._data) > self.max_entries:
                    self._data.popitem(last=False)
        finally:
            with self._lock:
                self._building.pop(key).set()
        return rep

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = 0
            self.computations = 0
