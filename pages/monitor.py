"""Monitor page: watch latent health over the steps of every training run, live.

Thin: widgets, and calls into :mod:`sigreg_core.runs` (discovery, the runs' indexes, the alert
rule, config groups, the page's state as data in :mod:`sigreg_core.runs.monitor_view`) and
:mod:`sigreg_core.present` (the stacked curves of :mod:`~sigreg_core.present.monitor_stack`, the
other figures of :mod:`~sigreg_core.present.monitor_figures`).  A run is a directory written by
``sigreg_core.runs.RunWriter`` (or ``sigreg demo-train``), or a folder of snapshot files whose
names carry a step number, below an allowed server root.

* **Every run**, newest first, one name and one colour per run (discovery re-walks only changed
  directories); **alerts** from :mod:`sigreg_core.runs.alerts` (table, toast, sinks: one rule).
* **One hover, every curve**: SIGReg, p-value, RankMe, the picked scalars and the verdict are
  panels of one figure on one step axis; a hover marks the step across all panels and lists the
  run's values there; a click on a point opens that step (its cloud here, its report on Inspect).
* **Live**: only the curves, tables and alerts re-run every few seconds (a fragment); the
  downloads sit outside it (a refresh never cancels one) and read the runs when clicked.
* **Group by config**, and **the view in the URL query**.
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

import pandas as pd

from sigreg_core.assessment.severity import is_collapse, severity, verdict_colour
from sigreg_core.inputs.loading import EmbeddingLoadError, allowed_roots
from sigreg_core.present import figures as F
from sigreg_core.present import monitor_figures as MF
from sigreg_core.present.cloud import cloud_figure, outlier_frame, step_cloud
from sigreg_core.present.monitor_stack import HOVER_MODES, stack_figure
from sigreg_core.present.report import DEFAULTS, Settings
from sigreg_core.runs import resolve_run_dir, run_version
from sigreg_core.runs import monitor_view as V
from sigreg_core.runs.alerts import AlertRule
from sigreg_core.runs.discovery import discover_runs, names_unique, run_colour, run_config
from sigreg_core.runs.groups import config_keys, config_table, group_of, group_stats
from sigreg_core.util.text import md  # text from files is data: escaped before markdown

INTERVALS = [2, 5, 10, 30, 60]
DEFAULT_LIMIT = 12
TABLE_COLUMNS = ["step", "verdict", "modes", "sigreg", "sigreg_over_null", "p_value", "rankme", "q50", "q95",
                 "qmax", "n", "d", "m", "error"]
NO_GROUP = "(no grouping)"
SS = st.session_state


def _md(text) -> str:
    return md(text, None)


def _cfg() -> tuple:
    """The sidebar settings a folder of snapshot files is scored with (a RunWriter run keeps its own)."""
    s = SS.get("lh_settings")
    s = s if isinstance(s, Settings) else DEFAULTS
    return (s.preset, s.num_slices, s.seed, s.max_rows)


def _chart(fig, name: str, **kw):
    return st.plotly_chart(fig, width="stretch", config=F.plotly_config(name), **kw)


@st.cache_data(show_spinner=False, max_entries=64)
def _series(path: str, version: tuple, cfg: tuple) -> pd.DataFrame:
    """The run's time series; ``version`` (index size / mtime) is the cache key that makes refreshes cheap."""
    return V.open_reader(path, cfg).timeseries()


@st.cache_data(show_spinner=False, max_entries=64)
def _band(path: str, n: int, d: int, cfg: tuple) -> tuple:
    return V.open_reader(path, cfg).null_band(n, d)


@st.cache_data(show_spinner=False, max_entries=512)
def _config(path: str, version: tuple) -> dict:
    return run_config(path)


@st.cache_data(show_spinner=False, max_entries=16)
def _step_cloud(path: str, step: int, version: tuple, cfg: tuple, kind: str, slice_index) -> tuple:
    reader = V.open_reader(path, cfg)
    c = reader.config
    return step_cloud(reader.snapshot(step), c.num_slices, c.seed, c.preset, kind, slice_index)


def _load(runs: dict) -> tuple[dict, dict, dict]:
    cfg = _cfg()
    return V.load_runs(runs, lambda p: _series(p, run_version(p), cfg), lambda p, n, d: _band(p, n, d, cfg))


def _configs(runs: dict) -> dict:
    out = {}
    for name, path in runs.items():
        try:
            out[name] = _config(path, run_version(path))
        except Exception:  # a broken run: no config (its error is shown with its series)
            out[name] = {}
    return out


def _discover() -> list:
    return discover_runs([str(r) for r in allowed_roots()], extra=tuple(SS.get("mon_extra_runs", [])))


# ------------------------------------------------------------------------- the URL
def _read_url() -> None:
    """Once per session: the view in the URL query becomes the widgets' state before they are drawn."""
    if SS.get("_mon_url_read"):
        return
    SS["_mon_url_read"] = True
    v = V.view_from_query(st.query_params.get_all)
    for key, ss in (("smoothing", "mon_smoothing"), ("x", "mon_x"), ("hover", "mon_hover"),
                    ("runs", "_mon_url_runs"), ("group", "_mon_url_group")):
        if key in v:
            SS[ss] = v[key]
    if "step" in v:
        SS["mon_open_run"], SS["mon_open_step"] = v["step"]


def _write_url(view: dict) -> None:
    for k, vals in V.query_from_view(view).items():
        cur = st.query_params.get_all(k)
        if vals is None:
            if cur:
                del st.query_params[k]
        elif cur != vals:
            st.query_params[k] = vals


# ------------------------------------------------------------------------ run choice
def _repick() -> None:
    SS["_mon_repick"] = True


def _choose_runs() -> tuple[dict, dict]:
    """({name: path} of the runs to draw, {name: colour}); the names and colours are the runs' own."""
    extra = SS.setdefault("mon_extra_runs", [])
    infos = _discover()
    by_path = {i.path: i for i in infos}
    names = names_unique(infos)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pattern = c1.text_input("Filter runs", key="mon_filter", on_change=_repick,
                            placeholder="regex, e.g. lambda-0\\. or seed",
                            help="Show the newest runs whose name matches (regular expression, case-insensitive; "
                                 "plain text works too). Runs are listed newest first.")
    limit = int(c2.number_input("Show at most", min_value=1, max_value=1000, value=DEFAULT_LIMIT, step=1,
                                key="mon_limit", on_change=_repick,
                                help="How many of the newest matching runs are shown (you can add or remove "
                                     "runs one by one below)."))
    SS["mon_runs"] = V.pick_runs(infos, names, current=SS.get("mon_runs"), known=SS.get("mon_known"),
                                 url_runs=SS.pop("_mon_url_runs", None), repick=SS.pop("_mon_repick", False),
                                 pattern=pattern, limit=limit, pending=SS.pop("mon_pending_add", None))
    SS["mon_known"] = [i.path for i in infos]
    picked = st.multiselect("Runs", list(by_path), key="mon_runs", format_func=names.get,
                            help="Every run below the allowed directories (RunWriter / `sigreg demo-train` runs, "
                                 "or folders of step-numbered snapshot files), newest first. A run created while "
                                 "the page is open is added at the next refresh.")
    st.caption(f"{len(infos)} run(s) found below the allowed directories, newest first; showing {len(picked)}"
               + (f" (filter `{_md(pattern)}`)" if pattern else "") + ".")
    with st.expander("Add a run directory from the server"):
        st.caption("Allowed directories: " + (", ".join(f"`{_md(r)}`" for r in allowed_roots()) or "none")
                   + " (set `LATENT_HEALTH_ALLOWED_ROOTS` to change).")
        with st.form("mon_add_form", border=False):
            text = st.text_input("Run directory", key="mon_add_path", placeholder="e.g. runs/my-run")
            if st.form_submit_button("Add"):
                try:
                    p = str(resolve_run_dir(text))
                except EmbeddingLoadError as exc:
                    st.error(_md(exc))
                else:
                    if p not in extra:
                        extra.append(p)
                    SS["mon_pending_add"] = p
                    st.rerun()
    return {names[p]: p for p in picked}, {names[p]: by_path[p].colour for p in picked}


# ----------------------------------------------------------------------------- views
def _alert_table(series: dict, rule: AlertRule) -> None:
    table = MF.alert_table(series, rule)
    shown = table.astype(object).where(table.notna(), "–").astype(str)  # a missing step is "–", not "None"

    def colour(v):
        return f"color: {verdict_colour(v)}; font-weight: 600" if isinstance(v, str) and severity(v) >= 0 else ""

    st.dataframe(shown.style.map(colour, subset=["latest verdict", "best verdict", "worst verdict", "first alert"]),
                 hide_index=True, width="stretch", key="mon_alert_table",
                 column_config={"first alert step": st.column_config.NumberColumn(
                                    help="first step where the rule fired: a deterioration from the best level "
                                         "reached, or a collapse"),
                                "best verdict": st.column_config.TextColumn(
                                    help="the best level reached after the warm-up (the rule's reference)"),
                                "first collapsed step": st.column_config.NumberColumn(
                                    help="first step at the most severe level"),
                                "alerts": st.column_config.NumberColumn(help="how many times the rule fired")})
    st.caption(f"Rule: {rule.describe()}. An untrained encoder is far from N(0, I), so the start of every run is "
               "its reference, not an alert. Set the warm-up and margin above; the alert sinks "
               "(webhook, command, TensorBoard, W&B) take the same `AlertRule`.")
    for name, df in series.items():
        a = MF.run_alert(df, rule)
        if a is not None:
            st.caption(f"**{_md(name)}**: {_md(a['message'])}")
        bad = int(df["error"].notna().sum()) if "error" in df else 0
        if bad:
            st.caption(f"{_md(name)}: {bad} step(s) could not be scored (see the table's error column).")


def _toast(series: dict, rule: AlertRule) -> None:
    """A toast when a watched run raises a new alert while the page is open (not for alerts already there)."""
    same = SS.get("_mon_seen_rule") == rule  # a changed rule: its alerts are the new reference, not news
    fresh, SS["_mon_seen_alerts"] = V.new_alerts(series, rule, SS.get("_mon_seen_alerts") if same else None)
    SS["_mon_seen_rule"] = rule
    for n, step, verdict in fresh:
        st.toast(f"**{_md(n)}**: {_md(verdict)} at step {step}",
                 icon=":material/crisis_alert:" if is_collapse(verdict) else ":material/warning:")


def _clicked(event, runs: dict) -> None:
    """A click on a point of a curve opens that step below (its cloud; a button to its report on Inspect)."""
    hit = V.clicked_step(event, runs)
    if hit is None or SS.get("_mon_click") == hit:
        return
    SS["_mon_click"] = hit
    SS["mon_open_run"], SS["mon_open_step"] = hit
    st.rerun(scope="app")


def _groups(series: dict, configs: dict, key: str) -> None:
    groups = group_of({n: configs.get(n, {}) for n in series}, key)
    stats = group_stats(series, groups, "sigreg")
    colours = {g: run_colour(g) for g in stats}
    _chart(MF.group_figure(stats, column="sigreg", colours=colours), "monitor_groups_sigreg")
    rk = group_stats(series, groups, "rankme")
    if rk:
        _chart(MF.group_figure(rk, column="rankme", log=False, colours=colours), "monitor_groups_rankme")
    sizes = pd.Series(groups).value_counts()
    st.caption(f"Grouped by `{_md(key)}`: " + ", ".join(f"{_md(g)} ({int(sizes[g])} run(s))" for g in stats)
               + ". Line: the mean over the group's runs at each step; band: ± 1 standard deviation (clipped at "
                 "the group's min and max).")


def _config_section(series: dict, configs: dict, rule: AlertRule) -> None:
    if not any(configs.get(n) for n in series):
        return
    st.subheader("Runs × config")
    st.dataframe(config_table(series, configs, rule), hide_index=True, width="stretch", key="mon_config_table",
                 column_config={"final SIGReg": st.column_config.NumberColumn(format="%.4g"),
                                "best SIGReg": st.column_config.NumberColumn(format="%.4g")})
    st.caption("Click a column header to sort. Config: what each run recorded with `RunWriter(..., config={...})` "
               "(`sigreg demo-train` records lambda, seed, steps, lr, ...); empty for runs without one.")


def _figures(series: dict, bands: dict, view: dict, scalars: list, log_scalars: bool) -> dict:
    """Every figure of the view (the HTML download draws them all; the page draws the chosen ones)."""
    kw = {"colours": view["colours"], "x": view["x"]}
    return {"Curves": stack_figure(series, bands, smoothing=view["smoothing"], rule=view["rule"], scalars=scalars,
                                   log_scalars=log_scalars, hover=view["hover"], **kw),
            "Per-slice quantiles": MF.quantiles_figure(series, smoothing=view["smoothing"], **kw),
            "Per-slice distribution": MF.distribution_figure(series, **kw)}


def _live_body(runs: dict, view: dict) -> None:
    if SS.get("mon_live") and {i.path for i in _discover()} - set(SS.get("mon_known") or []):
        st.rerun(scope="app")  # a new run appeared: redraw the picker too (it is outside this fragment)
    series, bands, errors = _load(runs)
    for name, msg in errors.items():
        st.error(f"{_md(name)}: {_md(msg)}")
    if not series:
        return
    SS["mon_loaded"] = {n: runs[n] for n in series}
    rule = view["rule"]
    st.caption("Latest logged step: " + ", ".join(f"{_md(n)} **{s}**" for n, s in V.latest_steps(series).items()))
    _toast(series, rule)
    configs = _configs({n: runs[n] for n in series})
    if view["group"]:  # grouped: what was asked for comes first
        st.subheader("Groups")
        _groups(series, configs, view["group"])
    # then the curves: a refresh draws them before the tables below (what a live view is watched for)
    st.subheader("Curves")
    scalars = V.scalar_columns(series)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")  # at 1000 px with the sidebar a longer label was cut
    default = [c for c in ("loss", "knn_accuracy", "linear_probe_accuracy")  # the probes (RunWriter.log(labels=))
               if c in scalars] or scalars[:1]
    chosen = c1.multiselect("Logged scalars drawn as panels", scalars, default=default, key="mon_scalars",
                            help="Any numeric column your run logged (loss, lambda, k-NN accuracy, ...).")
    log_y = c2.toggle("Log scale", value=False, key="mon_scalar_log", help="The scalar panels on a log scale.")
    kw = {"colours": view["colours"], "x": view["x"]}
    fig = stack_figure(series, bands, smoothing=view["smoothing"], rule=rule, scalars=chosen, log_scalars=log_y,
                       hover=view["hover"], **kw)
    _clicked(_chart(fig, "monitor_curves", key="mon_click_curves", on_select="rerun", selection_mode="points"), runs)
    st.caption("One step axis for every panel: hover a point to mark its step across all panels (its run's values "
               "there are in the label); click it to open that step below. Null band: central 95 % of SIGReg over "
               "200 N(0, I) batches of the same size, on the run's own directions (Monte Carlo, cached); the "
               "verdict uses the overall p-value (below 1e-3) and the collapse modes. Markers and dotted lines: "
               "the run's alerts (▲ deterioration, ✕ collapse), in the verdict's colour."
               + (" Smoothing: the p-value and the verdict are never smoothed." if view["smoothing"] else "")
               + (" Hover *every run*: a click opens the step of the first run plotly lists there."
                  if view["hover"] == "step" else ""))
    for note in V.band_notes(series, bands):
        st.caption(note)
    which = st.segmented_control("Per-slice statistic", ["quantiles", "distribution over steps"],
                                 default="quantiles", key="mon_slice_view") or "quantiles"
    if which == "quantiles":  # only the chosen one is built (a live refresh does less)
        _clicked(_chart(MF.quantiles_figure(series, smoothing=view["smoothing"], **kw), "monitor_slice_quantiles",
                        key="mon_click_q", on_select="rerun", selection_mode="points"), runs)
    else:
        _chart(MF.distribution_figure(series, **kw), "monitor_slice_distribution")
        st.caption("TensorBoard's distribution mode, from the quantiles each step logged (median, 95 %, max over "
                   "the slices); the dashed line is the one-slice null 95 % quantile (exact law).")
    st.subheader("Alerts")
    _alert_table(series, rule)
    _config_section(series, configs, rule)
    st.subheader("Steps")
    table = MF.steps_table(series, TABLE_COLUMNS)
    st.dataframe(table, hide_index=True, width="stretch", height=320, key="mon_steps_table",
                 column_config={"p_value": st.column_config.NumberColumn(format="%.3g"),
                                "sigreg": st.column_config.NumberColumn(format="%.4g"),
                                "sigreg_over_null": st.column_config.NumberColumn("× null mean", format="%.3g")})
    st.caption(f"{len(table):,} steps of {len(series)} run(s).")
    SS["_mon_curves"] = (chosen, log_y)


def _downloads(runs: dict, view: dict) -> None:
    """Outside the refreshing fragment (a refresh never cancels a download); each reads the runs when clicked."""
    def fresh():
        return V.load_runs(runs, lambda p: V.open_reader(p, cfg).timeseries(),
                           lambda p, n, d: V.open_reader(p, cfg).null_band(n, d))[:2]

    def alerts_csv() -> bytes:
        return MF.alert_table(fresh()[0], view["rule"]).to_csv(index=False).encode()

    def steps_csv() -> bytes:
        return MF.steps_table(fresh()[0], TABLE_COLUMNS).to_csv(index=False).encode()

    def charts_html() -> bytes:
        series, bands = fresh()
        return MF.figures_html(_figures(series, bands, view, *curves), f"latent-health: {', '.join(series)}")

    cfg, curves = _cfg(), SS.get("_mon_curves", ([], False))
    c = st.columns(3)
    # short labels: at 1000 px with the sidebar open, three longer ones were cut; the help says the rest
    c[0].download_button("Alerts CSV", alerts_csv, file_name="monitor_alerts.csv", mime="text/csv",
                         key="mon_dl_alerts", icon=":material/table:", on_click="ignore",
                         help="The alert table of the runs shown.")
    c[1].download_button("Steps CSV", steps_csv, file_name="monitor_steps.csv", mime="text/csv",
                         key="mon_dl_csv", icon=":material/table:", on_click="ignore",
                         help="Every logged step of all runs shown.")
    c[2].download_button("Charts HTML", charts_html, file_name="monitor_charts.html",
                         mime="text/html", key="mon_dl_html", icon=":material/description:", on_click="ignore",
                         help="All charts in one offline HTML file.")
    st.caption("Downloads read the runs when clicked (the latest steps, even while live). PNG of any chart: the "
               "camera icon in the chart's toolbar.")


def _open_step(runs: dict):
    """One logged step with a kept snapshot: its embedding cloud here, its full report on the Inspect page."""
    loaded = SS.get("mon_loaded") or {}
    names = [n for n in runs if n in loaded]
    if not names:
        return None
    st.subheader("One step: its embedding cloud, or its full report on Inspect")
    cfg = _cfg()
    if SS.get("mon_open_run") not in names:
        SS.pop("mon_open_run", None)
    c1, c2, c3 = st.columns([1.5, 2, 1.5], vertical_alignment="bottom")
    name = c1.selectbox("Run", names, key="mon_open_run")
    path = runs[name]
    try:
        df = _series(path, run_version(path), cfg)
    except Exception as exc:  # reported above already
        st.caption(_md(exc))
        return None
    have = df[df["snapshot"].notna()]
    if have.empty:
        st.caption(f"{_md(name)}: no snapshot kept (retention dropped them all).")
        return None
    steps = [int(s) for s in have["step"]]
    want = SS.get("mon_open_step")
    if want is not None and want not in steps:
        SS["mon_open_step"] = V.nearest_kept(steps, want)
        st.caption(f"Step {_md(want)} kept no snapshot (retention): showing the nearest kept step, "
                   f"{SS['mon_open_step']}.")
    verdict = dict(zip(have["step"].astype(int), have["verdict"].fillna("not scored")))
    step = c2.selectbox("Step (snapshots kept; type to search, or click a point on a curve)", steps[::-1],
                        key="mon_open_step", format_func=lambda s: f"step {s} — {verdict.get(s, '')}")
    if c3.button("Open in Inspect", key="mon_open_btn", icon=":material/biotech:", type="primary"):
        try:
            p = V.open_reader(path, cfg).snapshot_path(step)
        except EmbeddingLoadError as exc:  # an index pointing outside the run
            st.error(_md(exc))
            return None
        if p is None:
            st.error(f"{_md(name)}: the snapshot of step {step} is gone (dropped by retention); pick another step.")
            return None
        SS["lh_inspect_request"] = {"path": str(p), "label": f"{name} step {step}"}
        st.switch_page("pages/inspect.py")
    if len(steps) < len(df):
        st.caption(f"{len(df) - len(steps)} of {len(df)} steps have no snapshot kept (retention); their rows stay.")
    _cloud(path, name, int(step), cfg)
    return name, int(step)


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
    what = ("top-2 principal axes" if kind == "pca" else f"slice {view.slice_index} of {m} (statistic {stat:.4g}"
            + (", the worst)" if view.slice_index == worst else ")"))
    _chart(cloud_figure(view, title=f"{name}, step {step}: {what}"), f"monitor_cloud_step_{step}", key="mon_cloud_chart")
    st.caption(f"{view.note}. Highlighted: {view.rule} — {view.outlier_rows.size:,} of {view.n_total:,} rows.")
    if view.outlier_rows.size:
        st.download_button("Outlier rows CSV", outlier_frame(view).to_csv(index=False).encode(),
                           file_name=f"{name.replace('/', '_')}_step{step}_outliers.csv", mime="text/csv",
                           key="mon_dl_outliers", icon=":material/table:", on_click="ignore")


# ------------------------------------------------------------------------------ page
st.title("Monitor")
st.markdown("Latent health over training: SIGReg, its p-value and verdict, RankMe and the per-slice statistics at "
            "every logged step, for every run. Log a run with `RunWriter` (two lines in the training loop; pass "
            "`config={...}` to group runs) or try `sigreg demo-train`; see `docs/monitor.md`.")
_read_url()
with st.container(border=True):
    runs, colours = _choose_runs()
    c1, c3, c4 = st.columns([1.3, 1.3, 1.6])
    live = c1.toggle("Live refresh", value=False, key="mon_live",
                     help="Re-read the runs' indexes every few seconds (only runs that changed are re-read; "
                          "new runs are picked up).")
    interval = c1.select_slider("Refresh every (seconds)", INTERVALS, value=5, key="mon_interval",
                                disabled=not live)
    smoothing = c3.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="mon_smoothing",
                          help="TensorBoard's smoothing: debiased exponential moving average with this weight; the "
                               "raw curve stays drawn faint. 0 = off.")
    hover = c3.radio("Hover shows", list(HOVER_MODES), horizontal=True, key="mon_hover", format_func=HOVER_MODES.get,
                     help="Both mark the hovered step across every panel. One run: the label lists the hovered run's "
                          "values on every panel, and a click opens that point's step. Every run: a label for "
                          "every run on every panel (a click opens the step of the first run listed).")
    x_axis = c4.radio("Horizontal axis", list(MF.X_MODES), horizontal=True, key="mon_x",
                      format_func={"step": "step", "wall": "wall time", "relative": "relative"}.get,
                      help="Step; wall-clock time of each logged step (UTC); or time since each run's first step.")
    keys = config_keys(_configs(runs))
    url_group = SS.pop("_mon_url_group", None)
    if url_group is not None:
        SS["mon_group"] = url_group if url_group in keys else NO_GROUP
    if SS.get("mon_group") not in [NO_GROUP, *keys]:
        SS.pop("mon_group", None)
    g1, g2, g3 = st.columns([1.6, 1, 1])
    group = g1.selectbox("Group by config", [NO_GROUP, *keys], key="mon_group",
                         help="Runs that recorded `RunWriter(..., config={...})`: group them by one key (e.g. "
                              "lambda) and draw mean ± 1 sd per group. Runs without that key form their own group.")
    warmup = g2.number_input("Alert warm-up (steps)", min_value=0, value=0, step=1, key="mon_warmup",
                             help="Alerts ignore the steps before this one (the untrained start). The rule already "
                                  "takes the best level reached so far as its reference.")
    margin = g3.number_input("Alert margin (levels)", min_value=1, max_value=4, value=2, step=1, key="mon_margin",
                             help="An alert is a level this many steps worse than the best level reached (a "
                                  "collapse always alerts). 1: every rise; 2 (default): not a one-level flicker.")
view = {"runs": list(runs), "colours": colours, "x": x_axis, "smoothing": float(smoothing), "hover": hover,
        "group": None if group == NO_GROUP else group, "rule": AlertRule(warmup=int(warmup), margin=int(margin))}
if not runs:
    st.info("Pick at least one run above (the shipped demo runs are under `sample_data/runs/`), or clear the filter.")
    _write_url(view)
    st.stop()


@st.fragment(run_every=interval if live else None)
def live_section() -> None:
    _live_body(runs, view)


live_section()
_downloads(runs, view)
view["step"] = _open_step(runs)
_write_url(view)
