"""Polish of the Inspect views (issue 23): Marchenko–Pastur spectrum reference, log axes with full tick
values, the offline report's slice caption, the outlier base rate.  Oracles: Monte Carlo Wishart spectra,
the uniform law of null p-values, the rule's own level."""
from __future__ import annotations

import numpy as np
import pytest

import sigreg_core.present.exports as E
import sigreg_core.present.report as R
from sigreg_core.inputs.samples import load_sample
from sigreg_core.present import cloud as C
from sigreg_core.present import figures as F
from sigreg_core.present.html_report import slice_caption
from sigreg_core.present.marchenko_pastur import mp_edges, mp_quantiles

SETTINGS = R.Settings(num_slices=256)


@pytest.mark.parametrize("n,d", [(2048, 64), (512, 128), (100, 300)])
def test_mp_quantiles_match_monte_carlo_wishart_spectra(n, d):
    rng = np.random.default_rng(n + d)
    mean = np.zeros(d)
    reps = 24
    for _ in range(reps):
        z = rng.standard_normal((n, d))
        mean += np.sort(np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 0.0, None))[::-1]
    mean /= reps
    q = mp_quantiles(n, d)
    k = min(d, n - 1)
    assert q.shape == (d,) and np.all(np.diff(q) <= 0)
    np.testing.assert_allclose(q[:k], mean[:k], rtol=0.05)  # the edges move by O(N^(-2/3)) at small N
    mid = slice(k // 10, k - k // 10)
    np.testing.assert_allclose(q[mid], mean[mid], rtol=0.02)
    assert np.all(q[k:] == 0) and np.all(mean[k:] < 1e-10)


def test_healthy_2048x64_spectrum_spans_the_mp_support():
    q = mp_quantiles(2048, 64)
    a, b = mp_edges(64 / 2047)
    assert a < q[-1] < 0.72 and 1.34 < q[0] < b  # 0.69-1.40, not a flat line at 1
    fig = F.spectrum_figure(np.ones(64), n=2048)
    ref = [t for t in fig.data if "Marchenko" in (t.name or "")]
    assert len(ref) == 1
    np.testing.assert_allclose(ref[0].y, q)


def test_log_axes_label_full_values_and_bracket_every_value():
    stat = np.concatenate([np.full(10, 2500.0), np.linspace(0.5, 3.0, 100)])
    fig = F.slice_statistics_figure(stat, q95=2.9, q999=7.0, null_mean=1.05)
    ax = fig.layout.yaxis
    assert ax.type == "log" and ax.tickformat == "~g"  # "2000", not a bare "2"
    lo, hi = ax.range
    assert 10 ** lo <= stat.min() and 10 ** hi >= stat.max() and float(hi).is_integer()
    spec = F.spectrum_figure(np.array([5e3, 10, 1, 1e-3]), n=100)
    lo, hi = spec.layout.yaxis.range
    assert spec.layout.yaxis.tickformat == "~g" and 10 ** hi >= 5e3 and 10 ** lo <= 1e-3


@pytest.fixture(scope="module")
def reports():
    out = {}
    for name in ("healthy", "full-collapse", "bimodal"):
        z = load_sample(name)
        out[name] = (z, R.build_report(z, SETTINGS))
    return out


def test_offline_report_caption_says_what_the_slice_shows_for_this_set(reports):
    for name, (z, rep) in reports.items():
        j = R.pick_slice(rep, "worst")
        view = R.slice_view(z, rep, j)
        cap = slice_caption(rep, view)
        assert cap.startswith(f"Plotted: slice {j}, rank 1 of 256")
        page = E.html_report(rep, view, title=name)
        assert "click" not in page.split("<script")[0].lower() and "click a point" not in page
        smallest = j == int(np.nanargmin(rep.p_values))
        bound = 1 - 0.95 ** (1 / rep.num_slices) if smallest else 0.05  # min of M uniforms, or one uniform
        if float(view.p_value) < bound:
            assert "evidence against N(0, 1)" in cap or "unlike an N(0, 1) slice" in cap, (name, cap)
        elif rep.summary["verdict"] != "healthy":
            assert "comes from the checks under Evidence" in cap, (name, cap)
        else:
            assert "within what N(0, 1) slices show" in cap
        if rep.summary["verdict"] != "healthy":
            assert "what a healthy set shows" not in page, name
    z, rep = reports["full-collapse"]
    assert "unlike an N(0, 1) slice" in slice_caption(rep, R.slice_view(z, rep, R.pick_slice(rep, "worst")))
    z, rep = reports["healthy"]  # the smallest p of a healthy set: judged against the minimum of M uniforms
    j = int(np.nanargmin(rep.p_values))
    cap = slice_caption(rep, R.slice_view(z, rep, j))
    bound = 1 - 0.95 ** (1 / rep.num_slices)
    assert f"above {bound:.2g} 95 % of the time" in cap or "evidence against" in cap


def test_outlier_base_rate_is_the_rules_level():
    z = np.random.default_rng(3).standard_normal((2048, 16))
    v = C.cloud_view(z)
    assert abs(v.expected_outliers - 2048 * 0.001) < 1e-9
    assert "N(0, I) has about 2" in C.cloud_figure(v).data[-1].name or v.outlier_rows.size == 0
