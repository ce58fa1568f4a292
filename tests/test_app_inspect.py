"""AppTest of the Inspect page: samples, uploads of every format, bad input, slice selection, caching."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
import torch
from safetensors.numpy import save as st_save
from streamlit.testing.v1 import AppTest

import sigreg_core.present.report as report_mod
from sigreg_core.inputs.samples import list_samples

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
MIN_CHARTS = 6  # slice statistics, the slice views (histogram, Q-Q, CF, weighted error in one), p-values, ECF band,
#                spectrum, per-dim


@pytest.fixture
def builds(monkeypatch):
    """Count real report computations (calls of sigreg_core.present.report.build_report), from an empty cache."""
    st.cache_resource.clear()
    calls = []
    real = report_mod.build_report

    def counting(z, settings, **kw):
        calls.append((tuple(np.shape(z)), settings))
        return real(z, settings, **kw)

    monkeypatch.setattr(report_mod, "build_report", counting)
    yield calls


def _app(num_slices: int = 128, **state) -> AppTest:
    """The app on its default page, with sidebar settings set before the first run."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["lh_num_slices"] = num_slices
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _chart_titles(at: AppTest) -> list[str]:
    return [c.get("layout", {}).get("title", {}).get("text", "") for c in _charts(at)]


def _verdict(at: AppTest) -> str:
    texts = [e.value for e in list(at.success) + list(at.info) + list(at.warning) + list(at.error)]
    hits = [t for t in texts if t.startswith("**Verdict:")]
    assert len(hits) == 1, texts
    return hits[0]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _full_report(at: AppTest) -> None:
    _ok(at)
    _verdict(at)
    float(_metric(at, "SIGReg"))
    assert len(at.get("plotly_chart")) >= MIN_CHARTS
    assert len(at.dataframe) >= 1
    labels = {b.label for b in at.download_button}
    assert {"Per-slice CSV", "Assessment JSON", "HTML report (offline)"} <= labels


def test_first_start_shows_the_healthy_sample(builds):
    at = _app(num_slices=1024)  # the real defaults
    _full_report(at)
    assert at.selectbox(key="insp_sample").value == "healthy"
    assert "healthy" in _verdict(at).lower()
    ratio = float(_metric(at, "× null mean"))
    assert 0.7 < ratio < 1.4
    assert len(builds) == 1
    assert builds[0][0] == (2048, 64)


def test_every_sample_renders_a_full_report(builds):
    at = _app()
    for sample in list_samples():
        name = sample.name
        at.selectbox(key="insp_sample").set_value(name).run()
        _full_report(at)
        verdict = _verdict(at)
        word = verdict.removeprefix("**Verdict: ").split("**")[0]
        ratio = float(_metric(at, "× null mean"))
        if name == "healthy":
            assert word == "healthy" and ratio < 1.5, (name, verdict)
        else:
            assert word in ("mild", "marked", "severe", "collapsed"), (name, verdict)
            if name != "bimodal":  # random slices of independent ±1 coordinates look Gaussian (CLT)
                assert ratio > 2, (name, ratio)
        assert sample.description in [c.value for c in at.caption]
    assert len(builds) == len(list_samples())


def _npy(z):
    buf = io.BytesIO()
    np.save(buf, z)
    return buf.getvalue()


def _npz(z):
    buf = io.BytesIO()
    np.savez(buf, emb=z)
    return buf.getvalue()


def _pt(z):
    buf = io.BytesIO()
    torch.save({"z": torch.from_numpy(z)}, buf)
    return buf.getvalue()


def _csv(z, sep=","):
    return pd.DataFrame(z, columns=[f"d{i}" for i in range(z.shape[1])]).to_csv(index=False, sep=sep).encode()


def _parquet(z):
    buf = io.BytesIO()
    pd.DataFrame(z, columns=[f"d{i}" for i in range(z.shape[1])]).to_parquet(buf)
    return buf.getvalue()


FORMATS = {
    "emb.safetensors": lambda z: st_save({"embeddings": z}),
    "emb.npy": _npy,
    "emb.npz": _npz,
    "emb.pt": _pt,
    "emb.csv": _csv,
    "emb.tsv": lambda z: _csv(z, "\t"),
    "emb.parquet": _parquet,
}


def _upload(at: AppTest, files) -> AppTest:
    at.radio(key="insp_source").set_value("Upload").run()
    _ok(at)
    at.file_uploader(key="insp_upload").set_value(files).run()
    return at


def test_upload_of_each_format_renders_the_report(builds):
    rng = np.random.default_rng(11)
    z = (rng.standard_normal((600, 24)) * 0.2).astype(np.float32)  # scale collapse: clearly unhealthy
    at = _app()
    at.radio(key="insp_source").set_value("Upload").run()
    for fname, make in FORMATS.items():
        at.file_uploader(key="insp_upload").set_value((fname, make(z), "application/octet-stream")).run()
        _full_report(at)
        assert not at.error, (fname, [e.value for e in at.error])
        data_line = next(m.value for m in at.markdown if m.value.startswith("**Data:**"))
        assert "600 x 24" in data_line and fname in data_line, data_line
        assert float(_metric(at, "× null mean")) > 5
        assert builds[-1][0] == (600, 24)


def test_several_uploads_pick_one(builds):
    rng = np.random.default_rng(12)
    a = rng.standard_normal((500, 16)).astype(np.float32)
    b = rng.standard_normal((700, 16)).astype(np.float32)
    at = _app()
    _upload(at, [("a.npy", _npy(a), "application/octet-stream"), ("b.npy", _npy(b), "application/octet-stream")])
    _full_report(at)
    pick = at.selectbox(key="insp_upload_pick")
    assert len(pick.options) == 2
    first = builds[-1][0]
    pick.set_value(pick.options[1]).run()
    _full_report(at)
    assert {first, builds[-1][0]} == {(500, 16), (700, 16)}


def test_a_newly_added_upload_becomes_the_selection(builds):
    rng = np.random.default_rng(13)
    a = rng.standard_normal((500, 16)).astype(np.float32)
    b = rng.standard_normal((300, 16)).astype(np.float32)
    at = _app()
    _upload(at, [("a.npy", _npy(a), "application/octet-stream")])
    _full_report(at)
    assert builds[-1][0] == (500, 16)
    at.file_uploader(key="insp_upload").set_value(
        [("a.npy", _npy(a), "application/octet-stream"), ("b.npy", _npy(b), "application/octet-stream")]).run()
    _full_report(at)
    assert builds[-1][0] == (300, 16)  # the file just added is the one reported
    data_line = next(m.value for m in at.markdown if m.value.startswith("**Data:**"))
    assert "b.npy" in data_line


def _no_report(at: AppTest) -> None:
    _ok(at)
    assert not at.get("plotly_chart")
    assert not [m for m in at.metric if m.label == "SIGReg"]
    assert not [m for m in at.markdown if m.value.startswith("**Data:**")]


def test_switching_to_upload_shows_no_report_of_the_sample(builds):
    at = _app()
    _full_report(at)
    at.radio(key="insp_source").set_value("Upload").run()
    _no_report(at)  # the sample's report does not sit under the empty uploader
    assert any("Choose a sample" in i.value for i in at.info)
    at.radio(key="insp_source").set_value("Sample").run()
    _full_report(at)
    assert len(builds) == 1  # back to the sample: the cached report


def test_malformed_upload_shows_only_the_loader_error(builds):
    at = _app()
    _full_report(at)
    _upload(at, ("broken.npy", b"\x93NUMPY garbage that is not an array", "application/octet-stream"))
    _ok(at)
    errors = [e.value for e in at.error]
    assert any("broken.npy" in e for e in errors), errors
    assert all("\n" not in e for e in errors)
    # the previous report (the healthy sample) belongs to another file: it is not shown below the error
    _no_report(at)
    # a good upload afterwards is reported
    z = np.random.default_rng(3).standard_normal((400, 8)).astype(np.float32)
    at.file_uploader(key="insp_upload").set_value(("good.npy", _npy(z), "application/octet-stream")).run()
    _full_report(at)
    assert not at.error
    assert builds[-1][0] == (400, 8)


def test_selecting_a_slice_changes_the_views_without_recomputing(builds):
    at = _app(num_slices=1024)
    assert len(builds) == 1
    titles0 = _chart_titles(at)
    hist0 = next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Views of slice"))
    for how in ["best", "median", "worst"]:
        at.radio(key="insp_pick").set_value(how).run()
        _full_report(at)
    at.radio(key="insp_pick").set_value("best").run()
    best = at.session_state["insp_slice"]
    at.number_input(key="insp_index").set_value((best + 1) % 1024).run()
    _full_report(at)
    assert at.session_state["insp_slice"] == (best + 1) % 1024
    titles1 = _chart_titles(at)
    assert f"slice {(best + 1) % 1024}" in " ".join(titles1)
    assert titles1 != titles0
    hist1 = next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Views of slice"))
    assert hist1["data"][0]["name"] == "projected values"  # the histogram panel
    assert hist1["data"][0]["x"] != hist0["data"][0]["x"]
    # other pages and back: still the one computation
    at.switch_page("pages/method.py").run()
    _ok(at)
    at.switch_page("pages/inspect.py").run()
    _full_report(at)
    assert len(builds) == 1
    # a settings change does recompute
    at.sidebar.number_input(key="lh_seed").set_value(1).run()
    _full_report(at)
    assert len(builds) == 2


def test_row_limit_subsamples_and_says_so(builds):
    at = _app(lh_max_rows=1000)
    _full_report(at)
    warn = " ".join(w.value for w in at.warning)
    assert "1,000 of 2,048 rows" in warn and "random" in warn
    assert builds[-1][0] == (1000, 64)


def test_three_d_upload_offers_views_and_all(builds):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 400, 16)).astype(np.float32)
    z[2] *= 0.1  # the third view is collapsed
    at = _app()
    _upload(at, ("views.npy", _npy(z), "application/octet-stream"))
    _ok(at)
    view = at.selectbox(key="insp_view")
    assert view.options == ["all views (summary)", "view 0", "view 1", "view 2"]
    table = at.dataframe[0].value
    assert list(table["view"]) == [0, 1, 2]
    assert table["× null mean"].iloc[2] > 5 * table["× null mean"].iloc[0]
    view.set_value(2).run()
    _full_report(at)
    assert float(_metric(at, "× null mean")) > 5


def test_server_path_outside_allowed_roots_is_refused(builds, tmp_path):
    outside = tmp_path / "x.npy"
    np.save(outside, np.zeros((10, 2), np.float32))
    at = _app()
    at.radio(key="insp_source").set_value("Server path").run()
    at.text_input(key="insp_path").set_value(str(outside))
    at.button[0].click().run()
    _ok(at)
    assert any("outside the allowed directories" in e.value for e in at.error)
    _no_report(at)  # only the error: the sample's report is not this path's
    at.text_input(key="insp_path").set_value("bimodal.safetensors")
    at.button[0].click().run()
    _full_report(at)
    assert "bimodal.safetensors" in next(m.value for m in at.markdown if m.value.startswith("**Data:**"))


def test_container_with_several_arrays_lets_the_user_pick_one(builds):
    rng = np.random.default_rng(9)
    buf = io.BytesIO()
    np.savez(buf, small=rng.standard_normal((300, 8)).astype(np.float32),
             big=rng.standard_normal((500, 12)).astype(np.float32))
    at = _app()
    _upload(at, ("two.npz", buf.getvalue(), "application/octet-stream"))
    _full_report(at)
    picker = next(s for s in at.selectbox if s.label == "Array in the file")
    assert set(picker.options) >= {"small: 300 x 8 float32", "big: 500 x 12 float32"}
    first = builds[-1][0]
    other = next(o for o in picker.options if not o.startswith("small" if first == (300, 8) else "big"))
    picker.set_value(other.split(":")[0]).run()
    _full_report(at)
    assert {first, builds[-1][0]} == {(300, 8), (500, 12)}


def test_request_from_another_page_opens_that_file(builds):
    """Another page (the Monitor) sets lh_inspect_request and switches here: the file is loaded."""
    at = _app()
    path = str(ROOT / "sample_data" / "shifted.safetensors")
    at.session_state["lh_inspect_request"] = {"path": path, "label": "demo run step 40"}
    at.run()
    _full_report(at)
    assert at.radio(key="insp_source").value == "Server path"
    assert "shifted.safetensors" in next(m.value for m in at.markdown if m.value.startswith("**Data:**"))
    assert any("demo run step 40" in c.value for c in at.caption)
    assert "lh_inspect_request" not in at.session_state
    assert builds[-1][0] == (2048, 64)


def test_healthy_worst_slice_note_floor_p_values_and_metric_references(builds):
    at = _app()
    # the healthy sample opens on its worst slice, which says what the smallest of M p-values looks like
    notes = [c.value for c in at.caption if "smallest of 128 per-slice p-values" in c.value]
    assert len(notes) == 1 and "not evidence of a problem" in notes[0], notes
    # a healthy reference beside every companion metric
    table = next(t.value for t in at.table if "N(0, I) reference" in t.value.columns)
    assert {"RankMe", "VICReg covariance term", "std of L2-normalised rows"} <= set(table["metric"])
    assert table["N(0, I) reference"].map(lambda s: float(s) == float(s)).all()
    # full collapse: p-values at the floor of the exact law read "< 1e-300", not "1e-300"
    at.selectbox(key="insp_sample").set_value("full-collapse").run()
    _full_report(at)
    assert _metric(at, "Overall p-value") == "< 1e-300"
    assert any(h.value.endswith("p-value < 1e-300") for h in at.subheader)
    assert not any("smallest of 128" in c.value and "not evidence" in c.value for c in at.caption)


def test_slice_change_keeps_the_sorted_chart_byte_identical_and_states_the_rank(builds):
    """What a slice change costs the browser: only the 2 x 2 views change; the sorted chart's spec stays the
    same bytes (an unchanged chart is not redrawn), and the selected slice's rank is written out instead."""
    at = _app(num_slices=256)

    def sorted_spec():
        return next(c.proto.spec for c in at.get("plotly_chart")
                    if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Per-slice statistic"))

    def views_spec():
        return next(c.proto.spec for c in at.get("plotly_chart")
                    if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Views of slice"))

    spec0, views0 = sorted_spec(), views_spec()
    table = next(d.value for d in at.dataframe if "statistic" in d.value.columns)
    assert list(table["slice"]) == list(range(256))
    for how in ["median", "best", "worst"]:
        at.radio(key="insp_pick").set_value(how).run()
        _ok(at)
        assert sorted_spec() == spec0
        j = at.session_state["insp_slice"]
        # rank oracle, from the per-slice table: slices above it, plus equal ones of smaller index
        s = table["statistic"].to_numpy()
        rank = 1 + int(np.sum(s > s[j])) + int(np.sum((s == s[j]) & (table["slice"].to_numpy() < j)))
        assert f"Rank {rank:,} of 256" in " ".join(c.value for c in at.caption)
        if how == "median":
            assert views_spec() != views0 and f"Views of slice {j}" in views_spec()
    assert len(builds) == 1


def test_nan_rows_refusal_names_the_control_and_the_control_scores_the_finite_rows(builds):
    z = np.random.default_rng(21).standard_normal((600, 8)).astype(np.float32)
    z[[5, 77, 300], 2] = np.nan
    at = _app()
    _upload(at, ("nan.npy", _npy(z), "application/octet-stream"))
    _ok(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "3 of 600 rows" in errors[0] and "Drop non-finite rows" in errors[0], errors
    assert "drop_nonfinite" not in errors[0] and "--drop-nonfinite" not in errors[0]  # the page's control, not the API's
    _no_report(at)
    at.checkbox(key="insp_drop_nonfinite").check().run()
    _full_report(at)
    assert any("dropped 3 rows" in c.value for c in at.caption)
    assert "597" in next(m.value for m in at.markdown if m.value.startswith("**Data:**"))
    assert builds[-1][0] == (597, 8)


def test_project_relative_server_path_loads(builds, monkeypatch):
    monkeypatch.delenv("LATENT_HEALTH_ALLOWED_ROOTS", raising=False)
    at = _app()
    at.radio(key="insp_source").set_value("Server path").run()
    at.text_input(key="insp_path").set_value("sample_data/shifted.safetensors")
    at.button[0].click().run()
    _full_report(at)
    assert "shifted.safetensors" in next(m.value for m in at.markdown if m.value.startswith("**Data:**"))
