"""Monitor figures and the alert rule, on hand-made time series."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigreg_core.present import monitor_figures as MF
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
    (["healthy", "healthy", "suspicious", "collapsed", "collapsed"], "collapsed", 30, "collapsed at step 30"),
    (["suspicious", "healthy", "healthy", "suspicious", "suspicious"], "suspicious", 30, "turned suspicious at step 30"),
    (["suspicious", "suspicious"], "suspicious", None, "not healthy yet: suspicious since step 0"),
    (["suspicious", "healthy", "suspicious", "healthy", "healthy"], "healthy", 20, "healthy since step 30"),
    (["suspicious", "healthy", "healthy"], "healthy", None, "healthy since step 10 (latest step 20)"),
])
def test_run_alert(verdicts, level, step, text):
    a = MF.run_alert(_df(verdicts))
    assert a["level"] == level and a["step"] == step and text in a["message"]
    assert MF.alert_step(_df(verdicts)) == step


def test_run_alert_empty_and_unscored():
    assert MF.run_alert(_df([])) is None
    d = _df(["healthy", "healthy"])
    d["verdict"] = None
    assert MF.run_alert(d) is None


def test_figures_carry_the_data():
    runs = {"a": _df(["healthy"] * 3 + ["collapsed"] * 2, ["", "", "", "full_collapse", "full_collapse"]),
            "b": _df(["healthy"] * 4)}
    fig = MF.sigreg_figure(runs, {"a": (0.7, 1.5), "b": (0.8, 1.4)})
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].y, runs["a"]["sigreg"])
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [min(t.y) for t in bands] == [0.7, 0.8] and [max(t.y) for t in bands] == [1.5, 1.4]
    assert fig.layout.yaxis.type == "log"
    assert any(getattr(s, "x0", None) == 30 for s in fig.layout.shapes)  # the alert line of run a
    p = MF.pvalue_figure(runs)
    assert any(getattr(s, "y0", None) == 1e-3 for s in p.layout.shapes)
    v = MF.verdict_figure(runs)
    by = {t.name: t for t in v.data}
    assert list(by["collapsed"].x) == [30, 40] and list(by["healthy"].y).count("b") == 4
    q = MF.quantiles_figure(runs)
    assert len([t for t in q.data]) == 6
    s = MF.scalar_figure(runs, "loss")
    np.testing.assert_allclose(s.data[1].y, runs["b"]["loss"])
    html = MF.figures_html({"SIGReg <x>": fig}, title="t & <b>")
    assert html.count(b"<script") >= 1 and b"SIGReg &lt;x&gt;" in html and b"t &amp; &lt;b&gt;" in html
