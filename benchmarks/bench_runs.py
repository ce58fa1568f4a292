"""Benchmark: the cost of RunWriter inside a training loop, and loading a 10 000-step run.

Prints

* the writer's cost per logged step (subsample + summary + snapshot write + index
  commit) at a training-like size, with and without the summary;
* the time to load the time series of a 10 000-step run from its index (target of
  issue 7: under 1 s), the best of several loads, and the size of the index.

The 10 000-step run is written by RunWriter itself (real atomic snapshot writes and
commits, retention ``keep_last=20`` so the directory stays small) without summaries
(10 000 assessments would take an hour here); the summary columns of every row are
then filled with the real summary of one healthy batch, so the index holds as many
non-NULL columns as a real run and the load measures the real work.

    python benchmarks/bench_runs.py                # 10 000 steps
    python benchmarks/bench_runs.py --steps 2000 --quick
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigreg_core.runs import INDEX_NAME, SERIES_COLUMNS, RunReader, RunWriter, summarize, SummaryConfig  # noqa: E402


def writer_cost(tmp: Path, n: int, d: int, m: int, steps: int, summary: bool) -> float:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, d, generator=g) for _ in range(steps)]
    with RunWriter(tmp / f"cost-{summary}", max_rows=n, num_slices=m, summary=summary, keep_last=5) as w:
        w.log(0, batches[0])  # warm-up (null-law tables, imports)
        t0 = time.perf_counter()
        for i, z in enumerate(batches, start=1):
            w.log(i, z, loss=1.0)
        return (time.perf_counter() - t0) / steps


def build_run(run_dir: Path, steps: int) -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(512, 16, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with RunWriter(run_dir, max_rows=512, summary=False, keep_last=20) as w:
            for s in range(steps):
                w.log(s, z, loss=1.0 / (s + 1), lr=1e-3, sigreg_loss=1.05)
    summ = summarize(z, SummaryConfig(num_slices=64))
    con = sqlite3.connect(str(run_dir / INDEX_NAME))
    with con:
        cols = [c for c in SERIES_COLUMNS]
        con.execute(f"UPDATE steps SET {', '.join(c + ' = ?' for c in cols)}, verdict = ?, modes = ?, summary = ?",
                    [summ.get(c) for c in cols] + [summ["verdict"], json.dumps(summ["modes"]), json.dumps(summ)])
    con.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="small writer-cost run")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n, dim, m, k = (1024, 64, 128, 5) if args.quick else (4096, 256, 256, 10)
        with_s = writer_cost(tmp, n, dim, m, k, True)
        without = writer_cost(tmp, n, dim, m, k, False)
        print(f"writer, per logged step at N={n}, D={dim}, M={m}: {with_s * 1e3:.1f} ms with the summary, "
              f"{without * 1e3:.1f} ms snapshot + index only")
        run = tmp / "long"
        t0 = time.perf_counter()
        build_run(run, args.steps)
        print(f"wrote {args.steps} steps in {time.perf_counter() - t0:.1f} s "
              f"({(time.perf_counter() - t0) / args.steps * 1e3:.2f} ms per step without summary)")
        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            ts = RunReader(run).timeseries()
            loads.append(time.perf_counter() - t0)
        assert len(ts) == args.steps and ts["sigreg"].notna().all()
        size = (run / INDEX_NAME).stat().st_size
        best, worst = min(loads), max(loads)
        ok = "OK" if worst < 1.0 else "MISSED"
        print(f"load time series of {args.steps} steps: best {best * 1e3:.0f} ms, worst {worst * 1e3:.0f} ms "
              f"(target < 1 s: {ok}); index {size / 1e6:.1f} MB, {ts.shape[1]} columns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
