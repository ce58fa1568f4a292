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
    assert {b.label for b in at.download_button} == {"Comparison CSV", "Comparison JSON", "HTML report (offline)",
                                                     "Ranking CSV", "Quality CSV", "Pairwise CSV"}
    assert len(at.dataframe) == 6  # summary, ranking, quality measures, the chosen pair, deltas, paired test
    summary = at.dataframe[0].value
    assert list(summary["set"]) == ["healthy", "heavy-tailed"]
    assert list(summary["verdict"]) == ["healthy", "mild"]  # heavy tails: a mode on a full-rank set
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
    # the run's name is its path below the allowed root, as on the Monitor page
    assert computations == [["runs/lambda-0.05@0", "runs/lambda-0.05@200"]]
    line = next(t for t in _texts(at) if t.startswith("**runs/lambda-0.05@200**: ΔSIGReg"))
    assert "significant: **runs/lambda-0.05@0** is healthier" in line
    summary = at.dataframe[0].value
    assert summary["rows"].tolist() == [512, 512]


def _arr(v) -> np.ndarray:
    """A plotly data array from the chart's JSON (plain list, or plotly's typed base64 array with its shape)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(s) for s in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v, dtype=float)


def _frame(at, column):
    """The first table on the page that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _chart(at, prefix):
    import json

    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith(prefix))


def test_ranking_pairwise_matrix_and_any_pair(computations):
    at = _page()
    at.multiselect(key="cmp_samples").set_value(["heavy-tailed", "healthy", "full-collapse", "shifted"]).run()
    _compare(at)
    assert len(computations) == 1
    cmp = next(iter(at.session_state["cmp_results"].values()))
    # ranking: best first by verdict severity then SIGReg / null mean, the numbers of the assessments
    rk = _frame(at, "against the set above")
    assert list(rk["set"])[0] == "healthy" and list(rk["set"])[-1] == "full-collapse"
    from sigreg_core.assessment.severity import severity

    sev = [severity(v) for v in rk["verdict"]]
    assert sev == sorted(sev)
    for name, shown in zip(rk["set"], rk["SIGReg × null mean"]):
        s = cmp.sets[name]
        assert float(shown) == pytest.approx(s.sigreg / s.null_mean, rel=1e-3)
    assert rk["against the set above"].iloc[0] == "–"  # the best set has none above it
    assert "None" not in rk.to_string() and "nan" not in rk.to_string()
    fig = _chart(at, "Ranking: SIGReg as a multiple")
    assert fig["layout"]["xaxis"]["type"] == "log"  # healthy ~1x, collapse ~hundreds x: a wide span
    # pairwise matrix: every ordered pair, antisymmetric significance codes, the diagonal empty
    pw = _chart(at, "Every pair")
    z = _arr(pw["data"][0]["z"]).astype(float)
    assert z.shape == (4, 4) and np.all(np.isnan(np.diag(z)))
    off = ~np.eye(4, dtype=bool)
    assert np.allclose(z[off], -z.T[off], equal_nan=True)
    names = pw["data"][0]["y"]
    i, j = names.index("healthy"), names.index("full-collapse")
    assert z[i, j] == -1  # healthy is significantly healthier than full collapse
    # any two sets directly, without recomputing
    at.selectbox(key="cmp_pair_a").set_value("shifted")
    at.selectbox(key="cmp_pair_b").set_value("heavy-tailed").run()
    _ok(at)
    pair = _frame(at, "interval")
    d = next(x for x in cmp.pair("shifted", "heavy-tailed")[0] if x.metric == "sigreg")
    row = pair[pair["metric"] == "SIGReg"].iloc[0]
    assert float(row["delta"]) == pytest.approx(cmp.sets["shifted"].sigreg - cmp.sets["heavy-tailed"].sigreg, rel=1e-3)
    assert float(row["delta"]) == pytest.approx(d.value, rel=1e-3)
    assert len(computations) == 1


def test_zero_width_interval_is_not_a_result(computations, tmp_path, monkeypatch):
    """Two fully collapsed sets (all rows equal): the bootstrap has no spread, so there is no interval."""
    rng = np.random.default_rng(5)
    const_a = np.tile(rng.standard_normal((1, 8)), (300, 1)).astype(np.float32)
    const_b = np.tile(rng.standard_normal((1, 8)) * 3, (300, 1)).astype(np.float32)
    at = _page()
    at.multiselect(key="cmp_samples").set_value([]).run()
    at.file_uploader(key="cmp_upload").set_value([("a.npy", _npy(const_a), "application/octet-stream"),
                                                  ("b.npy", _npy(const_b), "application/octet-stream")]).run()
    _compare(at)
    deltas = _frame(at, "se")
    row = deltas[(deltas["set"] == "b.npy") & (deltas["metric"] == "SIGReg")].iloc[0]
    assert row["interval"] == "no spread: interval not defined" and row["significant"] == "–"
    assert "None" not in deltas.to_string() and "nan" not in deltas.to_string()
    line = next(t for t in _texts(at) if t.startswith("**b.npy**: ΔSIGReg"))
    assert "no spread: interval not defined" in line and "[" not in line.split("interval")[1][:3]


def test_steps_picker_reaches_every_step(computations, tmp_path, monkeypatch):
    from sigreg_core.runs import RunWriter

    rng = np.random.default_rng(2)
    run = tmp_path / "runs" / "long"
    with RunWriter(run, summary=False, max_rows=None) as w:
        for step in range(0, 3000, 10):  # 300 kept snapshots
            assert w.log(step, rng.standard_normal((40, 4)).astype(np.float32))
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(tmp_path))
    at = _page()
    at.multiselect(key="cmp_samples").set_value([]).run()
    assert len(at.multiselect(key="cmp_steps").options) == 300
    at.text_input(key="cmp_steps_spec").set_value("2990, 1234, 100-140/2, x7").run()
    _ok(at)
    assert at.multiselect(key="cmp_steps").value == [2990, 1230, 100, 120, 140]
    assert any("Not understood: x7" in c.value for c in at.caption)


def test_parse_steps():
    from sigreg_core.util.steps import parse_steps

    kept = [0, 10, 20, 30, 40]
    assert parse_steps("15", kept) == ([10], [])  # nearest kept (ties to the lower)
    assert parse_steps("0-40/2", kept) == ([0, 20, 40], [])
    assert parse_steps("40-0", kept) == ([0, 10, 20, 30, 40], [])
    assert parse_steps("a, 10, 12", kept) == ([10], ["a"])  # 12 -> 10 again: no repeat
    assert parse_steps("", kept) == ([], [])
    assert parse_steps("5", []) == ([], ["5"])


def test_set_names_from_files_are_shown_as_text_not_markdown(computations):
    """File names are data: the comparison's lines escape them (no bold, link or directive from a name)."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 8)).astype(np.float32)
    b = (rng.standard_normal((300, 8)) * 3).astype(np.float32)
    at = _page()
    at.multiselect(key="cmp_samples").set_value([]).run()
    at.file_uploader(key="cmp_upload").set_value([("*a*.npy", _npy(a), "application/octet-stream"),
                                                  ("[b](x):red[c].npy", _npy(b), "application/octet-stream")]).run()
    _compare(at)
    shown = " ".join(_texts(at) + [e.value for e in at.subheader] + [e.value for e in at.caption]
                     + [e.value for e in at.markdown])
    assert "Against \\*a\\*.npy" in shown
    assert "**\\[b\\](x)\\:red\\[c\\].npy**: ΔSIGReg" in shown
    for raw in ("Against *a*", "**[b](x)", " *a*.npy", "set − *a*"):
        assert raw not in shown, raw


def test_comparison_html_reads_like_the_page_no_raw_dumps():
    """The comparison HTML (CLI --html and the page's download): ranking, pairs, cards, no raw tables or JSON,
    names escaped, no bootstrap p printed beside 'significant' (one criterion: the interval)."""
    import re

    from sigreg_core.compare.comparison import compare_sets
    from sigreg_core.compare.exports import comparison_html
    from sigreg_core.inputs.samples import load_sample

    sets = {"healthy": load_sample("healthy"), "<i>shifted</i>": load_sample("shifted")}
    cmp = compare_sets(sets, num_slices=64, n_boot=40, null_draws=0, cache_dir=False, device="cpu")
    page = comparison_html(cmp, source={"files": ["a.npy", "<b>b</b>.npy"]})
    head = page.split("<h2>Figures")[0]
    for part in ("Healthiest: healthy", "Ranking, best first", "Every pair", "Every set against healthy",
                 'class="card"', "Paired over slices", "Settings", "Source"):
        assert part in head, part
    assert "<i>shifted</i>" not in page and "&lt;i&gt;shifted&lt;/i&gt;" in head
    assert "&lt;b&gt;b&lt;/b&gt;.npy" in head and "<b>b</b>" not in page
    assert "preset_config" not in head and "{&quot;" not in head and "sigreg_over_null" not in head  # no raw dumps
    assert "p_boot" not in head and "p (boot" not in head
    assert not re.search(r">\s*(nan|None|inf)\s*<", head)
    # the delta of the shifted set and its interval, as the page prints them
    d = cmp.delta("<i>shifted</i>")
    assert f"{d.value:.4g}" in head and ("yes" if d.significant else "no") in head
