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

from sigreg_core.assessment.probes import knn_accuracy, linear_probe_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--iters", default="25,100", help="linear-probe L-BFGS iteration budgets to time")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--device", default="cpu")
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

    sec, r, load = timed(lambda: knn_accuracy(z, y, device=args.device))
    print(f"k-NN (k = 20):            {sec:7.1f} s   accuracy {r.accuracy:.4f} [{r.low:.4f}, {r.high:.4f}]   "
          f"(load {load:.1f})", flush=True)
    for it in (int(x) for x in args.iters.split(",")):
        sec, r, load = timed(lambda: linear_probe_accuracy(z, y, max_iter=it, device=args.device))
        print(f"linear probe ({it:3d} iters): {sec:7.1f} s   accuracy {r.accuracy:.4f} [{r.low:.4f}, {r.high:.4f}]   "
              f"(load {load:.1f})", flush=True)


if __name__ == "__main__":
    main()
