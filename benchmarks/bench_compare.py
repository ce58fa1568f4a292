"""Speed of Compare on the first thing users do: a trained encoder against its untrained start.

Target (issue 20): two L2-normalised sets of 2600 x 768 compare "in well under a minute" on the
project's 2-core CPU with the defaults of ``sigreg compare`` (1024 random slices, 200 bootstrap
resamples, the assessment's Monte Carlo null).  The sets are synthetic: 768-d unit rows in two
cones around one direction (a wide one, mean cosine about 0.6, for "trained"; a tight one, about
0.95, for "untrained"), the shape of contrastive encoders' outputs; no 768-d encoder is
installed offline on this machine.

Two runs, each printing the wall time and Compare's own breakdown (``Comparison.timings``):

* ``cold``: an empty disk cache, so the Monte Carlo null of that shape is simulated once (the
  second set reads it from the cache);
* ``warm``: the same comparison again, the null read from the cache (what every later comparison
  at this shape costs).

Print ``uptime`` beside the numbers: the machine is shared.

    python benchmarks/bench_compare.py [--n 2600] [--d 768] [--n-boot 200] [--null-draws N] [--cache DIR] [--warm-only]
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

from sigreg_core.compare.comparison import compare_sets  # noqa: E402


def cone(n: int, d: int, spread: float, seed: int, mu: np.ndarray) -> np.ndarray:
    """Unit rows mu + spread * (a unit vector with a decaying spectrum), normalised."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d)) / np.sqrt(np.arange(1, d + 1))
    z = mu + spread * x / np.linalg.norm(x, axis=1, keepdims=True)
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def load() -> str:
    try:
        return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def run(label: str, sets: dict, args) -> None:
    t = time.perf_counter()
    cmp = compare_sets(sets, n_boot=args.n_boot, null_draws=args.null_draws, cache_dir=args.cache)
    wall = time.perf_counter() - t
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in cmp.timings.items())
    mc = cmp.sets["trained"].assessment.get("p_values", {}).get("monte_carlo", {})
    print(f"{label}: {wall:.1f} s ({parts}); Monte Carlo null {mc.get('draws', 0)} draws, "
          f"source {mc.get('source', '-')} / {cmp.sets['untrained'].assessment.get('p_values', {}).get('monte_carlo', {}).get('source', '-')}; "
          f"RankMe interval from {cmp.rank_resamples} resamples; {load()}", flush=True)
    for n in cmp.order():
        s = cmp.sets[n]
        print(f"    {n}: verdict {s.verdict}, SIGReg {s.sigreg:.4g}, row scale {s.row_scale[0]:.4g}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2600)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--null-draws", type=int, default=None, help="default: the assessment's (fitted to the budget)")
    ap.add_argument("--cache", default=None, help="Monte Carlo cache directory (default: a new empty one)")
    ap.add_argument("--warm-only", action="store_true", help="skip the cold run (the cache must hold the null)")
    args = ap.parse_args()
    if args.cache is None:
        args.cache = tempfile.mkdtemp(prefix="bench_compare_")
    g = np.random.default_rng(0)
    mu = g.standard_normal(args.d)
    mu /= np.linalg.norm(mu)
    sets = {"trained": cone(args.n, args.d, 1.3, 1, mu), "untrained": cone(args.n, args.d, 0.35, 2, mu)}
    for n, z in sets.items():
        print(f"{n}: {z.shape[0]} x {z.shape[1]}, mean cosine to the mean "
              f"{float(np.mean(z @ (z.mean(0) / np.linalg.norm(z.mean(0))))):.3f}")
    print(f"start: {load()}", flush=True)
    if not args.warm_only:
        run("cold (empty cache)", sets, args)
    run("warm (null cached)", sets, args)


if __name__ == "__main__":
    main()
