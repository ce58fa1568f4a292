"""Compare page: what it will do (issue 8, open). No data is shown until it exists."""
from __future__ import annotations

from pathlib import Path as _Path

import streamlit as st

if not st.session_state.get("_lh_shell"):
    # Streamlit runs a file of pages/ directly (its legacy pages/ mode) on the first request of a
    # fresh server and in AppTest.switch_page; go through the app shell (sidebar, navigation).
    import runpy

    runpy.run_path(str(_Path(__file__).resolve().parents[1] / "app.py"), run_name="__main__")
    st.stop()


st.title("Compare")
st.info(
    "**Not built yet — open capability: issue 8 (Compare embedding sets).** "
    "This page shows nothing until that issue lands; it never shows made-up numbers.",
    icon=":material/construction:",
)
st.markdown(
    """
When issue 8 is done, this page will put several embedding sets side by side:

- **Sources**: two or more uploads, samples or server files (checkpoints of one model, or different models
  on the same inputs), scored with the *same* preset, directions (seed, M) and row count, because
  non-Gaussian values grow with N and only compare at equal N.
- **Side by side**: verdict cards, the sorted per-slice statistics over one shared null band,
  the eigen-spectra on one log axis, RankMe and the VICReg terms in one table.
- **Differences**: which slices changed most between two sets, with their projection histograms
  and characteristic-function curves overlaid.

Until then, inspect each set on the **Inspect** page and download its JSON assessment to compare.
"""
)
st.page_link("pages/inspect.py", label="Open the Inspect page", icon=":material/biotech:")
