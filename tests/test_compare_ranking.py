"""Ranking and pairwise comparison of sets (sigreg_core.compare.ranking), and their figures."""
from __future__ import annotations

import numpy as np
import pytest

from sigreg_core.compare.comparison import compare_sets, comparison_text
from sigreg_core.compare.model import NO_SPREAD
from sigreg_core.compare.ranking import pairwise_frame, pairwise_matrix, rank_order, ranking_frame
from sigreg_core.present import compare_figures as CF


@pytest.fixture(scope="module")
def cmp():
    rng = np.random.default_rng(11)
    sets = {
        "healthy": rng.standard_normal((400, 8)),
        "shifted": rng.standard_normal((400, 8)) + 1.5,
        "scaled": rng.standard_normal((400, 8)) * 1.3,
        "collapsed": np.tile(rng.standard_normal((1, 8)), (400, 1)),
        "collapsed2": np.tile(rng.standard_normal((1, 8)) * 2, (400, 1)),
    }
    return compare_sets(sets, num_slices=48, n_boot=60, null_draws=0, cache_dir=False)


def test_ranking_order_is_the_headline_rank_key(cmp):
    from sigreg_core.assessment.verdict import rank_key

    rk = ranking_frame(cmp)
    # oracle: the assessment's one ordering, applied to each set's assessment answers
    want = sorted(cmp.names, key=lambda n: rank_key(cmp.sets[n].assessment["answers"]))
    assert list(rk["set"]) == want == rank_order(cmp)
    want_d = [cmp.sets[n].assessment["answers"]["distance"]["relative_distance"] for n in want]
    np.testing.assert_array_equal(np.asarray(rk["distance"], dtype=float),  # JSON keeps NaN as None
                                  np.array([np.nan if v is None else v for v in want_d], dtype=float))
    assert list(rk["rank"]) == list(range(1, 6))
    best = cmp.sets[want[0]]
    for r in rk.itertuples():
        s = cmp.sets[r.set]
        assert r.x_null == pytest.approx(s.sigreg / s.null_mean)
        assert r.excess_over_best == pytest.approx((s.sigreg - best.sigreg) / s.null_mean)
    # the collapsed sets have no bootstrap spread: no interval, said so
    for name in ("collapsed", "collapsed2"):
        row = rk[rk["set"] == name].iloc[0]
        assert np.isnan(row["x_null_low"]) and row["interval_note"] == NO_SPREAD
    row = rk[rk["set"] == "shifted"].iloc[0]
    assert row["x_null_low"] < row["x_null"] < row["x_null_high"]
    assert rk["vs_above"].iloc[0] == ""
    # the two collapsed sets rank last, and the last one against the one above has no interval at all
    assert set(rk["set"].iloc[-2:]) == {"collapsed", "collapsed2"}
    assert rk["vs_above"].iloc[-1] == NO_SPREAD
    assert rk["vs_above"].iloc[-2].endswith("(significant)")  # collapsed vs a non-collapsed set: spread exists


def test_pairwise_is_antisymmetric_and_matches_the_reference_deltas(cmp):
    pf = pairwise_frame(cmp, "sigreg")
    assert len(pf) == 5 * 4
    idx = {(r.set, r.reference): r for r in pf.itertuples()}
    for (a, b), r in idx.items():
        rev = idx[(b, a)]
        assert r.value == pytest.approx(-rev.value)
        if np.isfinite(r.ci_low):
            assert r.ci_low == pytest.approx(-rev.ci_high) and r.ci_high == pytest.approx(-rev.ci_low)
            assert r.significant == rev.significant and r.healthier == rev.healthier
        assert r.relative == pytest.approx(r.value / cmp.sets[b].null_mean)
    # against the comparison's own reference: exactly the deltas compare_sets computed
    for d in cmp.deltas:
        if d.metric != "sigreg":
            continue
        r = idx[(d.set, d.reference)]
        assert r.value == d.value and (r.ci_low == d.ci_low or (np.isnan(r.ci_low) and np.isnan(d.ci_low)))
    # two fully collapsed sets: a real difference but no interval, and not called significant
    r = idx[("collapsed2", "collapsed")]
    assert r.note == NO_SPREAD and not r.significant and np.isnan(r.ci_low) and r.value != 0
    code, text = pairwise_matrix(cmp)
    assert np.all(np.isnan(np.diag(code.to_numpy())))
    assert code.loc["healthy", "collapsed"] == -1 and code.loc["collapsed", "healthy"] == 1
    assert np.isnan(code.loc["collapsed2", "collapsed"]) and NO_SPREAD in text.loc["collapsed2", "collapsed"]


def test_pair_of_any_two_sets(cmp):
    ds, pt = cmp.pair("shifted", "scaled")
    d = next(x for x in ds if x.metric == "sigreg")
    assert d.value == pytest.approx(cmp.sets["shifted"].sigreg - cmp.sets["scaled"].sigreg)
    assert pt.set == "shifted" and pt.reference == "scaled"
    np.testing.assert_allclose(pt.mean_difference, np.mean(cmp.sets["shifted"].statistic - cmp.sets["scaled"].statistic))
    with pytest.raises(KeyError):
        cmp.pair("nope", "scaled")


def test_figures_use_log_axes_where_the_span_is_wide(cmp):
    rk = ranking_frame(cmp)
    f = CF.ranking_figure(rk)
    assert f.layout.xaxis.type == "log"
    assert list(f.data[0].y)[0].startswith("1. ")
    d = cmp.deltas_frame()
    wide = CF.deltas_figure(d, "sigreg")
    assert wide.layout.xaxis.type == "log"
    vals = d[d["metric"] == "sigreg"]["value"].to_numpy()
    np.testing.assert_allclose(wide.data[0].x, np.abs(vals))
    assert set(wide.data[0].marker.symbol) <= {"triangle-up", "triangle-down"}
    narrow = d[d["metric"] == "sigreg"].assign(value=[1.0, 2.0, -3.0, 4.0][: int((d["metric"] == "sigreg").sum())])
    assert CF.deltas_figure(narrow, "sigreg").layout.xaxis.type != "log"
    code, text = pairwise_matrix(cmp)
    pw = CF.pairwise_figure(code, text)
    assert pw.data[0].type == "heatmap" and list(pw.data[0].x) == list(code.columns)
    assert not ({c.upper() for c in CF.PALETTE} & {"#009E73", "#E69F00", "#D55E00"})


def test_text_and_html_exports_carry_the_ranking(cmp):
    from sigreg_core.compare.comparison import comparison_html

    txt = comparison_text(cmp)
    assert "Sets, best first" in txt and NO_SPREAD in txt
    html = comparison_html(cmp)
    assert "Ranking, best first" in html and "Every pair" in html and "None" not in html.split("<h2>Figures")[0]


def test_interval_text_never_prints_a_narrow_interval_as_zero_width():
    from sigreg_core.compare.ranking import interval_text

    assert interval_text(1913.94, 1914.06) == "[1913.9, 1914.1]"
    assert interval_text(13.05, 18.67) == "[13.05, 18.67]"
    assert interval_text(float("nan"), 1.0) == "–"
    assert interval_text(-2.0, 3.0, signed=True) == "[-2, +3]"
