"""Benchmark: what ``from sigreg_core import SIGReg`` adds to ``import torch``, and ``sigreg score`` warm.

Each measurement is a fresh interpreter (median of ``--reps``, default 7), wall-clock
and CPU time (CPU time is steadier on a shared machine).  Also lists the heavy
modules the import pulls in beyond what torch itself imports.

    python benchmarks/bench_import.py
    python benchmarks/bench_import.py --root /path/to/another/checkout   # measure another checkout
    python benchmarks/bench_import.py --against /path/to/main            # both, `sigreg score` turn by turn
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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


def _score_cmd(root: Path) -> tuple[list, dict]:
    env = dict(os.environ, PYTHONPATH=str(root))
    sample = json.loads((root / "sample_data" / "samples.json").read_text())["samples"][0]["file"]
    return [sys.executable, "-m", "sigreg_core", "score", str(root / "sample_data" / sample)], env


def score_warm(roots: list, reps: int) -> list:
    """``sigreg score`` on the first shipped sample, after one untimed run (kernels and files cached).

    Several checkouts are timed turn by turn, so a busy machine slows them alike.  Returns, per
    checkout, the median wall time and the median CPU time (user + system) of the whole process.
    """
    cmds = [_score_cmd(r) for r in roots]
    for (cmd, env), root in zip(cmds, roots):
        subprocess.run(cmd, capture_output=True, env=env, cwd=root, check=False)
    walls: list = [[] for _ in roots]
    cpus: list = [[] for _ in roots]
    for _ in range(reps):
        for i, ((cmd, env), root) in enumerate(zip(cmds, roots)):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, cwd=root, check=False)
            walls[i].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[i].append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT), help="checkout whose sigreg_core is measured")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-score", action="store_true", help="skip the `sigreg score` timing")
    ap.add_argument("--against", default=None, metavar="CHECKOUT",
                    help="another checkout (e.g. a worktree of main): `sigreg score` is timed turn by turn in both")
    args = ap.parse_args()
    roots = [Path(args.root).resolve()] + ([Path(args.against).resolve()] if args.against else [])
    for root in roots:
        m = measure(root, args.reps)
        print(f"{root}: import torch {m['torch_wall']:.2f} s wall / {m['torch_cpu']:.2f} s CPU; "
              f"from sigreg_core import SIGReg adds {m['add_wall']:.3f} s wall / {m['add_cpu']:.3f} s CPU "
              f"(median of {args.reps} fresh interpreters)")
        print(f"heavy modules it pulls in beyond torch's: {', '.join(m['heavy']) or 'none'}")
    roots = [r for r in roots if (r / "sample_data" / "samples.json").is_file()]
    if not args.no_score and roots:
        reps = max(3, args.reps // 2)
        for root, (wall, cpu) in zip(roots, score_warm(roots, reps)):
            print(f"sigreg score <first shipped sample>, warm, {root}: {wall:.2f} s wall, {cpu:.2f} s CPU "
                  f"(whole process, median of {reps})")

if __name__ == "__main__":
    main()
