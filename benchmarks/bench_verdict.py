"""Time ``assess`` (rows pass + screens + verdict) on N(0, I) batches; prints a table.

The rows pass (finiteness, norms, moment sums, outlier rows) and the three screens run on
every call; ``null_draws=0`` times the assessment alone, ``null_draws=200`` adds the Monte
Carlo null (cached on disk after the first call; the table shows the first, uncached call
with a fresh cache directory).  Timings on a shared machine are inflated; ratios in one
process are fairly robust.

Usage:  python benchmarks/bench_verdict.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sigreg_core.assessment.assess import assess  # noqa: E402


def main() -> int:
    rng = np.random.default_rng(0)
    print("| N × D | M | assess, null_draws=0 (s) | assess with a fresh 200-draw null (s) |")
    print("|---|---|---|---|")
    for n, d in [(4096, 64), (16384, 256), (65536, 128)]:
        z = rng.standard_normal((n, d)).astype(np.float32)
        assess(z[:512], num_slices=64, null_draws=0)  # warm-up: kernels compiled
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            assess(z, num_slices=1024, null_draws=0)
            ts.append(time.perf_counter() - t)
        mc = "not run (large)"
        if n * d <= 4096 * 64:
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                assess(z, num_slices=1024, null_draws=200, cache_dir=cache)
                mc = f"{time.perf_counter() - t:.1f}"
        print(f"| {n} × {d} | 1024 | {min(ts):.2f} | {mc} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
