"""The demo world model: lambda = 0 collapses, lambda = 0.09 stays healthy (short runs), and its CLI."""
from __future__ import annotations

import argparse
import math

import pytest

from sigreg_core.runs.demo import add_demo_parser, run_demo, train_demo
from sigreg_core.runs import RunReader


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))


def test_lambda_zero_collapses(tmp_path):
    out = train_demo(tmp_path / "l0", sigreg_weight=0.0, steps=60, log_every=30, seed=0, threads=1)
    assert out["written"] == 3 and out["failed"] == 0
    ts = RunReader(tmp_path / "l0").timeseries()
    assert list(ts["step"]) == [0, 30, 60]
    assert ts["verdict"].iloc[0] != "collapsed"           # it starts un-collapsed ...
    assert ts["verdict"].iloc[-1] == "collapsed"          # ... and collapses
    assert "full_collapse" in ts["modes"].iloc[-1]
    assert ts["sigreg"].iloc[-1] > 50 * ts["null_mean"].iloc[-1]
    assert ts["pred_loss"].iloc[-1] < 0.01 * ts["pred_loss"].iloc[0]  # the trivial solution predicts perfectly
    assert (ts["lambda"] == 0).all()


def test_lambda_009_stays_healthy(tmp_path):
    out = train_demo(tmp_path / "l9", sigreg_weight=0.09, steps=120, log_every=40, seed=0, threads=1)
    assert out["written"] == 4
    ts = RunReader(tmp_path / "l9").timeseries()
    assert list(ts["step"]) == [0, 40, 80, 120]
    assert ts["verdict"].iloc[-1] == "healthy", ts[["step", "verdict", "modes", "p_value"]]
    assert ts["sigreg"].iloc[-1] < 3 * ts["null_mean"].iloc[-1]
    assert ts["rankme"].iloc[-1] > 7.5  # D = 8: the full rank is used
    assert ts["sigreg"].iloc[-1] < ts["sigreg"].iloc[0]
    assert math.isclose(ts["lambda"].iloc[-1], 0.09)


def _args(argv):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    add_demo_parser(sub)
    return p.parse_args(["demo-train", *argv])


def test_cli_arguments(tmp_path, capsys):
    a = _args(["--run-dir", str(tmp_path / "r"), "--steps", "4", "--log-every", "2", "--sigreg-weight", "0.09",
               "--keep-last", "1"])
    assert a.func is run_demo
    assert run_demo(a) == 0
    out = capsys.readouterr().out
    assert "wrote 3 steps" in out
    r = RunReader(tmp_path / "r")
    assert list(r.timeseries()["step"]) == [0, 2, 4]
    assert [s for s in (0, 2, 4) if r.snapshot_path(s)] == [4]
    for bad in (["--steps", "0"], ["--sigreg-weight", "-1"], ["--sigreg-weight", "nan"], ["--max-rows", "1"]):
        assert run_demo(_args(["--run-dir", str(tmp_path / "x"), *bad])) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sigreg demo-train: error:") and "\n" not in err
    (tmp_path / "file").write_text("x")
    assert run_demo(_args(["--run-dir", str(tmp_path / "file"), "--steps", "1"])) == 2
    assert "not a directory" in capsys.readouterr().err


def test_demo_cli_help_states_the_real_max_rows_default():
    """The help text, the default the code uses and docs/monitor.md agree (they once said 1024 / 512)."""
    import argparse
    from pathlib import Path

    from sigreg_core.runs.demo import DemoConfig, add_demo_parser

    sub = argparse.ArgumentParser().add_subparsers()
    p = add_demo_parser(sub)
    action = next(a for a in p._actions if "--max-rows" in a.option_strings)
    assert f"(default {DemoConfig().eval_rows})" in action.help
    doc = (Path(__file__).resolve().parents[1] / "docs" / "monitor.md").read_text()
    assert f"`--max-rows` ({DemoConfig().eval_rows})" in doc
