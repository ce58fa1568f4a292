"""Speed of the calibration layer: law tables, per-slice p-values, Monte Carlo null, assess.

Targets (2-core CPU): per-slice p-values for M = 1024 slices well under a second
(after the per-grid table is built once); law table build about a second per grid.

    python benchmarks/bench_null.py [--n 4096] [--d 64] [--m 1024] [--draws 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sigreg_core import nulllaw as nl  # noqa: E402
from sigreg_core.assessment.assess import assess, monte_carlo_null  # noqa: E402
from sigreg_core.core.nulllaw import _cached_law  # noqa: E402
from sigreg_core.core.presets import get_preset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--draws", type=int, default=20)
    args = ap.parse_args()

    os.environ["LATENT_HEALTH_CACHE"] = tempfile.mkdtemp(prefix="bench_null_")  # an empty disk cache
    _cached_law.cache_clear()
    t = time.perf_counter()
    law = nl.slice_law("lejepa")
    print(f"law table (lejepa, Imhof + saddlepoint): {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    nl.slice_law("lejepa", standardized=True)
    print(f"law table (standardised):               {time.perf_counter() - t:.2f} s")
    _cached_law.cache_clear()
    t = time.perf_counter()
    nl.slice_law("lejepa")
    nl.slice_law("lejepa", standardized=True)
    print(f"both tables read back from disk:        {(time.perf_counter() - t) * 1e3:.1f} ms")

    q = np.random.default_rng(0).uniform(0, 50, size=args.m)
    t = time.perf_counter()
    for _ in range(100):
        law.logsf(q)
    print(f"p-values for M = {args.m}:                {(time.perf_counter() - t) / 100 * 1e3:.3f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        mc = monte_carlo_null(args.n, args.d, family="random", num_slices=args.m, seed=0,
                              preset=get_preset("lejepa"), draws=args.draws, cache_dir=tmp)
        dt = time.perf_counter() - t
        print(f"Monte Carlo null N={args.n} D={args.d} M={args.m}: {dt / args.draws * 1e3:.1f} ms per draw "
              f"({args.draws} draws)")
        t = time.perf_counter()
        monte_carlo_null(args.n, args.d, family="random", num_slices=args.m, seed=0,
                         preset=get_preset("lejepa"), draws=args.draws, cache_dir=tmp)
        print(f"  cached reload:                        {(time.perf_counter() - t) * 1e3:.1f} ms")
        z = np.random.default_rng(1).standard_normal((args.n, args.d)).astype(np.float32)
        t = time.perf_counter()
        a = assess(z, num_slices=args.m, null_draws=args.draws, cache_dir=tmp)
        print(f"assess (null cached):                   {time.perf_counter() - t:.2f} s -> {a.verdict}, "
              f"p = {a.p_value:.3g}, MC p = {a.p_values['monte_carlo']['p_value']:.3g} ({mc.size} draws)")


if __name__ == "__main__":
    main()
