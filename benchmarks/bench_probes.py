"""Timings of the probes (issue 22): k-NN and the linear probe on N x D embeddings with C classes.

Default 65 536 x 512 float32 with 1000 classes (Gaussian class centres, so the accuracies are
neither 0 nor 1): the weighted k-NN (k = 20, cosine, blocks of held-out rows x all training rows,
``torch.topk``) and the multinomial logistic-regression probe (full-batch L-BFGS in torch) on a
20 % held-out split.  Prints settled wall times (best of ``--repeat``) with the machine load,
since the shared 2-core CPU makes single timings noisy; the linear probe also at a few iteration
budgets, with the accuracy each reaches.

Run: ``PYTHONPATH=. python benchmarks/bench_probes.py [--rows 65536 --dim 512 --classes 1000]``
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from sigreg_core.assessment.probes import knn_accuracy, linear_probe_accuracy, loss_and_gradient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--iters", default="25,100", help="linear-probe L-BFGS iteration budgets to time")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-knn", action="store_true")
    ap.add_argument("--evaluation", action="store_true",
                    help="also time one loss-and-gradient evaluation by autograd and by the written-out gradient, "
                         "back to back (same load)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.classes, args.dim)).astype(np.float32)
    y = rng.integers(0, args.classes, args.rows)
    z = centres[y] * 0.3 + rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    print(f"{args.rows:,} x {args.dim} float32, {args.classes} classes; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")

    def timed(fn):
        best, res = float("inf"), None
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            t = time.perf_counter()
            res = fn()
            best = min(best, time.perf_counter() - t)
        return best, res, load

    if args.evaluation:
        evaluation_ab(z, y, args)
    if not args.skip_knn:
        sec, r, load = timed(lambda: knn_accuracy(z, y, device=args.device))
        print(f"k-NN (k = 20):            {sec:7.1f} s   accuracy {r.accuracy:.4f} [{r.low:.4f}, {r.high:.4f}]   "
              f"(load {load:.1f})", flush=True)
    for it in (int(x) for x in args.iters.split(",")):
        sec, r, load = timed(lambda: linear_probe_accuracy(z, y, max_iter=it, device=args.device))
        print(f"linear probe ({it:3d} iters): {sec:7.1f} s   accuracy {r.accuracy:.4f} [{r.low:.4f}, {r.high:.4f}]   "
              f"(load {load:.1f})", flush=True)


def evaluation_ab(z, y, args) -> None:
    """One evaluation of the probe's loss and gradient at the training split's size: autograd (the probe
    before issue 22's speed-up) against :func:`loss_and_gradient`, alternating, best of 3 each."""
    n = int(round(0.8 * args.rows))
    x = torch.from_numpy(z[:n]).to(args.device)
    x = (x - x.mean(0)) / x.std(0)
    yt = torch.from_numpy(y[:n]).to(args.device)
    g = torch.Generator().manual_seed(1)
    w0 = torch.randn(args.dim, args.classes, generator=g).to(args.device) * 0.01
    b0 = torch.zeros(args.classes, device=args.device)

    def autograd():
        w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(x @ w + b, yt) + 0.5 * 1e-4 * (w * w).sum()
        loss.backward()
        return float(loss), w.grad

    def written():
        loss, gw, _ = loss_and_gradient(x, yt, w0, b0, 1e-4)
        return float(loss), gw

    best = {"autograd": float("inf"), "written-out": float("inf")}
    for _ in range(3):
        for name, fn in (("autograd", autograd), ("written-out", written)):
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    (la, ga), (lw, gw) = autograd(), written()
    print(f"one loss+gradient evaluation ({n:,} x {args.dim} x {args.classes}): autograd {best['autograd']:.2f} s, "
          f"written-out {best['written-out']:.2f} s (load {os.getloadavg()[0]:.1f}); |loss diff| {abs(la - lw):.2g}, "
          f"max |grad diff| {float((ga - gw).abs().max()):.2g}", flush=True)


if __name__ == "__main__":
    main()
