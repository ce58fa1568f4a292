"""The report behind the Inspect page: slice views against independent formulas, exports, cache."""
from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from scipy import stats

import sigreg_core.present.report as R
import sigreg_core.present.exports as E
import sigreg_core.present.report_cache as RC
from sigreg_core.core.presets import get_preset
from sigreg_core.inputs.samples import load_sample


@pytest.fixture(scope="module")
def shifted():
    z = load_sample("shifted")
    settings = R.Settings(num_slices=96, seed=2)
    return z, R.build_report(z, settings)


def test_report_holds_numpy_and_pandas_only(shifted):
    z, rep = shifted
    assert rep.num_slices == 96
    for name in ("nodes", "ecf_real", "ecf_imag", "weighted_error", "directions", "eigenvalues", "dim_mean", "dim_std"):
        assert isinstance(getattr(rep, name), np.ndarray), name
    assert rep.directions.shape == (64, 96)
    np.testing.assert_allclose(np.linalg.norm(rep.directions, axis=0), 1, atol=1e-5)
    assert list(rep.per_slice["slice"]) == list(range(96))
    # the weighted error per node sums to each slice's statistic
    np.testing.assert_allclose(rep.weighted_error.sum(1), rep.statistic, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rep.summary["sigreg"], rep.statistic.mean(), rtol=1e-12)
    assert rep.summary["n"] == 2048 and rep.summary["d"] == 64 and rep.summary["m"] == 96
    # eigen-spectrum: the covariance's eigenvalues (float64 oracle), largest first
    ev = np.linalg.eigvalsh(np.cov(z.astype(np.float64), rowvar=False))[::-1]
    np.testing.assert_allclose(rep.eigenvalues, ev, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(rep.dim_mean, z.astype(np.float64).mean(0), atol=1e-12)
    assert rep.q95 < rep.q999 and rep.null_mean < rep.q95
    assert abs(rep.null_mean - get_preset("lejepa").null_mean()) < 1e-12


def test_slice_view_matches_independent_formulas(shifted):
    z, rep = shifted
    j = R.pick_slice(rep, "worst")
    v = R.slice_view(z, rep, j)
    x = z.astype(np.float64) @ rep.directions[:, j].astype(np.float64)
    np.testing.assert_allclose(v.values, x, rtol=1e-5, atol=1e-5)  # float32 projection
    np.testing.assert_allclose(v.moments["mean"], x.mean(), atol=1e-6)
    np.testing.assert_allclose(v.moments["std"], x.std(), rtol=1e-5)
    np.testing.assert_allclose(v.moments["skew"], stats.skew(x), atol=1e-4)
    np.testing.assert_allclose(v.moments["kurtosis"], stats.kurtosis(x), atol=1e-3)
    # ECF on the fine grid and at the nodes: the complex exponential, written differently
    oracle = np.exp(1j * np.outer(v.t_grid, x)).mean(1)
    np.testing.assert_allclose(v.ecf_real_grid, oracle.real, atol=1e-5)  # x is a float32 projection
    np.testing.assert_allclose(v.ecf_imag_grid, oracle.imag, atol=1e-5)
    at_nodes = np.exp(1j * np.outer(rep.nodes, x)).mean(1)
    np.testing.assert_allclose(v.ecf_real_nodes, at_nodes.real, atol=2e-6)
    np.testing.assert_allclose(v.ecf_imag_nodes, at_nodes.imag, atol=2e-6)
    # the statistic of the slice from its definition (lejepa: N * sum c_k |ECF - phi|^2)
    p = get_preset("lejepa")
    ep = len(x) * np.sum(p.weights * ((at_nodes.real - p.target) ** 2 + at_nodes.imag**2))
    np.testing.assert_allclose(v.statistic, ep, rtol=1e-4)
    assert v.statistic == rep.statistic.max()


def test_pick_slice(shifted):
    _, rep = shifted
    s = rep.statistic
    assert s[R.pick_slice(rep, "worst")] == s.max()
    assert s[R.pick_slice(rep, "best")] == s.min()
    assert s[R.pick_slice(rep, "median")] == np.sort(s)[(len(s) - 1) // 2]
    assert R.pick_slice(rep, "index", 5) == 5
    with pytest.raises(ValueError, match="slice index"):
        R.pick_slice(rep, "index", 96)
    with pytest.raises(ValueError, match="worst, median, best or index"):
        R.pick_slice(rep, "sideways")


def test_exports(shifted):
    z, rep = shifted
    rows = list(csv.DictReader(io.StringIO(E.per_slice_csv(rep).decode())))
    assert len(rows) == 96
    np.testing.assert_allclose([float(r["statistic"]) for r in rows], rep.statistic, rtol=1e-9)

    doc = json.loads(E.assessment_json(rep, {"kind": "sample", "name": "shifted"}))
    assert doc["summary"]["verdict"] == rep.summary["verdict"]
    assert doc["settings"]["num_slices"] == 96 and doc["settings"]["seed"] == 2
    assert doc["source"]["name"] == "shifted"
    assert len(doc["per_slice"]["statistic"]) == 96

    view = R.slice_view(z, rep, 3)
    page = E.html_report(rep, view, title="t", source={"name": "shifted"})
    assert page.startswith("<!DOCTYPE html>")
    # offline: plotly.js inlined exactly once, no external script
    assert not re.search(r"<script[^>]+src=", page)
    assert page.count("plotly.js v") >= 1 and len(page) > 3_000_000
    assert page.count('class="plotly-graph-div"') == 9
    assert rep.summary["verdict"] in page


def test_report_cache_keys_on_digest_and_settings(monkeypatch):
    made = []

    def fake_build(z, settings, progress=None):  # counts calls; the cache logic is what is tested
        made.append(settings)
        return object()

    monkeypatch.setattr(R, "build_report", fake_build)
    cache = RC.ReportCache(max_entries=2)
    z = np.zeros((4, 2), np.float32)
    s1, s2 = R.Settings(seed=1), R.Settings(seed=2)
    a = cache.get_or_build("d1", s1, z)
    assert cache.get_or_build("d1", s1, z) is a
    assert cache.computations == 1 and cache.hits == 1
    b = cache.get_or_build("d1", s2, z)
    c = cache.get_or_build("d2", s1, z)
    assert len({id(a), id(b), id(c)}) == 3 and cache.computations == 3
    assert len(cache) == 2  # bounded: "d1", s1 was evicted (least recently used)
    cache.get_or_build("d1", s1, z)
    assert cache.computations == 4


# ------------------------------------------------------------ reading the numbers (issue 12)
def test_format_p_marks_the_floor_and_non_finite_values():
    assert R.format_p(1e-300) == "< 1e-300"
    assert R.format_p(0.0) == "< 1e-300"
    assert R.format_p(1.2e-300) == "1.2e-300"
    assert R.format_p(0.001234) == "0.00123"
    assert R.format_p(float("nan")) == "n/a" and R.format_p(None) == "n/a"


@pytest.mark.parametrize("verdict,tone", [("healthy", "good"), ("Healthy (L2-normalised rows)", "good"),
                                          ("mild", "info"), ("too few rows", "info"), ("marked", "warn"),
                                          ("severe", "warn"), ("suspicious", "warn"), ("inconclusive", "warn"),
                                          ("collapsed", "bad"), ("dimensional collapse", "bad"),
                                          ("unhealthy", "bad")])
def test_verdict_tone_is_the_one_mapping(verdict, tone):
    assert R.verdict_tone(verdict) == tone
    assert R.TONE_COLOURS[tone].startswith("#")


def test_min_p_note_matches_the_minimum_of_uniforms():
    """The note's numbers against a Monte Carlo oracle: the smallest of M uniform p-values."""
    m = 1024
    mins = np.random.default_rng(0).uniform(size=(4000, m)).min(1)
    median_mc, q05_mc = np.median(mins), np.quantile(mins, 0.05)

    class Fake:
        p_values = np.linspace(0.01, 1.0, m)

    rep = Fake()
    rep.p_values = rep.p_values.copy()
    rep.p_values[5] = 1.1e-3  # a healthy set's worst slice
    note = R.min_p_note(rep, 5)
    nums = [float(x) for x in re.findall(r"about ([0-9.e-]+) by chance alone \(95 % of the time above ([0-9.e-]+)\)",
                                         note)[0]]
    assert abs(nums[0] - median_mc) / median_mc < 0.06 and abs(nums[1] - q05_mc) / q05_mc < 0.15
    assert "not evidence" in note
    assert R.min_p_note(rep, 6) is None  # not the smallest: no note
    rep.p_values[5] = 1e-9  # far below what chance gives: said so
    assert "evidence against N(0, 1)" in R.min_p_note(rep, 5)


@pytest.mark.parametrize("n,d", [(3000, 48), (200, 64), (40, 96)])
def test_healthy_references_match_the_metrics_of_gaussian_sets(n, d):
    """Oracle: companion_metrics of real N(0, I) sets of the same shape (Monte Carlo over 30 sets).

    The reference is one draw from the metrics' exact laws, so it must fall inside the
    spread of the simulated sets (N < D included: the nonzero spectrum swaps roles).
    """
    from sigreg_core.assessment.metrics import companion_metrics

    rng = np.random.default_rng(1)
    sims = [companion_metrics(rng.standard_normal((n, d)).astype(np.float32)) for _ in range(30)]
    ref = R.healthy_references(n, d, seed=5)
    keys = ["rankme", "rankme_fraction", "top_eigen_fraction", "normalized_std", "vicreg_variance",
            "vicreg_covariance", "mean_norm", "rms_std"]
    if n > d:  # N <= D: the measured slope fits float32 round-off in the zero eigenvalues, not a law
        keys.append("spectrum_slope")
    for key in keys:
        vals = np.array([s[key] for s in sims])
        lo, hi = vals.min(), vals.max()
        pad = 4 * vals.std() + 1e-9
        assert lo - pad <= ref[key] <= hi + pad, (key, ref[key], lo, hi)
        assert abs(ref[key] - vals.mean()) <= 6 * vals.std() + 0.02 * abs(vals.mean()) + 1e-9, (key, ref[key])
    assert abs(ref["normalized_std_isotropic"] - d ** -0.5) < 1e-15
    assert abs(ref["vicreg_covariance"] - (d - 1) / (n - 1)) < 1e-15  # its exact mean


def test_healthy_references_need_no_set_of_that_size():
    ref = R.healthy_references(10**7, 512, seed=3)  # a 10^7 x 512 float32 set would be 20 GB
    assert 0.99 < ref["rankme_fraction"] < 1.001 and abs(ref["rms_std"] - 1) < 1e-3
    assert abs(ref["mean_norm"] - (512 / 10**7) ** 0.5) < 1e-3


def test_html_report_reads_like_the_page(shifted):
    z, rep = shifted
    view = R.slice_view(z, rep, int(np.argmax(rep.statistic)))
    src = {"kind": "upload", "name": "<b>evil</b>.npy", "sha256": "ab" * 32, "original_shape": [2048, 64],
           "bytes": 524416}
    page = E.html_report(rep, view, title="t", source=src, reference=R.healthy_references(2048, 64))
    from sigreg_core.present.verdict_card import verdict_colour

    tone = R.verdict_tone(rep.summary["verdict"])
    assert f'class="verdict tone-{tone}"' in page and verdict_colour(rep.summary["verdict"]) in page  # coloured
    for label in ("SIGReg", "× null mean", "overall p-value", "RankMe / min(N, D)", "N(0, I) of the same shape"):
        assert label in page, label
    assert "rankme_fraction" not in page.split("<section")[0]  # labels, not raw keys, above the figures
    # evidence as sentences, not a JSON dump
    assert "<pre>" not in page and "{&quot;" not in page
    for e in rep.summary["mode_evidence"].values():
        assert E.html_report.__module__ and __import__("html").escape(e["evidence"]) in page
    # the source as a small table, file-derived text escaped
    assert "&lt;b&gt;evil&lt;/b&gt;.npy" in page and "<b>evil</b>" not in page
    assert "2,048 × 64" in page and "524,416" in page
