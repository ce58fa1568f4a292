"""Benchmark: the SIGReg *loss* in a training step, cell by cell, against its peers.

One process, the same data, the variants interleaved (their order rotates every
repetition), median of ``--reps`` (default 5) forward + backward passes per cell:

* ``ours``    — ``sigreg_core.SIGReg(num_slices=M)``, the module as a training loop
                uses it (fresh seeded directions every call, LeJEPA's draw);
* ``lewm``    — the (N, M, K) module form of LeWorldModel / lejepa / lightly, written
                here from its published structure: ``A = randn(D, M)``, column-normalised,
                ``x_t = (z @ A)[..., None] * t``, cos/sin means over rows, trapezoid
                weights, × N, mean over slices; autograd for the backward;
* ``lightly`` — lightly's own ``SIGReg`` from PyPI (``pip install --no-deps -r
                requirements-peers.txt``; its module file is loaded when ``lightly.loss``
                cannot import torchvision), drawing its directions every call too.

Peak memory is the extra resident memory of one forward + backward of each variant
after a warm-up, sampled every 0.5 ms by a thread in a fresh child process whose
allocator returns freed blocks to the system (``MALLOC_MMAP_THRESHOLD_=65536``), so
the samples see live memory only (CPU); ``torch.cuda.max_memory_allocated`` on CUDA.
Nothing is installed at run time.

    python benchmarks/bench_loss_cells.py                 # the four cells of issue 15, M = 1024
    python benchmarks/bench_loss_cells.py --cells 256x512 --reps 3
    python benchmarks/bench_loss_cells.py --import-order  # thread pools: torch first vs sigreg_core first
    python benchmarks/bench_loss_cells.py --json out.json # also write the table as JSON

Also checks, per cell, that ours and the (N, M, K) form agree on the same directions
(value and gradient, relative).  Target (issue 15): ours ≥ 10× the (N, M, K) form in
every cell, forward + backward.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CELLS = ("256x512", "1024x512", "1024x1024", "4096x256")


# --------------------------------------------------------------------------- the peers
def make_lewm(m: int):
    """The (N, M, K) module form (LeWM / lejepa / lightly), written from its structure."""
    import torch

    class LeWMSIGReg(torch.nn.Module):
        def __init__(self, knots: int = 17, t_max: float = 3.0, num_proj: int = m):
            super().__init__()
            self.num_proj = num_proj
            t = torch.linspace(0, t_max, knots, dtype=torch.float32)
            dt = t_max / (knots - 1)
            w = torch.full((knots,), 2 * dt, dtype=torch.float32)
            w[[0, -1]] = dt
            window = torch.exp(-t.square() / 2.0)
            self.register_buffer("t", t)
            self.register_buffer("phi", window)
            self.register_buffer("weights", w * window)

        def forward(self, proj, a=None):
            if a is None:
                a = torch.randn(proj.size(-1), self.num_proj, device=proj.device)
                a = a.div_(a.norm(p=2, dim=0))
            x_t = (proj @ a).unsqueeze(-1) * self.t
            err = (x_t.cos().mean(-3) - self.phi).square() + x_t.sin().mean(-3).square()
            return ((err @ self.weights) * proj.size(-2)).mean()

    return LeWMSIGReg()


def make_lightly(m: int):
    """lightly's own SIGReg (PyPI, tests/peers.py says how it is imported), else (None, why)."""
    from tests.peers import lightly_sigreg

    cls, how = lightly_sigreg()
    if cls is None:
        return None, how
    return cls(knots=17, t_max=3.0, num_vectors=m), how


# --------------------------------------------------------------------------- measuring
class PeakRSS:
    """Peak resident memory above the starting point, sampled by a thread."""

    def __init__(self, period: float = 5e-4):
        self.period = period

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        self.base = self.rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())
        self.extra = self.peak - self.base


def step(fn, z):
    z.grad = None
    v = fn(z)
    v.backward()
    return v


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_bytes(fn, z, device) -> int:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(fn, z)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with PeakRSS() as p:
        step(fn, z)
    return p.extra


def make_variants(args, device):
    import sigreg_core as sc

    lewm = make_lewm(args.m).to(device)
    lightly, how = make_lightly(args.m)
    variants = {"ours": sc.SIGReg(num_slices=args.m), "lewm": lewm}
    if lightly is not None:
        variants["lightly"] = lightly.to(device)
    return variants, how


def make_z(n: int, d: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(n, d, generator=g)
    z0[:, : d // 4] *= 1.5  # mildly non-Gaussian: a non-trivial value and gradient
    return z0.to(device).requires_grad_()


def child_memory(args) -> None:
    """In a fresh process: peak extra RSS of one step of one variant, after a warm-up step."""
    import torch

    variant, cell = args.child_mem
    n, d = (int(v) for v in cell.lower().split("x"))
    device = torch.device(args.device)
    fn = make_variants(args, device)[0][variant]
    z = make_z(n, d, device)
    step(fn, z)
    print(peak_bytes(fn, z, device))


def memory_in_child(args, variant: str, cell: str) -> int:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child-mem", variant, cell, "--m", str(args.m), "--device", args.device]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return int(res.stdout.strip().splitlines()[-1])


def run_cells(args) -> list[dict]:
    import torch

    import sigreg_core as sc

    device = torch.device(args.device)
    variants, how = make_variants(args, device)
    lewm = variants["lewm"]
    if "lightly" not in variants:
        print(f"note: lightly's SIGReg is not compared ({how}); the (N, M, K) form below is its structure")
    else:
        print(f"lightly: {how}")
    rows = []
    for cell in args.cells:
        n, d = (int(v) for v in cell.lower().split("x"))
        z = make_z(n, d, device)
        # agreement on the same directions (ours vs the (N, M, K) form)
        a = sc.sample_directions(d, args.m, seed=123).to(device)
        v_ours = sc.sigreg(z, directions=a)
        (g_ours,) = torch.autograd.grad(v_ours, z)
        v_lewm = lewm(z, a)
        (g_lewm,) = torch.autograd.grad(v_lewm, z)
        agree_v = abs(v_ours.item() - v_lewm.item()) / abs(v_lewm.item())
        agree_g = ((g_ours - g_lewm).double().norm() / g_lewm.double().norm()).item()
        for fn in variants.values():  # warm-up (kernels compiled or loaded from the cache)
            step(fn, z)
        times = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.reps):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                sync(device)
                t0 = time.perf_counter()
                step(variants[name], z)
                sync(device)
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        if device.type == "cuda":
            mem = {name: peak_bytes(fn, z, device) for name, fn in variants.items()}
        else:
            mem = {name: memory_in_child(args, name, cell) for name in variants}
        row = {"cell": f"{n}x{d}", "n": n, "d": d, "m": args.m, "median_s": med, "peak_bytes": mem,
               "ratio_lewm": med["lewm"] / med["ours"], "agree_value": agree_v, "agree_grad": agree_g}
        if "lightly" in med:
            row["ratio_lightly"] = med["lightly"] / med["ours"]
        rows.append(row)
        print_row(row, header=len(rows) == 1)
    return rows


def print_row(row: dict, header: bool) -> None:
    has_l = "ratio_lightly" in row
    if header:
        print(f"{'N x D':>11}{'ours ms':>10}{'(N,M,K) ms':>12}{'ratio':>8}"
              + (f"{'lightly ms':>12}{'ratio':>8}" if has_l else "")
              + f"{'ours MiB':>10}{'(N,M,K) MiB':>13}{'value rel':>11}{'grad rel':>10}")
    med, mem = row["median_s"], row["peak_bytes"]
    print(f"{row['cell']:>11}{med['ours'] * 1e3:>10.2f}{med['lewm'] * 1e3:>12.1f}{row['ratio_lewm']:>7.1f}x"
          + (f"{med['lightly'] * 1e3:>12.1f}{row['ratio_lightly']:>7.1f}x" if has_l else "")
          + f"{mem['ours'] / 2**20:>10.1f}{mem['lewm'] / 2**20:>13.1f}"
          + f"{row['agree_value']:>11.1e}{row['agree_grad']:>10.1e}", flush=True)


# --------------------------------------------------------------------------- import order
_ORDER_CHILD = r"""
import os, statistics, sys, time
first = sys.argv[1]
n, d, m, reps = (int(v) for v in sys.argv[2:6])
if first == "torch":
    import torch
    import sigreg_core as sc
else:
    import sigreg_core as sc
    import torch
from sigreg_core import SIGReg
g = torch.Generator().manual_seed(0)
enc = torch.nn.Sequential(torch.nn.Linear(d, 2 * d), torch.nn.GELU(), torch.nn.Linear(2 * d, d))
opt = torch.optim.SGD(enc.parameters(), lr=1e-3)
loss_fn = SIGReg(num_slices=m)
x = torch.randn(n, d, generator=g)
def train_step():
    z = enc(x)
    loss = (z - x).pow(2).mean() + 0.09 * loss_fn(z)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    train_step()
ts = []
for _ in range(reps):
    t0 = time.perf_counter(); train_step(); ts.append(time.perf_counter() - t0)
cpu = time.process_time()
print(statistics.median(ts), os.environ.get("OMP_WAIT_POLICY", "-"))
"""


def import_order(args) -> None:
    """A training step (encoder + SIGReg, fwd + bwd) with either import order, fresh processes."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    print("training step = 2-layer MLP encoder + SIGReg, forward + backward + SGD; median of "
          f"{args.reps * 4} steps, each order in fresh processes, alternated; OMP_WAIT_POLICY unset by the caller")
    print(f"{'N x D':>11}{'torch first ms':>16}{'sigreg_core first ms':>22}{'ratio':>8}")
    for cell in args.cells:
        n, d = (int(v) for v in cell.lower().split("x"))
        res = {"torch": [], "sigreg_core": []}
        for _ in range(3):
            for first in res:
                out = subprocess.run(
                    [sys.executable, "-c", _ORDER_CHILD, first, str(n), str(d), str(args.m), str(args.reps * 4)],
                    capture_output=True, text=True, env=env, cwd=ROOT, check=True,
                )
                res[first].append(float(out.stdout.split()[0]))
        t_t, t_s = statistics.median(res["torch"]), statistics.median(res["sigreg_core"])
        print(f"{n}x{d:<6}{t_t * 1e3:>16.2f}{t_s * 1e3:>22.2f}{t_t / t_s:>7.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=list(DEFAULT_CELLS), help="N x D cells, e.g. 256x512")
    ap.add_argument("--m", type=int, default=1024, help="slices (M)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for torch and the kernel (OMP_NUM_THREADS, NUMBA_NUM_THREADS); 0 = their default")
    ap.add_argument("--child-mem", nargs=2, metavar=("VARIANT", "CELL"), help=argparse.SUPPRESS)
    ap.add_argument("--import-order", action="store_true",
                    help="measure a training step with torch imported first vs sigreg_core first")
    args = ap.parse_args()
    if args.threads:  # before torch and numba start their pools (children inherit it)
        os.environ["OMP_NUM_THREADS"] = os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    if args.child_mem:
        child_memory(args)
        return
    import torch

    print(f"SIGReg loss, forward + backward, M = {args.m}, K = 17 (preset lejepa); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}, median of {args.reps}, interleaved")
    if args.import_order:
        import_order(args)
        return
    rows = run_cells(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
