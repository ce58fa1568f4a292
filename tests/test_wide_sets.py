"""Wide embedding sets (N <= D): the exact N x N Gram route of the companion metrics and the
principal axes (assessment/metrics.py, assessment/budget.py), checked against the dense
D x D route and against numpy's SVD as an independent oracle."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sigreg_core.assessment import budget
from sigreg_core.assessment.families import make_directions, principal_axes
from sigreg_core.assessment.metrics import MomentSums, _spectrum_slope, metrics_from_sums

ROOT = Path(__file__).resolve().parents[1]


def _both(z, chunk=None):
    n, d = z.shape
    g, dn = MomentSums(d, keep_rows=True), MomentSums(d, keep_rows=False)
    step = chunk or n
    for r0 in range(0, n, step):
        g.update(z[r0 : r0 + step])
        dn.update(z[r0 : r0 + step])
    assert g.route == "gram" and dn.route == "dense"
    return g, dn


def _svd_oracle(z):
    """Singular values of Z, covariance eigenvalues and principal axes from numpy's SVD of Zc."""
    z = np.asarray(z, dtype=np.float64)
    s = np.linalg.svd(z, compute_uv=False)
    zc = z - z.mean(0)
    _u, sc, vt = np.linalg.svd(zc, full_matrices=False)
    return s, sc**2 / (z.shape[0] - 1), vt.T


def _rankme_oracle(s, eps=1e-7):
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def _align(a, b):
    return a * np.sign(np.sum(a * b, axis=0, keepdims=True))


def _real_minilm():
    from safetensors.numpy import load_file

    arrays = load_file(str(ROOT / "sample_data" / "minilm-sentences.safetensors"))
    return np.asarray(next(iter(arrays.values())), dtype=np.float64)


@pytest.mark.parametrize("shape", [(40, 96), (7, 300), (120, 700)])
def test_gram_route_equals_dense_route_and_svd(shape):
    n, d = shape
    rng = np.random.default_rng(n + d)
    z = rng.standard_normal((n, d)) * np.geomspace(4.0, 0.05, d) + rng.standard_normal(d) * 3
    g, dn = _both(z, chunk=16)
    mg, md = metrics_from_sums(g), metrics_from_sums(dn)
    s, lam, axes = _svd_oracle(z)
    r = min(n - 1, d)
    assert mg["eigenvalues"].shape == (min(n, d),)
    np.testing.assert_allclose(mg["eigenvalues"][:r], md["eigenvalues"][:r], rtol=1e-9, atol=1e-12 * lam[0])
    np.testing.assert_allclose(mg["eigenvalues"][:r], lam[:r], rtol=1e-9, atol=1e-12 * lam[0])
    assert np.all(mg["eigenvalues"][r:] < 1e-10 * lam[0]) and np.all(md["eigenvalues"][r:] < 1e-10 * lam[0])
    np.testing.assert_allclose(mg["singular_values"], s, rtol=1e-9, atol=1e-9 * s[0])
    np.testing.assert_allclose(md["singular_values"], s, rtol=1e-9, atol=1e-9 * s[0])
    for key in ("rankme", "top_eigen_fraction", "spectrum_slope", "vicreg_covariance", "vicreg_variance",
                "normalized_std", "rms_std", "mean_norm"):
        assert mg[key] == pytest.approx(md[key], rel=1e-9, abs=1e-12), key
    assert mg["rankme"] == pytest.approx(_rankme_oracle(s), rel=1e-9)
    cov = np.cov(z, rowvar=False)
    assert mg["vicreg_covariance"] == pytest.approx(np.sum((cov - np.diag(np.diag(cov))) ** 2) / d, rel=1e-8)
    assert mg["top_eigen_fraction"] == pytest.approx(lam[0] / np.trace(cov), rel=1e-9)
    # principal axes: the same directions (up to sign) as the D x D eigh and as the right singular vectors
    ag, eg = principal_axes(g, 5)
    ad, ed = principal_axes(dn, 5)
    np.testing.assert_allclose(eg, ed, rtol=1e-9)
    np.testing.assert_allclose(ag.numpy(), ad.numpy(), atol=1e-6)  # float32 output, same sign rule
    np.testing.assert_allclose(_align(ag.double().numpy(), axes[:, :5]), axes[:, :5], atol=1e-6)


def test_gram_route_is_chosen_for_narrow_wide_sets_and_switches_when_rows_keep_coming():
    assert budget.route(100, 4096) == "gram" and budget.route(5000, 4096) == "dense"
    assert budget.route(40, 96) == "dense"  # small D: the dense route is cheap, results are identical
    rng = np.random.default_rng(1)
    z = rng.standard_normal((900, 600))
    assert MomentSums(600).route == "dense"  # N unknown: the dense route, as before
    auto = MomentSums(600, expect_rows=500)  # narrow when created; more rows come: dense past N = D, exactly
    for r0 in range(0, 900, 250):
        auto.update(z[r0 : r0 + 250])
        assert auto.route == ("gram" if r0 + 250 <= 600 else "dense")
    ref = MomentSums(600, keep_rows=False).update(z)
    np.testing.assert_allclose(auto.covariance(), ref.covariance(), rtol=1e-10, atol=1e-12)
    wide = MomentSums(60000, expect_rows=2)
    assert wide.route == "gram" and wide.s2 is None  # nothing D x D allocated


def test_gram_route_memory_stays_within_the_row_budget():
    r, nbytes, _work = budget.route_cost(4096, 8192)  # 4096 rows of 8192: 256 MiB of float64 rows
    assert r == "gram" and nbytes < 900 * 1024**2  # rows 256 + Gram matrices 512 + 1024 axes 96 (MiB)
    assert budget.route(4097, 8192) == "dense"  # more rows than GRAM_ROWS_BYTES: dense (then budget-checked)
    assert budget.route_cost(65536, 4096)[0] == "dense"
    assert budget.route_cost(65536, 4096)[1] == 5 * 8 * 4096**2  # 640 MiB


def test_outlier_removal_keeps_the_gram_route_and_equals_the_dense_difference():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((50, 700))
    g, dn = _both(z)
    idx = np.array([3, 17, 41])
    bad_g, bad_d = MomentSums(700, keep_rows=True), MomentSums(700, keep_rows=False)
    for b in (bad_g, bad_d):
        b.set_shift(g.shift)
        b.update(z[idx])
    cg, cd = g.minus(bad_g, rows_index=idx), dn.minus(bad_d)
    assert cg.route == "gram" and cg.n == 47
    mg, md = metrics_from_sums(cg), metrics_from_sums(cd)
    np.testing.assert_allclose(mg["eigenvalues"][:46], md["eigenvalues"][:46], rtol=1e-9)
    assert mg["rankme"] == pytest.approx(md["rankme"], rel=1e-9)
    assert mg["rankme"] == pytest.approx(_rankme_oracle(np.linalg.svd(np.delete(z, idx, 0), compute_uv=False)), rel=1e-9)
    sc = g.scaled(2.5)
    assert metrics_from_sums(sc)["eigenvalues"][0] == pytest.approx(6.25 * md_eig0(z), rel=1e-9)


def md_eig0(z):
    return float(np.linalg.eigvalsh(np.cov(z, rowvar=False))[-1])


def test_spectrum_slope_fits_only_the_nonzero_eigenvalues():
    """40 x 96 Gaussian: the covariance has rank 39; fitting the float round-off of the other 57
    eigenvalues gave a slope of -6.9 (a "steep power law" that is not in the data)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 96)).astype(np.float32)
    m = metrics_from_sums(MomentSums(96).update(z))
    _s, lam, _axes = _svd_oracle(z)
    k = np.log(np.arange(1, 40))
    oracle = np.polyfit(k, np.log(lam[:39]), 1)[0]  # independent: numpy's fit of the 39 SVD eigenvalues
    assert m["spectrum_slope"] == pytest.approx(oracle, abs=1e-4)
    assert -2.0 < m["spectrum_slope"] < 0.0
    full = np.sort(np.linalg.eigvalsh(np.cov(z.astype(np.float32), rowvar=False).astype(np.float32)))[::-1]
    assert _spectrum_slope(np.asarray(full, np.float64), rank=39) == pytest.approx(oracle, abs=1e-2)
    assert np.isnan(_spectrum_slope(np.array([3.0, 2.0, 1.0, 0.5]), rank=2))  # fewer than 3 to fit


def test_real_encoder_outputs_give_the_same_metrics_on_both_routes():
    """all-MiniLM-L6-v2 sentence embeddings (384-d): the N x N route on 100 of them equals the dense route."""
    z = _real_minilm()[:100]
    assert z.shape[1] == 384
    g, dn = _both(z)
    mg, md = metrics_from_sums(g), metrics_from_sums(dn)
    for key in ("rankme", "top_eigen_fraction", "spectrum_slope", "vicreg_covariance"):
        assert mg[key] == pytest.approx(md[key], rel=1e-8), key
    s, lam, _ = _svd_oracle(z)
    assert mg["rankme"] == pytest.approx(_rankme_oracle(s), rel=1e-9)
    np.testing.assert_allclose(mg["eigenvalues"][:99], lam[:99], rtol=1e-8, atol=1e-12 * lam[0])


def test_principal_family_on_a_wide_set_uses_the_axes_with_variance():
    rng = np.random.default_rng(3)
    z = torch.from_numpy(rng.standard_normal((30, 1024)).astype(np.float32))
    a, info = make_directions(z, "principal", 64)
    assert a.shape == (1024, 29) and "rank" in info["note"]
    np.testing.assert_allclose((a.T @ a).numpy(), np.eye(29), atol=1e-5)


def test_assess_scores_a_wide_set_without_any_d_by_d_matrix(monkeypatch):
    from sigreg_core.assessment.assess import assess

    rng = np.random.default_rng(4)
    z = rng.standard_normal((64, 3000)).astype(np.float32)
    monkeypatch.setenv("LATENT_HEALTH_MAX_MEMORY", str(64 * 1024**2))  # the dense route (360 MB) would be refused
    a = assess(z, num_slices=64, null_draws=2, cache_dir=False, family="principal")
    assert a.metrics["dim"] == 3000 and len(a.metrics["eigenvalues"]) == 64
    assert 1.0 <= a.metrics["rankme"] <= 64
    assert a.directions.shape[1] == 63


def test_slice_directions_and_coordinate_axes_count_against_the_memory_budget():
    from sigreg_core.assessment.assess import assess

    with pytest.raises(budget.WorkBudgetError, match="--slices"):
        budget.check_assessment(2, 60000, slices=2048)  # (60000, 2048) float32 directions and their copies
    budget.check_assessment(2, 60000, slices=512)
    budget.check_assessment(64, 8192, slices=2048)  # 8192-d encoder outputs with the default slices: fine
    z = np.zeros((2, 60000), np.float32)
    with pytest.raises(budget.WorkBudgetError, match="slice directions of 60,000 dimensions"):
        assess(z, family="coordinate", cache_dir=False)  # torch.eye(60000) would be 14 GB
