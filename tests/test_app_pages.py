"""AppTest of the app shell and the Method page (Monitor and Compare have their own AppTests)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sigreg_core.core.presets import PRESETS
from sigreg_core.present.report import Settings

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_method_page_shows_formula_presets_and_references():
    at = _page("pages/method.py")
    assert at.title[0].value == "Method"
    assert len(at.get("latex")) >= 1
    table = at.table[0].value  # a static table (wraps, fits at 1000 px), not a sideways-scrolling grid
    assert list(table["preset"]) == list(PRESETS)
    lejepa = table.set_index("preset").loc["lejepa"]
    assert lejepa["null mean (one slice)"] == f"{PRESETS['lejepa'].null_mean():.6f}" == "1.052464"
    text = " ".join(m.value for m in at.markdown)
    assert "2511.08544" in text and "2603.19312" in text
    assert "How to read" in " ".join(h.value for h in at.header)


def test_sidebar_settings_are_shared_through_session_state():
    at = _page("pages/method.py")
    s = at.session_state["lh_settings"]
    assert s == Settings()  # defaults
    at.sidebar.selectbox(key="lh_preset").set_value("gist")
    at.sidebar.number_input(key="lh_num_slices").set_value(256)
    at.sidebar.number_input(key="lh_seed").set_value(3)
    at.sidebar.number_input(key="lh_max_rows").set_value(1000)
    at.sidebar.radio(key="lh_device").set_value("cpu")
    at.run()
    assert not at.exception
    s = at.session_state["lh_settings"]
    assert (s.preset, s.num_slices, s.seed, s.max_rows, s.device) == ("gist", 256, 3, 1000, "cpu")
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "Detected:" in captions and ("CPU" in captions or "CUDA" in captions)
    assert PRESETS["gist"].description in captions


@pytest.mark.parametrize("path, says", [
    ("pages/monitor.py", "keep the settings they were logged with"),
    ("pages/method.py", "apply to the Inspect and Compare pages"),
    ("pages/inspect.py", None),
])
def test_sidebar_says_what_its_settings_apply_to_on_each_page(path, says):
    """On the Monitor a RunWriter step keeps its own logged settings: the sidebar says so instead of
    looking as if it re-scored them (issue 23); on Inspect it needs no such note."""
    at = _page(path)
    notes = " ".join(i.value for i in at.sidebar.info)
    if says is None:
        assert notes == ""
    else:
        assert says in notes
