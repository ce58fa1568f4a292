"""The one alert rule (sigreg_core.runs.alerts): against a brute-force oracle, on the shipped demo runs,
and identical in the page's table and in every sink (webhook, TensorBoard, W&B)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sigreg_core.assessment.severity import is_collapse, severity, verdict_levels
from sigreg_core.integrations.base import StepRecord
from sigreg_core.runs import RunReader
from sigreg_core.runs.alerts import AlertRule, AlertTracker, alert_events, alert_table, run_alert

SHIPPED = Path(__file__).resolve().parents[1] / "sample_data" / "runs"


def _df(verdicts, steps=None):
    steps = list(range(0, 10 * len(verdicts), 10)) if steps is None else steps
    return pd.DataFrame({"step": steps, "verdict": verdicts, "modes": [""] * len(verdicts)})


def _oracle(steps, verdicts, warmup=0, margin=2, patience=1, repeat=False):
    """The rule written out step by step from its definition, re-scanning the history at every step."""
    out, last_alert = [], None
    kept = [(s, v) for s, v in zip(steps, verdicts) if severity(v) >= 0 and s >= warmup]
    for i, (s, v) in enumerate(kept):
        best = min(severity(w) for _, w in kept[:i + 1])

        def bad(j):
            vj = kept[j][1]
            bj = min(severity(w) for _, w in kept[:j + 1])
            return is_collapse(vj) or severity(vj) - bj >= margin

        if repeat and severity(v) <= best:
            last_alert = None
        held = i + 1 >= patience and all(bad(j) for j in range(i - patience + 1, i + 1))
        if held and (last_alert is None or severity(v) > last_alert):
            out.append((s, v))
            last_alert = severity(v)
    return out


def test_rule_matches_a_brute_force_oracle_on_random_verdict_sequences():
    rng = random.Random(7)
    levels = list(verdict_levels()) + ["not scored"]
    for trial in range(300):
        n = rng.randint(1, 25)
        verdicts = [rng.choice(levels) for _ in range(n)]
        steps = sorted(rng.sample(range(200), n))
        warmup, margin, patience, repeat = rng.choice([0, 0, 30]), rng.choice([1, 2, 3]), rng.choice([1, 2]), \
            rng.random() < 0.5
        rule = AlertRule(warmup=warmup, margin=margin, patience=patience, repeat=repeat)
        got = [(e["step"], e["verdict"]) for e in alert_events(_df(verdicts, steps), rule)]
        assert got == _oracle(steps, verdicts, warmup, margin, patience, repeat), (verdicts, steps, rule)


def test_untrained_start_is_no_alert_but_a_collapse_always_is():
    top = verdict_levels()[-1]
    worst_graded = verdict_levels()[-2]
    # an untrained start at the worst graded level that improves: never an alert
    assert alert_events(_df([worst_graded, verdict_levels()[1], verdict_levels()[0]])) == []
    # a collapse alerts even when the run was never better
    ev = alert_events(_df([top, top, top]))
    assert [(e["step"], e["kind"]) for e in ev] == [(0, "collapse")]
    # a one-level flicker above the best is not an alert; two levels are
    lv = verdict_levels()
    assert alert_events(_df([lv[0], lv[1], lv[0], lv[1]])) == []
    ev = alert_events(_df([lv[0], lv[2], lv[2], lv[3]]))
    assert [(e["step"], e["verdict"], e["best"], e["kind"]) for e in ev] == [
        (10, lv[2], lv[0], "deterioration"), (30, lv[3], lv[0], "deterioration")]
    # the warm-up hides the early steps entirely: the best is taken after it
    assert alert_events(_df([lv[0], lv[3], lv[3]]), AlertRule(warmup=10)) == []
    # patience: the deterioration must hold
    assert alert_events(_df([lv[0], lv[2], lv[0], lv[2], lv[2]]), AlertRule(patience=2))[0]["step"] == 40
    with pytest.raises(ValueError):
        AlertRule(margin=0)


def test_streaming_tracker_and_batch_events_agree():
    lv = list(verdict_levels())
    verdicts = [lv[3], lv[1], lv[0], lv[2], lv[4], lv[0], lv[4]]
    t = AlertTracker(AlertRule(repeat=True))
    streamed = [e for e in (t.update(i, v) for i, v in enumerate(verdicts)) if e is not None]
    batch = alert_events(_df(verdicts, list(range(len(verdicts)))), AlertRule(repeat=True))
    assert [(e["step"], e["verdict"]) for e in streamed] == [(e["step"], e["verdict"]) for e in batch] == [
        (3, lv[2]), (4, lv[4]), (6, lv[4])]


def test_shipped_demos_lambda_0_alerts_by_its_first_collapse_and_lambda_009_never():
    series = {n: RunReader(SHIPPED / n).timeseries() for n in ("lambda-0", "lambda-0.09")}
    s0, s9 = series["lambda-0"], series["lambda-0.09"]
    first_collapse = int(s0.loc[s0["verdict"].map(is_collapse), "step"].min())
    ev0 = alert_events(s0)
    assert ev0 and ev0[0]["step"] <= first_collapse
    assert severity(s0["verdict"].iloc[0]) > 0  # both start far from N(0, I): an alert at step 0 would fire on both
    assert severity(s9["verdict"].iloc[0]) > 0
    assert alert_events(s9) == []
    t = alert_table(series).set_index("run")
    assert int(t.loc["lambda-0", "first alert step"]) <= first_collapse
    assert pd.isna(t.loc["lambda-0.09", "first alert step"]) and int(t.loc["lambda-0.09", "alerts"]) == 0
    assert t.loc["lambda-0.09", "best verdict"] == verdict_levels()[0]
    assert "no alert" in run_alert(s9)["message"] and run_alert(s0)["step"] == ev0[0]["step"]
    # every sink follows the same rule on the same verdicts
    for name, df in series.items():
        trk = AlertTracker()
        streamed = [e["step"] for e in (trk.update(int(s), v) for s, v in zip(df["step"], df["verdict"])) if e]
        assert streamed == [e["step"] for e in alert_events(df)]


class _FakeTB:
    def __init__(self):
        self.text, self.scalars = [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step))

    def add_histogram(self, *a, **k):
        pass

    def add_text(self, tag, text, step):
        self.text.append((tag, step, text))


class _FakeWandb:
    def __init__(self):
        self.rows, self.alerts = [], []

    def define_metric(self, *a, **k):
        pass

    def log(self, data):
        self.rows.append(dict(data))

    def alert(self, title, text):
        self.alerts.append((title, text))


def test_tensorboard_and_wandb_sinks_alert_where_the_page_does():
    from sigreg_core.integrations.tensorboard import TensorBoardSink
    from sigreg_core.integrations.wandb import WandbSink

    df = RunReader(SHIPPED / "lambda-0").timeseries()
    expected = [e["step"] for e in alert_events(df)]
    for rule, exp in ((True, expected), (AlertRule(warmup=int(df["step"].max()) + 1), [])):
        tb, wb = _FakeTB(), _FakeWandb()
        tsink, wsink = TensorBoardSink(tb, histogram=False, alerts=rule), WandbSink(wb, histogram=False, alerts=rule)
        healthy_run = WandbSink(_FakeWandb(), histogram=False)
        for s, v in zip(df["step"], df["verdict"]):
            rec = StepRecord(int(s), {"verdict": v, "sigreg": 1.0, "modes": ["full_collapse"]})
            tsink.log_step(rec)
            wsink.log_step(rec)
        assert [st for tag, st, _ in tb.text if tag == "latent_health/alert"] == exp
        assert [r["latent_health/step"] for r in wb.rows if "latent_health/alert" in r] == exp
        assert len(wb.alerts) == len(exp)
        if exp:
            assert "collapsed at step" in tb.text[0][2] and "full_collapse" in wb.alerts[0][1]
    off = _FakeTB()
    s = TensorBoardSink(off, histogram=False, alerts=False)
    s.log_step(StepRecord(0, {"verdict": verdict_levels()[-1]}))
    assert off.text == [] and healthy_run.alerted == []


def test_collapsed_is_red_and_apart_from_severe():
    from sigreg_core.assessment.severity import COLLAPSE_COLOUR, verdict_colour

    lv = verdict_levels()
    rgb = lambda c: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)  # noqa: E731
    top, below = rgb(verdict_colour(lv[-1])), rgb(verdict_colour(lv[-2]))
    assert verdict_colour(lv[-1]) == COLLAPSE_COLOUR
    assert top[0] > 2 * max(top[1], top[2])  # red: the red channel dominates
    assert np.linalg.norm(top - below) > 60  # not the orange of the level below
    assert len({verdict_colour(v) for v in lv}) == len(lv)


@pytest.mark.parametrize("run", ["lambda-0", "lambda-0.09"])
def test_shipped_demo_verdicts_are_this_releases_rules(run):
    """The verdict stored with each shipped step is what ``summarize`` says of its snapshot today, under the
    run's own logged settings: a change to the rules must re-record the demos (sigreg demo-train, see
    docs/monitor.md), or the Monitor shows the last release's words."""
    from sigreg_core.runs.summary import summarize

    reader = RunReader(SHIPPED / run)
    series = reader.timeseries()
    for step in (0, 30, 100, 140, 400):
        stored = series.loc[series["step"] == step, "verdict"].iloc[0]
        assert summarize(reader.snapshot(step), reader.config)["verdict"] == stored, (run, step)
