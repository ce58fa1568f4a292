"""Rejection rates of every p-value the pages show, on fresh N(0, I) draws (the table in docs/calibration.md).

For one shape (default 256 x 16, M = 64 slices) a Monte Carlo null of ``--null`` draws is built
once (cached), then ``--draws`` fresh N(0, I) sets are assessed twice: with the Monte Carlo null
(what ``sigreg score`` and a page with null draws > 0 show) and without it (the Inspect page's
default for the random family: the Bonferroni bound).  Printed: the fraction of draws with
p < 0.05 and p < 0.2 for each p-value, with the binomial standard error.  A calibrated p-value
rejects about alpha; a bound (Bonferroni) at most alpha.

Usage:  python benchmarks/bench_pvalue_calibration.py [--n 256] [--d 16] [--slices 64] [--draws 400] [--null 400]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--slices", type=int, default=64)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--null", type=int, default=400)
    args = ap.parse_args(argv)
    from sigreg_core.assessment.assess import assess

    cache = tempfile.mkdtemp(prefix="lh-pcal-")
    rng = np.random.default_rng(20261206)
    rows: dict = {}

    def add(name, p):
        rows.setdefault(name, []).append(float(p))

    t0 = time.perf_counter()
    for i in range(args.draws):
        z = rng.standard_normal((args.n, args.d)).astype(np.float32)
        a = assess(z, num_slices=args.slices, seed=0, null_draws=args.null, cache_dir=cache)
        add("overall (calibrated, Monte Carlo)", a.p_value)
        for k, v in a.p_values["screens"].items():
            add(f"screen {k} (calibrated)", v)
        add("Monte Carlo SIGReg", a.p_values["monte_carlo"]["p_value"])
        add("per-slice, slice 0 (exact law)", a.per_slice_columns["p_value"][0])
        add("Bonferroni (bound)", a.p_values["bonferroni"]["p_value"])
        b = assess(z, num_slices=args.slices, seed=0, null_draws=0)
        add("overall without Monte Carlo (page default: Bonferroni)", b.p_value)
        for k, v in b.p_values["screens"].items():
            add(f"screen {k} without Monte Carlo (Bonferroni)", v)
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{args.draws} draws, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    r = args.draws
    print(f"N(0, I) {args.n} x {args.d}, M = {args.slices}, {r} draws, Monte Carlo null {args.null} draws "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print("| p-value | α = 0.05 | α = 0.2 |")
    print("|---|---|---|")
    for name, ps in rows.items():
        ps = np.asarray(ps)
        cells = []
        for alpha in (0.05, 0.2):
            rate = float(np.mean(ps < alpha))
            cells.append(f"{rate:.3f} ± {math.sqrt(alpha * (1 - alpha) / r):.3f}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
