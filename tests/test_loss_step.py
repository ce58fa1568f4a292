"""The fast training-step path of the SIGReg loss stays exact.

Kept projection vs recomputed, the node-count-specialised gradient kernel vs the
generic one and a float64 formula, the module's (prefetched) draws vs LeJEPA's
seeded draw bit for bit, the thread count of the kernel, and the CUDA path.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

import sigreg_core as sc
from sigreg_core.core import ecf, statistic
from sigreg_core.core.directions import SERIAL_MAX_DIM, sample_directions, sample_directions_serial
from sigreg_core.core.presets import PRESETS

CUDA = torch.cuda.is_available()


def lejepa_draw(dim: int, m: int, seed: int) -> torch.Tensor:
    """LeJEPA's SlicingUnivariateTest draw, written out independently."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, m, generator=g)
    return a / a.norm(p=2, dim=0)


def grad_of(fn, z):
    z = z.detach().clone().requires_grad_()
    v = fn(z)
    v.backward()
    return v.detach(), z.grad


def float64_weighted(x: np.ndarray, nodes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """G[n, m] = sum_k a[m, k] cos(t_k x) + b[m, k] sin(t_k x), float64, by the definition."""
    tx = x[:, :, None].astype(np.float64) * nodes[None, None, :]
    return (np.cos(tx) * a[None]).sum(-1) + (np.sin(tx) * b[None]).sum(-1)


@pytest.mark.parametrize("name", ["lejepa", "gist", "lejepa-paper", "lejepa-legacy"])
def test_specialised_gradient_kernel_matches_float64_and_the_generic_kernel(name):
    nk = ecf.numba_kernels()
    if nk is None:
        pytest.skip("numba disabled")
    p = PRESETS[name]
    gen = torch.Generator().manual_seed(3)
    x = 1.3 * torch.randn(700, 45, generator=gen)  # 45 slices: a padded tile too
    a = torch.randn(45, p.num_nodes, generator=gen, dtype=torch.float64)
    b = torch.randn(45, p.num_nodes, generator=gen, dtype=torch.float64)
    got = ecf.ecf_weighted_sum(x, p.nodes, a, b).numpy()
    ref = float64_weighted(x.numpy(), p.nodes, a.numpy(), b.numpy())
    scale = (np.abs(a.numpy()) + np.abs(b.numpy())).sum(-1)[None, :]
    assert np.abs(got - ref).max() / scale.max() < 2e-6
    # the generic kernel (what runs when no specialised one can be built) agrees too
    t0, h = ecf.grid_of(p.nodes)
    xp = ecf._padded(x)
    mp = xp.shape[1]
    cc = np.zeros((p.num_nodes, mp), np.float32)
    cs = np.zeros((p.num_nodes, mp), np.float32)
    cc[:, :45] = a.numpy().T
    cs[:, :45] = b.numpy().T
    out = np.empty((700, mp), np.float32)
    nk.ecf_weighted_generic(xp, t0, h, cc, cs, out)
    assert np.abs(out[:, :45] - got).max() / scale.max() < 2e-6
    assert nk.specialised_weighted_kernel(p.num_nodes, t0 == 0.0) is not None


def test_kept_projection_gives_the_same_gradient_as_recomputing(monkeypatch):
    z = torch.randn(600, 48, generator=torch.Generator().manual_seed(4)) * 1.2
    a = sample_directions(48, 96, seed=2)
    v_keep, g_keep = grad_of(lambda t: sc.sigreg(t, directions=a), z)
    monkeypatch.setattr(statistic, "KEEP_PROJECTION_BYTES", 0)
    v_re, g_re = grad_of(lambda t: sc.sigreg(t, directions=a), z)
    assert torch.equal(v_keep, v_re)
    assert torch.equal(g_keep, g_re)  # the same GEMM on the same rows: bit for bit


def _matmuls_in_a_step(z, a) -> int:
    from torch.profiler import ProfilerActivity, profile

    z = z.detach().clone().requires_grad_()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sc.sigreg(z, directions=a).backward()
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm"))


def test_a_step_is_two_gemms_when_the_projection_fits_and_three_otherwise(monkeypatch):
    z = torch.randn(400, 32)
    a = sample_directions(32, 64, seed=1)
    assert _matmuls_in_a_step(z, a) == 2
    monkeypatch.setattr(statistic, "KEEP_PROJECTION_BYTES", 400 * 64 * 4 - 1)
    assert _matmuls_in_a_step(z, a) == 3
    # two views: the budget holds for both together
    monkeypatch.setattr(statistic, "KEEP_PROJECTION_BYTES", 2 * 400 * 64 * 4)
    assert _matmuls_in_a_step(torch.randn(2, 400, 32), a) == 4
    monkeypatch.setattr(statistic, "KEEP_PROJECTION_BYTES", 2 * 400 * 64 * 4 - 2)
    assert _matmuls_in_a_step(torch.randn(2, 400, 32), a) == 6


@pytest.mark.parametrize("keep", [True, False])
def test_chunked_gradient_matches_the_float64_autograd_formula(monkeypatch, keep):
    if not keep:
        monkeypatch.setattr(statistic, "KEEP_PROJECTION_BYTES", 0)
    p = PRESETS["lejepa"]
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(1000, 24, generator=gen)
    z[:, :6] *= 1.7
    a = sample_directions(24, 40, seed=9)
    _, g = grad_of(lambda t: sc.sigreg(t, directions=a, chunk_rows=300), z)  # 4 chunks, the last short

    z64 = z.double().requires_grad_()
    t = torch.as_tensor(p.nodes)
    xt = (z64 @ a.double())[..., None] * t
    err = (xt.cos().mean(0) - torch.exp(-t**2 / 2)) ** 2 + xt.sin().mean(0) ** 2
    ((err @ torch.as_tensor(p.weights)) * z.shape[0]).mean().backward()
    rel = ((g.double() - z64.grad).norm() / z64.grad.norm()).item()
    assert rel < 2e-6


def test_module_draws_are_lejepas_seeded_draws_bit_for_bit_step_after_step():
    dim, m = 40, 72
    loss = sc.SIGReg(num_slices=m, seed=11, prefetch=True)
    z = torch.randn(300, dim, generator=torch.Generator().manual_seed(6))
    for step in range(4):  # steps 1..3 come from the background draw
        expected = lejepa_draw(dim, m, 11 + step)
        assert torch.equal(loss.current_directions(dim), expected)
        v = loss(z)
        assert v.item() == sc.sigreg(z, directions=expected).item()
        assert loss._drawn._ahead[0][:3] == (dim, m, 11 + step + 1)  # the next draw is under way
    assert int(loss.step) == 4


def test_module_after_a_restored_step_draws_for_that_step():
    dim, m = 16, 32
    a = sc.SIGReg(num_slices=m)
    z = torch.randn(200, dim)
    for _ in range(3):
        a(z)  # a draw for step 3 is now waiting
    b = sc.SIGReg(num_slices=m)
    b.load_state_dict({"step": torch.tensor(17)})
    b(z)
    a.load_state_dict(b.state_dict())  # the waiting draw no longer matches the step
    assert torch.equal(a.current_directions(dim), lejepa_draw(dim, m, 18))


def test_serial_draw_equals_the_plain_draw_bit_for_bit():
    for dim in (1, 3, 64, 255, 512, 1000, 4096, SERIAL_MAX_DIM + 1):
        for m in (1, 17, 1024):
            if dim * m > 40_000_000:
                continue
            assert torch.equal(sample_directions_serial(dim, m, dim + m), lejepa_draw(dim, m, dim + m)), (dim, m)
    with pytest.raises(ValueError):
        sample_directions_serial(0, 4)


def test_prefetch_auto_draws_ahead_only_with_a_core_to_spare(monkeypatch):
    z = torch.randn(64, 8)
    threads = torch.get_num_threads()
    for cores, ahead in ((threads, False), (threads + 1, True)):
        monkeypatch.setattr(statistic, "_usable_cores", lambda cores=cores: cores)
        loss = sc.SIGReg(num_slices=16, seed=2)  # prefetch="auto"
        loss(z)
        assert (loss._drawn._ahead is not None) is ahead, cores
        assert loss(z).item() == sc.sigreg(z, directions=lejepa_draw(8, 16, 3)).item()
    monkeypatch.setattr(statistic, "_usable_cores", lambda: 1)
    assert statistic._prefetch_pays("auto", torch.device("cuda"))  # the CPU waits on the device anyway
    assert not statistic._prefetch_pays(False, torch.device("cuda"))
    with pytest.raises(ValueError, match="prefetch"):
        sc.SIGReg(prefetch="sometimes")


@pytest.mark.parametrize("dim", [1, 2, 31, 64, 65, 300, 1024, 4097])
def test_compiled_column_norms_give_torchs_bits(dim):
    draw_kernel = pytest.importorskip("sigreg_core.core.draw_kernel")
    assert draw_kernel.kernel_agrees_with_torch()
    for m in (2, 63, 64, 65, 200, 1024):
        g = torch.Generator().manual_seed(dim * 1000 + m)
        raw = torch.randn(dim, m, generator=g)
        ref = raw / raw.norm(p=2, dim=0)
        for fn in (draw_kernel.normalise_columns, draw_kernel.normalise_columns_serial):
            a = raw.clone()
            assert fn(a), (dim, m)  # the kernel ran (it did not hand back to torch)
            assert torch.equal(a, ref), (dim, m, fn.__name__)
    one = torch.randn(50, 1)
    assert not draw_kernel.normalise_columns(one.clone())  # one column: torch reduces it another way
    # the public draw takes the kernel from KERNEL_MIN_VALUES on and is still LeJEPA's draw
    from sigreg_core.core.directions import KERNEL_MIN_VALUES

    m = -(-KERNEL_MIN_VALUES // dim) + 3
    calls = []
    real = draw_kernel.normalise_columns
    try:
        draw_kernel.normalise_columns = lambda a: calls.append(a.shape) or real(a)
        assert torch.equal(sample_directions(dim, m, 9), lejepa_draw(dim, m, 9))
    finally:
        draw_kernel.normalise_columns = real
    assert calls == [(dim, m)]


def test_draw_falls_back_to_torch_when_the_kernel_disagrees(monkeypatch):
    draw_kernel = pytest.importorskip("sigreg_core.core.draw_kernel")
    monkeypatch.setattr(draw_kernel, "_AGREES", False)
    a = torch.randn(128, 512)
    assert not draw_kernel.normalise_columns(a.clone())
    assert torch.equal(sample_directions(128, 512, 4), lejepa_draw(128, 512, 4))
    assert torch.equal(sample_directions_serial(128, 512, 4), lejepa_draw(128, 512, 4))


def test_module_copies_and_pickles_without_its_background_draw():
    loss = sc.SIGReg(num_slices=32, seed=3)
    z = torch.randn(100, 8)
    loss(z)
    for clone in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert int(clone.step) == 1
        assert torch.equal(clone.current_directions(8), lejepa_draw(8, 32, 4))
        assert clone(z).item() == sc.sigreg(z, directions=lejepa_draw(8, 32, 4)).item()


def test_module_with_given_directions_checks_them_once_and_the_dimension_every_call():
    with pytest.raises(ValueError, match="zero norm"):
        sc.SIGReg(directions=torch.zeros(8, 4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        sc.SIGReg(directions=torch.full((8, 4), float("nan")))
    a = lejepa_draw(8, 4, 0)
    loss = sc.SIGReg(directions=a)
    z = torch.randn(50, 8)
    assert loss(z).item() == sc.sigreg(z, directions=a).item()
    with pytest.raises(ValueError, match="D = 9"):
        loss(torch.randn(50, 9))
    with pytest.raises(ValueError, match="num_slices"):
        sc.SIGReg(num_slices=0)


def test_fixed_directions_are_drawn_once():
    loss = sc.SIGReg(num_slices=16, seed=5, fixed_directions=True)
    z = torch.randn(80, 6)
    v1, v2 = loss(z), loss(z)
    assert v1.item() == v2.item() == sc.sigreg(z, directions=lejepa_draw(6, 16, 5)).item()
    assert loss.current_directions(6) is loss.current_directions(6)


def test_kernel_threads_follow_torch_set_num_threads():
    nk = ecf.numba_kernels()
    if nk is None:
        pytest.skip("numba disabled")
    import numba

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sc.sigreg(torch.randn(64, 8), num_slices=32)
        assert numba.get_num_threads() == 1
        torch.set_num_threads(before)
        sc.sigreg(torch.randn(64, 8), num_slices=32)
        assert numba.get_num_threads() == min(before, numba.config.NUMBA_NUM_THREADS)
    finally:
        torch.set_num_threads(before)


def test_grid_is_checked_once_and_refuses_uneven_nodes():
    nodes = PRESETS["gist"].nodes
    assert ecf.grid_of(nodes) == ecf.grid_of(nodes.copy()) == (pytest.approx(0.2), pytest.approx(3.8 / 63))
    with pytest.raises(ValueError, match="equispaced"):
        ecf.grid_of(np.array([0.0, 1.0, 3.0]))


def test_views_are_scored_separately_and_averaged():
    z = torch.randn(3, 200, 12, generator=torch.Generator().manual_seed(8))
    a = lejepa_draw(12, 24, 1)
    v, per = sc.sigreg(z, directions=a, return_slices=True)
    assert per.shape == (3, 24)
    singles = torch.stack([sc.sigreg(z[i], directions=a) for i in range(3)])
    assert v.item() == pytest.approx(singles.mean().item(), rel=1e-6)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_module_step_matches_the_cpu_step():
    z = torch.randn(2048, 64, generator=torch.Generator().manual_seed(10))
    z[:, :16] *= 1.5
    cpu_loss, gpu_loss = sc.SIGReg(num_slices=256, seed=2), sc.SIGReg(num_slices=256, seed=2).cuda()
    for _ in range(3):  # the later steps use the draw prepared in the background
        v_c, g_c = grad_of(cpu_loss, z)
        v_g, g_g = grad_of(gpu_loss, z.cuda())
        assert v_g.item() == pytest.approx(v_c.item(), rel=1e-5)
        assert ((g_g.cpu() - g_c).norm() / g_c.norm()).item() < 1e-4
    assert torch.equal(gpu_loss.current_directions(64).cpu(), lejepa_draw(64, 256, 5))


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_chunked_gradient_with_and_without_kept_projection(monkeypatch):
    z = torch.randn(3000, 32, device="cuda")
    a = lejepa_draw(32, 64, 3).cuda()
    _, g1 = grad_of(lambda t: sc.sigreg(t, directions=a, chunk_rows=1000), z)
    monkeypatch.setattr(statistic, "KEEP_PROJECTION_BYTES", 0)
    _, g2 = grad_of(lambda t: sc.sigreg(t, directions=a, chunk_rows=1000), z)
    assert torch.allclose(g1, g2, rtol=1e-5, atol=1e-7)
