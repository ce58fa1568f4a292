"""`sigreg score FILE` on the audit's huge files (issue 24): wall time, child peak RSS, exit code.

Builds each file of the audit table (docs/loading.md) in a temporary folder, runs
``python -m sigreg_core score FILE`` in a child process and prints one line per file:
wall seconds, the child's own peak RSS (``resource.getrusage(RUSAGE_CHILDREN)`` after the
child alone has run, i.e. its ``ru_maxrss``; the imports of torch and numba included), the
exit code, the rows scored and the load average.

    PYTHONPATH=$PWD python benchmarks/bench_huge_files.py [NAME ...] [--timeout 300] [-- extra score args]

Each file is scored twice with a fresh cache folder (``LATENT_HEALTH_CACHE``): "cold" pays the
Monte Carlo null of its (D, slices) once (200 draws at N = 2048, then cached), "warm" reads it.

NAMEs: views, npz, parquet_dict, parquet_fsl, sparse_npy, sparse_st, tall_npy, tall_csv (default: all).
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_views(d: Path) -> Path:
    p = d / "views.npy"
    np.save(p, np.zeros((50_000, 2, 4), np.float32))
    return p


def make_npz(d: Path) -> Path:
    p = d / "bomb.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("z.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (50_000_000, 2)})
            block, left = bytes(4 << 20), 50_000_000 * 8
            while left:
                f.write(block[: min(left, len(block))])
                left -= min(left, len(block))
    return p


def _parquet(d: Path, kind: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = d / f"{kind}.parquet"
    if kind == "dictionary":
        n = 40_000_000
        table = pa.table({"a": np.zeros(n, np.float32), "b": np.zeros(n, np.float32)})
    else:
        n = 30_000_000
        table = pa.table({"z": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2 * n, np.float32)), 2)})
    pq.write_table(table, p, compression="zstd", use_dictionary=True, row_group_size=n)
    return p


def make_sparse(d: Path, fmt: str) -> Path:
    n, dim = 3_145_728, 128
    p = d / f"sparse.{fmt}"
    if fmt == "npy":
        np.lib.format.open_memmap(p, mode="w+", dtype=np.float32, shape=(n, dim)).flush()
    else:
        head = json.dumps({"z": {"dtype": "F32", "shape": [n, dim], "data_offsets": [0, n * dim * 4]}}).encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(head)) + head)
            f.truncate(8 + len(head) + n * dim * 4)
    return p


def make_tall(d: Path, fmt: str) -> Path:
    p = d / f"tall.{fmt}"
    if fmt == "npy":
        np.save(p, np.random.default_rng(0).standard_normal((2_500_000, 1)).astype(np.float32))
    else:
        p.write_text("x\n" + "0.5\n-1.25\n" * 2_500_000)
    return p


CASES = {
    "views": (".npy, 50 000 views of 2 x 4", make_views),
    "npz": (".npz, deflated zeros 50 M x 2", make_npz),
    "parquet_dict": (".parquet, dictionary+zstd 40 M x 2", lambda d: _parquet(d, "dictionary")),
    "parquet_fsl": (".parquet, fixed-size list 30 M x 2", lambda d: _parquet(d, "fixed_size_list")),
    "sparse_npy": ("sparse .npy 3 145 728 x 128 (1.5 GiB)", lambda d: make_sparse(d, "npy")),
    "sparse_st": ("sparse .safetensors, the same", lambda d: make_sparse(d, "safetensors")),
    "tall_npy": ("tall .npy 2.5 M x 1", lambda d: make_tall(d, "npy")),
    "tall_csv": ("tall CSV 5 M x 1", lambda d: make_tall(d, "csv")),
}


def score_in_child(path: Path, extra=(), timeout: float = 300.0, env=None) -> dict:
    """Run ``sigreg score --json PATH`` alone in a child; its wall time, own peak RSS and exit code."""
    import resource

    cmd = [sys.executable, "-m", "sigreg_core", "score", "--json", "--quiet", str(path), *extra]
    env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        out, errtext = proc.communicate(timeout=timeout)
        killed = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, errtext = proc.communicate()
        killed = True
    dt = time.perf_counter() - t0
    # wait4 would be exact per child; getrusage(RUSAGE_CHILDREN) is the max over children waited for,
    # so the harness runs one child per process (main() re-executes itself per case)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    rows = None
    if proc.returncode == 0 and out.strip():
        try:
            rows = json.loads(out)[0].get("rows")
        except (ValueError, IndexError, AttributeError):
            pass
    return {"seconds": dt, "peak_bytes": peak, "code": None if killed else proc.returncode, "killed": killed,
            "rows": rows, "stderr": errtext.strip().splitlines()[-1:] if errtext.strip() else []}


def main(argv) -> int:
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    timeout = 300.0
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if argv and argv[0] == "--one":  # child harness: build one case and score it
        name = argv[1]
        with tempfile.TemporaryDirectory() as d:
            p = CASES[name][1](Path(d))
            r = score_in_child(p, extra, timeout)
        print(json.dumps(r))
        return 0
    names = argv or list(CASES)
    print(f"# sigreg score FILE {' '.join(extra)}; cpu {os.cpu_count()} cores; load average at start "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    for name in names:
        with tempfile.TemporaryDirectory() as cache:
            for phase in ("cold", "warm"):
                res = subprocess.run([sys.executable, __file__, "--one", name, "--timeout", str(timeout), "--", *extra],
                                     capture_output=True, text=True, cwd=ROOT,
                                     env=dict(os.environ, LATENT_HEALTH_CACHE=cache))
                try:
                    r = json.loads(res.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    print(f"{name}: harness failed: {res.stderr[-500:]}", flush=True)
                    break
                state = f"killed at {timeout:.0f} s" if r["killed"] else f"exit {r['code']}"
                note = f" | {r['stderr'][0][:140]}" if r["code"] not in (0, None) and r["stderr"] else ""
                print(f"{CASES[name][0]:42s} {phase} {state:>16s} {r['seconds']:7.1f} s "
                      f"{r['peak_bytes'] / 2**20:7.0f} MiB rows={r['rows']} load={os.getloadavg()[0]:.1f}{note}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
