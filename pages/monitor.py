"""Monitor page: what it will do (issue 7, open). No data is shown until it exists."""
from __future__ import annotations

from pathlib import Path as _Path

import streamlit as st

if not st.session_state.get("_lh_shell"):
    # Streamlit runs a file of pages/ directly (its legacy pages/ mode) on the first request of a
    # fresh server and in AppTest.switch_page; go through the app shell (sidebar, navigation).
    import runpy

    runpy.run_path(str(_Path(__file__).resolve().parents[1] / "app.py"), run_name="__main__")
    st.stop()


st.title("Monitor")
st.info(
    "**Not built yet — open capability: issue 7 (Monitor a training run).** "
    "This page shows nothing until that issue lands; it never shows made-up curves.",
    icon=":material/construction:",
)
st.markdown(
    """
When issue 7 is done, this page will follow a training run while it trains:

- **Source**: a run folder of embedding snapshots (safetensors, one per step) or a metrics log written by
  the `SIGReg` training loss, read from an allowed server root and refreshed live.
- **Curves over training steps**: SIGReg and its multiple of the null mean, the overall p-value,
  RankMe, the std of L2-normalised rows and the VICReg terms, with the healthy floor
  (the exact null mean, about 1.05 for the `lejepa` preset) drawn in.
- **Alerts**: the first step at which the verdict leaves *healthy*, with the collapse mode
  (full, dimensional, shift, scale, heavy tails) and the number behind it.
- **Drill-down**: click a step to open its full report on the Inspect page.

Until then, score a snapshot on the **Inspect** page, or from the command line with `sigreg`
(see `docs/cli.md`).
"""
)
st.page_link("pages/inspect.py", label="Open the Inspect page", icon=":material/biotech:")
