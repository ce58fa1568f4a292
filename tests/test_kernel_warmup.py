"""Non-blocking kernels (issue 23): while a grid's kernels compile in the background the exact torch
path answers, to float32 rounding the same statistic; then the compiled kernels take over."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sigreg_core.core import ecf, kernel_warmup
from sigreg_core.core.presets import PRESETS, get_preset
from sigreg_core.core.statistic import sigreg

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_torch_path_equals_the_kernel_to_float32_rounding(name, monkeypatch):
    """Oracle: the same statistic in float64 (torch path, float64 input).  The float32 torch path that
    answers while the kernel compiles is at least as close to it as the compiled kernel is."""
    z = torch.from_numpy(np.random.default_rng(3).standard_normal((2048, 64)).astype(np.float32))
    z[:, :4] *= 1.7  # not only N(0, I): some slices far from the null
    _, kern = sigreg(z, num_slices=256, seed=1, preset=name, return_slices=True)
    _, ref = sigreg(z.double(), num_slices=256, seed=1, preset=name, return_slices=True)
    monkeypatch.setattr(ecf, "_KERNEL_MODE", lambda nodes: None)  # every call takes the torch path
    _, tor = sigreg(z, num_slices=256, seed=1, preset=name, return_slices=True)
    monkeypatch.setattr(ecf, "_KERNEL_MODE", lambda nodes: "generic")  # the kernels generic in K
    _, gen = sigreg(z, num_slices=256, seed=1, preset=name, return_slices=True)
    kern, tor, gen, ref = (a.double().numpy() for a in (kern, tor, gen, ref))
    assert not np.array_equal(kern, tor)  # different computations ...
    err_k = np.abs(kern - ref) / np.abs(ref)
    for other in (tor, gen):
        err = np.abs(other - ref) / np.abs(ref)
        assert err.max() <= max(2 * err_k.max(), 1e-6), (err.max(), err_k.max())  # ... each as exact
        assert np.median(err) <= max(2 * np.median(err_k), 1e-6), (np.median(err), np.median(err_k))
        assert abs(kern.mean() - other.mean()) <= 1e-6 * abs(kern.mean())  # SIGReg itself: within 1e-6


def test_grid_keys_of_the_presets_differ():
    keys = {kernel_warmup.grid_key(get_preset(n).nodes) for n in PRESETS}
    assert (17, True) in keys and (64, False) in keys
    assert len(keys) == len(PRESETS)  # each shipped preset has its own specialised kernels


_CHILD = r"""
import json, sys, time
import numpy as np, torch
from sigreg_core.core import ecf, kernel_warmup as kw
from sigreg_core.core.statistic import sigreg
kw.set_nonblocking(True)
kw.request([kw.GENERIC])
z = torch.from_numpy(np.random.default_rng(0).standard_normal((1024, 32)).astype(np.float32))
t = time.perf_counter()
first = float(sigreg(z, num_slices=128, preset="gist"))
t_first = time.perf_counter() - t
key = kw.grid_key(np.linspace(0.2, 4.0, 64))
was_ready = kw.ready(key)
ok = kw.wait_ready([kw.GENERIC, key], timeout=600)
generic_first = kw.status()["log"][0][0] == kw.GENERIC
t = time.perf_counter()
second = float(sigreg(z, num_slices=128, preset="gist"))
t_second = time.perf_counter() - t
print(json.dumps({"t_first": t_first, "was_ready": was_ready, "ok": ok, "first": first, "second": second,
                  "t_second": t_second, "generic_first": generic_first, "status": {k: str(v) for k, v in kw.status().items()}}))
"""


@pytest.mark.slow
def test_empty_cache_first_call_does_not_wait_for_numba(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LATENT_HEALTH_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=900,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["was_ready"] is False and out["ok"] is True, out
    # compiling gist's 64-node kernels takes 8-20 s on an empty cache; the torch path answers at once
    assert out["t_first"] < 4.0, out
    assert abs(out["first"] - out["second"]) <= 1e-6 * abs(out["second"]), out
    assert "(64, False)" in out["status"]["ready"] and out["generic_first"], out
    # the compiled kernels were built in the child process and written to the private cache
    assert list((tmp_path / "cache" / "kernels").rglob("*.nbi")), list((tmp_path / "cache").rglob("*"))


def test_bulk_work_waits_for_the_generic_kernels_instead_of_the_torch_path(monkeypatch):
    """A Monte Carlo null (hundreds of evaluations) inside ``bulk()``: with nothing compiled yet, mode()
    queues the generic kernels and waits for them, rather than answering "torch"."""
    asked = []
    monkeypatch.setattr(kernel_warmup, "_NONBLOCKING", True)
    monkeypatch.setattr(kernel_warmup, "_ready", set())
    monkeypatch.setattr(kernel_warmup, "_queue", [])
    monkeypatch.setattr(kernel_warmup, "request", lambda keys, front=False: asked.extend(keys))
    monkeypatch.setattr(kernel_warmup, "wait_ready", lambda keys, timeout=600: kernel_warmup.GENERIC in keys)
    nodes = get_preset("gist").nodes
    assert kernel_warmup.mode(nodes) is None  # an interactive call: the torch path at once
    with kernel_warmup.bulk():
        assert kernel_warmup.mode(nodes) == "generic"
    assert kernel_warmup.GENERIC in asked and (64, False) in asked
    assert kernel_warmup.mode(nodes) is None  # outside bulk() again
