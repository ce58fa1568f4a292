"""Helpers shared by the Monitor page's AppTests (tests/test_app_monitor.py, tests/test_monitor_page.py).

The page runs inside a minimal copy of the app shell (the ``lh_settings`` / ``_lh_shell`` contract
of app.py, and navigation over the Monitor and Inspect pages), written next to a ``pages`` link to
the repository's pages, so the page's ``st.switch_page("pages/inspect.py")`` resolves as in the app.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "sample_data" / "runs"

SHELL = '''
import streamlit as st
from sigreg_core.present.report import Settings
pages = [st.Page("pages/monitor.py", title="Monitor", default=True), st.Page("pages/inspect.py", title="Inspect")]
page = st.navigation(pages)
st.session_state["lh_settings"] = Settings(num_slices={num_slices})
st.session_state["_lh_shell"] = True
page.run()  # _lh_shell stays set: AppTest reruns the page file itself, which must not re-enter app.py
'''


def make_shell(tmp_path: Path, monkeypatch, num_slices: int) -> Path:
    """The shell script (sidebar setting ``num_slices``), a fresh result cache, cleared caches."""
    d = tmp_path / "shell"
    d.mkdir()
    (d / "pages").symlink_to(ROOT / "pages", target_is_directory=True)
    (d / "app_shell.py").write_text(SHELL.replace("{num_slices}", str(int(num_slices))))
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("LATENT_HEALTH_CACHE", str(tmp_path / "cache"))
    import streamlit as st

    from sigreg_core.runs import discovery

    st.cache_data.clear()
    discovery.clear_cache()
    return d / "app_shell.py"


def write_run(run: Path, steps, collapse_from=None, config=None, seed=0):
    """A small RunWriter run: N(0, I) batches, collapsed to a point from ``collapse_from`` on."""
    from sigreg_core.runs import RunWriter

    rng = np.random.default_rng(seed)
    with RunWriter(run, num_slices=16, max_rows=128, config=config) as w:
        for s in steps:
            z = rng.standard_normal((128, 4)).astype(np.float32)
            if collapse_from is not None and s >= collapse_from:
                z = z * 1e-3 + 1.0
            w.log(s, z, loss=1.0 / (s + 1))


def ok(at):
    assert not at.exception, [e.message for e in at.exception]


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def arr(v) -> np.ndarray:
    """A plotly data array from the chart's JSON (plain list, or plotly's typed base64 array)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            a = a.reshape([int(s) for s in str(v["shape"]).split(",")])
        return a
    return np.asarray(v, dtype=float)


def titles(at) -> list[str]:
    return [c.get("layout", {}).get("title", {}).get("text", "") for c in charts(at)]


def chart_by_title(at, prefix: str) -> dict:
    return next(c for c in charts(at) if c["layout"]["title"]["text"].startswith(prefix))


def curves(at) -> dict:
    """The stacked curves (SIGReg on the top panel, y axis "y"; the other panels below)."""
    return chart_by_title(at, "SIGReg per step")


def panel_titles(chart: dict) -> list[str]:
    """The titles of a stacked figure's panels, top to bottom (bold paper annotations)."""
    return [a["text"].replace("<b>", "").replace("</b>", "") for a in chart["layout"].get("annotations", [])
            if a.get("yref") == "paper" and a.get("text", "").startswith("<b>")]


def table(at):
    """The steps table (every run shown)."""
    return next(d.value for d in at.dataframe if "snapshot" in d.value.columns)


def alerts(at):
    """The alert table: one row per run (a pandas Styler in the page: its data)."""
    for d in at.dataframe:
        v = getattr(d.value, "data", d.value)
        if "first collapsed step" in v.columns:
            return v
    raise AssertionError("no alert table")


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption).replace("\\", "")


def query(at, key) -> list:
    """A URL query value as a list (AppTest keeps a single value as a plain string)."""
    v = at.query_params.get(key)
    return [] if v is None else ([v] if isinstance(v, str) else list(v))
