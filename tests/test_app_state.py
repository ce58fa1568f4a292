"""State that stays true on the Inspect page (issue 23): worst / median / best re-resolved after a recompute,
the cloud's view kept across slice changes, the cloud drawn on a fixed N(0, I) scale."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sigreg_core.present import cloud as C

ROOT = Path(__file__).resolve().parents[1]


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["lh_num_slices"] = 128
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _rank_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Rank "))


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _order(at: AppTest) -> np.ndarray:
    """Slice indices sorted by statistic, worst first, from the page's own table (the oracle is the data shown)."""
    df = at.dataframe[0].value
    return df.sort_values("statistic", ascending=False, kind="stable")["slice"].to_numpy()


@pytest.mark.parametrize("how", ["median", "best"])
def test_named_pick_is_re_resolved_after_a_seed_change(how):
    at = _app()
    at.radio(key="insp_pick").set_value(how).run()
    for seed in (5, 6):
        at.number_input(key="lh_seed").set_value(seed).run()
        assert not at.exception
        assert at.radio(key="insp_pick").value == how
        order = _order(at)
        m = order.size
        j = int(at.session_state["insp_slice"])
        want = int(order[-1]) if how == "best" else None
        if how == "median":  # rank of the median pick: position (m - 1) // 2 of the ascending order
            asc = order[::-1]
            want = int(asc[(m - 1) // 2])
        assert j == want, (how, seed, j, want)
        rank = int(np.nonzero(order == j)[0][0]) + 1
        assert _rank_caption(at).startswith(f"Rank {rank:,} of {m:,}")
        assert any(s.value.startswith(f"Slice {j}: statistic") for s in at.subheader)


def test_cloud_view_survives_slice_changes_and_reruns():
    at = _app()
    at.radio(key="insp_cloud_kind").set_value("slice").run()
    for how in ("median", "best", "worst"):
        at.radio(key="insp_pick").set_value(how).run()
        assert not at.exception
        assert at.radio(key="insp_cloud_kind").value == "slice"
        j = int(at.session_state["insp_slice"])
        assert any(c["layout"]["title"]["text"].startswith(f"Slice {j} against") for c in _charts(at))
    at.number_input(key="lh_seed").set_value(9).run()  # a recompute keeps it too
    assert at.radio(key="insp_cloud_kind").value == "slice"


def test_cloud_axes_have_the_n01_scale_and_a_collapse_stays_a_point():
    rng = np.random.default_rng(4)
    healthy = rng.standard_normal((3000, 16))
    collapsed = 1e-3 * rng.standard_normal((3000, 16))
    line = np.outer(rng.standard_normal(3000), np.ones(16) / 4.0) + 1e-4 * rng.standard_normal((3000, 16))
    wide = 10.0 * rng.standard_normal((3000, 16))
    for z, want in ((healthy, C.REFERENCE_HALF_RANGE), (collapsed, C.REFERENCE_HALF_RANGE),
                    (line, C.REFERENCE_HALF_RANGE)):
        fig = C.cloud_figure(C.cloud_view(z))
        assert list(fig.layout.xaxis.range) == [-want, want] and list(fig.layout.yaxis.range) == [-want, want]
    # the collapse occupies a tiny part of the fixed range; the line has one long and one null axis
    v = C.cloud_view(collapsed)
    assert np.abs(np.concatenate([v.x, v.y])).max() < 0.01 * C.REFERENCE_HALF_RANGE
    v = C.cloud_view(line)
    assert np.ptp(v.x) > 4 and np.ptp(v.y) < 0.01
    # beyond N(0, I) the range widens to fit every point (never cuts one)
    v = C.cloud_view(wide)
    half = C.cloud_figure(v).layout.xaxis.range[1]
    assert half >= np.abs(np.concatenate([v.x, v.y])).max() and half > C.REFERENCE_HALF_RANGE
    # the 95 % circle of N(0, I_2): two fixed axes of a healthy cloud hold 95 % of its rows inside it
    # (x = z·u on a fixed u: exactly N(0, 1) per row; the y axis is data-chosen, so the bound is loose)
    u = np.zeros(16)
    u[3] = 1.0
    v = C.cloud_view(healthy, "slice", direction=u)
    inside = np.mean(np.hypot(v.x, v.y) <= C.REFERENCE_RADIUS_95)
    assert 0.92 < inside < 0.97, inside
    from scipy.stats import chi2
    assert abs(C.REFERENCE_RADIUS_95 - np.sqrt(chi2.ppf(0.95, 2))) < 1e-12
