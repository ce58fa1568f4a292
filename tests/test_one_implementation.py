"""One implementation per concept (issue 24): the Monte Carlo null of SIGReg and the principal axes.

* The Monitor's null band (``runs.summary.sigreg_null_draws``) and the assessment's Monte Carlo
  null (``assessment.montecarlo.monte_carlo_null``) simulate the same thing, SIGReg of N(0, I)
  batches on fixed random directions; both now go through
  ``assessment.montecarlo.sigreg_null_sample``.  Checked against an independent numpy oracle of
  the Epps-Pulley formula on the same seeded batches, and tied to each other: if either one
  changes its batches, directions or scaling, a test here fails.
* Principal axes: the cloud view decomposes its subsample with the assessment's
  ``families.principal_eig``; checked against numpy's SVD of the centred rows.
* The two outlier rules differ on purpose (documented in both docstrings): checked here that
  they answer different questions on the same data.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sigreg_core.assessment.families import make_directions, principal_axes
from sigreg_core.assessment.montecarlo import draw_seed, monte_carlo_null, null_batches, sigreg_null_sample
from sigreg_core.core.directions import sample_directions
from sigreg_core.core.presets import get_preset
from sigreg_core.present import cloud as C
from sigreg_core.runs.summary import SummaryConfig, sigreg_null_draws


def _ep_oracle(z: np.ndarray, a: np.ndarray, preset) -> float:
    """SIGReg by the formula: mean over slices of N sum_k w_k [(mean cos t_k x - e^{-t_k^2/2})^2 + (mean sin t_k x)^2]."""
    x = z.astype(np.float64) @ a.astype(np.float64)  # (N, M)
    t = np.asarray(preset.nodes, np.float64)
    w = np.asarray(preset.weights, np.float64)
    tx = x[:, :, None] * t  # (N, M, K)
    c, s = np.cos(tx).mean(0), np.sin(tx).mean(0)
    ep = ((c - np.exp(-t * t / 2)) ** 2 + s**2) @ w * z.shape[0]
    return float(ep.mean())


def test_the_null_band_is_the_formula_on_its_seeded_batches():
    cfg = SummaryConfig(num_slices=16, seed=3)
    preset = get_preset(cfg.preset)
    n, dim, draws = 200, 5, 4
    got = sigreg_null_draws(n, dim, cfg, draws=draws, seed=777)
    a = sample_directions(dim, cfg.num_slices, cfg.seed).numpy()
    g = torch.Generator().manual_seed(777)  # the band's documented stream: torch.randn per batch
    want = [_ep_oracle(torch.randn(n, dim, generator=g).numpy(), a, preset) for _ in range(draws)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_the_assessment_null_and_the_band_are_one_simulation():
    preset = get_preset("lejepa")
    n, dim, m, seed, draws = 128, 4, 16, 5, 6
    mc = monte_carlo_null(n, dim, family="random", num_slices=m, seed=seed, preset=preset, draws=draws,
                          device="cpu", cache_dir=False)
    a = make_directions(np.zeros((n, dim), np.float32), "random", m, seed)[0]
    # the assessment's random family is the band's seeded directions
    torch.testing.assert_close(a.float(), sample_directions(dim, m, seed).float(), rtol=0, atol=0)
    same = sigreg_null_sample(n, dim, a, preset, draws, draw_seed(mc.config))
    np.testing.assert_allclose(mc.sigreg, same, rtol=1e-12)
    # and the formula on those batches (N-scaled units: lejepa's statistic already carries N)
    batches = [zb.numpy() for zb in null_batches(n, dim, draws, draw_seed(mc.config))]
    np.testing.assert_allclose(mc.sigreg, [_ep_oracle(z, a.numpy(), preset) for z in batches], rtol=1e-5)


def test_cloud_axes_are_the_assessment_principal_axes():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3000, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2]) @ np.linalg.qr(
        rng.standard_normal((6, 6)))[0]
    mean, axes, share = C.principal_axes(z, k=4, fit_rows=10_000)  # every row: no subsample
    vecs, evals = principal_axes(np.cov(z, rowvar=False), 4)
    np.testing.assert_allclose(axes, vecs.numpy(), atol=1e-6)  # the same axes, the same signs
    # oracle: numpy's SVD of the centred rows (axes up to sign, variance shares)
    zc = z - z.mean(0)
    _, sv, vt = np.linalg.svd(zc, full_matrices=False)
    np.testing.assert_allclose(np.abs(axes.T @ vt[:4].T), np.eye(4), atol=1e-8)
    np.testing.assert_allclose(share, sv[:4] ** 2 / (sv**2).sum(), rtol=1e-10)
    np.testing.assert_allclose(mean, z.mean(0), rtol=1e-12)
    assert np.all(np.abs(axes).max(0) == np.max(axes, 0))  # sign fixed: the largest entry is positive


def test_the_two_outlier_rules_answer_different_questions():
    """The display rule flags ~0.1 % of N(0, I) rows; the assessment's rule, controlled for the set, none."""
    from sigreg_core.assessment.rows import row_pass

    z = np.random.default_rng(9).standard_normal((20_000, 8)).astype(np.float32)
    shown = C.cloud_view(z).outlier_rows.size
    facts = row_pass(z, seed=0)
    assert 4 <= shown <= 60  # ~20 expected at the per-row 99.9 % cut
    assert getattr(facts, "outlier_count", 0) <= 1 and not getattr(facts, "has_outliers", False)
    with pytest.raises(AssertionError):
        np.testing.assert_equal(shown, getattr(facts, "outlier_count", 0))
