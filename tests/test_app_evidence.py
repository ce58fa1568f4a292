"""A mode's evidence opens its slice on the Inspect page (issue 20: every mode links to its evidence slice)."""
from __future__ import annotations

from test_app_inspect import _app


def test_mode_evidence_button_opens_that_slice():
    at = _app()
    at.selectbox(key="insp_sample").set_value("heavy-tailed").run()
    assert not at.exception
    buttons = [b for b in at.button if b.key and b.key.startswith("insp_ev_")]
    assert buttons, "a heavy-tailed set names the slice that shows its tails"
    label = buttons[0].label  # e.g. "Show heavy tails: principal slice 1"
    screen, index = label.split(": ")[1].split(" slice ")
    family = {"random": "random", "axes": "coordinate", "principal": "principal"}[screen]
    buttons[0].click().run()
    assert not at.exception
    assert at.session_state["lh_family"] == family
    assert at.session_state["insp_slice"] == int(index) and at.session_state["insp_pick"] == "index"
