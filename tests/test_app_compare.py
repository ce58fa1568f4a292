"""AppTest of the Compare page (pages/compare.py): two samples, two steps of a run, bad input.

The page runs inside a minimal shell (the settings the app's sidebar writes, and the
``_lh_shell`` flag), so it is tested on its own, whichever page app.py routes to.
The assessment's Monte Carlo null (a supplementary p-value, cached on disk) is
skipped to keep the tests fast; everything else is the real computation.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as st_save
from streamlit.testing.v1 import AppTest

import sigreg_core.compare.comparison as compare_mod

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "compare.py"
SHELL = f"""
import runpy
import streamlit as st
from sigreg_core.present.report import Settings
st.session_state["lh_settings"] = Settings(num_slices=128, max_rows=4096)
st.session_state["_lh_shell"] = True
runpy.run_path({str(PAGE)!r}, run_name="__main__")
"""


@pytest.fixture
def computations(monkeypatch):
    """Count real comparisons; skip the assessment's Monte Carlo null (supplementary, slow to build)."""
    calls = []
    real = compare_mod.compare_sets

    def counting(sets, **kw):
        calls.append(sorted(sets))
        kw.setdefault("null_draws", 0)
        kw.setdefault("cache_dir", False)
        return real(sets, **kw)

    monkeypatch.setattr(compare_mod, "compare_sets", functools.wraps(real)(counting))
    return calls


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _page(n_boot: int = 40) -> AppTest:
    at = AppTest.from_string(SHELL, default_timeout=240)
    at.run()
    _ok(at)
    at.number_input(key="cmp_n_boot").set_value(n_boot)
    return at


def _compare(at: AppTest) -> AppTest:
    at.button(key="cmp_go").click().run()
    _ok(at)
    return at


def _texts(at: AppTest) -> list:
    return [e.value for e in list(at.success) + list(at.error) + list(at.info) + list(at.warning)]


def test_two_samples_compared_with_significance_views_and_exports(computations):
    at = _page()
    assert at.multiselect(key="cmp_samples").value == ["healthy", "heavy-tailed"]
    assert any("Press **Compare**" in t for t in _texts(at))
    assert not computations  # nothing is computed before the button
    _compare(at)
    assert computations == [["healthy", "heavy-tailed"]]
    texts = _texts(at)
    line = next(t for t in texts if t.startswith("**heavy-tailed**: ΔSIGReg"))
    assert "significant: **healthy** is healthier" in line
    assert any(t.startswith("Same N: every set has 2,048 rows") for t in texts)
    assert len(at.get("plotly_chart")) >= 6  # scatter, sorted curves, deltas, histograms, CF, spectra
    assert {b.label for b in at.download_button} == {"Comparison CSV", "Comparison JSON", "HTML report (offline)"}
    assert len(at.dataframe) == 3  # summary, deltas, paired test
    summary = at.dataframe[0].value
    assert list(summary["set"]) == ["healthy", "heavy-tailed"]
    assert list(summary["verdict"]) == ["healthy", "marked"]
    # choosing another slice or pair redraws without recomputing
    at.radio(key="cmp_slice_how").set_value("worst").run()
    _ok(at)
    at.selectbox(key="cmp_pair_x").set_value("heavy-tailed").run()
    _ok(at)
    assert len(computations) == 1
    # a third set and another reference: a new comparison
    at.multiselect(key="cmp_samples").set_value(["healthy", "heavy-tailed", "full-collapse"]).run()
    at.selectbox(key="cmp_reference").set_value("full-collapse").run()
    _compare(at)
    assert len(computations) == 2
    lines = [t for t in _texts(at) if "ΔSIGReg" in t]
    assert len(lines) == 2 and all("is healthier" in t for t in lines)
    assert any(t.startswith("**healthy**: ΔSIGReg = -") and "**healthy** is healthier" in t for t in lines)


def _npy(z):
    import io

    buf = io.BytesIO()
    np.save(buf, z)
    return buf.getvalue()


def test_uploads_of_different_dimension_show_one_error_and_the_page_keeps_running(computations):
    at = _page()
    at.multiselect(key="cmp_samples").set_value([]).run()
    rng = np.random.default_rng(0)
    files = [("a.npy", _npy(rng.standard_normal((300, 16)).astype(np.float32)), "application/octet-stream"),
             ("b.safetensors", st_save({"embeddings": rng.standard_normal((200, 8)).astype(np.float32)}),
              "application/octet-stream")]
    at.file_uploader(key="cmp_upload").set_value(files).run()
    _ok(at)
    _compare(at)
    errors = [e.value for e in at.error]
    assert any("differ in dimension" in e and "a.npy has D = 16" in e for e in errors), errors
    assert not at.get("plotly_chart")
    # fix the input: a matching second upload, with a different N (subsampled, stated)
    files[1] = ("b.safetensors", st_save({"embeddings": (rng.standard_normal((200, 16)) * 3).astype(np.float32)}),
                "application/octet-stream")
    at.file_uploader(key="cmp_upload").set_value(files).run()
    _compare(at)
    texts = _texts(at)
    assert any("a.npy subsampled from 300" in t for t in texts)
    assert at.dataframe[0].value["rows"].tolist() == [200, 200]


def test_two_steps_of_a_run(computations, tmp_path, monkeypatch):
    from sigreg_core.runs import RunWriter

    rng = np.random.default_rng(1)
    run = tmp_path / "runs" / "lambda-0.05"
    with RunWriter(run, summary=False, max_rows=None) as w:
        for step, scale in ((0, 1.0), (100, 0.6), (200, 0.05)):  # the embedding shrinks: collapsing
            z = rng.standard_normal((512, 16)) * scale
            assert w.log(step, z.astype(np.float32))
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(tmp_path))
    at = _page()
    at.multiselect(key="cmp_samples").set_value([]).run()
    assert at.selectbox(key="cmp_run").value == str(run.resolve())
    assert at.multiselect(key="cmp_steps").options == ["0", "100", "200"]
    at.multiselect(key="cmp_steps").set_value([0, 200]).run()
    _ok(at)
    _compare(at)
    assert computations == [["lambda-0.05@0", "lambda-0.05@200"]]
    line = next(t for t in _texts(at) if t.startswith("**lambda-0.05@200**: ΔSIGReg"))
    assert "significant: **lambda-0.05@0** is healthier" in line
    summary = at.dataframe[0].value
    assert summary["rows"].tolist() == [512, 512]
