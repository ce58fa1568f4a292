"""AppTest of the Compare page's quality measures (issue 22): the rank-by control (verdict by default, any
measure, the best predictor in one click), labels shared by all sets or one per set, and refusals."""
from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import sigreg_core.compare.comparison as compare_mod
from sigreg_core.assessment import probes as P

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "compare.py"
SHELL = f"""
import runpy
import streamlit as st
from sigreg_core.present.report import Settings
st.session_state["lh_settings"] = Settings(num_slices=64, max_rows=4096)
st.session_state["_lh_shell"] = True
runpy.run_path({str(PAGE)!r}, run_name="__main__")
"""
N = 400


@pytest.fixture
def fast(monkeypatch):
    real = compare_mod.compare_sets

    def quick(sets, **kw):
        kw.setdefault("null_draws", 0)
        kw.setdefault("cache_dir", False)
        return real(sets, **kw)

    monkeypatch.setattr(compare_mod, "compare_sets", functools.wraps(real)(quick))


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _sets():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 10)) * 2.5
    y = rng.integers(0, 4, N)
    good = (centres[y] + rng.standard_normal((N, 10))).astype(np.float32)
    noisy = (good + 4.0 * rng.standard_normal(good.shape)).astype(np.float32)
    return {"good.npy": good, "noisy.npy": noisy}, y


def _page(files) -> AppTest:
    at = AppTest.from_string(SHELL, default_timeout=240)
    at.run()
    at.multiselect(key="cmp_samples").set_value([]).run()
    at.file_uploader(key="cmp_upload").set_value([(n, _npy(a), "application/octet-stream") for n, a in files.items()])
    at.run()
    at.number_input(key="cmp_n_boot").set_value(0).run()
    at.button(key="cmp_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _quality(at):
    return next(d.value for d in at.dataframe if "α-ReQ" in d.value.columns)


def test_rank_by_verdict_by_default_then_the_best_predictor(fast):
    files, _ = _sets()
    at = _page(files)
    q = _quality(at)
    assert at.selectbox(key="cmp_rank_by").value == "verdict"
    ranking = next(d.value for d in at.dataframe if "against the set above" in d.value.columns)
    assert list(q["set"]) == list(ranking["set"])  # the verdict's order, as the ranking above
    assert "k-NN accuracy" not in q.columns  # no labels, no probe columns
    at.button(key="cmp_rank_best").click().run()
    assert at.selectbox(key="cmp_rank_by").value == "rankme"
    q = _quality(at)
    assert [float(v) for v in q["RankMe"]] == sorted((float(v) for v in q["RankMe"]), reverse=True)
    at.selectbox(key="cmp_rank_by").set_value("alpha_req").run()
    q = _quality(at)
    d = [abs(float(v) - 1.0) for v in q["α-ReQ"]]
    assert d == sorted(d)
    assert "knn_accuracy" not in at.selectbox(key="cmp_rank_by").options


def test_one_labels_file_for_every_set_adds_probes_and_ranks_by_them(fast):
    files, y = _sets()
    at = _page(files)
    at.file_uploader(key="cmp_labels").set_value(("y.npy", _npy(y), "application/octet-stream")).run()
    assert not at.exception and not at.error
    q = _quality(at)
    want = {n: P.label_quality(a, y) for n, a in files.items()}
    for n in files:
        assert q.loc[q["set"] == n, "linear-probe accuracy"].item() == f"{want[n]['linear_probe_accuracy']:.4g}"
    at.selectbox(key="cmp_rank_by").set_value("linear_probe_accuracy").run()
    q = _quality(at)
    assert list(q["set"]) == sorted(files, key=lambda n: -want[n]["linear_probe_accuracy"]) == ["good.npy", "noisy.npy"]


def test_labels_per_set_and_a_length_mismatch_is_one_line(fast):
    files, y = _sets()
    at = _page(files)
    at.file_uploader(key="cmp_labels").set_value([("y.npy", _npy(y), "application/octet-stream"),
                                                   ("short.npy", _npy(y[:-3]), "application/octet-stream")]).run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and "noisy.npy" in errs[0] and "397 values" in errs[0] and "\n" not in errs[0]
    q = _quality(at)  # the page goes on: good.npy has its probes, noisy.npy none
    assert q.loc[q["set"] == "good.npy", "k-NN accuracy"].item() != "–"
    assert q.loc[q["set"] == "noisy.npy", "k-NN accuracy"].item() == "–"
