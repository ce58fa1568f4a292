"""The verdict's rules, each held by a test that fails when the rule is broken (mutation-checked).

Mutations this file was run against (docs/calibration.md, "Mutation table"): removing "a
detected mode makes it at least mild"; the Monte Carlo tail without subtracting q_K; the top-level
numbers of view 0 instead of the deciding view / the mean over views; the plain Cauchy combination
instead of the Cauchy–Bonferroni minimum; the 1e-9 dead-eigenvalue cut; --fail-on passing an
unranked verdict; the health entropy on singular values instead of their squares.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sigreg_core.assessment import verdict as V
from sigreg_core.assessment.assess import assess
from sigreg_core.assessment.distance import rank1_reference
from sigreg_core.assessment.health import effective_directions, measure_health
from sigreg_core.assessment.montecarlo import CALIBRATION_K, calibrated_pvalue
from sigreg_core.core.presets import get_preset


# ----------------------------------------------------------------------------- health (oracles)
def _erank_oracle(z: np.ndarray) -> float:
    """exp of the entropy of the unit rows' squared singular values (SVD, float64: written differently)."""
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = np.linalg.svd(u, compute_uv=False)
    lam = s**2 / np.sum(s**2)
    lam = lam[lam > 0]
    return float(np.exp(-np.sum(lam * np.log(lam))))


def test_effective_directions_against_svd_oracle_and_closed_forms():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 40)) @ np.diag(np.geomspace(3, 0.1, 40))
    r, spread = effective_directions(z)
    assert r == pytest.approx(_erank_oracle(z), rel=1e-9)
    # closed forms: rows all equal -> 1 direction; the D basis vectors equally often -> exactly D
    assert effective_directions(np.tile(rng.standard_normal(12), (50, 1)))[0] == pytest.approx(1.0, abs=1e-9)
    assert effective_directions(np.tile(np.eye(12) * 3.0, (5, 1)))[0] == pytest.approx(12.0, rel=1e-12)
    # direction spread: 1 - s^2 is the squared norm of the mean unit row
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert spread == pytest.approx(math.sqrt(1 - np.sum(u.mean(0) ** 2)), rel=1e-12)


def test_health_is_invariant_to_the_conventions():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32))
    base = measure_health(z)["effective_directions"]
    assert measure_health(z * 37.0)["effective_directions"] == pytest.approx(base, rel=1e-9)  # global scale
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert measure_health(unit)["effective_directions"] == pytest.approx(base, rel=1e-9)  # L2-normalised rows
    assert measure_health(rng.standard_normal((2048, 64)))["relative_effective_rank"] == pytest.approx(1.0, abs=0.01)


def test_rank1_reference_against_monte_carlo():
    p = get_preset("lejepa")
    d = 16
    ref = rank1_reference(d, tuple(p.nodes), tuple(p.weights))
    rng = np.random.default_rng(2)
    u = rng.standard_normal((40000, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    sig2 = d * u[:, 0] ** 2  # a standardised rank-1 set: variance d along e_1, projected on u
    t, c = np.asarray(p.nodes), np.asarray(p.weights)
    mc = np.mean(np.sum(c * (np.exp(-np.outer(sig2, t**2) / 2) - np.exp(-t**2 / 2)) ** 2, axis=1))
    assert ref == pytest.approx(mc, rel=0.02)


def test_a_rank1_set_sits_at_distance_one_and_N01_at_zero():
    rng = np.random.default_rng(3)
    line = np.outer(rng.standard_normal(4096), rng.standard_normal(32))
    a = assess(line.astype(np.float32), num_slices=256, null_draws=0)
    assert a.answers["distance"]["relative_distance_raw"] == pytest.approx(1.0, abs=0.15)
    g = assess(rng.standard_normal((4096, 32)).astype(np.float32), num_slices=256, null_draws=0)
    assert g.answers["distance"]["relative_distance"] < 0.01 and g.verdict == "healthy"


# ----------------------------------------------------------------------------- the verdict's rules
def test_a_detected_mode_makes_it_at_least_mild(tmp_path):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2048, 64)) + 0.4  # full rank (health "healthy"), but shifted: a mode
    a = assess(z.astype(np.float32), num_slices=256, null_draws=20, cache_dir=tmp_path)
    assert a.answers["health"]["level"] == "healthy" and "shift" in a.modes
    assert a.verdict == "mild"


def test_health_edges_grade_the_verdict():
    assert V.grade_verdict(False, True, 0.9, False) == "healthy"
    assert V.grade_verdict(False, True, 0.2, False) == "mild"
    assert V.grade_verdict(False, True, 0.03, False) == "marked"
    assert V.grade_verdict(False, True, 0.01, False) == "severe"
    assert V.grade_verdict(True, True, 0.9, False) == "collapsed"
    assert V.grade_verdict(False, False, 0.01, True) == "healthy"  # not significant: nothing is judged
    # a detected mode alone (no other effect) makes a significant, full-rank set at least mild
    assert V.grade_verdict(False, True, 0.9, True, 0.0) == "mild"
    assert V.grade_verdict(False, True, 0.9, False, 0.0) == "healthy"
    assert V.grade_verdict(False, True, 0.9, False, 0.01) == "mild"  # a non-negligible screen effect


def test_calibrated_tail_subtracts_q_k():
    b = 199
    null = np.log((np.arange(b) + 0.5) / b)  # sorted null log p-values
    obs = -60.0  # far beyond every null draw
    p, lp = calibrated_pvalue(obs, null)
    qk = np.sort(null)[CALIBRATION_K - 1]
    assert lp == pytest.approx(obs - qk + math.log((1 + CALIBRATION_K) / (b + 1)), rel=1e-12)
    # continuous where the tail meets the Monte Carlo bulk
    p_edge, _ = calibrated_pvalue(float(qk) - 1e-12, null)
    assert p_edge == pytest.approx((1 + CALIBRATION_K) / (b + 1), rel=1e-6)


def test_one_too_good_slice_cannot_hide_the_rest(tmp_path):
    from scipy import stats

    rng = np.random.default_rng(5)
    u = rng.uniform(-math.sqrt(3), math.sqrt(3), (512, 64))
    r = stats.rankdata(u[:, 0])
    u[:, 0] = stats.norm.ppf((r - 0.5) / 512)  # one column made Gaussian-looking: per-slice p near 1
    a = assess(u.astype(np.float32), num_slices=256, null_draws=40, cache_dir=tmp_path)
    assert a.p_values["bonferroni"]["p_value"] < 1e-3
    assert a.verdict != "healthy" and a.p_value < 1e-3


def test_one_verdict_whatever_the_dtype(tmp_path):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1000, 555)) @ np.linalg.qr(rng.standard_normal((600, 555)))[0].T
    v32 = assess(z.astype(np.float32), num_slices=128, null_draws=0)
    v64 = assess(z.astype(np.float64), num_slices=128, null_draws=0)
    assert v32.verdict == v64.verdict == "collapsed"
    assert v32.answers["collapse"]["answer"] == v64.answers["collapse"]["answer"] == "dimensional"


def test_views_report_the_deciding_view_with_multiplicity(tmp_path):
    rng = np.random.default_rng(0)
    healthy = rng.standard_normal((1024, 32))
    collapsed = np.tile(rng.standard_normal(32), (1024, 1)) + 1e-3 * rng.standard_normal((1024, 32))
    a = assess(np.stack([healthy, collapsed]).astype(np.float32), num_slices=128, null_draws=20, cache_dir=tmp_path)
    v0, v1 = a.views
    assert a.verdict == "collapsed" and a.answers["view"] == 1 and a.answers["view_verdicts"] == ["healthy", "collapsed"]
    assert a.metrics["rankme"] == v1.metrics["rankme"] != v0.metrics["rankme"]  # the deciding view's numbers
    assert a.sigreg == pytest.approx((v0.sigreg + v1.sigreg) / 2, rel=1e-12)  # the mean over views, as lejepa logs
    assert a.answers["distance"]["gate_p"] == pytest.approx(V.GATE_P / 2)  # Bonferroni over the 2 views


def test_without_monte_carlo_the_p_value_is_bonferroni():
    rng = np.random.default_rng(6)
    a = assess(rng.standard_normal((512, 16)).astype(np.float32), num_slices=64, null_draws=0)
    assert a.p_value == pytest.approx(a.p_values["bonferroni"]["p_value"], rel=1e-12)
    assert "Bonferroni" in a.p_values["verdict"]["method"]


def test_fail_on_fails_closed_on_an_unranked_verdict():
    assert V.fail_on_met("too few rows", "severe")[0] is True
    assert V.fail_on_met("mild", "severe") == (False, "")
    assert V.fail_on_met("collapsed", "severe") == (True, "")
    assert V.fail_on_met(None, "collapsed")[0] is True


def test_rank_key_orders_health_before_distance():
    better = {"verdict": "mild", "health": {"relative_effective_rank": 0.4}, "distance": {"relative_distance": 0.9}}
    worse = {"verdict": "mild", "health": {"relative_effective_rank": 0.2}, "distance": {"relative_distance": 0.01}}
    collapsed = {"verdict": "collapsed", "health": {"relative_effective_rank": 0.9}}
    order = sorted([collapsed, worse, better], key=V.rank_key)
    assert order == [better, worse, collapsed]


def test_cauchy_bonferroni_against_its_formula():
    from sigreg_core.core.combine import cauchy_bonferroni

    # one tiny p among many p near 1: Bonferroni decides (the plain Cauchy sum would be pulled to -inf)
    p = np.array([1e-6] + [0.9995] * 99)
    got, lgot = cauchy_bonferroni(p)
    capped = np.minimum(p, 0.99)
    t = float(np.mean(1 / np.tan(capped * np.pi)))
    cauchy = 0.5 - math.atan(t) / math.pi
    bonf = min(1.0, 100 * 1e-6)
    assert got == pytest.approx(min(1.0, 2 * min(cauchy, bonf)), rel=1e-9)
    assert got == pytest.approx(2e-4, rel=1e-9)  # here it is the Bonferroni arm, doubled
    # many moderately small p: the Cauchy arm decides
    p2 = np.full(100, 0.01)
    got2, _ = cauchy_bonferroni(p2)
    assert got2 == pytest.approx(2 * 0.01, rel=1e-6)  # Cauchy of equal p is that p; Bonferroni would say 1
    # ... and one p of 1 - 1e-15 among them cannot drag it to 1 (the cap at 0.99 bounds its term)
    p3 = np.append(np.full(99, 0.01), 1 - 1e-15)
    got3, _ = cauchy_bonferroni(p3)
    t3 = float(np.mean(1 / np.tan(np.minimum(p3, 0.99) * np.pi)))
    assert got3 == pytest.approx(2 * (0.5 - math.atan(t3) / math.pi), rel=1e-9) and got3 < 0.05


def test_collapse_needs_fewer_than_two_directions():
    # rows on three axes used 1/2, 1/4, 1/4 of the time: r = exp(-(1/2 ln 1/2 + 2 1/4 ln 1/4)) = 2.83 directions
    z = np.concatenate([np.tile(np.eye(8)[0], (200, 1)), np.tile(np.eye(8)[1], (100, 1)), np.tile(np.eye(8)[2], (100, 1))])
    r, _ = effective_directions(z)
    assert r == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25))), rel=1e-9)
    h = {"effective_directions": r, "direction_spread": 0.2, "reference_directions": 8.0}  # mean cosine 0.96
    assert V.collapse_answer(h, 0, 7)["answer"] == "no"
    assert V.collapse_answer(dict(h, effective_directions=1.9), 0, 7)["answer"] == "full"
    # both are needed: under two directions but the rows do not point one way (mean cosine 0.36)
    assert V.collapse_answer(dict(h, effective_directions=1.9, direction_spread=0.8), 0, 7)["answer"] == "no"
