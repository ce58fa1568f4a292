"""Monitor page: watch latent health over the steps of one or several training runs, live.

Thin: widgets, and calls into :mod:`sigreg_core.runs` (reading the runs' indexes) and
:mod:`sigreg_core.present.monitor_figures` (the figures).  A run is a directory written by
``sigreg_core.runs.RunWriter`` (or ``sigreg demo-train``), or a folder of snapshot files
whose names carry a step number, below an allowed server root.  The time series come
from the run's SQLite index, never from the snapshot files, and are cached on the
index's size and mtime, so a live refresh only re-reads a run that changed.
What TensorBoard / W&B users expect is here: EMA smoothing (the raw curve kept faint), a
step / wall-clock / relative-time axis, a run filter, a stable run palette disjoint from the
verdict colours, one alert table with a marker per alert event, the steps of every run in
one table, the per-slice distribution over steps, and the embedding cloud of any kept step
(:mod:`sigreg_core.present.cloud`).  Choosing a step opens its full report on the Inspect
page (no second implementation).
"""
from __future__ import annotations

from pathlib import Path as _Path

import streamlit as st

if not st.session_state.get("_lh_shell"):
    # Streamlit runs a file of pages/ directly (its legacy pages/ mode) on the first request of a
    # fresh server and in AppTest.switch_page; go through the app shell (sidebar, navigation).
    import runpy

    runpy.run_path(str(_Path(__file__).resolve().parents[1] / "app.py"), run_name="__main__")
    st.stop()

import re

import numpy as np
import pandas as pd

from sigreg_core.assessment.severity import severity, verdict_colour
from sigreg_core.present import figures as F
from sigreg_core.present.cloud import cloud_figure, cloud_view, outlier_frame
from sigreg_core.present import monitor_figures as MF
from sigreg_core.inputs.loading import EmbeddingLoadError, allowed_roots
from sigreg_core.util.text import md  # text from files is data: escaped before markdown
from sigreg_core.present.report import DEFAULTS, Settings
from sigreg_core.runs import RunReader, SummaryConfig, find_runs, resolve_run_dir, run_version

REPO = _Path(__file__).resolve().parents[1]
SHIPPED = REPO / "sample_data" / "runs"
INTERVALS = [2, 5, 10, 30, 60]
TABLE_COLUMNS = ["step", "verdict", "modes", "sigreg", "sigreg_over_null", "p_value", "rankme", "q50", "q95",
                 "qmax", "n", "d", "m", "error"]




def _md(text) -> str:
    """Text from files (run names, error messages) escaped for st.markdown / captions (sigreg_core.util.text)."""
    return md(text, None)


def _settings() -> Settings:
    s = st.session_state.get("lh_settings")
    return s if isinstance(s, Settings) else DEFAULTS


def _labels(paths: list) -> dict:
    """Short names: the path below its allowed root (root-qualified only when two would clash)."""
    roots = allowed_roots()

    def rel(p: _Path, qualified: bool) -> str:
        for root in roots:
            try:
                r = p.relative_to(root)
            except ValueError:
                continue
            text = str(r) if str(r) != "." else root.name
            return f"{root.name}/{text}" if qualified and str(r) != "." else text
        return str(p)

    short = {p: rel(_Path(p), False) for p in paths}
    clash = {v for v in short.values() if list(short.values()).count(v) > 1}
    return {p: (rel(_Path(p), True) if v in clash else v) for p, v in short.items()}


@st.cache_data(show_spinner=False, max_entries=64)
def _series(path: str, version: tuple, folder_cfg: tuple) -> pd.DataFrame:
    """The run's time series; ``version`` (index size / mtime) is the cache key that makes refreshes cheap."""
    preset, num_slices, seed, max_rows = folder_cfg
    reader = RunReader(path, config=SummaryConfig(preset=preset, num_slices=num_slices, seed=seed), max_rows=max_rows)
    if reader.kind == "run":
        reader = RunReader(path)  # its own stored settings
    return reader.timeseries()


@st.cache_data(show_spinner=False, max_entries=64)
def _band(path: str, n: int, d: int, folder_cfg: tuple) -> tuple:
    preset, num_slices, seed, max_rows = folder_cfg
    reader = RunReader(path, config=SummaryConfig(preset=preset, num_slices=num_slices, seed=seed), max_rows=max_rows)
    if reader.kind == "run":
        reader = RunReader(path)
    return reader.null_band(n, d)


def _discover(roots: tuple) -> list:
    """Runs below the allowed roots, read afresh on every call (a walk of a few directories, milliseconds),
    so a run created a moment ago shows within one refresh."""
    return [str(p) for p in find_runs([_Path(r) for r in roots])]


def _chart(fig, name: str, **kw):
    return st.plotly_chart(fig, width="stretch", config=F.plotly_config(name), **kw)


# ------------------------------------------------------------------------ run choice
def _choose_runs() -> tuple[dict, dict]:
    """({label: path} of the runs to draw, {label: colour} stable over every known run)."""
    roots = tuple(str(r) for r in allowed_roots())
    found = _discover(roots)
    extra = st.session_state.setdefault("mon_extra_runs", [])
    options = list(dict.fromkeys(found + extra))
    labels = _labels(options)
    known = st.session_state.get("mon_known")
    if "mon_runs" not in st.session_state:
        st.session_state["mon_runs"] = [p for p in options if _Path(p).parent == SHIPPED.resolve()] or options[:2]
    elif known is not None:
        new = [p for p in found if p not in known]  # runs that appeared while the page was open: shown at once
        if new:
            st.session_state["mon_runs"] = list(dict.fromkeys(list(st.session_state["mon_runs"]) + new))
    st.session_state["mon_known"] = list(found)
    pending = st.session_state.pop("mon_pending_add", None)
    if pending and pending in options:
        st.session_state["mon_runs"] = list(dict.fromkeys(list(st.session_state.get("mon_runs", [])) + [pending]))
    st.session_state["mon_runs"] = [p for p in st.session_state["mon_runs"] if p in options]
    c1, c2 = st.columns([3, 1])
    picked = c1.multiselect("Runs", options, key="mon_runs", format_func=labels.get,
                            help="Run directories written by RunWriter / `sigreg demo-train`, or folders of "
                                 "snapshot files named with a step number, found below the allowed directories. "
                                 "A run created while the page is open is added at the next refresh.")
    pattern = c2.text_input("Filter runs", key="mon_filter", placeholder="regex, e.g. lambda-0\\.",
                            help="Draw only the picked runs whose name matches (regular expression, case-insensitive; "
                                 "plain text works too).")
    with st.expander("Add a run directory from the server"):
        st.caption("Allowed directories: " + (", ".join(f"`{r}`" for r in roots) or "none")
                   + " (set `LATENT_HEALTH_ALLOWED_ROOTS` to change).")
        with st.form("mon_add_form", border=False):
            text = st.text_input("Run directory", key="mon_add_path", placeholder="e.g. runs/my-run")
            if st.form_submit_button("Add"):
                try:
                    p = str(resolve_run_dir(text))
                except EmbeddingLoadError as exc:
                    st.error(md(exc, None))
                else:
                    if p not in extra:
                        extra.append(p)
                    st.session_state["mon_pending_add"] = p
                    st.rerun()
    shown = [p for p in picked if _matches(pattern, labels[p])]
    if pattern and len(shown) < len(picked):
        st.caption(f"Filter: drawing {len(shown)} of {len(picked)} picked runs.")
    colours = MF.run_colours([labels[p] for p in shown], [labels[p] for p in options])
    return {labels[p]: p for p in shown}, colours


def _matches(pattern: str, name: str) -> bool:
    if not pattern:
        return True
    try:
        return re.search(pattern, name, flags=re.IGNORECASE) is not None
    except re.error:
        return pattern.lower() in name.lower()


def _load(runs: dict, settings: Settings) -> tuple[dict, dict, dict]:
    """(series by run, null band by run, error message by run); errors never stop the page."""
    cfg = (settings.preset, settings.num_slices, settings.seed, settings.max_rows)
    series, bands, errors = {}, {}, {}
    for name, path in runs.items():
        try:
            df = _series(path, run_version(path), cfg)
        except (OSError, ValueError, RuntimeError, EmbeddingLoadError) as exc:
            errors[name] = " ".join(str(exc).split())
            continue
        except Exception as exc:  # a corrupt index (sqlite3.DatabaseError) must not stop the page
            errors[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            continue
        series[name] = df
        ok = df.dropna(subset=["n", "d"]) if len(df) else df
        if len(ok):
            n, d = int(ok["n"].iloc[-1]), int(ok["d"].iloc[-1])
            try:
                bands[name] = _band(path, n, d, cfg)
            except (OSError, ValueError, RuntimeError):
                pass
    return series, bands, errors


# ----------------------------------------------------------------------------- views
def _alert_table(series: dict) -> None:
    table = MF.alert_table(series)
    shown = table.astype(object).where(table.notna(), "–").astype(str)  # a missing step is "–", not "None"
    sev_cols = ["latest verdict", "worst verdict", "first alert"]

    def colour(v):
        return f"color: {verdict_colour(v)}; font-weight: 600" if isinstance(v, str) and severity(v) >= 0 else ""

    st.dataframe(shown.style.map(colour, subset=sev_cols), hide_index=True, width="stretch",
                 key="mon_alert_table",
                 column_config={"first alert step": st.column_config.NumberColumn(help="first step at any alert level"),
                                "first collapsed step": st.column_config.NumberColumn(
                                    help="first step at the most severe level"),
                                "alert steps": st.column_config.NumberColumn(help="scored steps at an alert level")})
    st.download_button("Alerts CSV", table.to_csv(index=False).encode(), file_name="monitor_alerts.csv",
                       mime="text/csv", key="mon_dl_alerts", icon=":material/table:", on_click="ignore")
    for name, df in series.items():
        a = MF.run_alert(df)
        if a is not None:
            st.caption(f"**{_md(name)}**: {_md(a['message'])}")
        bad = int(df["error"].notna().sum()) if "error" in df else 0
        if bad:
            st.caption(f"{_md(name)}: {bad} step(s) could not be scored (see the table's error column).")


def _band_notes(series: dict, bands: dict) -> list[str]:
    """Why a run can sit above its 95 % null band and still be healthy, with its own numbers."""
    out = []
    for name, df in series.items():
        band = bands.get(name)
        d = df[df["verdict"].notna()] if len(df) else df
        if band is None or not len(d):
            continue
        last = d.iloc[-1]
        if severity(last["verdict"]) == 0 and float(last["sigreg"]) > band[1]:
            out.append(f"**{_md(name)}** ends above its band (step {int(last['step'])}: SIGReg {last['sigreg']:.4g} > "
                       f"{band[1]:.4g}) yet healthy: its p-value {last['p_value']:.2g} is above 1e-3.")
    return out


def _scalar_columns(series: dict) -> list:
    cols = []
    for df in series.values():
        for c in df.attrs.get("scalar_columns", []):
            if c not in cols and pd.to_numeric(df[c], errors="coerce").notna().any():
                cols.append(c)
    return cols


def _live_body(runs: dict, colours: dict, settings: Settings, view: dict) -> None:
    roots = tuple(str(r) for r in allowed_roots())
    if st.session_state.get("mon_live") and set(_discover(roots)) - set(st.session_state.get("mon_known") or []):
        st.rerun(scope="app")  # a new run appeared: redraw the picker too (it is outside this fragment)
    series, bands, errors = _load(runs, settings)
    for name, msg in errors.items():
        st.error(f"{_md(name)}: {_md(msg)}")
    if not series:
        return
    st.session_state["mon_loaded"] = {n: runs[n] for n in series}
    x, smooth = view["x"], view["smoothing"]
    kw = {"colours": colours, "x": x}
    st.subheader("Alerts")
    _alert_table(series)
    figs = {
        "SIGReg": MF.sigreg_figure(series, bands, smoothing=smooth, **kw),
        "p-value": MF.pvalue_figure(series, **kw),
        "Verdict": MF.verdict_figure(series, **kw),
        "RankMe": MF.rankme_figure(series, smoothing=smooth, **kw),
        "Per-slice quantiles": MF.quantiles_figure(series, smoothing=smooth, **kw),
        "Per-slice distribution": MF.distribution_figure(series, **kw),
    }
    _chart(figs["SIGReg"], "monitor_sigreg")
    st.caption("Null band: central 95 % of SIGReg over 200 N(0, I) batches of the same size, scored on the run's "
               "own directions (Monte Carlo, cached). It tests SIGReg alone at the 5 % level; the verdict alerts "
               "only when the overall p-value (random, coordinate and principal slices combined) falls below 1e-3 "
               "or a collapse mode is found, so a run slightly above its band can be healthy. Markers: the first "
               "step at each alert level (▲ alert, ✕ collapse), in the verdict's colour."
               + (" Smoothing: the p-value and the verdict are never smoothed." if smooth else ""))
    for note in _band_notes(series, bands):
        st.caption(note)
    c1, c2 = st.columns(2)
    with c1:
        _chart(figs["p-value"], "monitor_p_value")
    with c2:
        _chart(figs["RankMe"], "monitor_rankme")
    _chart(figs["Verdict"], "monitor_verdict")
    t1, t2 = st.tabs(["Per-slice quantiles", "Distribution over steps"])
    with t1:
        _chart(figs["Per-slice quantiles"], "monitor_slice_quantiles")
    with t2:
        _chart(figs["Per-slice distribution"], "monitor_slice_distribution")
        st.caption("TensorBoard's distribution mode, from the quantiles each step logged (median, 95 %, max over "
                   "the slices); the dashed line is the one-slice null 95 % quantile (exact law).")

    scalars = _scalar_columns(series)
    if scalars:
        st.subheader("Your logged scalars")
        default = [c for c in ("loss", "pred_loss", "sigreg_loss") if c in scalars] or scalars[:1]
        chosen = st.multiselect("Scalars", scalars, default=default, key="mon_scalars")
        log_y = st.toggle("Log scale", value=False, key="mon_scalar_log")
        cols = st.columns(2)
        for i, c in enumerate(chosen):
            figs[c] = MF.scalar_figure(series, c, log=log_y, smoothing=smooth, **kw)
            with cols[i % 2]:
                _chart(figs[c], f"monitor_{c}")

    st.subheader("Steps")
    names = list(series)
    table = MF.steps_table(series, TABLE_COLUMNS)
    st.dataframe(table, hide_index=True, width="stretch", height=320, key="mon_steps_table",
                 column_config={"p_value": st.column_config.NumberColumn(format="%.3g"),
                                "sigreg": st.column_config.NumberColumn(format="%.4g"),
                                "sigreg_over_null": st.column_config.NumberColumn("× null mean", format="%.3g")})
    st.caption(f"{len(table):,} steps of {len(names)} run(s).")
    c = st.columns(2)
    c[0].download_button("Steps CSV (all runs shown)", table.to_csv(index=False).encode(),
                         file_name="monitor_steps.csv", mime="text/csv", key="mon_dl_csv", icon=":material/table:",
                         on_click="ignore")
    c[1].download_button("All charts (HTML, offline)", lambda: MF.figures_html(figs, f"latent-health: {', '.join(names)}"),
                         file_name="monitor_charts.html", mime="text/html", key="mon_dl_html",
                         icon=":material/description:", on_click="ignore")
    st.caption("PNG of any chart: the camera icon in the chart's toolbar.")


@st.cache_data(show_spinner=False, max_entries=16)
def _step_cloud(path: str, step: int, version: tuple, folder_cfg: tuple, kind: str, slice_index) -> tuple:
    """(CloudView, worst slice, M) of a run's snapshot at ``step``; the slices are the run's own directions."""
    from sigreg_core.assessment.slices import score_slices
    from sigreg_core.core.directions import sample_directions

    preset, num_slices, seed, max_rows = folder_cfg
    reader = RunReader(path, config=SummaryConfig(preset=preset, num_slices=num_slices, seed=seed), max_rows=max_rows)
    if reader.kind == "run":
        reader = RunReader(path)
    z = reader.snapshot(step)
    cfg = reader.config
    a = sample_directions(z.shape[1], cfg.num_slices, cfg.seed).numpy()
    stat = np.asarray(score_slices(z, a, cfg.preset, device="cpu").statistic, dtype=np.float64)
    worst = int(np.argmax(stat))
    j = worst if slice_index is None else int(min(max(int(slice_index), 0), a.shape[1] - 1))
    view = cloud_view(z, kind, direction=a[:, j] if kind == "slice" else None, slice_index=j)
    return view, worst, a.shape[1], float(stat[j])


def _open_step(runs: dict) -> None:
    """Pick a logged step with a kept snapshot: its embedding cloud here, its full report on the Inspect page."""
    loaded = st.session_state.get("mon_loaded") or {}
    names = [n for n in runs if n in loaded]
    if not names:
        return
    st.subheader("One step: its embedding cloud, or its full report on Inspect")
    settings = _settings()
    cfg = (settings.preset, settings.num_slices, settings.seed, settings.max_rows)
    c1, c2, c3 = st.columns([1.5, 2, 1.5], vertical_alignment="bottom")
    name = c1.selectbox("Run", names, key="mon_open_run")
    path = runs[name]
    try:
        df = _series(path, run_version(path), cfg)
    except Exception as exc:  # reported above already
        st.caption(md(exc, None))
        return
    have = df[df["snapshot"].notna()]
    if have.empty:
        st.caption(f"{md(name)}: no snapshot kept (retention dropped them all).")
        return
    steps = [int(s) for s in have["step"]]
    verdict = dict(zip(have["step"].astype(int), have["verdict"].fillna("not scored")))
    step = c2.selectbox("Step (snapshots kept; type to search)", steps[::-1], key="mon_open_step",
                        format_func=lambda s: f"step {s} — {verdict.get(s, '')}")
    if c3.button("Open in Inspect", key="mon_open_btn", icon=":material/biotech:", type="primary"):
        try:
            p = RunReader(path).snapshot_path(step)
        except EmbeddingLoadError as exc:  # an index pointing outside the run
            st.error(md(exc, None))
            return
        if p is None:
            st.error(f"{md(name)}: the snapshot of step {step} is gone (dropped by retention); pick another step.")
            return
        st.session_state["lh_inspect_request"] = {"path": str(p), "label": f"{name} step {step}"}
        st.switch_page("pages/inspect.py")
    if len(steps) < len(df):
        st.caption(f"{len(df) - len(steps)} of {len(df)} steps have no snapshot kept (retention); their rows stay.")
    _cloud(path, name, int(step), cfg)


def _cloud(path: str, name: str, step: int, cfg: tuple) -> None:
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    kind = c1.radio("Cloud view", ["pca", "slice"], horizontal=True, key="mon_cloud_kind",
                    format_func={"pca": "top-2 principal axes", "slice": "a slice against an orthogonal principal axis"}.get)
    j = None
    if kind == "slice":
        j = c2.number_input("Slice (empty: the worst at this step)", min_value=0, value=None, step=1,
                            key="mon_cloud_slice")
    try:
        view, worst, m, stat = _step_cloud(path, step, run_version(path), cfg, kind, j)
    except (KeyError, OSError, ValueError, RuntimeError, EmbeddingLoadError) as exc:
        st.error(f"{_md(name)} step {step}: {_md(' '.join(str(exc).split()))}")
        return
    fig = cloud_figure(view, title=f"{name}, step {step}: " + ("top-2 principal axes" if kind == "pca" else
                                                              f"slice {view.slice_index} of {m} (statistic {stat:.4g}"
                                                              + (", the worst)" if view.slice_index == worst else ")")))
    _chart(fig, f"monitor_cloud_step_{step}", key="mon_cloud_chart")
    st.caption(f"{view.note}. Highlighted: {view.rule} — {view.outlier_rows.size:,} of {view.n_total:,} rows.")
    if view.outlier_rows.size:
        st.download_button("Outlier rows CSV", outlier_frame(view).to_csv(index=False).encode(),
                           file_name=f"{name.replace('/', '_')}_step{step}_outliers.csv", mime="text/csv",
                           key="mon_dl_outliers", icon=":material/table:", on_click="ignore")


# ------------------------------------------------------------------------------ page
st.title("Monitor")
st.markdown("Latent health over training: SIGReg, its p-value and verdict, RankMe and the per-slice statistics at "
            "every logged step, for one or several runs. Log a run with `RunWriter` (two lines in the training "
            "loop) or try `sigreg demo-train`; see `docs/monitor.md`.")
settings = _settings()
with st.container(border=True):
    runs, colours = _choose_runs()
    # three columns, the refresh pair stacked: at 1000 px (sidebar open) four were too narrow for "Live refresh"
    c1, c3, c4 = st.columns([1.3, 1.3, 1.6])
    live = c1.toggle("Live refresh", value=False, key="mon_live",
                     help="Re-read the runs' indexes every few seconds (only runs that changed are re-read; "
                          "new runs are picked up).")
    interval = c1.select_slider("Refresh every (seconds)", INTERVALS, value=5, key="mon_interval",
                                disabled=not live)
    smoothing = c3.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="mon_smoothing",
                          help="TensorBoard's smoothing: debiased exponential moving average with this weight; the "
                               "raw curve stays drawn faint. 0 = off.")
    x_axis = c4.radio("Horizontal axis", list(MF.X_MODES), horizontal=True, key="mon_x",
                      format_func={"step": "step", "wall": "wall time", "relative": "relative"}.get,
                      help="Step; wall-clock time of each logged step (UTC); or time since each run's first step.")

if not runs:
    st.info("Pick at least one run above (the shipped demo runs are under `sample_data/runs/`), or clear the filter.")
    st.stop()


@st.fragment(run_every=interval if live else None)
def live_section() -> None:
    _live_body(runs, colours, _settings(), {"x": x_axis, "smoothing": float(smoothing)})


live_section()
_open_step(runs)
