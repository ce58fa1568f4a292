"""Benchmark: the naive SIGReg (materialising (N, M, K), as LeWM's module does) against ours.

Prints, in one run on the same data: forward and forward+backward times, their
ratios, peak extra memory of each variant (each measured in a fresh child
process), the agreement of the values and gradients, and the throughput of the
fused ECF kernel in G (sample x slice x node) per second.

    python benchmarks/bench_sigreg.py                    # N=32768, D=256, M=1024, 17 nodes
    python benchmarks/bench_sigreg.py --n 4096 --quick   # a smoke run

Targets (issue 2, on a 2-core CPU): forward >= 25x faster than naive, agreement
<= 1e-6 relative, peak extra memory <= 256 MiB; forward+backward >= 10x.
The training step of the ``SIGReg`` module, cell by cell and against its peers, is
``benchmarks/bench_loss_cells.py``; the import cost is ``benchmarks/bench_import.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sigreg_core as sc  # noqa: E402
from sigreg_core.core.ecf import ecf_sums  # noqa: E402
from sigreg_core.core.presets import PRESETS  # noqa: E402


def naive_sigreg(z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """LeWorldModel's SIGReg.forward, verbatim in structure: (N, M, K) tensors, autograd."""
    p = PRESETS["lejepa"]
    t = torch.as_tensor(p.nodes, dtype=z.dtype, device=z.device)
    phi = torch.exp(-(t**2) / 2)
    w = torch.as_tensor(p.weights, dtype=z.dtype, device=z.device)
    x_t = (z @ a).unsqueeze(-1) * t
    err = (x_t.cos().mean(-3) - phi).square() + x_t.sin().mean(-3).square()
    return ((err @ w) * z.size(-2)).mean()


def ours_sigreg(z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return sc.sigreg(z, directions=a)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_data(n: int, d: int, m: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, d, generator=g)
    z[:, : d // 4] *= 1.5  # a little anisotropy: a non-trivial value and gradient
    a = sc.sample_directions(d, m, seed=0)
    return z.to(device), a.to(device)


def child(args) -> None:
    """Run one variant once (after a warm-up on a small batch) and print JSON."""
    device = torch.device(args.device)
    z, a = make_data(args.n, args.d, args.m, device)
    fn = naive_sigreg if args.child == "naive" else ours_sigreg
    fn(z[:64], a)  # warm-up (compiles the numba kernels for ours)
    if args.backward:
        zz = z[:64].clone().requires_grad_()
        fn(zz, a).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = _rss_bytes()
    zz = z.clone().requires_grad_() if args.backward else z
    t0 = time.perf_counter()
    v = fn(zz, a)
    if args.backward:
        v.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        extra = torch.cuda.max_memory_allocated() - base
    else:
        extra = max(0, _peak_bytes() - base_rss)
    out = {"seconds": dt, "value": v.item(), "peak_extra_bytes": extra}
    if args.backward:
        torch.save(zz.grad.cpu(), args.grad_out)
    print(json.dumps(out))


def run_child(variant: str, args, backward: bool, grad_out: str = "") -> dict:
    cmd = [
        sys.executable, __file__, "--child", variant, "--n", str(args.n), "--d", str(args.d),
        "--m", str(args.m), "--device", args.device,
    ]
    if backward:
        cmd += ["--backward", "--grad-out", grad_out]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{variant} child failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def kernel_throughput(args) -> float:
    x = torch.randn(args.n, args.m, generator=torch.Generator().manual_seed(1))
    nodes = PRESETS["lejepa"].nodes
    ecf_sums(x[:64], nodes)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        ecf_sums(x, nodes)
        best = min(best, time.perf_counter() - t0)
    return args.n * args.m * len(nodes) / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32768)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--m", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="skip the naive forward+backward (slowest part)")
    ap.add_argument("--child", choices=["naive", "ours"])
    ap.add_argument("--backward", action="store_true")
    ap.add_argument("--grad-out", default="")
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    import tempfile

    k = PRESETS["lejepa"].num_nodes
    work = args.n * args.m * k
    print(f"SIGReg benchmark: N={args.n} D={args.d} M={args.m} K={k} device={args.device} "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"work: {work / 1e9:.3f} G sample*slice*node per forward")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        nf = run_child("naive", args, False)
        of = run_child("ours", args, False)
        rows.append(("forward", nf, of))
        if not args.quick:
            nb = run_child("naive", args, True, f"{tmp}/naive.pt")
            ob = run_child("ours", args, True, f"{tmp}/ours.pt")
            rows.append(("forward+backward", nb, ob))
            gn = torch.load(f"{tmp}/naive.pt", weights_only=True).double()
            go = torch.load(f"{tmp}/ours.pt", weights_only=True).double()
            grad_rel = ((gn - go).norm() / gn.norm()).item()
        z, a = make_data(args.n, args.d, args.m, torch.device("cpu"))
        ref64 = sc.sigreg(z.double(), directions=a).item()  # float64 oracle (chunked torch path)

    print()
    print(f"{'pass':<18}{'naive s':>10}{'ours s':>10}{'ratio':>9}{'naive MiB':>11}{'ours MiB':>10}")
    for name, n_, o_ in rows:
        print(f"{name:<18}{n_['seconds']:>10.3f}{o_['seconds']:>10.3f}{n_['seconds'] / o_['seconds']:>8.1f}x"
              f"{n_['peak_extra_bytes'] / 2**20:>11.0f}{o_['peak_extra_bytes'] / 2**20:>10.0f}")
    print()
    v_n, v_o = nf["value"], of["value"]
    print(f"value naive float32 = {v_n:.8f}   ours = {v_o:.8f}   float64 oracle = {ref64:.8f}")
    print(f"agreement: |ours - naive| / naive = {abs(v_o - v_n) / abs(v_n):.2e};  "
          f"|ours - f64| / f64 = {abs(v_o - ref64) / abs(ref64):.2e};  |naive - f64| / f64 = {abs(v_n - ref64) / abs(ref64):.2e}")
    if not args.quick:
        print(f"gradient: ||ours - naive|| / ||naive|| = {grad_rel:.2e}")
    if args.device == "cpu":
        gps = kernel_throughput(args)
        print(f"fused ECF kernel alone (pre-projected x): {gps:.2f} G sample*slice*node/s")
        fwd = of["seconds"]
        print(f"ours end to end (projection GEMM + kernel): {work / fwd / 1e9:.2f} G/s")


if __name__ == "__main__":
    main()
