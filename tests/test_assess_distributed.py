"""assess(distributed=True) on shards equals assess on the concatenated batch (gloo, 2 ranks)."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, z, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from sigreg_core.assessment.assess import assess

        shard = np.array_split(z, world)[rank]
        a = assess(shard, num_slices=64, seed=2, family="principal", null_draws=0, cache_dir=False,
                   distributed=True)
        out[rank] = {
            "sigreg": a.sigreg, "p": a.p_value, "rankme": a.metrics["rankme"], "n": a.config["n"],
            "eig": np.asarray(a.metrics["eigenvalues"]), "stat": a.per_slice["statistic"].to_numpy(),
            "modes": list(a.modes), "verdict": a.verdict,
            "directions": a.answers["health"]["effective_directions"],
            "q": a.answers["health"]["relative_effective_rank"],
        }
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_distributed_equals_concatenated():
    from sigreg_core.assessment.assess import assess

    rng = np.random.default_rng(0)
    z = (rng.standard_normal((600, 6)) * [1, 1, 1, 1, 1, 3]).astype(np.float64)
    ref = assess(z, num_slices=64, seed=2, family="principal", null_draws=0, cache_dir=False)
    out = mp.Manager().dict()
    port = _free_port()
    mp.spawn(_worker, args=(2, port, z, out), nprocs=2, join=True)
    for r in range(2):
        got = out[r]
        assert got["n"] == 600
        assert got["rankme"] == pytest.approx(ref.metrics["rankme"], rel=1e-9)
        np.testing.assert_allclose(got["eig"], ref.metrics["eigenvalues"], rtol=1e-9)
        np.testing.assert_allclose(got["stat"], ref.per_slice["statistic"].to_numpy(), rtol=1e-6, atol=1e-9)
        assert got["sigreg"] == pytest.approx(ref.sigreg, rel=1e-6)
        assert got["p"] == pytest.approx(ref.p_value, rel=1e-4)
        assert got["modes"] == ref.modes
        # the health (the verdict's own numbers) is the whole batch's on every rank, not the shard's
        assert got["directions"] == pytest.approx(ref.answers["health"]["effective_directions"], rel=1e-9)
        assert got["q"] == pytest.approx(ref.answers["health"]["relative_effective_rank"], rel=1e-9)
        assert got["verdict"] == ref.verdict


def test_worst_family_is_refused_under_distributed():
    from sigreg_core.assessment.assess import assess

    with pytest.raises(ValueError, match="worst"):
        assess(np.zeros((10, 3)), family="worst", distributed=True, null_draws=0)
