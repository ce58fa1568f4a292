"""Monitor figures and the alert rule, on hand-made time series."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigreg_core.assessment.severity import COLLAPSE_COLOUR, VERDICT_COLOURS, verdict_colour, verdict_levels
from sigreg_core.present import monitor_figures as MF
from sigreg_core.present.monitor_stack import stack_figure


def _trace(fig, name):
    """The one trace called ``name`` (the stack names a run's curves "run", "run: RankMe", "run: loss", ...)."""
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, (name, [t.name for t in fig.data])
    return found[0]


def _verdict_axis(fig):
    """The verdict strip's y axis (the stack's last panel) and its layout key."""
    k = max(int(t.yaxis[1:] or 1) for t in fig.data)
    return f"y{k}", fig.layout[f"yaxis{k}"]


def _df(verdicts, modes=None, start=0, every=10):
    n = len(verdicts)
    steps = np.arange(start, start + every * n, every)
    return pd.DataFrame({
        "step": steps, "verdict": verdicts, "modes": modes or [""] * n,
        "sigreg": np.linspace(1, 5, n), "null_mean": 1.052464, "p_value": np.logspace(0, -8, n),
        "rankme": np.linspace(8, 1, n), "n": 512, "d": 8, "q50": 1.0, "q95": 2.0, "qmax": 3.0,
        "slice_null_q95": 2.9456, "loss": np.linspace(1, 0, n),
    })


@pytest.mark.parametrize("verdicts,level,step,text", [
    # "suspicious" (runs logged before the five levels) ranks as marked: two levels above healthy
    (["healthy", "healthy", "suspicious", "collapsed", "collapsed"], "collapsed", 20,
     "alert: suspicious at step 20; then collapsed at step 30 (best healthy at step 0); "
     "latest step 40: collapsed since step 30"),
    # the untrained start (step 0) is the best so far, not an alert; the relapse at step 30 is
    (["suspicious", "healthy", "healthy", "suspicious", "suspicious"], "suspicious", 30,
     "latest step 40: suspicious since step 30"),
    (["suspicious", "suspicious"], None, None, "no alert (best suspicious at step 0)"),
    (["suspicious", "healthy", "suspicious", "healthy", "healthy"], "suspicious", 20,
     "alert: suspicious at step 20 (best healthy at step 10); latest step 40: healthy since step 30"),
    (["healthy", "healthy", "healthy"], None, None, "no alert (best healthy at step 0); latest step 20: healthy "
                                                    "since step 0"),
])
def test_run_alert(verdicts, level, step, text):
    a = MF.run_alert(_df(verdicts))
    assert a["level"] == level and a["step"] == step and text in a["message"], a
    assert MF.alert_step(_df(verdicts)) == step


def test_run_alert_empty_and_unscored():
    assert MF.run_alert(_df([])) is None
    d = _df(["healthy", "healthy"])
    d["verdict"] = None
    assert MF.run_alert(d) is None


def test_alert_table_and_events_one_row_per_run_worst_first():
    runs = {"ok": _df(["suspicious", "healthy", "healthy"]),
            "bad": _df(["healthy", "suspicious", "collapsed", "collapsed"], start=100),
            "empty": _df([])}
    t = MF.alert_table(runs)
    assert list(t["run"]) == ["bad", "ok", "empty"]
    bad = t.iloc[0]
    assert (bad["first alert step"], bad["first alert"], bad["first collapsed step"]) == (110, "suspicious", 120)
    assert (bad["alerts"], bad["scored steps"], bad["latest verdict"], bad["worst verdict"]) == (2, 4, "collapsed", "collapsed")
    ok = t.iloc[1]  # started suspicious (untrained), then healthy: no alert
    assert pd.isna(ok["first alert step"]) and pd.isna(ok["first collapsed step"]) and ok["latest verdict"] == "healthy"
    assert (ok["best verdict"], ok["best step"], ok["alerts"]) == ("healthy", 10, 0)
    assert t.iloc[2]["latest verdict"] == "no scored step yet"
    ev = MF.alert_events(runs["bad"])
    assert [(e["step"], e["verdict"]) for e in ev] == [(110, "suspicious"), (120, "collapsed")]


def test_new_severity_levels_are_ranked_and_coloured(monkeypatch):
    """A level the assessment adds later (issue 11) is ranked from VERDICTS, not from a copy of it."""
    from sigreg_core.assessment import severity as S
    from sigreg_core.assessment import verdict as Vd

    monkeypatch.setattr(Vd, "VERDICTS", ("healthy", "off-target", "far off-target", "collapsed"))
    assert [S.severity(v) for v in ("healthy", "off-target", "far off-target", "collapsed")] == [0, 1, 2, 3]
    assert S.severity(None) == -1 and S.severity("not scored") == -1
    assert 0 < S.severity("suspicious") < 3  # an old run's level: an alert below the worst
    colours = [S.verdict_colour(v) for v in ("healthy", "off-target", "far off-target", "collapsed")]
    assert len(set(colours)) == 4 and colours[0] == S.VERDICT_COLOURS[0] and colours[-2] == S.VERDICT_COLOURS[2]
    assert colours[-1] == S.COLLAPSE_COLOUR  # collapse: its own red, not the vermilion of the worst graded level
    t = MF.alert_table({"a": _df(["healthy", "off-target", "far off-target"]), "b": _df(["healthy"] * 3)})
    assert list(t["run"]) == ["a", "b"] and t.iloc[0]["first alert"] == "far off-target"  # two levels above best
    assert t.iloc[0]["first collapsed step"] is pd.NA or pd.isna(t.iloc[0]["first collapsed step"])
    v = stack_figure({"a": _df(["healthy", "off-target", "far off-target"])})
    ax, _ = _verdict_axis(v)
    strip = {t.name: t for t in v.data if t.yaxis == ax}
    assert set(strip) >= {"healthy", "off-target", "far off-target", "collapsed"}  # every level in the legend
    assert strip["collapsed"].marker.color == S.COLLAPSE_COLOUR  # the new worst level is collapse: its red
    assert strip["far off-target"].marker.color == S.VERDICT_COLOURS[2] and list(strip["far off-target"].x) == [20]


def test_verdict_strip_draws_collapse_in_its_own_red_apart_from_severe():
    levels = verdict_levels()
    d = _df(list(levels))  # one step per level, mildest first
    fig = stack_figure({"a": d})
    ax, _ = _verdict_axis(fig)
    strip = {t.name: t for t in fig.data if t.yaxis == ax}
    for step, level in zip(d["step"], levels):
        assert list(strip[level].x) == [step] and strip[level].marker.color == verdict_colour(level)
    assert strip[levels[-1]].marker.color == COLLAPSE_COLOUR
    assert strip[levels[-2]].marker.color == VERDICT_COLOURS[2]  # the worst graded level: vermilion
    rgb = lambda c: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    assert np.linalg.norm(rgb(COLLAPSE_COLOUR) - rgb(VERDICT_COLOURS[2])) > 40


def test_old_suspicious_level_ranks_as_marked_and_reads_apart_from_collapsed():
    """Runs logged before the five levels say "suspicious": docs/calibration.md ranks it as marked."""
    from sigreg_core.assessment.severity import severity, verdict_colour

    assert severity("suspicious") == severity("marked") == 2
    rgb = lambda c: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    assert np.linalg.norm(rgb(verdict_colour("suspicious")) - rgb(verdict_colour("collapsed"))) > 40


def test_run_colours_stable_and_disjoint_from_verdict_colours():
    from sigreg_core.assessment.severity import COLLAPSE_COLOUR, VERDICT_COLOURS, verdict_colour

    universe = ["r1", "r2", "r3", "r4"]
    all_ = MF.run_colours(universe, universe)
    some = MF.run_colours(["r3", "r1"], universe)
    assert some == {"r3": all_["r3"], "r1": all_["r1"]}  # a run keeps its colour when others are hidden
    verdicts = {c.upper() for c in VERDICT_COLOURS} | {COLLAPSE_COLOUR} | {verdict_colour(v).upper() for v in
                                                       ("healthy", "suspicious", "collapsed", "unknown level")}
    assert not verdicts & {c.upper() for c in MF.RUN_COLOURS}
    # and far apart in RGB (not only different strings)
    rgb = lambda c: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    assert min(np.linalg.norm(rgb(a) - rgb(b)) for a in MF.RUN_COLOURS for b in verdicts) > 60


def test_ema_matches_tensorboard_debiased_form():
    v = np.array([1.0, 2.0, np.nan, 4.0, 8.0])
    w = 0.6
    # the recurrence written out by hand (TensorBoard's smoothing: debiased EMA, NaN passed through)
    s1 = (1 - w) * 1.0
    s2 = w * s1 + (1 - w) * 2.0
    s4 = w * s2 + (1 - w) * 4.0
    s5 = w * s4 + (1 - w) * 8.0
    want = [s1 / (1 - w), s2 / (1 - w ** 2), np.nan, s4 / (1 - w ** 3), s5 / (1 - w ** 4)]
    np.testing.assert_allclose(MF.ema(v, w), want, equal_nan=True)
    np.testing.assert_array_equal(MF.ema(v, 0.0), v)
    c = np.full(7, 3.5)
    np.testing.assert_allclose(MF.ema(c, 0.99), c)  # debiasing: a constant stays constant from the first point
    with pytest.raises(ValueError):
        MF.ema(v, 1.0)


def test_smoothing_keeps_the_raw_line_faint_and_time_axes():
    d = _df(["healthy"] * 3 + ["collapsed"] * 2)
    d["time"] = 1_700_000_000 + np.arange(5) * 20.0
    d["p_value"] = [0.5, 0.01, 0.3, 1e-9, 0.0]
    fig = stack_figure({"a": d}, smoothing=0.8, scalars=["loss"])
    for name, col in (("a", "sigreg"), ("a: RankMe", "rankme"), ("a: loss", "loss")):
        raw, main = _trace(fig, f"{name} (raw)"), _trace(fig, name)
        assert raw.opacity < 0.5 and raw.yaxis == main.yaxis
        np.testing.assert_allclose(raw.y, d[col])
        np.testing.assert_allclose(main.y, MF.ema(d[col], 0.8))
        assert not np.allclose(main.y, d[col])  # smoothing changed the drawn curve
    # the p-value is never smoothed (a verdict's p-value averaged over steps means nothing): no faint copy
    p = _trace(fig, "a: Overall p-value")
    np.testing.assert_allclose(p.y, np.clip(d["p_value"], 1e-300, None))
    assert not [t for t in fig.data if t.name == "a: Overall p-value (raw)"]
    # nor is the verdict: the strip's squares sit on the logged steps with their logged levels
    ax, _ = _verdict_axis(fig)
    strip = {t.name: t for t in fig.data if t.yaxis == ax}
    assert list(strip["healthy"].x) == [0, 10, 20] and list(strip["collapsed"].x) == [30, 40]
    # the alert marker sits on the smoothed SIGReg curve at the collapse step
    ev = _trace(fig, "a: alerts")
    assert list(ev.x) == [30] and ev.y[0] == pytest.approx(MF.ema(d["sigreg"], 0.8)[3])
    rel = stack_figure({"a": d}, x="relative")
    np.testing.assert_allclose(_trace(rel, "a").x, [0, 20, 40, 60, 80])
    np.testing.assert_allclose(_trace(rel, "a: RankMe").x, [0, 20, 40, 60, 80])  # every panel on the same x
    assert "(s)" in rel.layout.xaxis.title.text
    d2 = d.assign(time=d["time"] * 0 + 1_700_000_000 + np.arange(5) * 900.0)
    rel2 = stack_figure({"a": d2}, x="relative")
    np.testing.assert_allclose(_trace(rel2, "a").x, [0, 15, 30, 45, 60])
    assert "(min)" in rel2.layout.xaxis.title.text
    assert [s.x0 for s in rel2.layout.shapes if s.yref == "paper"] == [45]  # the alert line moves with the axis
    wall = stack_figure({"a": d}, x="wall")
    xs = _trace(wall, "a").x
    assert str(xs[0]).startswith("2023-11-14T22:13:20")
    assert "wall-clock" in wall.layout.xaxis.title.text
    assert [str(s.x0) for s in wall.layout.shapes if s.yref == "paper"] == ["2023-11-14T22:14:20"]


def test_log_axis_labels_full_numbers_and_line_labels_sit_on_their_lines():
    d = _df(["healthy"] * 5)
    d["sigreg"] = [0.5, 2.0, 20.0, 200.0, 1900.0]
    fig = stack_figure({"a": d}, {"a": (0.8, 1.4)})
    y = fig.layout.yaxis  # the SIGReg panel
    assert y.type == "log" and y.tickmode == "array"
    # every label is the full number it marks (the old axis read a bare "2" for 2000)
    assert [float(t) for t in y.ticktext] == pytest.approx(list(y.tickvals))
    assert list(y.ticktext) == ["1", "10", "100", "1000"]
    ann = {a.text: a for a in fig.layout.annotations}
    nm = ann["null mean 1.052"]
    assert nm.yref == "y" and abs(nm.y - np.log10(1.052464)) < 1e-12  # log axis: annotations take log10(y)
    assert any(s.yref == "y" and s.y0 == 1.052464 for s in fig.layout.shapes)  # the line itself at the value
    p = fig.layout.yaxis2  # the p-value panel
    assert p.type == "log"
    assert list(p.tickvals) == pytest.approx([1e-8, 1e-6, 1e-4, 1e-2, 1.0]) or \
        all(abs(np.log10(v) - round(np.log10(v))) < 1e-9 for v in p.tickvals)
    assert all(t == "1" or t.startswith("10<sup>") for t in p.ticktext)  # powers of ten, written out
    for v, t in zip(p.tickvals, p.ticktext):
        assert t == "1" and v == 1.0 or int(t[len("10<sup>"):-len("</sup>")]) == round(np.log10(v))
    gate = [a for a in fig.layout.annotations if a.yref == "y2" and a.text.startswith("p = 0.001")]
    assert len(gate) == 1 and abs(gate[0].y - (-3)) < 1e-12
    narrow = _df(["healthy"] * 5)
    narrow["sigreg"] = np.linspace(1.0, 1.2, 5)
    y = stack_figure({"a": narrow}).layout.yaxis  # under a decade: round numbers, still full labels
    assert len(y.tickvals) >= 3 and all(0.99 <= v <= 1.21 for v in y.tickvals)
    assert [float(t) for t in y.ticktext] == pytest.approx(list(y.tickvals))


@pytest.mark.parametrize("lo,hi,power", [(1.3, 220, False), (150, 2200, False), (216.7, 221.5, False),
                                         (1e-100, 1.0, True), (1e-3, 1.0, True), (3e-5, 7e-5, False),
                                         (1.5e7, 3e8, False), (0.98, 1.02, False), (0.7, 2.5e4, False)])
def test_log_ticks_every_label_is_the_number_it_marks(lo, hi, power):
    vals, text = MF.log_ticks(lo, hi, power)
    assert 2 <= len(vals) <= 9 and all(lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9) for v in vals)
    # the outermost data are labelled: no curve floats above the top label (the collapsed run at ~217 sat
    # above an axis whose top label was 100, reading as a strip of markers over the chart)
    assert max(vals) >= hi / 2.5 and min(vals) <= lo * 2.5
    for v, t in zip(vals, text):
        if t.startswith("10<sup>"):
            assert float(t[len("10<sup>"):-len("</sup>")]) == pytest.approx(np.log10(v))
        else:
            assert float(t) == pytest.approx(v, rel=1e-6)  # "2000", never a bare "2"


def test_distribution_figure_bands_from_the_logged_quantiles():
    runs = {"a": _df(["healthy"] * 4), "b": _df(["collapsed"] * 4)}
    runs["b"][["q50", "q95", "qmax"]] = [10.0, 20.0, 40.0]
    fig = MF.distribution_figure(runs)
    fills = [t for t in fig.data if t.fill == "tonexty"]
    assert len(fills) == 4  # two bands per run
    assert [list(t.y) for t in fills[2:]] == [[20.0] * 4, [40.0] * 4]
    assert [a.text for a in fig.layout.annotations][:2] == ["a", "b"]  # one panel per run


def test_steps_table_covers_every_run():
    runs = {"a": _df(["healthy"] * 3), "b": _df(["collapsed"] * 2)}
    runs["a"].attrs["scalar_columns"] = ["loss"]
    t = MF.steps_table(runs, ["step", "verdict", "sigreg"])
    assert list(t["run"]) == ["a"] * 3 + ["b"] * 2 and list(t.columns[:4]) == ["run", "step", "verdict", "sigreg"]
    np.testing.assert_allclose(t["loss"][:3], runs["a"]["loss"])  # a run's own scalars kept
    assert t["loss"][3:].isna().all()


def test_figures_carry_the_data():
    runs = {"a": _df(["healthy"] * 3 + ["collapsed"] * 2, ["", "", "", "full_collapse", "full_collapse"]),
            "b": _df(["healthy"] * 4)}
    runs["b"]["loss"] = [4.0, 3.0, 2.5, 2.0]
    fig = stack_figure(runs, {"a": (0.7, 1.5), "b": (0.8, 1.4)}, scalars=["loss"])
    lines = [t for t in fig.data if t.mode == "lines+markers" and t.yaxis == "y"]
    assert [t.name for t in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].y, runs["a"]["sigreg"])
    np.testing.assert_allclose(lines[1].x, runs["b"]["step"])
    bands = [t for t in fig.data if t.fill == "toself"]  # each run's 95 % null band, over its own steps
    assert [t.name for t in bands] == ["a: 95 % null band", "b: 95 % null band"] and {t.yaxis for t in bands} == {"y"}
    assert [min(t.y) for t in bands] == [0.7, 0.8] and [max(t.y) for t in bands] == [1.5, 1.4]
    assert [(min(t.x), max(t.x)) for t in bands] == [(0, 40), (0, 30)]
    assert fig.layout.yaxis.type == "log"
    ev = _trace(fig, "a: alerts")
    assert list(ev.x) == [30] and ev.marker.symbol == ("x",) and ev.y[0] == runs["a"]["sigreg"].iloc[3]
    assert ev.marker.color == (COLLAPSE_COLOUR,) and "full_collapse" in ev.text[0]  # the collapse of run a
    assert not [t for t in fig.data if t.name == "b: alerts"]
    np.testing.assert_allclose(_trace(fig, "a: Overall p-value").y, runs["a"]["p_value"])
    assert _trace(fig, "a: Overall p-value").yaxis == "y2" and _trace(fig, "b: RankMe").yaxis == "y3"
    np.testing.assert_allclose(_trace(fig, "b: RankMe").y, runs["b"]["rankme"])
    assert any(s.yref == "y2" and s.y0 == 1e-3 for s in fig.layout.shapes)  # the gate on the p-value panel
    assert any(s.yref == "y3" and s.y0 == 8 for s in fig.layout.shapes)  # RankMe's maximum min(N, D) = min(512, 8)
    ax, vaxis = _verdict_axis(fig)
    by = {t.name: t for t in fig.data if t.yaxis == ax}
    assert list(by["collapsed"].x) == [30, 40] and list(by["collapsed"].y) == [1.0, 1.0]  # run a: the top row
    assert list(by["healthy"].y).count(0.0) == 4  # run b: the bottom row
    assert list(vaxis.ticktext) == ["b", "a"] and list(vaxis.tickvals) == [0, 1]
    across = [s for s in fig.layout.shapes if s.yref == "paper"]  # the alert line through every panel
    assert [(s.x0, s.x1, s.y0, s.y1) for s in across] == [(30, 30, 0, 1)]
    assert across[0].line.color == COLLAPSE_COLOUR and across[0].line.dash == "dot"
    np.testing.assert_allclose(_trace(fig, "b: loss").y, runs["b"]["loss"])
    assert _trace(fig, "b: loss").yaxis == "y4" and ax == "y5"
    q = MF.quantiles_figure(runs)
    assert len([t for t in q.data if t.mode != "markers"]) == 6
    html = MF.figures_html({"SIGReg <x>": fig}, title="t & <b>")
    assert html.count(b"<script") >= 1 and b"SIGReg &lt;x&gt;" in html and b"t &amp; &lt;b&gt;" in html


def test_hover_lines_up_one_step_of_a_run_across_every_panel():
    runs = {"a": _df(["healthy"] * 3 + ["collapsed"] * 2, ["", "", "", "full_collapse", "full_collapse"]),
            "b": _df(["healthy"] * 4, start=5)}
    fig = stack_figure(runs, scalars=["loss"])
    for name, df in runs.items():
        curves = [_trace(fig, n) for n in (name, f"{name}: Overall p-value", f"{name}: RankMe", f"{name}: loss")]
        assert [t.yaxis for t in curves] == ["y", "y2", "y3", "y4"] and {t.xaxis or "x" for t in curves} == {"x"}
        for i, row in df.reset_index(drop=True).iterrows():
            cds = [tuple(t.customdata[i]) for t in curves]
            assert len(set(cds)) == 1  # the same label whichever panel's point is hovered
            step, verdict, modes, run, label = cds[0]
            assert (int(step), verdict, modes, run) == (int(row["step"]), row["verdict"], row["modes"], name)
            for part in (f"<b>{name}</b> step {int(row['step'])}: {row['verdict']}", f"SIGReg {row['sigreg']:.4g}",
                         f"Overall p-value {row['p_value']:.3g}", f"RankMe {row['rankme']:.3g}",
                         f"loss {row['loss']:.4g}"):
                assert part in label, (part, label)
    ax, _ = _verdict_axis(fig)
    for t in (t for t in fig.data if t.yaxis == ax and len(t.x)):
        for xv, cd in zip(t.x, t.customdata):  # a square's hover and click carry its own step and run
            df = runs[cd[3]]
            assert int(cd[0]) == xv and df.loc[df["step"] == xv, "verdict"].iloc[0] == t.name


def test_scalar_panels_for_any_numeric_column_linear_or_log():
    d = _df(["healthy"] * 4)
    d["lr"] = [1e-4, 1e-3, 1e-2, 1e-1]
    d["knn acc"] = [0.1, 0.2, 0.4, 0.8]
    fig = stack_figure({"a": d}, scalars=["lr", "knn acc", "never logged"])
    assert [_trace(fig, f"a: {c}").yaxis for c in ("lr", "knn acc")] == ["y4", "y5"]
    np.testing.assert_allclose(_trace(fig, "a: lr").y, d["lr"])
    np.testing.assert_allclose(_trace(fig, "a: knn acc").y, d["knn acc"])
    assert _verdict_axis(fig)[0] == "y6"  # a column no run logged gets no panel
    assert fig.layout.yaxis4.type in (None, "linear", "-")
    log = stack_figure({"a": d}, scalars=["lr"], log_scalars=True).layout.yaxis4
    assert log.type == "log" and [float(t) for t in log.ticktext] == pytest.approx(list(log.tickvals))
    assert min(log.tickvals) <= 1e-4 * 2.5 and max(log.tickvals) >= 1e-1 / 2.5


def test_hostile_run_names_are_escaped_everywhere_the_stack_writes_them():
    evil = "<b onmouseover=x>run</b> & <script>"
    safe = "&lt;b onmouseover=x&gt;run&lt;/b&gt; &amp; &lt;script&gt;"
    d = _df(["healthy"] * 3 + ["collapsed"] * 2)
    fig = stack_figure({evil: d}, {evil: (0.8, 1.4)}, scalars=["loss"], smoothing=0.5)
    ax, vaxis = _verdict_axis(fig)
    written = [t.name for t in fig.data if t.yaxis != ax] + list(vaxis.ticktext) + list(_trace(fig, f"{safe}: alerts").text)
    written += [str(v) for t in fig.data if t.customdata is not None for row in t.customdata for v in row]
    assert all("<b " not in w and "<script" not in w for w in written)
    assert _trace(fig, safe).name == safe and list(vaxis.ticktext) == [safe]
    assert _trace(fig, safe).customdata[0][3] == safe and f"<b>{safe}</b> step 0" in _trace(fig, safe).customdata[0][4]


def test_pvalue_axis_spanning_hundreds_of_decades_keeps_few_labels():
    d = _df(["healthy", "collapsed", "collapsed"])
    d["p_value"] = [0.5, 1e-120, 0.0]  # 0 is drawn at the 1e-300 floor
    fig = stack_figure({"a": d})
    np.testing.assert_allclose(_trace(fig, "a: Overall p-value").y, [0.5, 1e-120, 1e-300])
    p = fig.layout.yaxis2
    exps = [round(np.log10(v)) for v in p.tickvals]
    assert exps == list(range(-300, 1, 50))  # 300 decades: a label every 50, not 300 labels
    assert p.ticktext[0] == "10<sup>-300</sup>"
