"""latent-health: is your self-supervised embedding healthy or collapsing?

The Streamlit app's shell: page configuration, navigation over the four pages
(Inspect, Monitor, Compare, Method) and the sidebar of settings every page
shares (preset, number of slices, seed, slice family, device, row limit).  The
settings are written to ``st.session_state["lh_settings"]`` as a
:class:`sigreg_core.present.report.Settings` on every run, before the page runs.

Run:  streamlit run app.py
"""
from __future__ import annotations

import gc
import sys
from pathlib import Path

import streamlit as st

from sigreg_core.core.device import cuda_available, device_report
from sigreg_core.core.presets import DEFAULT_PRESET, PRESETS
from sigreg_core.present.report import AUTO_NULL_DRAWS, DEFAULTS, SLICE_FAMILIES, Settings, available_families


@st.cache_resource(show_spinner=False, max_entries=64)
def _freeze_long_lived(modules_loaded: int, collect: bool) -> bool:
    """Move what is alive now into the collector's permanent generation (``gc.freeze``), once per
    number of loaded modules (so again only after a run imported something new).

    Why: Streamlit runs ``gc.collect(2)`` after every script run, GIL held.  With torch, scipy, pandas,
    plotly and numba loaded that walked ~390k objects, 150-200 ms on every slice change (issue 12).
    Frozen objects are skipped, so later collections walk only what the app made since.  Called
    before the page with ``collect=False`` (what the imports left: modules, nothing to collect) and
    after it with ``collect=True``, so the garbage of the run that imported is collected, not frozen.
    The cost: objects frozen here and dropped later are freed by reference counting only, never by
    the cycle collector; that happens at most once per new set of modules, a handful of times per
    server process.
    """
    if collect:
        gc.collect()
    gc.freeze()
    return True


_freeze_long_lived(len(sys.modules), collect=False)

# The tab icon is a local file served by this server: a ":material/...:" icon or an emoji would make
# the browser fetch it from a font / emoji CDN, and this tool never leaves the machine.
ICON = Path(__file__).resolve().parent / "assets" / "icon.png"

st.set_page_config(
    page_title="latent-health",
    page_icon=str(ICON),
    layout="wide",
    initial_sidebar_state="expanded",
)

PAGES = [
    st.Page("pages/inspect.py", title="Inspect", icon=":material/biotech:", default=True),
    st.Page("pages/monitor.py", title="Monitor", icon=":material/timeline:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/method.py", title="Method", icon=":material/menu_book:"),
]
page = st.navigation(PAGES)
# each tab says which page it shows ("Inspect · latent-health"), not only the app's name; a page object
# outside a running server (bare mode: a multiprocessing child that re-runs the main script) has no title
try:
    _title = page.title
except AttributeError:
    _title = None
st.set_page_config(page_title=f"{_title} · latent-health" if _title else "latent-health")


#: what the sidebar's settings apply to on each page (issue 23: on the Monitor a logged step keeps the
#: settings it was written with, so the sidebar must not look as if it re-scored them)
SCOPE = {
    "Inspect": None,
    "Compare": None,
    "Monitor": "Runs written by RunWriter keep the settings they were logged with (their own preset, slices "
               "and seed); these settings apply here only to folders of snapshot files, which the page scores.",
    "Method": "These settings apply to the Inspect and Compare pages.",
}


def _sidebar(title: str | None = None) -> Settings:
    sb = st.sidebar
    sb.markdown("### Settings")
    if SCOPE.get(title):
        sb.info(SCOPE[title], icon=":material/info:")
    names = list(PRESETS)
    preset = sb.selectbox(
        "Preset", names, index=names.index(DEFAULT_PRESET), key="lh_preset",
        help="Node grid, quadrature and scaling of the Epps–Pulley statistic. A logged SIGReg value only "
             "reproduces with the same preset (see the Method page).",
    )
    sb.caption(PRESETS[preset].description)
    num_slices = int(sb.number_input(
        "Slices M", min_value=8, max_value=16384, value=DEFAULTS.num_slices, step=64, key="lh_num_slices",
        help="Number of unit directions the embedding is projected on. Past about 2·D more slices do not "
             "tighten the null.",
    ))
    seed = int(sb.number_input(
        "Seed", min_value=0, max_value=2**31 - 1, value=DEFAULTS.seed, step=1, key="lh_seed",
        help="Seed of the direction draw (LeJEPA's draw: torch.randn on the CPU, columns normalised).",
    ))
    families = available_families()
    family = sb.selectbox(
        "Slice family", families, index=0, key="lh_family",
        format_func=lambda f: SLICE_FAMILIES.get(f, f),
        help="random: LeJEPA's random directions. coordinate: the embedding axes. principal: the principal "
             "axes. worst: a searched worst direction. Random slices of independent non-Gaussian "
             "coordinates look Gaussian (CLT); the other families see them.",
    )
    if len(families) < len(SLICE_FAMILIES):
        missing = ", ".join(f for f in SLICE_FAMILIES if f not in families)
        sb.caption(f"Not available in this install: {missing}.")
    devices = ["auto", "cpu", "cuda"]
    device = sb.radio(
        "Device", devices, index=0, key="lh_device", horizontal=True,
        help="auto uses CUDA when a GPU is present, the CPU otherwise.",
    )
    sb.caption(f"Detected: {device_report()}")
    if device == "cuda" and not cuda_available():
        sb.warning("No CUDA GPU here: the statistic runs on the CPU.")
    max_rows = int(sb.number_input(
        "Row limit", min_value=64, max_value=2**24, value=DEFAULTS.max_rows, step=1024, key="lh_max_rows",
        help="Sets with more rows are scored on a uniform random subset of this many rows (seeded); "
             "the page says so when it happens.",
    ))
    null_opts = ["auto", 0, 50, 200, 1000]
    null_draws = sb.selectbox(
        "Monte Carlo null draws", null_opts, index=0, key="lh_null_draws",
        format_func=lambda v: "auto" if v == "auto" else f"{v}",
        help="auto: none where the exact null law applies (random and coordinate slices, ECF presets), "
             f"{AUTO_NULL_DRAWS} for the principal family and the modulus form, which need a simulated null. "
             "More draws add a Monte Carlo p-value of SIGReg itself; the first run at a given (N, D, M, preset, "
             "family, seed) takes a while, later ones read the cache on disk.",
    )
    sb.divider()
    sb.caption("latent-health · SIGReg (LeJEPA arXiv 2511.08544, LeWorldModel arXiv 2603.19312)")
    return Settings(preset=preset, num_slices=num_slices, seed=seed, family=family,
                    device=device if device != "cuda" or cuda_available() else "cpu", max_rows=max_rows,
                    null_draws=None if null_draws == "auto" else int(null_draws))


st.session_state["lh_settings"] = _sidebar(_title)
st.session_state["_lh_shell"] = True  # pages check it: they run inside this shell
try:
    page.run()
finally:
    st.session_state["_lh_shell"] = False


_freeze_long_lived(len(sys.modules), collect=True)
