"""The Monitor's state as data (sigreg_core.runs.monitor_view) and its stacked figure (present.monitor_stack),
without a browser: the URL round trip, a clicked point, which runs are shown, the generic scalar panels,
and the one-axis stack whose hover label lists every panel's value at the step (checked against the index)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigreg_core.present.monitor_stack import STACK_TITLE, panels, stack_figure
from sigreg_core.runs import RunReader
from sigreg_core.runs import monitor_view as V
from sigreg_core.runs.alerts import AlertRule, alert_events
from sigreg_core.runs.discovery import RunInfo
from sigreg_core.util.text import plotly_text

from monitor_helpers import SHIPPED


def _get(q: dict):
    return lambda k: list(q.get(k, []))


def test_the_view_goes_to_the_url_and_back_and_bad_values_are_ignored():
    view = {"runs": ["a", "b/c"], "smoothing": 0.6, "x": "wall", "hover": "step", "group": "lambda",
            "step": ("b/c", 300)}
    q = V.query_from_view(view)
    assert q == {"run": ["a", "b/c"], "smooth": ["0.6"], "x": ["wall"], "hover": ["step"], "group": ["lambda"],
                 "step": ["b/c@300"]}
    back = V.view_from_query(_get(q))
    assert back == {k: v for k, v in view.items()}
    # defaults are left out of the URL
    assert V.query_from_view({"runs": [], "smoothing": 0.0, "x": "step", "hover": "run", "group": None}) == {
        "run": None, "smooth": None, "x": None, "hover": None, "group": None, "step": None}
    bad = V.view_from_query(_get({"smooth": ["2"], "x": ["sideways"], "hover": ["all"], "step": ["a@x"]}))
    assert bad == {}
    assert V.view_from_query(_get({"step": ["run@with@at@12"]}))["step"] == ("run@with@at", 12)


def test_a_clicked_point_gives_its_run_and_step():
    runs = ["plain", "<b>bold</b> & co"]
    ev = {"selection": {"points": [{"customdata": ["120", "healthy", "", plotly_text(runs[1])]}]}}
    assert V.clicked_step(ev, runs) == (runs[1], 120)  # the name as drawn (escaped) maps back to the run
    assert V.clicked_step({"selection": {"points": []}}, runs) is None
    assert V.clicked_step({"selection": {"points": [{"customdata": ["1", "", ""]}]}}, runs) is None
    assert V.clicked_step({"selection": {"points": [{"customdata": ["1", "", "", "gone"]}]}}, runs) is None
    assert V.clicked_step({"selection": {"points": [{"customdata": ["x", "", "", "plain"]}]}}, runs) is None
    assert V.clicked_step(None, runs) is None


def _infos(names):
    return [RunInfo(path=f"/r/{n}", name=n, colour="#000000", mtime=100.0 - i, kind="run") for i, n in enumerate(names)]


def test_which_runs_are_shown():
    infos = _infos(["new", "mid", "old"])  # newest first
    names = {i.path: i.name for i in infos}
    kw = dict(known=None, url_runs=None, repick=False, pattern="", limit=2)
    assert V.pick_runs(infos, names, current=None, **kw) == ["/r/new", "/r/mid"]  # the newest `limit`
    assert V.pick_runs(infos, names, current=["/r/old"], **kw) == ["/r/old"]  # the user's own pick stays
    assert V.pick_runs(infos, names, current=["/r/old"], **{**kw, "repick": True}) == ["/r/new", "/r/mid"]
    assert V.pick_runs(infos, names, current=None, **{**kw, "pattern": "o"}) == ["/r/old"]
    # a run that appeared while the page was open joins, first
    assert V.pick_runs(infos, names, current=["/r/old"], **{**kw, "known": ["/r/mid", "/r/old"]}) == [
        "/r/new", "/r/old"]
    # a link: its runs; none of them known: the default
    assert V.pick_runs(infos, names, current=["/r/new"], **{**kw, "url_runs": ["old"]}) == ["/r/old"]
    assert V.pick_runs(infos, names, current=None, **{**kw, "url_runs": ["gone"]}) == ["/r/new", "/r/mid"]
    # an added directory, and a run that vanished
    assert V.pick_runs(infos, names, current=["/r/gone"], pending="/r/old", **kw) == ["/r/old"]


def test_scalar_panels_are_any_numeric_column_the_runs_logged():
    a = pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5], "knn_top1": [0.1, 0.4], "note": ["x", "y"]})
    a.attrs["scalar_columns"] = ["loss", "knn_top1", "note"]
    b = pd.DataFrame({"step": [0], "lidar": [3.0], "loss": [np.nan]})
    b.attrs["scalar_columns"] = ["lidar", "loss"]
    assert V.scalar_columns({"a": a, "b": b}) == ["loss", "knn_top1", "lidar"]  # text-only columns left out
    fig = stack_figure({"a": a.assign(verdict="healthy", sigreg=1.0, p_value=0.5, rankme=2.0),
                        "b": b.assign(verdict="healthy", sigreg=1.0, p_value=0.5, rankme=2.0)},
                       scalars=["knn_top1", "lidar"])
    assert [c for c, _, _ in panels(["knn_top1", "lidar"])] == ["sigreg", "p_value", "rankme", "knn_top1", "lidar",
                                                               "verdict"]
    knn = next(t for t in fig.data if t.name == "a: knn_top1")
    assert list(knn.y) == [0.1, 0.4] and knn.yaxis == "y4"
    assert next(t for t in fig.data if t.name == "b: lidar").yaxis == "y5"


def _shipped():
    return {f"runs/{n}": RunReader(SHIPPED / n).timeseries() for n in ("lambda-0", "lambda-0.09")}


def test_the_stack_lines_up_every_panel_at_one_step():
    runs = _shipped()
    rule = AlertRule()
    fig = stack_figure(runs, rule=rule, scalars=["loss"])
    lay = fig.layout
    assert lay.title.text == STACK_TITLE and lay.hovermode == "closest"
    assert lay.xaxis.spikemode == "across" and lay.xaxis.showspikes
    assert {t.xaxis or "x" for t in fig.data} == {"x"}  # one x axis: one spike line crosses every panel
    doms = [lay[f"yaxis{k if k > 1 else ''}"].domain for k in range(1, 6)]
    assert all(d[0] < d[1] for d in doms) and all(doms[k][0] > doms[k + 1][1] for k in range(4))  # stacked, apart
    # the hover label of any point lists the run's logged values on every panel at that step (the index's numbers)
    df = runs["runs/lambda-0"]
    line = next(t for t in fig.data if t.name == "runs/lambda-0: RankMe")
    i = 7
    cd = line.customdata[i]
    assert int(cd[0]) == int(df["step"].iloc[i]) and cd[3] == "runs/lambda-0"
    row = df.iloc[i]
    for part in (f"step {int(row['step'])}: {row['verdict']}", f"SIGReg {row['sigreg']:.4g}",
                 f"Overall p-value {row['p_value']:.3g}", f"RankMe {row['rankme']:.3g}", f"loss {row['loss']:.4g}"):
        assert part in cd[4], (part, cd[4])
    # each alert of the rule: a dotted line through every panel at its step
    steps = sorted(e["step"] for n, d in runs.items() for e in alert_events(d, rule))
    across = sorted(s.x0 for s in lay.shapes if s.yref == "paper")
    assert across == steps and steps  # lambda = 0 alerts; lambda = 0.09 does not
    every = stack_figure(runs, hover="step")
    assert every.layout.hovermode == "x" and every.layout.hoversubplots == "axis"
    with pytest.raises(ValueError, match="hover must be one of"):
        stack_figure(runs, hover="closest")


def test_band_notes_and_loading_keep_going_past_a_broken_run():
    runs = _shipped()
    last = runs["runs/lambda-0.09"].iloc[-1]
    notes = V.band_notes(runs, {"runs/lambda-0.09": (0.0, float(last["sigreg"]) / 2), "runs/lambda-0": (0.0, 1e-9)})
    assert len(notes) == 1 and "lambda-0.09" in notes[0] and f"{last['sigreg']:.4g}" in notes[0]

    def read(path):
        if path == "bad":
            raise OSError("index unreadable")
        return runs[path]

    series, bands, errors = V.load_runs({"ok": "runs/lambda-0", "broken": "bad"}, read, lambda p, n, d: (n, d))
    assert list(series) == ["ok"] and errors == {"broken": "index unreadable"}
    ok = runs["runs/lambda-0"].dropna(subset=["n", "d"])
    assert bands == {"ok": (int(ok["n"].iloc[-1]), int(ok["d"].iloc[-1]))}


def test_new_alerts_and_the_nearest_kept_step():
    runs = _shipped()
    rule = AlertRule()
    first, seen = V.new_alerts(runs, rule, None)
    every = {(n, e["step"], e["verdict"]) for n, d in runs.items() for e in alert_events(d, rule)}
    assert first == [] and seen == every  # the page just opened: alerts already there are not news
    n, step, verdict = max(every, key=lambda k: k[1])
    fresh, seen2 = V.new_alerts(runs, rule, every - {(n, step, verdict)})
    assert fresh == [(n, step, verdict)] and seen2 == every
    assert V.new_alerts(runs, rule, every)[0] == []
    assert V.nearest_kept([0, 10, 30], 10) == 10 and V.nearest_kept([0, 10, 30], 24) == 30
    assert V.nearest_kept([0, 10, 30], "junk") == 30 and V.nearest_kept([], 3) is None
