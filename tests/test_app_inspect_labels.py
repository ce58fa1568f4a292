"""AppTest of the Inspect page's labels (issue 22): a key of the same file or an uploaded labels file adds
k-NN and linear-probe accuracy to the companion metrics; bad labels are one error line and the page goes on."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import sigreg_core.assessment.probes as P

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
N, D, C = 600, 16, 4


def _data(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, D)) * 3.0
    y = rng.integers(0, C, N)
    z = (centres[y] + rng.standard_normal((N, D))).astype(np.float32)
    return z, y


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _app() -> AppTest:
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["lh_num_slices"] = 64
    at.run()
    at.radio(key="insp_source").set_value("Upload").run()
    return at


def _ok(at):
    assert not at.exception, [e.message for e in at.exception]


def _companions(at) -> pd.DataFrame:
    tables = [t.value for t in at.table]
    hit = [t for t in tables if "metric" in t.columns and "reads" in t.columns]
    assert len(hit) == 1, tables
    return hit[0]


def _row(df: pd.DataFrame, start: str) -> pd.Series:
    rows = df[df["metric"].str.startswith(start)]
    assert len(rows) == 1, df["metric"].tolist()
    return rows.iloc[0]


def test_a_key_of_the_same_file_adds_both_probes_matching_the_library():
    z, y = _data()
    at = _app()
    at.file_uploader(key="insp_upload").set_value(("emb.npz", _npz(emb=z, y=y), "application/octet-stream")).run()
    _ok(at)
    df = _companions(at)
    assert not df["metric"].str.contains("accuracy").any()  # no labels chosen yet: no probe rows
    assert "an array of this file" in at.radio(key="insp_labels_mode").options
    at.radio(key="insp_labels_mode").set_value("key").run()
    _ok(at)
    assert at.selectbox(key="insp_labels_key").value == "y"
    df = _companions(at)
    want = P.label_quality(z, y, seed=0)  # the library on the same rows: the page shows its numbers
    knn, lin = _row(df, "k-NN accuracy"), _row(df, "linear-probe accuracy")
    assert knn["this set"] == f"{want['knn_accuracy']:.4g}" and lin["this set"] == f"{want['linear_probe_accuracy']:.4g}"
    assert want["knn_accuracy"] > 0.9  # separable clusters: the probes see it
    lo, hi = want["knn_accuracy_interval"]
    assert f"[{lo:.3f}, {hi:.3f}]" in knn["reads"] and knn["N(0, I) reference"] == "–"
    assert not at.error


def test_an_uploaded_labels_file_and_shuffled_labels_score_near_chance():
    z, y = _data(1)
    rng = np.random.default_rng(5)
    at = _app()
    at.file_uploader(key="insp_upload").set_value(("emb.npy", _npy(z), "application/octet-stream")).run()
    assert at.radio(key="insp_labels_mode").options == ["none", "upload a labels file"]  # one array: no key
    at.radio(key="insp_labels_mode").set_value("upload").run()
    csv = pd.DataFrame({"id": np.arange(N), "label": rng.permutation(y)}).to_csv(index=False).encode()
    at.file_uploader(key="insp_labels_upload").set_value(("labels.csv", csv, "text/csv")).run()
    _ok(at)
    assert not at.error
    df = _companions(at)
    acc = float(_row(df, "k-NN accuracy")["this set"])
    assert acc < 0.5  # 4 classes, labels shuffled: near 1/4, far from the clusters' > 0.9


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize("labels,needle", [
    (np.arange(N - 1) % 3, "labels have 599 values but the embeddings have 600 rows"),
    (np.where(np.arange(N) == 7, np.nan, np.arange(N) % 3), "NaN"),
    (np.arange(N) % 3 + 0.5, "whole class numbers"),
    (np.arange(N), None),  # 600 classes: allowed (<= 10 000), every held-out row is a class unseen in training
])
def test_bad_labels_are_one_error_line_and_the_page_goes_on(labels, needle):
    z, _ = _data(2)
    at = _app()
    at.file_uploader(key="insp_upload").set_value(("emb.npy", _npy(z), "application/octet-stream")).run()
    at.radio(key="insp_labels_mode").set_value("upload").run()
    at.file_uploader(key="insp_labels_upload").set_value(("y.npy", _npy(labels), "application/octet-stream")).run()
    _ok(at)
    df = _companions(at)  # the companion metrics are still there
    assert len(at.get("plotly_chart")) >= 6  # and the rest of the report
    if needle is None:
        assert not at.error and float(_row(df, "k-NN accuracy")["this set"]) == 0.0
        return
    assert len(at.error) == 1 and needle in at.error[0].value and "\n" not in at.error[0].value
    assert not df["metric"].str.contains("accuracy").any()


def test_large_sets_run_the_probes_on_a_stated_subsample(monkeypatch):
    monkeypatch.setattr(P, "INTERACTIVE_ROWS", 200)  # the page reads the cap from the library
    z, y = _data(3)
    at = _app()
    at.file_uploader(key="insp_upload").set_value(("emb.npz", _npz(emb=z, y=y), "application/octet-stream")).run()
    at.radio(key="insp_labels_mode").set_value("key").run()
    _ok(at)
    reads = _row(_companions(at), "linear-probe accuracy")["reads"]
    assert "subsample of 200 of 600 rows" in reads and "40 held-out rows" in reads


def test_the_html_report_and_the_json_carry_the_probes():
    import json

    from sigreg_core.present.exports import assessment_json, html_report
    from sigreg_core.present.report import Settings, build_report, pick_slice, selected_slice_figures

    z, y = _data(4)
    rep = build_report(z, Settings(num_slices=32))
    view, _ = selected_slice_figures(rep, z, pick_slice(rep, "worst"))
    q = P.label_quality(z, y)
    page = html_report(rep, view, probes=q)
    lo, hi = q["linear_probe_accuracy_interval"]
    assert "linear-probe accuracy (held out)" in page and f"[{lo:.3f}, {hi:.3f}]" in page
    assert "k-NN accuracy" not in html_report(rep, view)
    doc = json.loads(assessment_json(rep, {"name": "x"}, q))
    assert doc["knn_accuracy"] == q["knn_accuracy"] and doc["linear_probe_accuracy_interval"] == [lo, hi]
    assert "knn_accuracy" not in json.loads(assessment_json(rep, {"name": "x"}))
