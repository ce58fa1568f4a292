"""Timings of the Monitor, Compare and cloud views (issue 13): ``python benchmarks/bench_views.py``.

Prints one table: building every Monitor figure (the stacked curves of
:mod:`sigreg_core.present.monitor_stack`, the per-slice quantiles and distribution) and the alert
table for runs of 1 000 and 10 000 logged steps (synthetic time series, the columns RunReader
returns; ``BENCH_STEPS=200`` for a quick check), the cloud view
(PCA of a 20 000-row subsample, robust distances of every row, ≤ 5 000 rows drawn) for a few
(N, D), and the ranking / pairwise tables of a comparison of 6 sets.  Best of 3 runs.
Numbers depend on the machine's load: re-run on a quiet machine before quoting them.
Name sections to time only those: ``python benchmarks/bench_views.py monitor`` (monitor, cloud, compare).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pandas as pd


#: run lengths timed (logged steps per run); BENCH_STEPS="200" for a quick check
STEPS = tuple(int(v) for v in os.environ.get("BENCH_STEPS", "1000,10000").split(","))


def best(fn, repeat=3):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def series(n_steps: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps) * 10
    sig = 1.05 + np.abs(rng.standard_normal(n_steps)) * 0.1 + np.where(steps > steps[-1] * 0.6, 300.0, 0.0)
    verdict = np.where(sig > 100, "collapsed", np.where(rng.uniform(size=n_steps) < 0.05, "suspicious", "healthy"))
    df = pd.DataFrame({
        "step": steps, "time": 1.7e9 + steps * 0.5, "snapshot": None, "n": 512, "d": 32, "m": 256, "sigreg": sig,
        "null_mean": 1.052464, "sigreg_over_null": sig / 1.052464, "p_value": np.where(sig > 100, 0.0, 0.3),
        "log10_p": -1.0, "rankme": np.where(sig > 100, 1.5, 30.0), "q50": sig, "q95": sig * 1.5, "qmax": sig * 3,
        "slice_null_q95": 2.9456, "summary_seconds": 0.1, "verdict": verdict, "modes": "", "error": None,
        "loss": rng.uniform(size=n_steps),
    })
    df.attrs["scalar_columns"] = ["loss"]
    return df


def monitor_rows():
    from sigreg_core.present import monitor_figures as MF
    from sigreg_core.present.monitor_stack import stack_figure

    rows = []
    for n in STEPS:
        runs = {f"run{i}": series(n, i) for i in range(4)}
        bands = {k: (0.9, 1.3) for k in runs}

        def all_figs(smoothing):
            MF.alert_table(runs)
            for k, df in runs.items():
                MF.run_alert(df)
            stack_figure(runs, bands, smoothing=smoothing, scalars=["loss"])
            MF.quantiles_figure(runs, smoothing=smoothing)
            MF.distribution_figure(runs)
            MF.steps_table(runs, ["step", "verdict", "sigreg"])

        rows.append((f"Monitor: 4 runs x {n:,} steps, every figure + alert table", best(lambda: all_figs(0.0))))
        rows.append((f"  same, smoothing 0.9", best(lambda: all_figs(0.9))))
        rows.append((f"  stacked figure alone (SIGReg, p-value, RankMe, loss, verdict)",
                     best(lambda: stack_figure(runs, bands, scalars=["loss"]))))

        def page_tick(smoothing):  # what one live refresh of the page builds now (issue 21)
            MF.alert_table(runs)
            stack_figure(runs, bands, smoothing=smoothing, scalars=["loss"])
            MF.quantiles_figure(runs, smoothing=smoothing)
            MF.steps_table(runs, ["step", "verdict", "sigreg"])

        rows.append((f"Monitor page tick: 4 runs x {n:,} steps, stacked curves + quantiles + tables",
                     best(lambda: page_tick(0.0))))
    return rows


def cloud_rows():
    from sigreg_core.present.cloud import cloud_figure, cloud_view

    rows = []
    for n, d in ((2_048, 64), (100_000, 256), (400_000, 128)):
        z = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
        u = np.random.default_rng(1).standard_normal(d)
        rows.append((f"cloud view, N = {n:,}, D = {d} (principal axes)", best(lambda: cloud_figure(cloud_view(z)))))
        rows.append((f"  same, a slice", best(lambda: cloud_figure(cloud_view(z, "slice", direction=u)))))
    return rows


def compare_rows():
    from sigreg_core.compare.comparison import compare_sets
    from sigreg_core.compare.ranking import pairwise_matrix, ranking_frame

    rng = np.random.default_rng(2)
    sets = {f"set{i}": rng.standard_normal((1024, 32)) * (1 + 0.1 * i) for i in range(6)}
    t0 = time.perf_counter()
    cmp = compare_sets(sets, num_slices=256, n_boot=200, null_draws=0, cache_dir=False)
    total = time.perf_counter() - t0
    return [("compare_sets, 6 sets of 1 024 x 32, M = 256, 200 resamples (once)", total),
            ("  ranking table (6 sets)", best(lambda: ranking_frame(cmp))),
            ("  pairwise matrix (30 ordered pairs, SIGReg)", best(lambda: pairwise_matrix(cmp)))]


def main() -> None:
    sections = {"monitor": monitor_rows, "cloud": cloud_rows, "compare": compare_rows}
    picked = sys.argv[1:] or list(sections)
    unknown = [p for p in picked if p not in sections]
    if unknown:
        print(f"unknown section {unknown[0]!r}: pick from {', '.join(sections)}", file=sys.stderr)
        sys.exit(2)
    rows = [r for p in picked for r in sections[p]()]
    w = max(len(r[0]) for r in rows)
    print(f"{'what'.ljust(w)}  seconds")
    for name, sec in rows:
        print(f"{name.ljust(w)}  {sec:8.3f}")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
