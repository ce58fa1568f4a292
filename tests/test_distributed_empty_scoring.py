"""Distributed scoring never hangs (issue 24): three gloo ranks with 300, 212 and 0 rows.

``score_slices(distributed=True)`` used to raise on a rank without rows, after the other
ranks had entered the shift all-reduce: they waited forever (``sigreg score --distributed``
likewise).  Now an empty rank joins every collective with zero sums and a zero count.
Oracle: the single-process result on the concatenated rows (the same rows summed in another
order, so equal to float rounding).  Every spawn is bounded by a timeout: a hang fails the
test instead of freezing the suite.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sigreg_core as sc
from distributed_helpers import free_port, spawn_ranks

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # spawned interpreters: ~30 s on a loaded 2-core box

ROOT = Path(__file__).resolve().parents[1]
N_TOTAL, DIM, SLICES = 512, 6, 64
SHARDS = [(0, 300), (300, 512), (512, 512)]  # rank 2 holds no rows
WORLD = len(SHARDS)
TIMEOUT = 240


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((N_TOTAL, DIM)) * 3.0  # a global scale: the conventions rescore the slices
    z[:, 0] = rng.standard_t(3, N_TOTAL)  # heavy tails: something to detect
    return z


def _summary(a) -> dict:
    return {
        "sigreg": a.sigreg, "p": a.p_value, "n": a.config["n"], "verdict": a.verdict, "modes": list(a.modes),
        "rankme": a.metrics["rankme"], "eig": np.asarray(a.metrics["eigenvalues"]),
        "stat": a.per_slice["statistic"].to_numpy(),
        "directions": a.answers["health"]["effective_directions"],
        "conventions": [(c["name"], c["sigreg_after"], c.get("sigreg_as_given")) for c in a.answers["conventions"]],
    }


def _run(shard: np.ndarray, distributed: bool) -> dict:
    from sigreg_core.assessment.assess import assess
    from sigreg_core.assessment.metrics import companion_metrics

    a = sc.sample_directions(DIM, SLICES, seed=4)
    out = {}
    for preset in ("lejepa", "modulus"):  # modulus standardises first: one more all-reduce
        st = sc.score_slices(shard, a, preset, distributed=distributed)
        out[preset] = (st.n, st.statistic, st.mean, st.std, st.kurtosis)
    out["metrics"] = companion_metrics(shard, distributed=distributed)["rankme"]
    out["assess"] = _summary(assess(shard, num_slices=SLICES, seed=2, family="principal", null_draws=0,
                                    cache_dir=False, distributed=distributed))
    return out


def _worker(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=TIMEOUT // 2))
    try:
        torch.set_num_threads(1)
        lo, hi = SHARDS[rank]
        queue.put((rank, _run(_data()[lo:hi], True)))
    except Exception as exc:  # reported to the parent instead of a silent hang
        queue.put((rank, {"error": f"{type(exc).__name__}: {exc}"}))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    return spawn_ranks(_worker, WORLD, TIMEOUT)


@pytest.fixture(scope="module")
def single():
    return _run(_data(), False)


def test_score_slices_on_an_empty_rank_equals_the_concatenated_rows(ranks, single):
    for r in ranks:
        for preset in ("lejepa", "modulus"):
            n, stat, mean, std, kurt = r[preset]
            n1, stat1, mean1, std1, kurt1 = single[preset]
            assert n == n1 == N_TOTAL  # the global N, on the empty rank too
            np.testing.assert_allclose(stat, stat1, rtol=2e-5, atol=1e-8)
            np.testing.assert_allclose(mean, mean1, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(std, std1, rtol=1e-5)
            np.testing.assert_allclose(kurt, kurt1, rtol=1e-4, atol=1e-6)
        assert r["metrics"] == pytest.approx(single["metrics"], rel=1e-9)


def test_assess_on_an_empty_rank_equals_the_concatenated_rows(ranks, single):
    ref = single["assess"]
    assert ref["conventions"] and ref["conventions"][0][0] == "global_scale"  # the rescored slices are exercised
    for r in ranks:
        got = r["assess"]
        assert got["n"] == N_TOTAL and got["verdict"] == ref["verdict"] and got["modes"] == ref["modes"]
        assert got["sigreg"] == pytest.approx(ref["sigreg"], rel=1e-5)
        assert got["p"] == pytest.approx(ref["p"], rel=1e-3, abs=1e-300)
        assert got["rankme"] == pytest.approx(ref["rankme"], rel=1e-9)
        np.testing.assert_allclose(got["eig"], ref["eig"], rtol=1e-9)
        np.testing.assert_allclose(got["stat"], ref["stat"], rtol=2e-5, atol=1e-8)
        assert got["directions"] == pytest.approx(ref["directions"], rel=1e-9)
        # the conventions' rescored slices are the global batch's too (they were the local rows')
        assert [c[0] for c in got["conventions"]] == [c[0] for c in ref["conventions"]]
        for c, c1 in zip(got["conventions"], ref["conventions"]):
            assert c[1] == pytest.approx(c1[1], rel=1e-5)


def test_without_a_group_zero_rows_are_still_refused():
    with pytest.raises(ValueError, match="at least 2 rows"):
        sc.score_slices(np.zeros((0, 4)), sc.sample_directions(4, 8, seed=0))


def test_cli_with_fewer_shards_than_processes_scores_the_shards_given(tmp_path):
    """torchrun with 3 processes and 2 shards of 2 views: rank 2 has no shard and no rows; before, exit 2."""
    z = np.stack([_data(), _data()[::-1] * 0.5]).astype(np.float32)  # (2 views, N, D)
    a, b, whole = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "whole.npy"
    np.save(a, z[:, :300])
    np.save(b, z[:, 300:])
    np.save(whole, z)
    fast = ["--slices", str(SLICES), "--null-draws", "0", "--quiet", "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORLD), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), "-m", "sigreg_core", "score", "--distributed", *fast,
           str(a), str(b)]
    multi = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=TIMEOUT)
    assert multi.returncode == 0, multi.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "sigreg_core", "score", *fast, str(whole)], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr[-3000:]
    got, ref = json.loads(multi.stdout)[0], json.loads(one.stdout)[0]  # only rank 0 prints
    assert got["world_size"] == WORLD and got["rows"] == ref["rows"] == N_TOTAL and got["num_views"] == 2
    for vg, vr in zip(got["views"], ref["views"]):
        assert vg["sigreg"] == pytest.approx(vr["sigreg"], rel=1e-6)
    assert got["sigreg"] == pytest.approx(ref["sigreg"], rel=1e-6)
    assert got["verdict"] == ref["verdict"] and got["modes"] == ref["modes"]
    np.testing.assert_allclose(got["per_slice"]["statistic"], ref["per_slice"]["statistic"], rtol=5e-5, atol=1e-6)
