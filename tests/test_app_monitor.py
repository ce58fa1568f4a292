"""AppTest of the Monitor page (pages/monitor.py): shipped runs, a run being written, errors, Inspect hand-off.

The page runs inside a minimal copy of the app shell (tests/monitor_helpers.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from sigreg_core.runs import RunReader, RunWriter

from monitor_helpers import ROOT, SHIPPED, make_shell, curves, panel_titles
from monitor_helpers import alerts as _alerts, arr as _arr, captions as _captions, chart_by_title as _chart_by_title
from monitor_helpers import charts as _charts, ok as _ok, table as _table


@pytest.fixture
def shell(tmp_path, monkeypatch):
    return make_shell(tmp_path, monkeypatch, num_slices=32)


def test_shipped_runs_show_by_default(shell):
    assert (SHIPPED / "lambda-0").is_dir() and (SHIPPED / "lambda-0.09").is_dir()
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    picked = at.multiselect(key="mon_runs").value
    assert sorted(Path(p).name for p in picked) == ["lambda-0", "lambda-0.09"]
    # one stacked figure, one step axis: SIGReg, p-value, RankMe, the loss (a logged scalar) and the verdict
    stack = curves(at)
    assert [t.split(" (")[0].split(",")[0] for t in panel_titles(stack)] == [
        "SIGReg", "Overall p-value", "RankMe", "loss", "Verdict"]
    assert {t.get("xaxis", "x") for t in stack["data"]} == {"x"}  # every trace on the one x axis
    assert len({t.get("yaxis", "y") for t in stack["data"]}) == 5
    assert stack["layout"]["xaxis"]["spikemode"] == "across" and stack["layout"]["hovermode"] == "closest"
    p_line = next(t for t in stack["data"] if t["name"] == "runs/lambda-0: Overall p-value")
    assert np.allclose(_arr(p_line["y"]), RunReader(SHIPPED / "lambda-0").timeseries()["p_value"].clip(lower=1e-300))
    assert any(c["layout"]["title"]["text"].startswith("Per-slice statistic") for c in _charts(at))
    # one alert table: lambda = 0 collapsed (first collapsed step from the index), lambda = 0.09 healthy at the end
    alerts = _alerts(at).set_index("run")
    ref0 = RunReader(SHIPPED / "lambda-0").timeseries()
    first_coll = int(ref0.loc[ref0["verdict"] == "collapsed", "step"].min())
    assert int(alerts.loc["runs/lambda-0", "first collapsed step"]) == first_coll
    assert alerts.loc["runs/lambda-0", "latest verdict"] == "collapsed"
    assert alerts.loc["runs/lambda-0.09", "latest verdict"] == "healthy"
    assert alerts.loc["runs/lambda-0.09", "first collapsed step"] == "–"  # never collapsed: "–", not "None"
    assert "None" not in alerts.to_string()
    # the alert rule: lambda = 0 alerts no later than its first collapsed step; lambda = 0.09 never alerts
    # (both start far from N(0, I): the untrained start is each run's reference, not an alert)
    ref9 = RunReader(SHIPPED / "lambda-0.09").timeseries()
    assert int(alerts.loc["runs/lambda-0", "first alert step"]) <= first_coll
    assert alerts.loc["runs/lambda-0.09", "first alert step"] == "–"
    assert int(alerts.loc["runs/lambda-0.09", "alerts"]) == 0 and alerts.loc["runs/lambda-0.09", "best verdict"] == "healthy"
    assert list(alerts.index)[0] == "runs/lambda-0"  # alerting runs first
    caps = _captions(at)
    assert f"alert: collapsed at step {first_coll}" in caps and "latest step 400: healthy since step" in caps
    assert "no alert (best healthy at step" in caps
    assert not at.error and not at.success  # no banner per run any more
    # SIGReg traces: one per run with the real values from the index
    sig = curves(at)
    lines = {t["name"]: t for t in sig["data"] if t.get("mode") == "lines+markers"}
    ref = RunReader(SHIPPED / "lambda-0").timeseries()
    assert np.allclose(_arr(lines["runs/lambda-0"]["y"]), ref["sigreg"].to_numpy())
    bands = [t for t in sig["data"] if t.get("fill") == "toself"]
    assert len(bands) == 2
    # the steps table of every run shown, its CSV, the alerts CSV and the charts' HTML
    table = _table(at)
    assert len(table) == len(ref0) + len(ref9) and "verdict" in table.columns
    assert sorted(set(table["run"])) == ["runs/lambda-0", "runs/lambda-0.09"]
    labels = [b.label for b in at.get("download_button")]
    assert {"Alerts CSV", "Steps CSV", "Charts HTML"} <= set(labels)


def test_run_being_written_appears_and_grows(shell, tmp_path, monkeypatch):
    roots = tmp_path / "runs"
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", os.pathsep.join([str(roots), str(ROOT / "sample_data")]))
    run = roots / "live"
    w = RunWriter(run, num_slices=32, max_rows=256)
    rng = np.random.default_rng(0)
    for s in range(3):
        w.log(s, torch.from_numpy(rng.standard_normal((256, 8)).astype(np.float32)), loss=1.0 / (s + 1))
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.session_state["mon_runs"] = [str(run.resolve())]
    at.run()
    _ok(at)
    assert list(_table(at)["step"]) == [0, 1, 2]
    # the writer goes on (a collapse begins), the page is rerun (as live refresh does): the new steps show
    for s in range(3, 6):
        w.log(s, torch.from_numpy(rng.standard_normal((256, 8)).astype(np.float32) * 1e-3 + 1.0), loss=0.01)
    at.toggle(key="mon_live").set_value(True)
    at.run()
    _ok(at)
    assert list(_table(at)["step"]) == [0, 1, 2, 3, 4, 5]
    assert int(_alerts(at).set_index("run").loc["live", "first collapsed step"]) == 3
    w.close()


def test_add_run_dir_confined_and_bad_index_reported(shell, tmp_path, monkeypatch):
    roots = tmp_path / "runs"
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(roots))
    with RunWriter(roots / "r1", num_slices=16, summary=True) as w:
        w.log(0, torch.randn(64, 4))
    broken = roots / "broken"
    broken.mkdir()
    (broken / "index.sqlite").write_bytes(b"this is not a database" * 100)
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.session_state["mon_runs"] = []
    at.run()
    _ok(at)
    # submit the form: outside the allowed roots is refused with one line, the page keeps running
    at = _submit(at, "/etc")
    assert any("outside the allowed directories" in e.value for e in at.error)
    at = _submit(at, "r1")
    _ok(at)
    assert str((roots / "r1").resolve()) in at.multiselect(key="mon_runs").value
    at.multiselect(key="mon_runs").set_value([str((roots / "r1").resolve()), str(broken.resolve())])
    at.run()
    _ok(at)
    assert any("broken" in e.value for e in at.error)  # the corrupt index: one line, other run still shown
    assert list(_table(at)["step"]) == [0]


def _submit(at, text):
    at.text_input(key="mon_add_path").set_value(text)
    next(b for b in at.button if b.label == "Add").click()
    at.run()
    return at


def test_open_step_hands_the_snapshot_to_inspect(shell):
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    at.selectbox(key="mon_open_run").set_value("runs/lambda-0")
    at.run()
    last = int(RunReader(SHIPPED / "lambda-0").timeseries()["step"].max())
    at.selectbox(key="mon_open_step").set_value(last)
    at.button(key="mon_open_btn").click()
    at.run()
    _ok(at)
    # the Inspect page took the request (it pops lh_inspect_request) and shows that snapshot's full report
    assert any(t.value == "Inspect" for t in at.title)
    label = at.session_state["insp_request_label"]
    assert label.startswith("runs/lambda-0 step ")
    step = int(label.rsplit(" ", 1)[1])
    assert Path(at.session_state["insp_path_loaded"]) == RunReader(SHIPPED / "lambda-0").snapshot_path(step)
    assert any("Verdict: collapsed" in e.value for e in at.error)  # the last step of lambda = 0


def test_folder_of_foreign_snapshots_is_scored_with_the_sidebar_settings(shell, tmp_path, monkeypatch):
    roots = tmp_path / "runs"
    folder = roots / "exported"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    np.save(folder / "step_000100.npy", rng.standard_normal((200, 6)).astype(np.float32))
    np.save(folder / "step_000200.npy", (rng.standard_normal((200, 6)) * 1e-3 + 1.0).astype(np.float32))
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(roots))
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.session_state["mon_runs"] = [str(folder.resolve())]
    at.run()
    _ok(at)
    table = _table(at)
    assert list(table["step"]) == [100, 200]
    assert list(table["m"]) == [32, 32]  # the shell's sidebar setting (num_slices=32)
    assert list(table["verdict"]) == ["healthy", "collapsed"]
    assert int(_alerts(at).set_index("run").loc["exported", "first collapsed step"]) == 200


def test_smoothing_time_axis_and_filter_controls(shell):
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    ref = RunReader(SHIPPED / "lambda-0").timeseries()
    # smoothing: the raw line stays (faint), the main line is TensorBoard's debiased EMA of the logged values
    at.slider(key="mon_smoothing").set_value(0.9)
    at.run()
    _ok(at)
    from sigreg_core.present.monitor_figures import ema

    sig = _chart_by_title(at, "SIGReg")
    by = {t["name"]: t for t in sig["data"]}
    assert np.allclose(_arr(by["runs/lambda-0 (raw)"]["y"]), ref["sigreg"].to_numpy())
    assert by["runs/lambda-0 (raw)"]["opacity"] < 0.5
    assert np.allclose(_arr(by["runs/lambda-0"]["y"]), ema(ref["sigreg"].to_numpy(), 0.9))
    # relative time: seconds / minutes since each run's first logged step
    at.radio(key="mon_x").set_value("relative")
    at.run()
    _ok(at)
    sig = _chart_by_title(at, "SIGReg")
    line = next(t for t in sig["data"] if t["name"] == "runs/lambda-0")
    x = _arr(line["x"])
    assert x[0] == 0 and np.all(np.diff(x) >= 0)
    assert "time since the run's first logged step" in sig["layout"]["xaxis"]["title"]["text"]
    at.radio(key="mon_x").set_value("wall")
    at.run()
    _ok(at)
    sig = _chart_by_title(at, "SIGReg")
    line = next(t for t in sig["data"] if t["name"] == "runs/lambda-0")
    first = pd.Timestamp(line["x"][0])
    assert abs(first.timestamp() - float(ref["time"].iloc[0])) < 1e-3  # wall clock of the first logged step
    # the filter (a regular expression) picks the runs shown, and the colours stay the run's own
    colour_before = next(t for t in sig["data"] if t["name"] == "runs/lambda-0.09")["line"]["color"]
    at.text_input(key="mon_filter").set_value(r"0\.09")
    at.run()
    _ok(at)
    sig = _chart_by_title(at, "SIGReg")
    names = {t["name"] for t in sig["data"] if t.get("mode") == "lines+markers" and t.get("yaxis", "y") == "y"}
    assert names == {"runs/lambda-0.09"}
    assert {t["legendgroup"] for t in sig["data"] if t.get("mode") == "lines+markers"} == {"runs/lambda-0.09"}
    assert next(t for t in sig["data"] if t["name"] == "runs/lambda-0.09")["line"]["color"] == colour_before
    assert "showing 1 (filter" in _captions(at)
    assert list(_alerts(at)["run"]) == ["runs/lambda-0.09"]
    at.text_input(key="mon_filter").set_value("[unclosed")  # not a valid regex: plain text, no error
    at.run()
    _ok(at)
    assert "Pick at least one run" in at.info[0].value


def test_distribution_tab_and_log_ticks(shell):
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    assert not [c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Per-slice statistic over steps")]
    at.segmented_control(key="mon_slice_view").set_value("distribution over steps")  # built only when chosen
    at.run()
    _ok(at)
    dist = _chart_by_title(at, "Per-slice statistic over steps")
    shown = [a["text"] for a in dist["layout"]["annotations"]][:2]  # newest first: the order follows file times
    assert sorted(shown) == ["runs/lambda-0", "runs/lambda-0.09"]
    ref = RunReader(SHIPPED / "lambda-0").timeseries()
    fills = [t for t in dist["data"] if t.get("fill") == "tonexty"]
    k = 2 * shown.index("runs/lambda-0")  # two bands (q95, max) per run, in the panels' order
    assert np.allclose(_arr(fills[k]["y"]), ref["q95"]) and np.allclose(_arr(fills[k + 1]["y"]), ref["qmax"])
    sig = _chart_by_title(at, "SIGReg")
    y = sig["layout"]["yaxis"]
    assert [float(t) for t in y["ticktext"]] == pytest.approx(y["tickvals"])  # full numbers, no bare "2"
    nm = next(a for a in sig["layout"]["annotations"] if a["text"].startswith("null mean"))
    assert abs(nm["y"] - np.log10(float(ref["null_mean"].iloc[0]))) < 1e-9


def test_cloud_of_a_step_follows_the_slice(shell):
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    at.selectbox(key="mon_open_run").set_value("runs/lambda-0.09")
    at.selectbox(key="mon_open_step").set_value(200)
    at.run()
    _ok(at)
    cloud = _chart_by_title(at, "runs/lambda-0.09, step 200: top-2 principal axes")
    pts = [t for t in cloud["data"] if t["type"] == "scattergl"]
    z = RunReader(SHIPPED / "lambda-0.09").snapshot(200)
    assert sum(len(_arr(t["x"])) for t in pts) == z.shape[0]  # 512 rows: all drawn
    assert "all 512 rows drawn" in _captions(at)
    at.radio(key="mon_cloud_kind").set_value("slice")
    at.run()
    _ok(at)
    worst = _chart_by_title(at, "runs/lambda-0.09, step 200: slice ")  # empty input: the worst slice
    assert "the worst)" in worst["layout"]["title"]["text"]
    at.number_input(key="mon_cloud_slice").set_value(5)
    at.run()
    _ok(at)
    cloud = _chart_by_title(at, "runs/lambda-0.09, step 200: slice 5 of")
    from sigreg_core.core.directions import sample_directions

    cfg = RunReader(SHIPPED / "lambda-0.09").config
    u = sample_directions(z.shape[1], cfg.num_slices, cfg.seed).numpy()[:, 5].astype(np.float64)
    pts = [t for t in cloud["data"] if t["type"] == "scattergl"]
    rows = np.concatenate([_arr(t["customdata"]).reshape(-1, 2)[:, 0] for t in pts]).astype(int)
    xs = np.concatenate([_arr(t["x"]) for t in pts])
    assert np.allclose(xs, z.astype(np.float64)[rows] @ u, atol=1e-5)  # x = z·u of the run's own slice 5


def test_new_run_appears_within_one_refresh(shell, tmp_path, monkeypatch):
    roots = tmp_path / "runs"
    roots.mkdir()
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(roots))
    rng = np.random.default_rng(3)
    with RunWriter(roots / "first", num_slices=16, max_rows=128) as w:
        w.log(0, rng.standard_normal((128, 4)).astype(np.float32))
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    assert [Path(p).name for p in at.multiselect(key="mon_runs").value] == ["first"]
    with RunWriter(roots / "second", num_slices=16, max_rows=128) as w:  # created while the page is open
        w.log(0, rng.standard_normal((128, 4)).astype(np.float32))
    at.run()  # one refresh
    _ok(at)
    assert sorted(Path(p).name for p in at.multiselect(key="mon_runs").value) == ["first", "second"]
    assert sorted(_alerts(at)["run"]) == ["first", "second"]
