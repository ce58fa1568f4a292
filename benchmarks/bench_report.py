"""Time from loaded bytes to a complete Inspect report, and for a slice change (issue 6).

Targets on the 2-core CPU: a complete report for 65536 x 512 float32 in < 5 s,
a slice change in < 0.3 s.  "Complete report" = parse the safetensors bytes
(``load_embeddings``), assess (statistic, null law, p-values, verdict, metrics:
``sigreg_core.present.report.build_report``), project the selected slice and build every
figure the page shows, serialised to JSON as Streamlit sends it.  A slice change =
project another slice, rebuild the figures that depend on it (and the sorted
chart's highlight), serialise.  The statistic's share is the time spent in
``sigreg_core.assessment.slices.score_slices`` inside the assessment.

Usage:  python benchmarks/bench_report.py [--rows 65536] [--dim 512] [--slices 1024] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safetensors.numpy import save as st_save  # noqa: E402

import sigreg_core.core.statistic as stat_mod  # noqa: E402
from sigreg_core.inputs.loading import load_embeddings  # noqa: E402
from sigreg_core.present.report import Settings, build_report, overview_figures, pick_slice, slice_figures, slice_view  # noqa: E402


class _Timer:
    """Wraps score_slices wherever it is referenced, accumulating its wall time."""

    def __init__(self):
        self.seconds = 0.0
        self.patched = []

    def install(self):
        real = stat_mod.score_slices

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t0

        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith("sigreg_core") and getattr(mod, "score_slices", None) is real:
                setattr(mod, "score_slices", timed)
                self.patched.append((mod, real))

    def uninstall(self):
        for mod, real in self.patched:
            setattr(mod, "score_slices", real)


def _serialise(figs: dict) -> int:
    return sum(len(f.to_json()) for f in figs.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--slices", type=int, default=1024)
    ap.add_argument("--preset", default="lejepa")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import sigreg_core.assessment.assess  # noqa: F401  (import first so its references can be wrapped)

    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    blob = st_save({"embeddings": z})
    settings = Settings(preset=args.preset, num_slices=args.slices, max_rows=args.rows)
    print(f"data: {args.rows} x {args.dim} float32 ({len(blob) / 2**20:.0f} MiB safetensors), "
          f"M = {args.slices}, preset {args.preset}")

    # warm-up (numba compilation, null-law tables) on a small problem
    build_report(z[:2048], settings)

    totals, stats, loads, assess_t = [], [], [], []
    slice_times = []
    for _ in range(args.repeat):
        timer = _Timer()
        timer.install()
        try:
            t0 = time.perf_counter()
            emb = load_embeddings(blob, name="bench.safetensors")
            t_load = time.perf_counter() - t0
            rep = build_report(emb.array, settings)
            t_assess = time.perf_counter() - t0 - t_load
            j = pick_slice(rep, "worst")
            view = slice_view(emb.array, rep, j)
            _serialise({**overview_figures(rep, selected=j), **slice_figures(rep, view)})
            total = time.perf_counter() - t0
        finally:
            timer.uninstall()
        totals.append(total)
        stats.append(timer.seconds)
        loads.append(t_load)
        assess_t.append(t_assess)
        for how in ("median", "best", "index"):
            t1 = time.perf_counter()
            k = pick_slice(rep, how, index=7)
            v2 = slice_view(emb.array, rep, k)
            _serialise({"slice_statistics": overview_figures(rep, selected=k)["slice_statistics"],
                        **slice_figures(rep, v2)})
            slice_times.append(time.perf_counter() - t1)

    med = statistics.median
    total, st_s = med(totals), med(stats)
    print(f"complete report: {total:.3f} s median of {args.repeat} (target < 5 s) "
          f"[load {med(loads):.3f} s, assess {med(assess_t):.3f} s, "
          f"of which statistic (score_slices) {st_s:.3f} s = {100 * st_s / total:.0f}% of the total; "
          f"slice view + figures {total - med(loads) - med(assess_t):.3f} s]")
    print(f"slice change:    {med(slice_times):.3f} s median of {len(slice_times)} (target < 0.3 s), "
          f"max {max(slice_times):.3f} s; the statistic is not recomputed (0% share)")
    missed = []
    if total >= 5:
        missed.append(f"complete report {total:.2f} s >= 5 s (assess {med(assess_t):.2f} s of it)")
    if med(slice_times) >= 0.3:
        missed.append(f"slice change {med(slice_times):.3f} s >= 0.3 s")
    print("targets met" if not missed else "TARGET MISSED: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
