"""Figure builders: the data they draw checked against independent formulas."""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
from scipy import stats

from sigreg_core.present import figures as F
def test_normal_pdf_matches_scipy():
    x = np.linspace(-6, 6, 101)
    np.testing.assert_allclose(F.normal_pdf(x), stats.norm.pdf(x), rtol=1e-13)


@pytest.mark.parametrize("chunk", [7, 1 << 16])
def test_ecf_on_grid_matches_complex_exponential(chunk):
    rng = np.random.default_rng(1)
    x = rng.standard_t(3, size=1001)
    t = np.linspace(-4, 4, 57)
    oracle = np.exp(1j * np.outer(t, x)).mean(axis=1)
    re, im = F.ecf_on_grid(x, t, chunk=chunk)  # equispaced: complex recurrence
    np.testing.assert_allclose(re, oracle.real, atol=1e-12)
    np.testing.assert_allclose(im, oracle.imag, atol=1e-12)
    t_odd = np.sort(rng.uniform(-4, 4, 40))  # not equispaced: float32 products for drawing
    oracle_odd = np.exp(1j * np.outer(t_odd, x)).mean(axis=1)
    re, im = F.ecf_on_grid(x, t_odd, chunk=chunk)
    np.testing.assert_allclose(re, oracle_odd.real, atol=2e-6)
    np.testing.assert_allclose(im, oracle_odd.imag, atol=2e-6)
    re, im = F.ecf_on_grid(x, t_odd, chunk=chunk, precise=True)
    np.testing.assert_allclose(re, oracle_odd.real, atol=1e-13)
    # exact values: ECF(0) = 1, constant input gives cos/sin of t*c
    np.testing.assert_allclose(F.ecf_on_grid(np.full(5, 0.7), t, precise=True)[0], np.cos(0.7 * t), atol=1e-15)
    with pytest.raises(ValueError):
        F.ecf_on_grid(np.array([]), t)


def test_qq_points_plotting_positions_and_thinning():
    rng = np.random.default_rng(2)
    x = rng.normal(size=500)
    theo, samp = F.qq_points(x, max_points=10_000)
    np.testing.assert_allclose(theo, stats.norm.ppf((np.arange(500) + 0.5) / 500), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(samp, np.sort(x))
    theo2, samp2 = F.qq_points(x, max_points=50)
    assert len(theo2) == len(samp2) <= 50
    assert samp2[0] == x.min() and samp2[-1] == x.max()
    assert np.all(np.diff(theo2) > 0)


def _trace(fig, name_start):
    return next(t for t in fig.data if (t.name or "").startswith(name_start))


def test_slice_statistics_figure_maps_points_to_slices():
    rng = np.random.default_rng(3)
    stat = rng.chisquare(2, size=300)
    pv = rng.uniform(size=300)
    fig = F.slice_statistics_figure(stat, q95=2.95, q999=7.05, null_mean=1.05, p_values=pv, selected=17)
    pts = _trace(fig, "slice statistic")
    y = np.asarray(pts.y)
    cd = np.asarray(pts.customdata)
    assert np.all(np.diff(y) <= 0)  # worst first
    np.testing.assert_array_equal(y, stat[cd[:, 0].astype(int)])
    np.testing.assert_array_equal(cd[:, 1], pv[cd[:, 0].astype(int)])
    assert sorted(cd[:, 0].astype(int)) == list(range(300))
    sel = _trace(fig, "selected")
    assert sel.y[0] == stat[17] and sel.x[0] == 1 + int(np.sum(stat > stat[17]))
    assert fig.layout.yaxis.type != "log"
    json.loads(fig.to_json())


def test_slice_statistics_figure_goes_log_for_collapse():
    stat = np.concatenate([np.full(10, 823.0), np.full(10, 0.5)])
    fig = F.slice_statistics_figure(stat, q95=2.95, q999=7.05, null_mean=1.05)
    assert fig.layout.yaxis.type == "log"


def test_weighted_error_and_band_and_companions():
    nodes = np.linspace(0, 3, 17)
    err = np.linspace(0.1, 0.0, 17)
    fig = F.weighted_error_figure(nodes, err, slice_index=3)
    np.testing.assert_allclose(np.asarray(fig.data[0].y), err)
    assert f"{err.sum():.4g}" in fig.layout.title.subtitle.text  # the sum is on the second title line

    rng = np.random.default_rng(4)
    re = rng.uniform(size=(40, 17))
    im = rng.uniform(-0.1, 0.1, size=(40, 17))
    band = F.ecf_band_figure(nodes, re, im)
    np.testing.assert_allclose(np.asarray(_trace(band, "Re ECF median").y), np.median(re, axis=0))
    np.testing.assert_allclose(np.asarray(_trace(band, "Im ECF median").y), np.median(im, axis=0))

    ev = np.array([4.0, 2.0, 1.0, 0.0])
    spec = F.spectrum_figure(ev)
    assert spec.layout.yaxis.type == "log"
    assert np.all(np.asarray(spec.data[0].y) > 0)  # zero floored, drawable on log scale
    assert list(spec.data[0].y[:3]) == [4.0, 2.0, 1.0]

    pd_fig = F.per_dim_figure(np.zeros(8), np.ones(8))
    assert len(pd_fig.data[0].x) == 8


def test_one_slice_views_draw_their_input():
    rng = np.random.default_rng(5)
    x = rng.normal(size=3000)
    h = F.histogram_figure(x, slice_index=2)
    bars = h.data[0]
    width = np.asarray(bars.width)
    dens = np.asarray(bars.y)
    assert abs(np.sum(dens * width) - 1) < 1e-12  # a density
    edges = np.asarray(bars.customdata)
    counts = np.array([np.sum((x >= a) & (x < b)) for a, b in edges])
    counts[-1] += np.sum(x == edges[-1, 1])  # numpy's last bin is closed
    np.testing.assert_allclose(dens * width * len(x), counts)  # independent count of each bin
    c = F.histogram_figure(np.full(50, 2.5))  # constant slice: still drawable
    assert np.isfinite(np.asarray(c.data[0].y)).all()
    dens = _trace(h, "N(0, 1)")
    area = np.trapezoid(np.asarray(dens.y), np.asarray(dens.x))
    assert abs(area - 1) < 1e-3
    q = F.qq_figure(x, slice_index=2)
    qs = _trace(q, "sample quantiles")
    assert len(qs.x) == 300  # thinned to one point per 2 pixels of a half-width panel, extremes kept
    assert np.asarray(qs.y)[0] == x.min() and np.asarray(qs.y)[-1] == x.max()
    t = np.linspace(0, 5, 101)
    re, im = F.ecf_on_grid(x, t)
    nodes = np.linspace(0, 3, 17)
    rn, inn = F.ecf_on_grid(x, nodes)
    cf = F.cf_figure(t, re, im, nodes, rn, inn, slice_index=2)
    np.testing.assert_allclose(np.asarray(_trace(cf, "target exp").y), np.exp(-t**2 / 2))
    np.testing.assert_allclose(np.asarray(_trace(cf, "Re at quadrature").y), rn)
    pv = F.pvalue_figure(rng.uniform(size=100))
    assert isinstance(pv, go.Figure)


def test_plotly_config_sets_png_filename_without_mutating_default():
    cfg = F.plotly_config("slice_statistics")
    assert cfg["toImageButtonOptions"] == {"format": "png", "scale": 2, "filename": "slice_statistics"}
    assert "filename" not in F.PLOTLY_CONFIG["toImageButtonOptions"]


def test_slice_views_figure_holds_the_four_views_unchanged():
    """The Inspect page's 2 x 2 chart: every trace of the four views, on its own panel, data identical."""
    rng = np.random.default_rng(6)
    x = rng.standard_t(5, size=2500)
    t = np.linspace(0, 4, 121)
    nodes = np.linspace(0.25, 3, 12)
    re, im = F.ecf_on_grid(x, t)
    rn, inn = F.ecf_on_grid(x, nodes)
    err = 0.01 * (rn - np.exp(-nodes**2 / 2)) ** 2 + 0.01 * inn**2
    parts = [F.histogram_figure(x, slice_index=7), F.qq_figure(x, slice_index=7),
             F.cf_figure(t, re, im, nodes, rn, inn, slice_index=7),
             F.weighted_error_figure(nodes, err, slice_index=7)]
    before = [p.to_json() for p in parts]
    fig = F.slice_views_figure(*parts, slice_index=7)
    assert [p.to_json() for p in parts] == before  # the separate figures are not modified
    assert len(fig.data) == sum(len(p.data) for p in parts)
    k = 0
    for panel, part in enumerate(parts, start=1):
        axis = "x" if panel == 1 else f"x{panel}"
        for tr in part.data:
            got = fig.data[k]
            k += 1
            assert got.name == tr.name and got.xaxis == axis
            np.testing.assert_array_equal(np.asarray(got.x, dtype=float), np.asarray(tr.x, dtype=float))
            np.testing.assert_array_equal(np.asarray(got.y, dtype=float), np.asarray(tr.y, dtype=float))
        ax = fig.layout[f"xaxis{'' if panel == 1 else panel}"]
        assert ax.title.text == part.layout.xaxis.title.text
    assert "slice 7" in fig.layout.title.text
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 4 and f"{err.sum():.4g}" in titles[3]  # the bars' sum, computed independently here
    assert fig.data[-1].showlegend is False  # the weighted-error bars need no legend entry
