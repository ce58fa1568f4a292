"""Print what ``assess`` says on every real and reference set (the table in docs/calibration.md).

Sets: the shipped samples (sample_data/, among them the real MiniLM sentence embeddings), the
same MiniLM's raw (unnormalised) rows and an untrained MiniLM (seeded random weights, packaged
config), the last snapshots of the demo JEPA runs (lambda = 0 collapses, lambda = 0.09 stays
healthy), and synthetic edge cases of the rules (uniform on the sphere, far outlier rows, a 1.3x
scale on one axis, a shift of 2).  Columns: the verdict, effective directions and q (the health),
collapsing?, the distance from N(0, I) after the conventions, modes, conventions, SIGReg x its null mean.

Usage:  python scripts/verdict_table.py [--slices 256] [--null-draws 40]   (a markdown table on stdout)
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sets() -> dict:
    from safetensors.numpy import load_file

    out = {}
    for p in sorted((ROOT / "sample_data").glob("*.safetensors")):
        out[f"sample: {p.stem}"] = load_file(str(p))["embeddings"]
    m = _script()
    texts = m.sentences()
    out["MiniLM trained, raw rows"] = m.encode(texts)
    out["MiniLM untrained (seeded init)"] = m.encode(texts, trained=False)
    for run in ("lambda-0", "lambda-0.09"):
        last = sorted((ROOT / "sample_data" / "runs" / run / "snapshots").glob("*.safetensors"))[-1]
        d = load_file(str(last))
        out[f"JEPA {run}, last step"] = d[next(iter(d))]
    rng = np.random.default_rng(0)
    g = rng.standard_normal((4096, 512))
    out["uniform on the sphere, D = 512"] = g / np.linalg.norm(g, axis=1, keepdims=True)
    z = rng.standard_normal((4096, 64))
    o = z.copy()
    o[:205] += 30.0
    out["N(0, I) + 5 % rows shifted by 30"] = o
    s = z.copy()
    s[:, 0] *= 1.3
    out["N(0, I), one axis x 1.3"] = s
    out["N(0, I) + 2 (every coordinate)"] = z + 2.0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=256)
    ap.add_argument("--null-draws", type=int, default=40)
    args = ap.parse_args(argv)
    from sigreg_core.assessment.assess import assess

    print("| set | N × D | verdict | effective directions (q) | collapsing? | distance from N(0, I) | modes | "
          "conventions | × null |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, z in sets().items():
        t0 = time.perf_counter()
        a = assess(z, num_slices=args.slices, null_draws=args.null_draws)
        an = a.answers
        conv = ", ".join(f"{c['name']} (× null {c['sigreg_over_null_after']:.3g} after)" for c in an["conventions"])
        h = an["health"]
        print(f"| {name} | {z.shape[0]} × {z.shape[1]} | **{a.verdict}** | {h['effective_directions']:.3g} "
              f"({h['relative_effective_rank']:.3g}) | {an['collapse']['answer']} | "
              f"{an['distance']['level']} ({an['distance']['relative_distance']:.3g}) | "
              f"{', '.join(a.modes) or '—'} | {conv or '—'} | {a.sigreg_over_null:.3g} |", flush=True)
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
