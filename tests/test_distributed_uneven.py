"""DDP never hangs (issue 24): three gloo ranks with 300, 212 and 0 rows.

A rank without rows used to raise before the all-reduce, so the other ranks waited forever.
Now it joins every collective with zero sums.  Oracles: the single-process statistic and
gradient of the concatenated batch; for the effective weight, a real
``DistributedDataParallel`` model whose parameter gradient is compared with the
single-process gradient of ``λ · SIGReg`` on the global batch: λ / W by default (DDP
averages over W ranks), λ with ``global_weight=True``.  The spawn is bounded by a timeout,
so a hang fails the test instead of freezing the suite.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

import sigreg_core as sc
from distributed_helpers import spawn_ranks

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # three spawned interpreters: ~80 s on a loaded 2-core box

N_TOTAL, DIM, OUT, SLICES, LAM = 512, 10, 6, 64, 0.7
SHARDS = [(0, 300), (300, 512), (512, 512)]  # rank 2 holds no rows
WORLD = len(SHARDS)
TIMEOUT = 240


def _data():
    g = torch.Generator().manual_seed(321)
    x = torch.randn(N_TOTAL, DIM, generator=g)
    x[:, 1] = x[:, 1] * 2.5 + 0.3  # non-Gaussian directions: a non-trivial gradient
    lin = torch.nn.Linear(DIM, OUT)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(OUT, DIM, generator=g) * 0.5)
        lin.bias.copy_(torch.randn(OUT, generator=g) * 0.1)
    return x, lin


def _worker(rank: int, port: int, queue) -> None:
    import datetime

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=TIMEOUT // 2))
    try:
        torch.set_num_threads(1)
        x, lin = _data()
        lo, hi = SHARDS[rank]
        shard = x[lo:hi]
        a = sc.sample_directions(OUT, SLICES, seed=4)
        out = {}
        # functional loss, uneven and empty shards
        zg = (shard @ lin.weight.detach().T).clone().requires_grad_()
        v = sc.sigreg(zg, directions=a)
        v.backward()
        out["value"], out["zgrad"] = v.item(), zg.grad.clone()
        out["ep"] = sc.epps_pulley(shard[:, :3]).detach().clone()
        # the module under a real DDP model, default and global weight
        for gw in (False, True):
            model = DDP(torch.nn.Linear(DIM, OUT))
            model.module.load_state_dict(lin.state_dict())
            loss_fn = sc.SIGReg(num_slices=SLICES, seed=9, fixed_directions=True, global_weight=gw)
            loss = LAM * loss_fn(model(shard))
            loss.backward()
            out[f"loss_{gw}"] = loss.item()
            out[f"wgrad_{gw}"] = model.module.weight.grad.clone()
        # plain numpy through the queue: torch tensors travel as shared-memory handles that die with this process
        queue.put((rank, {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}))
    except Exception as exc:  # reported to the parent instead of a silent hang
        queue.put((rank, {"error": f"{type(exc).__name__}: {exc}"}))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    got = spawn_ranks(_worker, WORLD, TIMEOUT)
    return [{k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in g.items()} for g in got]


def test_an_empty_rank_gets_the_global_statistic_and_nobody_hangs(ranks):
    x, lin = _data()
    z = (x @ lin.weight.detach().T).requires_grad_()
    a = sc.sample_directions(OUT, SLICES, seed=4)
    single = sc.sigreg(z, directions=a)
    single.backward()
    for r, (lo, hi) in zip(ranks, SHARDS):
        assert r["value"] == pytest.approx(single.item(), rel=1e-6)
        assert r["zgrad"].shape == (hi - lo, OUT)
        torch.testing.assert_close(r["zgrad"], z.grad[lo:hi], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ranks[2]["ep"].numpy(), sc.epps_pulley(x[:, :3]).numpy(), rtol=1e-5)


def _single_weight_grad():
    x, lin = _data()
    loss = LAM * sc.SIGReg(num_slices=SLICES, seed=9, fixed_directions=True)(lin(x))
    loss.backward()
    return loss.item(), lin.weight.grad


def test_ddp_effective_weight_is_lambda_over_world_by_default(ranks):
    value, grad = _single_weight_grad()
    for r in ranks:
        assert r["loss_False"] == pytest.approx(value, rel=1e-6)
        torch.testing.assert_close(r["wgrad_False"], grad / WORLD, rtol=1e-4, atol=1e-7)


def test_global_weight_keeps_lambda_per_global_batch_under_ddp(ranks):
    value, grad = _single_weight_grad()
    for r in ranks:
        assert r["loss_True"] == pytest.approx(value, rel=1e-6)  # the value itself is unchanged
        torch.testing.assert_close(r["wgrad_True"], grad, rtol=1e-4, atol=1e-6)


def test_global_weight_is_a_no_op_without_a_group():
    x, lin = _data()
    z1 = lin(x).detach().requires_grad_()
    z2 = z1.detach().clone().requires_grad_()
    v1 = sc.SIGReg(num_slices=SLICES, seed=9, fixed_directions=True)(z1)
    v2 = sc.SIGReg(num_slices=SLICES, seed=9, fixed_directions=True, global_weight=True)(z2)
    v1.backward()
    v2.backward()
    assert v1.item() == v2.item()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=0, atol=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        sc.sigreg(torch.zeros(0, 4))  # without DDP, zero rows are still refused
