"""Benchmark: what ``from sigreg_core import SIGReg`` adds to ``import torch``, and ``sigreg score`` warm.

Each measurement is a fresh interpreter (median of ``--reps``, default 7), wall-clock
and CPU time (CPU time is steadier on a shared machine).  Also lists the heavy
modules the import pulls in beyond what torch itself imports.

    python benchmarks/bench_import.py
    python benchmarks/bench_import.py --root /path/to/another/checkout   # compare a baseline
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numba", "llvmlite", "scipy", "pandas", "plotly", "pyarrow", "streamlit", "safetensors")

_CHILD = r"""
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import torch
w1, c1 = time.perf_counter(), time.process_time()
before = set(sys.modules)
from sigreg_core import SIGReg
w2, c2 = time.perf_counter(), time.process_time()
heavy = [m for m in %r if m in sys.modules and m not in before]
print(json.dumps({"torch_wall": w1 - w0, "torch_cpu": c1 - c0, "add_wall": w2 - w1, "add_cpu": c2 - c1,
                  "heavy": heavy}))
"""


def measure(root: Path, reps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root))
    runs = []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", _CHILD % (HEAVY,)], capture_output=True, text=True,
                             env=env, cwd=root, check=True)  # cwd: `python -c` puts it first on sys.path
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in ("torch_wall", "torch_cpu", "add_wall", "add_cpu")}
    med["heavy"] = runs[-1]["heavy"]
    return med


def score_warm(root: Path, reps: int) -> float:
    """``sigreg score`` on the first shipped sample, after one untimed run (kernels and files cached)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    sample = json.loads((root / "sample_data" / "samples.json").read_text())["samples"][0]["file"]
    cmd = [sys.executable, "-m", "sigreg_core", "score", str(root / "sample_data" / sample)]
    subprocess.run(cmd, capture_output=True, env=env, cwd=root, check=False)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, cwd=root, check=False)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT), help="checkout whose sigreg_core is measured")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-score", action="store_true", help="skip the `sigreg score` timing")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    m = measure(root, args.reps)
    print(f"{root}: import torch {m['torch_wall']:.2f} s wall / {m['torch_cpu']:.2f} s CPU; "
          f"from sigreg_core import SIGReg adds {m['add_wall']:.3f} s wall / {m['add_cpu']:.3f} s CPU "
          f"(median of {args.reps} fresh interpreters)")
    print(f"heavy modules it pulls in beyond torch's: {', '.join(m['heavy']) or 'none'}")
    if not args.no_score and (root / "sample_data" / "samples.json").is_file():
        print(f"sigreg score <first shipped sample>, warm: {score_warm(root, max(3, args.reps // 2)):.2f} s "
              "(whole process, median)")


if __name__ == "__main__":
    main()
