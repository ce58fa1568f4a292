"""The cloud view: sigreg_core.present.cloud against independent computations, and its section on Inspect."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chi2

from sigreg_core.present import cloud as C


def test_principal_view_matches_an_eigendecomposition_of_the_covariance():
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 1.0, 0.5, 0.2])
    z = rng.standard_normal((3000, 5)) * scales + 2.0
    v = C.cloud_view(z, "pca", max_points=10_000)
    # oracle: the SVD of the centred rows (a different route than the eigenvectors of the scatter matrix)
    x = z - z.mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    w = sv ** 2
    s = x @ vt[:2].T
    for k, got in enumerate((v.x, v.y)):
        ref = s[v.rows, k]
        assert abs(abs(np.corrcoef(got, ref)[0, 1]) - 1) < 1e-10
        np.testing.assert_allclose(np.abs(got), np.abs(ref), rtol=0, atol=1e-5 * scales[k])  # float32 scores
    np.testing.assert_allclose(v.explained[:2], w[:2] / w.sum(), rtol=1e-9)
    assert "% of variance" in v.xlabel and v.note == "all 3,000 rows drawn"


def test_slice_view_is_the_projection_the_statistic_scores():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2000, 16)).astype(np.float32) + 0.5
    u = rng.standard_normal(16)
    v = C.cloud_view(z, "slice", direction=u, slice_index=7)
    un = u / np.linalg.norm(u)
    np.testing.assert_allclose(v.x, z[v.rows].astype(np.float64) @ un, rtol=1e-6, atol=1e-6)
    # the vertical axis is orthogonal to u: its values are the projection on some unit w with w·u = 0
    w, *_ = np.linalg.lstsq(z[v.rows].astype(np.float64), v.y, rcond=None)
    assert abs(np.linalg.norm(w) - 1) < 1e-6 and abs(w @ un) < 1e-6
    assert v.slice_index == 7 and "uncentred" in v.xlabel


def test_outlier_rule_flags_far_rows_and_about_a_thousandth_under_the_null():
    rng = np.random.default_rng(2)
    null_rates = []
    for seed in range(5):
        z = np.random.default_rng(seed).standard_normal((4000, 32))
        null_rates.append(C.cloud_view(z).outlier_rows.size / 4000)
    # 20000 null rows at the 99.9 % cut: about 20 flagged; binomial sd about 4.5 (MAD estimates add a little)
    assert 0.0002 < np.mean(null_rates) < 0.0025, null_rates
    z = rng.standard_normal((4000, 32))
    far = rng.choice(4000, 40, replace=False)
    z[far] += 8.0 * rng.standard_normal((40, 32)) / np.sqrt(32) * 4
    v = C.cloud_view(z, max_points=1000)
    assert set(far) <= set(v.outlier_rows)
    assert len(set(v.outlier_rows) - set(far)) <= 15
    # the distance is the formula of the docstring, recomputed here from the principal scores
    mean, axes, _ = C.principal_axes(z, k=10)
    s = (z - mean) @ axes
    med = np.median(s, 0)
    mad = 1.4826 * np.median(np.abs(s - med), 0)
    d = np.sqrt((((s - med) / mad) ** 2).sum(1))
    np.testing.assert_allclose(np.sort(v.outlier_rows), np.flatnonzero(d > np.sqrt(chi2.ppf(0.999, 10))))
    # subsample: every outlier drawn, the rest uniform, stated
    assert v.rows.size == 1000 and v.outlier.sum() == v.outlier_rows.size
    assert f"{v.outlier_rows.size:,} of the {v.outlier_rows.size:,} outlier rows" in v.note
    f = C.outlier_frame(v)
    assert list(f["row"])[0] in far and f["robust_distance"].is_monotonic_decreasing


def test_degenerate_inputs():
    assert C.cloud_view(np.ones((50, 4))).outlier_rows.size == 0  # full collapse: all rows equal, none "outlying"
    v = C.cloud_view(np.random.default_rng(0).standard_normal((30, 1)))
    assert np.all(v.y == 0) and "D = 1" in v.ylabel
    with pytest.raises(ValueError):
        C.cloud_view(np.ones((1, 3)))
    with pytest.raises(ValueError):
        C.cloud_view(np.ones((10, 3)), "slice")
    with pytest.raises(ValueError):
        C.cloud_view(np.ones((10, 3)), "slice", direction=np.ones(4))


def test_figure_is_webgl_with_outliers_separate():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((12_000, 8))
    z[:5] += 50
    v = C.cloud_view(z)
    fig = C.cloud_figure(v)
    assert [t.type for t in fig.data] == ["scattergl", "scattergl"]
    assert len(fig.data[0].x) + len(fig.data[1].x) == 5000 and len(fig.data[1].x) == v.outlier_rows.size
    assert "5,000 of 12,000 rows drawn" in json.dumps(fig.to_plotly_json()["layout"]["annotations"])


def test_inspect_page_has_the_cloud_section():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=240)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    cloud = [c for c in charts if c["layout"]["title"]["text"].startswith("Cloud on the top-2 principal axes")]
    assert len(cloud) == 1
    at.radio(key="insp_cloud_kind").set_value("slice")
    at.run()
    assert not at.exception
    j = int(at.session_state["insp_slice"])
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(c["layout"]["title"]["text"].startswith(f"Slice {j} against") for c in charts)
    assert any("rows drawn" in c.value or "rows:" in c.value for c in at.caption)


def test_the_callers_array_is_not_modified():
    z = np.random.default_rng(9).standard_normal((500, 6)) + 3.0
    before = z.copy()
    C.cloud_view(z)
    C.cloud_view(z, "slice", direction=np.ones(6))
    np.testing.assert_array_equal(z, before)
