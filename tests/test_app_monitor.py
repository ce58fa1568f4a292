"""AppTest of the Monitor page (pages/monitor.py): shipped runs, a run being written, errors, Inspect hand-off.

The page runs inside a minimal copy of the app shell (the ``lh_settings`` /
``_lh_shell`` contract of app.py, and navigation over the Monitor and Inspect
pages), written next to a ``pages`` link to the repository's pages, so the page's
``st.switch_page("pages/inspect.py")`` resolves as it does in the app.  (app.py
routes Monitor to the placeholder pages/monitor.py until the lead points it here.)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from sigreg_core.runs import RunReader, RunWriter

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "sample_data" / "runs"

SHELL = '''
import streamlit as st
from sigreg_core.present.report import Settings
pages = [st.Page("pages/monitor.py", title="Monitor", default=True), st.Page("pages/inspect.py", title="Inspect")]
page = st.navigation(pages)
st.session_state["lh_settings"] = Settings(num_slices=32)
st.session_state["_lh_shell"] = True
page.run()  # _lh_shell stays set: AppTest reruns the page file itself, which must not re-enter app.py
'''


@pytest.fixture
def shell(tmp_path, monkeypatch):
    d = tmp_path / "shell"
    d.mkdir()
    (d / "pages").symlink_to(ROOT / "pages", target_is_directory=True)
    (d / "app_shell.py").write_text(SHELL)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    import streamlit as st

    st.cache_data.clear()
    return d / "app_shell.py"


def _ok(at):
    assert not at.exception, [e.message for e in at.exception]


def _charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _arr(v) -> np.ndarray:
    """A plotly data array from the chart's JSON (plain list, or plotly's typed base64 array)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=float)


def _titles(at) -> list[str]:
    return [c.get("layout", {}).get("title", {}).get("text", "") for c in _charts(at)]


def _table(at):
    return at.dataframe[0].value


def test_shipped_runs_show_by_default(shell):
    assert (SHIPPED / "lambda-0").is_dir() and (SHIPPED / "lambda-0.09").is_dir()
    at = AppTest.from_file(str(shell), default_timeout=240)
    at.run()
    _ok(at)
    picked = at.multiselect(key="mon_runs").value
    assert sorted(Path(p).name for p in picked) == ["lambda-0", "lambda-0.09"]
    titles = _titles(at)
    for t in ("SIGReg per step", "Overall p-value per step", "Verdict per step", "RankMe per step",
              "Per-slice statistic"):
        assert any(x.startswith(t) for x in titles), (t, titles)
    assert any(x.startswith("loss per step") for x in titles)
    # the collapse of lambda = 0 is announced, the lambda = 0.09 run is healthy at the end
    errors = [e.value for e in at.error]
    assert any("lambda-0**: collapsed at step" in e for e in errors), errors
    assert any("lambda-0.09**: healthy since step" in s.value for s in at.success)
    # SIGReg traces: one per run with the real values from the index
    sig = next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith("SIGReg"))
    lines = {t["name"]: t for t in sig["data"] if t.get("mode") == "lines+markers"}
    ref = RunReader(SHIPPED / "lambda-0").timeseries()
    assert np.allclose(_arr(lines["runs/lambda-0"]["y"]), ref["sigreg"].to_numpy())
    bands = [t for t in sig["data"] if t.get("fill") == "toself"]
    assert len(bands) == 2
    # the step table, its CSV and the charts' HTML
    table = _table(at)
    assert len(table) == len(RunReader(SHIPPED / picked[0]).timeseries()) and "verdict" in table.columns
    assert len(at.get("download_button")) == 2


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
    assert any("live**: collapsed at step 3" in e.value for e in at.error)
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
    assert any("exported**: collapsed at step 200" in e.value for e in at.error)
