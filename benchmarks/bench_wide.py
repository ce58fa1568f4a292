"""Wide embedding sets: time and route of the companion metrics + principal axes, and of a full assess.

    python benchmarks/bench_wide.py                 # the default shapes
    python benchmarks/bench_wide.py 65536x4096      # chosen shapes (N x D, float32 Gaussian)

Prints one row per shape: the route (gram = N x N, dense = D x D, assessment/budget.py), the
estimated bytes and eigh units, the seconds of the moment sums + spectrum + 256 principal axes,
and of ``assess(null_draws=0)`` (cold: no null cache).  Timings depend on the machine's load.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from sigreg_core.assessment import budget
from sigreg_core.assessment.assess import assess
from sigreg_core.assessment.metrics import MomentSums, metrics_from_sums

SHAPES = [(100, 4096), (1000, 4096), (2, 8000), (4096, 8192), (65536, 4096)]


def main(argv) -> None:
    shapes = [tuple(int(v) for v in a.lower().split("x")) for a in argv] or SHAPES
    print(f"{'shape':>14} {'route':>6} {'est MiB':>8} {'eigh units':>11} {'spectrum s':>11} {'assess s':>9}  verdict")
    for n, d in shapes:
        r, nbytes, work = budget.route_cost(n, d)
        z = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
        t = time.perf_counter()
        s = MomentSums(d, expect_rows=n)
        for r0 in range(0, n, 65536):
            s.update(z[r0 : r0 + 65536])
        metrics_from_sums(s)
        s.principal(256)
        t_spec = time.perf_counter() - t
        t = time.perf_counter()
        a = assess(z, null_draws=0, cache_dir=False)
        t_assess = time.perf_counter() - t
        print(f"{n:>6}x{d:<7} {r:>6} {nbytes / 2**20:>8.0f} {work:>11.2e} {t_spec:>11.1f} {t_assess:>9.1f}  {a.verdict}",
              flush=True)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main(sys.argv[1:])
