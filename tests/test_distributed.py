"""Two CPU processes on gloo give the statistic and gradient of the concatenated batch."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import sigreg_core as sc

pytestmark = pytest.mark.distributed

N_TOTAL, DIM, SLICES = 512, 12, 96
SPLIT = 300  # uneven shards: rank 0 has 300 rows, rank 1 has 212


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    z = torch.randn(N_TOTAL, DIM, generator=g)
    z[:, 0] = z[:, 0] * 2 + 0.5  # not Gaussian in every direction: a non-trivial gradient
    return z


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        z = _batch()
        shard = z[:SPLIT] if rank == 0 else z[SPLIT:]
        a = sc.sample_directions(DIM, SLICES, seed=3)
        zg = shard.clone().requires_grad_()
        value = sc.sigreg(zg, directions=a)
        value.backward()
        st = sc.score_slices(shard.numpy(), a, distributed=True)
        per_slice = sc.epps_pulley(shard @ a)
        mod = sc.SIGReg(num_slices=SLICES)
        mod.step.fill_(3 if rank == 0 else 5)  # ranks disagree: the module syncs to the max
        mod_value = mod(shard).item()
        torch.save(
            {
                "value": value.item(),
                "grad": zg.grad,
                "stat": torch.from_numpy(st.statistic),
                "kurt": torch.from_numpy(st.kurtosis),
                "n": st.n,
                "per_slice": per_slice,
                "mod_value": mod_value,
            },
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_every_rank_gets_the_global_statistic(ranks):
    z = _batch()
    a = sc.sample_directions(DIM, SLICES, seed=3)
    single = sc.sigreg(z, directions=a).item()
    for r in ranks:
        assert r["value"] == pytest.approx(single, rel=1e-6)
    np.testing.assert_allclose(ranks[0]["per_slice"].numpy(), sc.epps_pulley(z @ a).numpy(), rtol=1e-5)


def test_rank_gradients_equal_the_single_process_gradient(ranks):
    z = _batch().requires_grad_()
    a = sc.sample_directions(DIM, SLICES, seed=3)
    sc.sigreg(z, directions=a).backward()
    torch.testing.assert_close(ranks[0]["grad"], z.grad[:SPLIT], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ranks[1]["grad"], z.grad[SPLIT:], rtol=1e-4, atol=1e-7)


def test_score_slices_distributed_equals_concatenation(ranks):
    z = _batch()
    a = sc.sample_directions(DIM, SLICES, seed=3)
    st = sc.score_slices(z.numpy(), a)
    for r in ranks:
        assert r["n"] == N_TOTAL
        np.testing.assert_allclose(r["stat"].numpy(), st.statistic, rtol=1e-5)
        np.testing.assert_allclose(r["kurt"].numpy(), st.kurtosis, rtol=0, atol=1e-5)  # float32 block sums


def test_module_step_is_synchronised_across_ranks(ranks):
    z = _batch()
    expected = sc.sigreg(z, SLICES, seed=5).item()
    for r in ranks:
        assert r["mod_value"] == pytest.approx(expected, rel=1e-6)
