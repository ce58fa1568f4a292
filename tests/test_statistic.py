"""The SIGReg statistic against independent oracles (SIGREG.md §1-§3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

import sigreg_core as sc
from sigreg_core.core.ecf import ecf_sums, ecf_weighted_sum
from sigreg_core.core.presets import PRESETS, Preset

ECF_PRESETS = ["lejepa", "lejepa-paper", "lejepa-legacy", "gist"]


# ----------------------------------------------------------------------------- oracles
def oracle_ep(x: np.ndarray, preset: Preset) -> np.ndarray:
    """Per-slice statistic in float64 via the complex ECF (a different route from ours)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    t = np.asarray(preset.nodes)
    if preset.standardize:
        x = (x - x.mean(0)) / x.std(0, ddof=preset.std_ddof)
    if n < preset.min_rows:
        return np.zeros(x.shape[1])
    ecf = np.exp(1j * x[:, :, None] * t[None, None, :]).mean(0)  # (M, K)
    if preset.form == "ecf":
        err = np.abs(ecf - np.exp(-(t**2) / 2)) ** 2
    else:
        err = (np.abs(ecf) ** 2 - np.exp(-(t**2))) ** 2
    out = err @ preset.weights
    return out * n if preset.scale_by_n else out


def naive_torch_sigreg(z: torch.Tensor, a: torch.Tensor, preset: Preset) -> torch.Tensor:
    """The reference module's form: materialise (N, M, K) and let autograd differentiate."""
    t = torch.as_tensor(preset.nodes, dtype=z.dtype)
    w = torch.as_tensor(preset.weights, dtype=z.dtype)
    x_t = (z @ a.to(z.dtype)).unsqueeze(-1) * t
    cm, sm = x_t.cos().mean(-3), x_t.sin().mean(-3)
    if preset.form == "ecf":
        err = (cm - torch.exp(-(t**2) / 2)).square() + sm.square()
    else:
        err = (cm.square() + sm.square() - torch.exp(-(t**2))).square()
    stat = err @ w
    if preset.scale_by_n:
        stat = stat * z.shape[-2]
    return stat.mean()


def closed_form_whole_line(x: np.ndarray) -> float:
    """EP over the whole line with weight exp(-t^2/2), exact O(N^2) (SIGREG.md §2)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    diff = x[:, None] - x[None, :]
    return (
        math.sqrt(2 * math.pi) / n * np.exp(-(diff**2) / 2).sum()
        - 2 * math.sqrt(math.pi) * np.exp(-(x**2) / 4).sum()
        + n * math.sqrt(2 * math.pi / 3)
    )


# ----------------------------------------------------------------------------- presets
def test_reference_null_means_and_collapse_values():
    assert PRESETS["lejepa"].null_mean() == pytest.approx(1.052464, abs=2e-6)
    assert PRESETS["lejepa-paper"].null_mean() == pytest.approx(1.059423, abs=2e-6)
    assert PRESETS["lejepa"].collapse_value(1) == pytest.approx(0.402048, abs=2e-6)
    w = PRESETS["lejepa"].quadrature_weights
    assert w[0] == pytest.approx(3 / 16) and w[-1] == pytest.approx(3 / 16) and w[1] == pytest.approx(6 / 16)
    assert 0.0 not in PRESETS["lejepa-legacy"].nodes
    assert len(PRESETS["gist"].nodes) == 64 and PRESETS["gist"].nodes[0] == pytest.approx(0.2)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset"):
        sc.get_preset("lejepa2")
    with pytest.raises(ValueError, match="num_nodes"):
        Preset.custom(num_nodes=1)


# ----------------------------------------------------------------------------- directions
def test_sample_directions_is_the_lejepa_draw():
    a = sc.sample_directions(48, 300, seed=7)
    g = torch.Generator().manual_seed(7)
    ref = torch.randn(48, 300, generator=g)
    ref = ref / ref.norm(dim=0)
    assert a.dtype == torch.float32 and a.device.type == "cpu" and a.shape == (48, 300)
    assert torch.equal(a, ref)
    assert torch.allclose(a.norm(dim=0), torch.ones(300), atol=1e-6)
    assert not torch.equal(a, sc.sample_directions(48, 300, seed=8))


# ----------------------------------------------------------------------------- the statistic
@pytest.mark.parametrize("preset", list(PRESETS))
def test_epps_pulley_matches_complex_float64_oracle(preset):
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [rng.standard_normal((500, 6)), rng.standard_t(3, (500, 3)), 0.5 + 2 * rng.standard_normal((500, 3))],
        axis=1,
    )
    p = PRESETS[preset]
    ours64 = sc.epps_pulley(torch.from_numpy(x), preset).numpy()
    np.testing.assert_allclose(ours64, oracle_ep(x, p), rtol=1e-10, atol=1e-14)
    ours32 = sc.epps_pulley(torch.from_numpy(x.astype(np.float32)), preset).numpy()
    np.testing.assert_allclose(ours32, oracle_ep(x.astype(np.float32), p), rtol=2e-5, atol=1e-9)


def test_sigreg_matches_naive_reference_module():
    torch.manual_seed(3)
    z = torch.randn(3000, 40) * torch.linspace(0.5, 1.5, 40)
    a = sc.sample_directions(40, 512, seed=11)
    for name in ECF_PRESETS:
        p = PRESETS[name]
        ours = sc.sigreg(z, directions=a, preset=name).item()
        ref = naive_torch_sigreg(z.double(), a, p).item()
        assert ours == pytest.approx(ref, rel=1e-6), name


def test_whole_line_closed_form():
    # a wide, fine grid approximates the integral over the whole line
    wide = Preset.custom(t_min=0.0, t_max=14.0, num_nodes=2801, name="wide")
    rng = np.random.default_rng(2)
    for x in (rng.standard_normal(300), rng.standard_t(2.5, 300), rng.uniform(-2, 2, 300) + 0.7):
        ours = float(sc.epps_pulley(torch.from_numpy(x[:, None]), wide)[0])
        assert ours == pytest.approx(closed_form_whole_line(x), rel=1e-6)


def test_full_collapse_value():
    for n in (2, 100, 4096):
        v = sc.sigreg(torch.zeros(n, 16), num_slices=64).item()
        assert v == pytest.approx(0.402048 * n, rel=1e-5)
    v = sc.sigreg(torch.zeros(500, 8), num_slices=8, preset="lejepa-paper").item()
    assert v == pytest.approx(PRESETS["lejepa-paper"].collapse_value(500), rel=1e-6)


@pytest.mark.parametrize("preset", ["lejepa", "lejepa-paper", "lejepa-legacy"])
def test_exact_null_mean(preset):
    """Mean of the per-slice statistic over independent N(0,1) slices = sum c_k (1 - e^{-t^2})."""
    p = PRESETS[preset]
    n, m = 64, 40000
    x = torch.randn(n, m, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ep = sc.epps_pulley(x, preset).numpy()
    if not p.scale_by_n:
        ep = ep * n
    se = ep.std() / math.sqrt(m)
    assert abs(ep.mean() - p.null_mean(1) * (1 if p.scale_by_n else 1)) < 4 * se
    # and at another N: the null mean does not depend on N
    x2 = torch.randn(1024, 4000, generator=torch.Generator().manual_seed(6))
    ep2 = sc.epps_pulley(x2, preset).double().numpy() * (1 if p.scale_by_n else 1024)
    assert abs(ep2.mean() - p.null_mean(1)) < 4 * ep2.std() / math.sqrt(4000)


def test_sigreg_null_mean_over_draws():
    """SIGReg of N(0, I) batches averages to 1.052464 (slices and draws)."""
    g = torch.Generator().manual_seed(9)
    vals = [sc.sigreg(torch.randn(256, 32, generator=g), num_slices=256, seed=s).item() for s in range(60)]
    se = np.std(vals) / math.sqrt(len(vals))
    assert abs(np.mean(vals) - 1.052464) < 4 * se + 1e-3


# ----------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("preset", ["lejepa", "lejepa-paper", "gist", "modulus"])
def test_gradient_matches_autograd_of_naive_form(preset):
    torch.manual_seed(4)
    z = (torch.randn(2, 300, 12, dtype=torch.float64) * 1.3 + 0.2).requires_grad_()
    a = sc.sample_directions(12, 64, seed=2)
    ours = sc.sigreg(z, directions=a, preset=preset)
    (g_ours,) = torch.autograd.grad(ours, z)
    z2 = z.detach().clone().requires_grad_()
    p = PRESETS[preset]
    zz = z2
    if p.standardize:
        zz = (zz - zz.mean(-2, keepdim=True)) / zz.std(-2, correction=p.std_ddof, keepdim=True)
    ref = torch.stack([naive_torch_sigreg(v, a, p) for v in zz]).mean()
    (g_ref,) = torch.autograd.grad(ref, z2)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-8, atol=1e-12)


def test_float32_gradient_of_fused_kernel():
    torch.manual_seed(5)
    z = torch.randn(2000, 24)
    a = sc.sample_directions(24, 96, seed=1)
    zg = z.clone().requires_grad_()
    sc.sigreg(zg, directions=a).backward()
    zr = z.double().clone().requires_grad_()
    naive_torch_sigreg(zr, a, PRESETS["lejepa"]).backward()
    rel = (zg.grad.double() - zr.grad).norm() / zr.grad.norm()
    assert rel < 1e-5


def test_weighted_sum_kernel_against_direct_formula():
    rng = np.random.default_rng(8)
    x = torch.from_numpy((rng.standard_normal((700, 45)) * 3).astype(np.float32))
    for name in ("lejepa", "lejepa-paper", "gist"):
        p = PRESETS[name]
        a = torch.from_numpy(rng.standard_normal((45, p.num_nodes)))
        b = torch.from_numpy(rng.standard_normal((45, p.num_nodes)))
        got = ecf_weighted_sum(x, p.nodes, a, b).double()
        xt = x.double()[:, :, None] * torch.from_numpy(p.nodes)
        ref = (xt.cos() * a).sum(-1) + (xt.sin() * b).sum(-1)
        assert (got - ref).abs().max() < 2e-4 * ref.abs().max()


# ----------------------------------------------------------------------------- streaming
def test_chunked_equals_unchunked():
    torch.manual_seed(6)
    z = torch.randn(5000, 20, dtype=torch.float64) * 2
    a = sc.sample_directions(20, 70, seed=0)
    whole = sc.sigreg(z, directions=a, chunk_rows=10**6).item()
    for rows in (1, 7, 256, 4999):
        assert sc.sigreg(z, directions=a, chunk_rows=rows).item() == pytest.approx(whole, rel=1e-12)
    s1 = sc.score_slices(z.float(), a, chunk_rows=333)
    s2 = sc.score_slices(z.float(), a, chunk_rows=100000)
    np.testing.assert_allclose(s1.statistic, s2.statistic, rtol=1e-6)
    # moments are summed in float32 per block of 256 rows: 1e-5 absolute, far below the
    # sampling error of a kurtosis (sqrt(24 / N) = 0.07 here)
    np.testing.assert_allclose(s1.kurtosis, s2.kurtosis, rtol=0, atol=1e-5)


def test_fused_kernel_agrees_with_float64_sums_on_wide_range():
    rng = np.random.default_rng(3)
    x32 = np.concatenate([rng.standard_normal((4000, 40)), 60 * rng.standard_normal((4000, 24))], 1).astype(np.float32)
    for name in ("lejepa", "lejepa-paper", "gist"):
        p = PRESETS[name]
        c32, s32 = ecf_sums(torch.from_numpy(x32), p.nodes)
        c64, s64 = ecf_sums(torch.from_numpy(x32.astype(np.float64)), p.nodes)
        # mean-level error of the float32 recurrence: ~1e-7 per sample, averaged over N
        assert (c32 - c64).abs().max() / 4000 < 2e-6
        assert (s32 - s64).abs().max() / 4000 < 2e-6


def test_score_slices_report_matches_direct_moments_and_statistic():
    rng = np.random.default_rng(10)
    z = (rng.standard_t(5, (3000, 16)) + 3.0).astype(np.float32)
    a = sc.sample_directions(16, 50, seed=4)
    st = sc.score_slices(z, a)
    x = z.astype(np.float64) @ a.double().numpy()
    np.testing.assert_allclose(st.mean, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st.std, x.std(0), rtol=1e-5)
    np.testing.assert_allclose(st.skew, sps.skew(x), atol=2e-4)
    np.testing.assert_allclose(st.kurtosis, sps.kurtosis(x), atol=2e-3)
    np.testing.assert_allclose(st.statistic, oracle_ep(x, PRESETS["lejepa"]), rtol=2e-4)
    np.testing.assert_allclose(st.weighted_error.sum(1), st.statistic, rtol=1e-12)
    np.testing.assert_allclose(st.ecf_real, np.cos(x[:, :, None] * PRESETS["lejepa"].nodes).mean(0), atol=2e-6)
    assert st.sigreg == pytest.approx(sc.sigreg(torch.from_numpy(z), directions=a).item(), rel=1e-5)
    frame = st.to_frame()
    assert list(frame.columns) == ["slice", "statistic", "mean", "std", "skew", "kurtosis"] and len(frame) == 50


def test_score_slices_constant_slice_has_zero_std():
    st = sc.score_slices(np.full((100, 4), 2.5, np.float32), sc.sample_directions(4, 8))
    assert np.all(st.std == 0) and np.all(st.skew == 0) and np.all(np.isfinite(st.kurtosis))


def test_leading_axes_are_scored_separately_and_averaged():
    torch.manual_seed(2)
    z = torch.randn(3, 400, 10)
    z[1] *= 3
    a = sc.sample_directions(10, 32, seed=0)
    each = [sc.sigreg(z[v], directions=a).item() for v in range(3)]
    assert sc.sigreg(z, directions=a).item() == pytest.approx(np.mean(each), rel=1e-6)
    assert sc.epps_pulley(z @ a).shape == (3, 32)


def test_half_precision_inputs_accepted():
    z = torch.randn(512, 16)
    a = sc.sample_directions(16, 32)
    ref = sc.sigreg(z, directions=a).item()
    for dt in (torch.float16, torch.bfloat16):
        v = sc.sigreg(z.to(dt), directions=a).item()
        assert v == pytest.approx(sc.sigreg(z.to(dt).float(), directions=a).item(), rel=1e-6)
        assert v == pytest.approx(ref, rel=0.2)


# ----------------------------------------------------------------------------- module
def test_sigreg_module_fresh_directions_follow_the_step():
    z = torch.randn(256, 12)
    mod = sc.SIGReg(num_slices=64)
    v0 = mod(z).item()
    v1 = mod(z).item()
    assert int(mod.step) == 2
    assert v0 == pytest.approx(sc.sigreg(z, 64, seed=0).item(), rel=1e-7)
    assert v1 == pytest.approx(sc.sigreg(z, 64, seed=1).item(), rel=1e-7)
    fixed = sc.SIGReg(num_slices=64, fixed_directions=True, seed=5)
    assert fixed(z).item() == pytest.approx(fixed(z).item()) == pytest.approx(sc.sigreg(z, 64, seed=5).item())
    state = mod.state_dict()
    assert "step" in state and int(state["step"]) == 2
    zg = z.clone().requires_grad_()
    mod(zg).backward()
    assert zg.grad is not None and torch.isfinite(zg.grad).all()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "z, message",
    [
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0], [3.0, 4.0]]), "non-finite"),
        (torch.tensor([[0.0, 1.0], [float("inf"), 2.0]]), "non-finite"),
        (torch.randn(1, 5), "at least 2 rows"),
        (torch.randn(10), r"shape \(\.\.\., N, D\)"),
        (torch.randint(0, 5, (10, 3)), "float"),
        (np.array([["a", "b"], ["c", "d"]]), "floating-point"),
    ],
)
def test_bad_input_raises_clear_value_error(z, message):
    with pytest.raises(ValueError, match=message):
        sc.sigreg(z, num_slices=8)


def test_bad_directions_raise():
    z = torch.randn(10, 3)
    a = sc.sample_directions(3, 4).clone()
    a[:, 2] = 0
    with pytest.raises(ValueError, match="zero norm"):
        sc.sigreg(z, directions=a)
    with pytest.raises(ValueError, match="D = 3"):
        sc.sigreg(z, directions=sc.sample_directions(4, 4))
    with pytest.raises(ValueError, match="non-finite"):
        sc.score_slices(np.array([[1.0, np.nan, 0], [0, 0, 0]], np.float32), sc.sample_directions(3, 4))


def test_device_resolution():
    assert sc.resolve_device("cpu").type == "cpu"
    assert sc.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device|unsupported"):
        sc.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            sc.resolve_device("cuda")
    assert "torch" in sc.device_report()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    z = torch.randn(4096, 64)
    a = sc.sample_directions(64, 256)
    cpu = sc.sigreg(z, directions=a).item()
    gpu = sc.sigreg(z.cuda(), directions=a).item()
    assert gpu == pytest.approx(cpu, rel=1e-5)
    st = sc.score_slices(z, a, device="cuda")
    assert st.sigreg == pytest.approx(cpu, rel=1e-5)


def test_generic_kernel_fallback_matches_float64_sums():
    """The kernel used when no K-specialised kernel can be built (e.g. K > 256, read-only cache)."""
    from sigreg_core.core import ecf
    if ecf.numba_kernels() is None:
        pytest.skip("numba disabled")
    x = torch.randn(3000, 40, generator=torch.Generator().manual_seed(12))
    for name in ("lejepa", "gist", "lejepa-paper"):
        p = PRESETS[name]
        t0, h = ecf._grid(p.nodes)
        xp = ecf._padded(x)
        oc = np.zeros((xp.shape[1], p.num_nodes))
        os_ = np.zeros_like(oc)
        ecf.numba_kernels().ecf_sums_generic(xp, t0, h, p.num_nodes, oc, os_)
        c, s = ecf.ecf_sums(x.double(), p.nodes)
        assert np.abs(oc[:40] - c.numpy()).max() / 3000 < 2e-6
        assert np.abs(os_[:40] - s.numpy()).max() / 3000 < 2e-6
