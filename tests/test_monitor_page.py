"""The Monitor page as a run tracker: every run shown, stable names/colours, cheap discovery, groups by config,
a toast on a new alert, and the view in the URL query (AppTest; small runs written here)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sigreg_core.runs import RunWriter
from sigreg_core.runs import discovery as D
from sigreg_core.runs.groups import group_of, group_stats

from monitor_helpers import make_shell, curves
from monitor_helpers import arr as _arr, charts as _charts, ok as _ok, query as _q, write_run as _write


@pytest.fixture
def shell(tmp_path, monkeypatch):
    return make_shell(tmp_path, monkeypatch, num_slices=16)


def test_discovery_newest_first_stable_names_colours_and_a_cheap_change_check(tmp_path):
    root = tmp_path / "runs"
    for i, name in enumerate(["old", "mid", "sub/new"]):
        _write(root / name, [0])
        t = time.time() - 100 + 10 * i
        os.utime(root / name / "index.sqlite", (t, t))
    D.clear_cache()
    infos = D.discover_runs([root])
    assert [i.name for i in infos] == ["sub/new", "mid", "old"]  # newest first, names relative to the root
    assert all(i.colour == D.run_colour(i.name) for i in infos)
    assert D.run_colour("sub/new") == D.run_colour("sub/new") and D.run_colour("a") in D.RUN_COLOURS
    walks = D.stats["walks"]
    for _ in range(5):
        assert [i.name for i in D.discover_runs([root])] == ["sub/new", "mid", "old"]
    assert D.stats["walks"] == walks  # nothing changed: stat() checks only, no walk
    _write(root / "sub" / "newer", [0])  # a new run below a watched directory: found at the next call
    assert "sub/newer" in [i.name for i in D.discover_runs([root])] and D.stats["walks"] == walks + 1
    assert [i.name for i in D.newest(D.discover_runs([root]), "sub/", 1)] == ["sub/newer"]
    assert [i.name for i in D.newest(D.discover_runs([root]), "[bad", None)] == []  # not a regex: plain text
    # the run colour palette stays apart from every verdict colour (a run never reads as a verdict)
    from sigreg_core.assessment.severity import verdict_colour, verdict_levels

    rgb = lambda c: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)  # noqa: E731
    assert min(np.linalg.norm(rgb(a) - rgb(verdict_colour(v))) for a in D.RUN_COLOURS for v in verdict_levels()) > 60


def test_every_run_shown_by_default_with_its_own_name_and_colour(shell, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for name in ("a", "b", "c"):
        _write(root / name, [0, 1])
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(root))
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    assert sorted(Path(p).name for p in at.multiselect(key="mon_runs").value) == ["a", "b", "c"]
    sig = curves(at)
    lines = {t["name"]: t["line"]["color"] for t in sig["data"]
             if t.get("mode") == "lines+markers" and t.get("yaxis", "y") == "y"}
    assert lines == {n: D.run_colour(n) for n in ("a", "b", "c")}
    # every panel of the stack draws a run in the run's own colour
    assert all(t["line"]["color"] == D.run_colour(t["legendgroup"]) for t in sig["data"]
               if t.get("mode") == "lines+markers")
    # the limit shows the newest N; the URL carries the runs shown
    at.number_input(key="mon_limit").set_value(2)
    at.run()
    _ok(at)
    assert len(at.multiselect(key="mon_runs").value) == 2
    assert len(_q(at, "run")) == 2


def test_group_by_config_mean_and_sd_and_the_config_table(shell, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for lam in (0.0, 0.1):
        for seed in (1, 2):
            _write(root / f"lam{lam}-s{seed}", [0, 10, 20], collapse_from=10 if lam == 0 else None,
                   config={"lam": lam, "seed": seed}, seed=seed)
    _write(root / "plain", [0, 10])  # a run without config still works
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(root))
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    assert at.selectbox(key="mon_group").options == ["(no grouping)", "lam", "seed"]
    at.selectbox(key="mon_group").set_value("lam")
    at.run()
    _ok(at)
    fig = next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith("SIGReg per group"))
    means = {t["name"]: t for t in fig["data"] if t.get("mode") == "lines+markers"}
    assert set(means) == {"lam=0 (n = 2)", "lam=0.1 (n = 2)", "lam=(none) (n = 1)"}
    # oracle: the mean and sd over the group's runs, from the indexes
    from sigreg_core.runs import RunReader

    a, b = (RunReader(root / f"lam0.0-s{s}").timeseries()["sigreg"].to_numpy() for s in (1, 2))
    np.testing.assert_allclose(_arr(means["lam=0 (n = 2)"]["y"]), (a + b) / 2)
    sd = np.abs(a - b) / np.sqrt(2)  # sample sd of two values
    np.testing.assert_allclose(_arr(means["lam=0 (n = 2)"]["customdata"]).reshape(-1, 4)[:, 0], sd, rtol=1e-9)
    table = next(d.value for d in at.dataframe if "final SIGReg" in d.value.columns).set_index("run")
    assert list(table.columns[:2]) == ["lam", "seed"]
    assert table.loc["lam0.0-s1", "lam"] == 0.0 and table.loc["lam0.1-s2", "seed"] == 2
    assert table.loc["lam0.0-s1", "first alert step"] == 10  # the collapse
    assert np.isnan(table.loc["plain", "lam"]) or table.loc["plain", "lam"] is None
    assert _q(at, "group") == ["lam"]


def test_group_stats_against_numpy():
    import pandas as pd

    s = {"r1": pd.DataFrame({"step": [0, 1, 2], "sigreg": [1.0, 2.0, 4.0]}),
         "r2": pd.DataFrame({"step": [0, 1], "sigreg": [3.0, 6.0]}),
         "r3": pd.DataFrame({"step": [0, 2], "sigreg": [5.0, np.nan]})}
    g = group_stats(s, group_of({"r1": {"k": 1}, "r2": {"k": 1}, "r3": {}}, "k"))
    one = g["k=1"].set_index("step")
    assert list(one["mean"]) == [2.0, 4.0, 4.0] and list(one["runs"]) == [2, 2, 1]
    assert one.loc[0, "std"] == pytest.approx(np.std([1.0, 3.0], ddof=1)) and one.loc[2, "std"] == 0.0
    assert list(g["k=(none)"]["step"]) == [0]  # the NaN step does not enter the mean


def test_toast_when_a_watched_run_collapses_and_url_reopens_the_view(shell, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run = root / "live"
    rng = np.random.default_rng(5)
    w = RunWriter(run, num_slices=16, max_rows=128)
    for s in range(3):
        w.log(s, rng.standard_normal((128, 4)).astype(np.float32))
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(root))
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    assert not at.toast  # alerts already there when the page opens are in the table, not toasted
    for s in range(3, 5):
        w.log(s, rng.standard_normal((128, 4)).astype(np.float32) * 1e-3 + 1.0)
    w.close()
    at.run()  # a refresh
    _ok(at)
    assert any("collapsed at step 3" in t.value and "live" in t.value for t in at.toast)
    # a copied link: runs, smoothing, axis and the opened step come back
    link = AppTest.from_file(str(shell), default_timeout=240)
    link.query_params["run"] = ["live"]
    link.query_params["smooth"] = "0.5"
    link.query_params["x"] = "relative"
    link.query_params["step"] = "live@3"
    link.run()
    _ok(link)
    assert [Path(p).name for p in link.multiselect(key="mon_runs").value] == ["live"]
    assert link.slider(key="mon_smoothing").value == 0.5 and link.radio(key="mon_x").value == "relative"
    assert link.selectbox(key="mon_open_run").value == "live" and link.selectbox(key="mon_open_step").value == 3
    assert _q(link, "step") == ["live@3"] and _q(link, "smooth") == ["0.5"] and _q(link, "x") == ["relative"]
