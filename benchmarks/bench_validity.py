"""Validity study: which label-free measure tracks downstream quality on the demo world model?

Sweeps ``sigreg demo-train`` (:func:`sigreg_core.runs.demo.train_demo`, the JEPA world model of
LeWorldModel, arXiv 2603.19312, with lambda SIGReg, LeJEPA arXiv 2511.08544) over lambda x seeds,
and at every logged checkpoint (the demo's ``progress`` hook, called right after each logged step)
encodes a fixed evaluation set of hidden states s drawn from the world's stationary law, seen
through two independent observation-noise draws (two views of each state).  Downstream truth is
the held-out R^2 of a linear probe (least squares with intercept) from the view-1 embeddings to s:
R^2 = 1 - sum SSE / sum SST over the S state coordinates, fitted on half of the rows and scored on
the other half.  Label-free measures at the same checkpoint:

* SIGReg of the training batch (the logged ``sigreg_loss``) and of the evaluation set (``assess``);
* the verdict's relative distance ``answers["distance"]["relative_distance"]``;
* RankMe, alpha-ReQ (and |alpha - 1|, the paper's "near 1 is best"), LiDAR of the two views;
* the training loss, and loss / lambda^0.4 as LeJEPA uses it (lambda > 0 runs only).

For each measure: the Spearman correlation with probe R^2 over all checkpoints, with a 95 %
percentile bootstrap interval over runs (whole runs resampled with replacement, 2000 times).

Run: ``PYTHONPATH=. python benchmarks/bench_validity.py [--steps 200 --log-every 40 --seeds 3]``
(about 10 minutes on 2 loaded cores with the defaults; ``--out results.json`` keeps the rows).
The model is captured by a subclass of ``WorldModel`` installed for the run of this script only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time

import numpy as np
import torch
from scipy.stats import spearmanr

import sigreg_core.runs.demo as demo
from sigreg_core.assessment.assess import assess
from sigreg_core.assessment.lidar import lidar

LAMBDAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)

MEASURES = {  # key -> (label, direction in which the measure should improve with quality)
    "sigreg_batch": ("SIGReg of the training batch", "lower"),
    "sigreg_eval": ("SIGReg of the evaluation set (assess)", "lower"),
    "health_q": ("verdict's health q (effective directions / N(0, I)'s)", "higher"),
    "relative_distance": ("distance from N(0, I) after the conventions", "lower"),
    "rankme": ("RankMe", "higher"),
    "alpha_req": ("α-ReQ", "?"),
    "alpha_req_dev": ("distance of α-ReQ from 1", "lower"),
    "lidar": ("LiDAR (2 views)", "higher"),
    "loss": ("training loss", "lower"),
    "loss_over_lambda": ("loss / λ^0.4 (λ > 0)", "lower"),
}


def probe_r2(z: np.ndarray, s: np.ndarray) -> float:
    """Held-out R^2 (pooled over the state coordinates) of least squares z -> s with intercept."""
    n = z.shape[0]
    half = n // 2
    x = np.column_stack([np.ones(n), z.astype(np.float64)])
    coef, *_ = np.linalg.lstsq(x[:half], s[:half], rcond=None)
    resid = s[half:] - x[half:] @ coef
    sst = ((s[half:] - s[half:].mean(0)) ** 2).sum()
    return float(1.0 - (resid**2).sum() / sst)


def run_sweep(steps: int, log_every: int, seeds: int, eval_rows: int, lambdas=LAMBDAS, quiet=False) -> list:
    captured = {}

    class Capture(demo.WorldModel):
        def __init__(self, cfg):
            super().__init__(cfg)
            captured["model"] = self

    original = demo.WorldModel
    demo.WorldModel = Capture
    cfg = demo.DemoConfig(eval_rows=256)  # the writer's own snapshots are not used here
    rows = []
    try:
        for seed in range(seeds):
            world = demo.SyntheticWorld(cfg, seed=seed)
            g = torch.Generator().manual_seed(10_000 + seed)
            s = torch.randn(eval_rows, cfg.state_dim, generator=g) @ world.P_chol.T
            views = [world.observe(s, g), world.observe(s, g)]
            s_np = s.numpy().astype(np.float64)
            for lam in lambdas:
                t0 = time.perf_counter()

                def progress(step, total, scalars, lam=lam, seed=seed):
                    if step == 0:
                        return  # the untrained encoder is the same for every lambda of a seed
                    with torch.no_grad():
                        enc = captured["model"].encoder
                        z = [enc(v).numpy() for v in views]
                    a = assess(z[0], num_slices=256, seed=0, null_draws=0, cache_dir=False)
                    alpha = float(a.metrics["alpha_req"])
                    rows.append({
                        "lambda": lam, "seed": seed, "step": int(step),
                        "probe_r2": probe_r2(z[0], s_np),
                        "sigreg_batch": float(scalars["sigreg_loss"]),
                        "sigreg_eval": float(a.sigreg),
                        "health_q": float(a.answers["health"]["relative_effective_rank"]),
                        "relative_distance": float(a.answers["distance"]["relative_distance"]),
                        "rankme": float(a.metrics["rankme"]),
                        "alpha_req": alpha, "alpha_req_dev": abs(alpha - 1.0),
                        "lidar": lidar(np.stack(z)),
                        "loss": float(scalars["loss"]),
                        "loss_over_lambda": float(scalars["loss"]) / lam**0.4 if lam > 0 else float("nan"),
                        "verdict": a.verdict,
                    })

                with tempfile.TemporaryDirectory() as d:
                    demo.train_demo(os.path.join(d, "run"), sigreg_weight=lam, steps=steps, seed=seed,
                                    log_every=log_every, progress=progress, config=cfg,
                                    writer_kwargs={"summary": False}, threads=1)
                if not quiet:
                    last = rows[-1]
                    print(f"  lambda {lam:<5g} seed {seed}: probe R2 {last['probe_r2']:.3f}, "
                          f"{time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        demo.WorldModel = original
    return rows


def spearman_table(rows: list, n_boot: int = 2000, seed: int = 0) -> list:
    runs = sorted({(r["lambda"], r["seed"]) for r in rows})
    by_run = {k: [r for r in rows if (r["lambda"], r["seed"]) == k] for k in runs}
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(runs), len(runs)) for _ in range(n_boot)]
    out = []
    for key, (label, direction) in MEASURES.items():
        def rho(sample):
            x = np.array([r[key] for r in sample], dtype=np.float64)
            y = np.array([r["probe_r2"] for r in sample], dtype=np.float64)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 4 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                return float("nan")
            return float(spearmanr(x[ok], y[ok])[0])

        point = rho(rows)
        all_boots = np.array([rho([r for i in p for r in by_run[runs[i]]]) for p in picks])
        boots = all_boots[np.isfinite(all_boots)]
        lo, hi = (np.percentile(boots, [2.5, 97.5]) if boots.size else (float("nan"),) * 2)
        used = sum(1 for r in rows if np.isfinite(r[key]))
        out.append({"measure": key, "label": label, "direction": direction, "spearman": point,
                    "low": float(lo), "high": float(hi), "checkpoints": used, "_boots": all_boots})
    return out


def paired_difference(table: list, a: str, b: str) -> tuple:
    """|rho_a| - |rho_b| with its 95 % interval over the same run resamples (is a really better than b?)."""
    ta = next(t for t in table if t["measure"] == a)
    tb = next(t for t in table if t["measure"] == b)
    d = np.abs(ta["_boots"]) - np.abs(tb["_boots"])
    d = d[np.isfinite(d)]
    lo, hi = np.percentile(d, [2.5, 97.5])
    return abs(ta["spearman"]) - abs(tb["spearman"]), float(lo), float(hi)


def markdown(table: list) -> str:
    lines = ["| measure | better when | Spearman ρ with probe R² | 95 % bootstrap interval (runs) | checkpoints |",
             "|---|---|---:|---|---:|"]
    for t in table:
        lines.append(f"| {t['label']} | {t['direction']} | {t['spearman']:+.3f} | "
                     f"[{t['low']:+.3f}, {t['high']:+.3f}] | {t['checkpoints']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-rows", type=int, default=1024)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--out", default=None, help="write the per-checkpoint rows and the table as JSON")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__}")
    rows = run_sweep(args.steps, args.log_every, args.seeds, args.eval_rows)
    table = spearman_table(rows, n_boot=args.boot)
    wall = time.perf_counter() - t0
    print(f"\n{len(rows)} checkpoints from {len({(r['lambda'], r['seed']) for r in rows})} runs "
          f"(lambda {', '.join(f'{x:g}' for x in LAMBDAS)} x {args.seeds} seeds, {args.steps} steps, "
          f"checkpoints every {args.log_every}); {wall:.0f} s, load {os.getloadavg()[0]:.1f}\n")
    print(markdown(table))
    valid = [t for t in table if math.isfinite(t["spearman"]) and t["direction"] != "?"]
    best = max(valid, key=lambda t: t["spearman"] * (1 if t["direction"] == "higher" else -1))
    print(f"\nbest predictor (signed in its expected direction): {best['label']} (ρ = {best['spearman']:+.3f})")
    for other in ("health_q", "relative_distance", "sigreg_batch"):
        if other != best["measure"]:
            d, lo, hi = paired_difference(table, best["measure"], other)
            print(f"|ρ| of {best['label']} minus |ρ| of {MEASURES[other][0]}: {d:+.3f} "
                  f"[{lo:+.3f}, {hi:+.3f}] (same run resamples)")
    healthy = [r for r in rows if r["lambda"] >= 0.1]
    sub = spearman_table(healthy, n_boot=args.boot)
    print(f"\nwithin lambda >= 0.1 only ({len(healthy)} checkpoints, probe R^2 "
          f"{min(r['probe_r2'] for r in healthy):.3f}..{max(r['probe_r2'] for r in healthy):.3f}):\n")
    print(markdown(sub))
    if args.out:
        strip = lambda tb: [{k: v for k, v in t.items() if k != "_boots"} for t in tb]  # noqa: E731
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "table": strip(table), "healthy_table": strip(sub), "seconds": wall,
                       "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
