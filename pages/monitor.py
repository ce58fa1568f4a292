"""Monitor page: watch latent health over the steps of every training run, live.

Thin: widgets, and calls into :mod:`sigreg_core.runs` (discovery, the runs' indexes, the alert
rule, config groups) and :mod:`sigreg_core.present.monitor_figures` (the figures).  A run is a
directory written by ``sigreg_core.runs.RunWriter`` (or ``sigreg demo-train``), or a folder of
snapshot files whose names carry a step number, below an allowed server root.

* **Every run**: :func:`sigreg_core.runs.discovery.discover_runs` finds all runs below the
  allowed roots (re-walking only when a directory changed), newest first; the newest
  ``Show at most`` runs matching the filter are shown by default; each run has one name (its
  path below its root) and one colour (a hash of that name) on every page and every reload.
* **Alerts that mean something**: :mod:`sigreg_core.runs.alerts` (the one rule of the page, its
  toast and every alert sink): a deterioration of ``margin`` levels from the best level reached
  after the warm-up, or a collapse.
* **Read and act**: click a point on any curve to open that step (its cloud here, a button to
  its full report on Inspect); full tick labels on log axes.
* **Group by config**: runs that recorded ``RunWriter(..., config={...})`` are grouped by any key
  (mean ± 1 sd per group) and tabulated (runs × config × final / best / first alert).
* **Share a view**: runs, smoothing, axis, grouping and the opened step live in the URL query.
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

import numpy as np
import pandas as pd

from sigreg_core.assessment.severity import is_collapse, severity, verdict_colour
from sigreg_core.present import figures as F
from sigreg_core.present.cloud import cloud_figure, cloud_view, outlier_frame
from sigreg_core.present import monitor_figures as MF
from sigreg_core.inputs.loading import EmbeddingLoadError, allowed_roots
from sigreg_core.util.text import md, plotly_text  # text from files is data: escaped before markdown / Plotly
from sigreg_core.present.report import DEFAULTS, Settings
from sigreg_core.runs import RunReader, SummaryConfig, resolve_run_dir, run_version
from sigreg_core.runs.alerts import AlertRule, alert_events
from sigreg_core.runs.discovery import discover_runs, names_unique, newest, run_colour, run_config
from sigreg_core.runs.groups import config_keys, config_table, group_of, group_stats

INTERVALS = [2, 5, 10, 30, 60]
DEFAULT_LIMIT = 12
TABLE_COLUMNS = ["step", "verdict", "modes", "sigreg", "sigreg_over_null", "p_value", "rankme", "q50", "q95",
                 "qmax", "n", "d", "m", "error"]
NO_GROUP = "(no grouping)"
SS = st.session_state


def _md(text) -> str:
    """Text from files (run names, error messages) escaped for st.markdown / captions (sigreg_core.util.text)."""
    return md(text, None)


def _settings() -> Settings:
    s = SS.get("lh_settings")
    return s if isinstance(s, Settings) else DEFAULTS


def _chart(fig, name: str, **kw):
    return st.plotly_chart(fig, width="stretch", config=F.plotly_config(name), **kw)


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


# ------------------------------------------------------------------------- the URL
def _read_url() -> None:
    """Once per session: the view in the URL query (``?run=a&run=b&smooth=0.6&x=wall&group=lambda&step=a@300``)
    becomes the widgets' state before they are drawn.  Unknown or malformed values are ignored."""
    if SS.get("_mon_url_read"):
        return
    SS["_mon_url_read"] = True
    q = st.query_params
    runs = [r for r in q.get_all("run") if r]
    if runs:
        SS["_mon_url_runs"] = runs
    try:
        sm = float(q.get("smooth", ""))
        if 0.0 <= sm <= 0.99:
            SS["mon_smoothing"] = round(sm, 2)
    except ValueError:
        pass
    if q.get("x") in MF.X_MODES:
        SS["mon_x"] = q.get("x")
    if q.get("group"):
        SS["_mon_url_group"] = q.get("group")
    step = q.get("step") or ""
    if "@" in step:
        name, _, num = step.rpartition("@")
        try:
            SS["mon_open_run"], SS["mon_open_step"] = name, int(num)
        except ValueError:
            pass


def _write_url(view: dict) -> None:
    """The view into the URL query (only the keys this page owns; a value at its default is left out)."""
    want = {"run": list(view["runs"]) or None,
            "smooth": f"{view['smoothing']:g}" if view["smoothing"] else None,
            "x": view["x"] if view["x"] != "step" else None,
            "group": view["group"] or None,
            "step": f"{view['step'][0]}@{view['step'][1]}" if view.get("step") else None}
    for k, v in want.items():
        cur = st.query_params.get_all(k)
        if v is None:
            if cur:
                del st.query_params[k]
            continue
        vals = v if isinstance(v, list) else [v]
        if cur != vals:
            st.query_params[k] = vals


# ------------------------------------------------------------------------ run choice
def _repick() -> None:
    SS["_mon_repick"] = True


def _discover(extra: tuple) -> list:
    return discover_runs([str(r) for r in allowed_roots()], extra=extra)


def _choose_runs() -> tuple[dict, dict]:
    """({name: path} of the runs to draw, {name: colour}); the names and colours are the runs' own."""
    roots = tuple(str(r) for r in allowed_roots())
    extra = SS.setdefault("mon_extra_runs", [])
    infos = _discover(tuple(extra))
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
    default = [i.path for i in newest(infos, pattern, limit)]
    url_runs = SS.pop("_mon_url_runs", None)
    known = SS.get("mon_known")
    if url_runs is not None:
        SS["mon_runs"] = [p for p in by_path if names[p] in url_runs] or default
    elif "mon_runs" not in SS or SS.pop("_mon_repick", False):
        SS["mon_runs"] = default
    elif known is not None:
        new = [i.path for i in newest(infos, pattern) if i.path not in known]  # appeared while the page was open
        if new:
            SS["mon_runs"] = list(dict.fromkeys(new + list(SS["mon_runs"])))
    SS["mon_known"] = [i.path for i in infos]
    pending = SS.pop("mon_pending_add", None)
    if pending and pending in by_path:
        SS["mon_runs"] = list(dict.fromkeys(list(SS.get("mon_runs", [])) + [pending]))
    SS["mon_runs"] = [p for p in SS["mon_runs"] if p in by_path]
    picked = st.multiselect("Runs", list(by_path), key="mon_runs", format_func=names.get,
                            help="Every run below the allowed directories (RunWriter / `sigreg demo-train` runs, "
                                 "or folders of step-numbered snapshot files), newest first. A run created while "
                                 "the page is open is added at the next refresh.")
    st.caption(f"{len(infos)} run(s) found below the allowed directories, newest first; showing {len(picked)}"
               + (f" (filter `{_md(pattern)}`)" if pattern else "") + ".")
    with st.expander("Add a run directory from the server"):
        st.caption("Allowed directories: " + (", ".join(f"`{_md(r)}`" for r in roots) or "none")
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
                    SS["mon_pending_add"] = p
                    st.rerun()
    return {names[p]: p for p in picked}, {names[p]: by_path[p].colour for p in picked}


@st.cache_data(show_spinner=False, max_entries=512)
def _config(path: str, version: tuple) -> dict:
    return run_config(path)


def _configs(runs: dict) -> dict:
    out = {}
    for name, path in runs.items():
        try:
            out[name] = _config(path, run_version(path))
        except Exception:  # a broken run: no config (its error is shown with its series)
            out[name] = {}
    return out


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
def _alert_table(series: dict, rule: AlertRule) -> None:
    table = MF.alert_table(series, rule)
    shown = table.astype(object).where(table.notna(), "–").astype(str)  # a missing step is "–", not "None"
    sev_cols = ["latest verdict", "best verdict", "worst verdict", "first alert"]

    def colour(v):
        return f"color: {verdict_colour(v)}; font-weight: 600" if isinstance(v, str) and severity(v) >= 0 else ""

    st.dataframe(shown.style.map(colour, subset=sev_cols), hide_index=True, width="stretch",
                 key="mon_alert_table",
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
    st.download_button("Alerts CSV", table.to_csv(index=False).encode(), file_name="monitor_alerts.csv",
                       mime="text/csv", key="mon_dl_alerts", icon=":material/table:", on_click="ignore")
    for name, df in series.items():
        a = MF.run_alert(df, rule)
        if a is not None:
            st.caption(f"**{_md(name)}**: {_md(a['message'])}")
        bad = int(df["error"].notna().sum()) if "error" in df else 0
        if bad:
            st.caption(f"{_md(name)}: {bad} step(s) could not be scored (see the table's error column).")


def _toast(series: dict, rule: AlertRule) -> None:
    """A toast when a watched run raises a new alert while the page is open (not for alerts already there)."""
    now = {(n, e["step"], e["verdict"]) for n, df in series.items() for e in alert_events(df, rule)}
    seen = SS.get("_mon_seen_alerts")
    if seen is not None and SS.get("_mon_seen_rule") == rule:
        for n, step, verdict in sorted(now - seen, key=lambda k: k[1])[:3]:
            st.toast(f"**{_md(n)}**: {_md(verdict)} at step {step}",
                     icon=":material/crisis_alert:" if is_collapse(verdict) else ":material/warning:")
    SS["_mon_seen_alerts"] = now | (seen or set()) if SS.get("_mon_seen_rule") == rule else now
    SS["_mon_seen_rule"] = rule


def _clicked(event, runs: dict) -> None:
    """A click on a point of a curve opens that step below (its cloud; a button to its report on Inspect)."""
    try:
        pts = event["selection"]["points"]
    except (KeyError, TypeError):
        return
    if not pts:
        return
    cd = pts[0].get("customdata")
    if not isinstance(cd, (list, tuple)) or len(cd) < 4:
        return
    back = {plotly_text(n): n for n in runs}
    run = back.get(cd[3])
    try:
        step = int(cd[0])
    except (TypeError, ValueError):
        return
    sig = (run, step)
    if run is None or SS.get("_mon_click") == sig:
        return
    SS["_mon_click"] = sig
    SS["mon_open_run"], SS["mon_open_step"] = run, step
    st.rerun(scope="app")


def _groups(series: dict, configs: dict, key: str, rule: AlertRule) -> None:
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
    t = config_table(series, configs, rule)
    st.dataframe(t, hide_index=True, width="stretch", key="mon_config_table",
                 column_config={"final SIGReg": st.column_config.NumberColumn(format="%.4g"),
                                "best SIGReg": st.column_config.NumberColumn(format="%.4g")})
    st.caption("Click a column header to sort. Config: what each run recorded with `RunWriter(..., config={...})` "
               "(`sigreg demo-train` records lambda, seed, steps, lr, ...); empty for runs without one.")


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
    if SS.get("mon_live") and {i.path for i in _discover(tuple(SS.get("mon_extra_runs", [])))} - set(
            SS.get("mon_known") or []):
        st.rerun(scope="app")  # a new run appeared: redraw the picker too (it is outside this fragment)
    series, bands, errors = _load(runs, settings)
    for name, msg in errors.items():
        st.error(f"{_md(name)}: {_md(msg)}")
    if not series:
        return
    SS["mon_loaded"] = {n: runs[n] for n in series}
    x, smooth, rule = view["x"], view["smoothing"], view["rule"]
    kw = {"colours": colours, "x": x, "rule": rule}
    latest = {n: int(df["step"].max()) for n, df in series.items() if len(df)}
    st.caption("Latest logged step: " + ", ".join(f"{_md(n)} **{s}**" for n, s in latest.items()))
    st.subheader("Alerts")
    _alert_table(series, rule)
    _toast(series, rule)
    configs = _configs({n: runs[n] for n in series})
    if view["group"]:
        st.subheader("Groups")
        _groups(series, configs, view["group"], rule)
    figs = {
        "SIGReg": MF.sigreg_figure(series, bands, smoothing=smooth, **kw),
        "p-value": MF.pvalue_figure(series, **kw),
        "Verdict": MF.verdict_figure(series, **kw),
        "RankMe": MF.rankme_figure(series, smoothing=smooth, **kw),
        "Per-slice quantiles": MF.quantiles_figure(series, smoothing=smooth, colours=colours, x=x),
        "Per-slice distribution": MF.distribution_figure(series, colours=colours, x=x),
    }
    sel = {"on_select": "rerun", "selection_mode": "points"}
    _clicked(_chart(figs["SIGReg"], "monitor_sigreg", key="mon_click_sigreg", **sel), runs)
    st.caption("Click a point on any curve to open that step below (its cloud, and its full report on Inspect). "
               "Null band: central 95 % of SIGReg over 200 N(0, I) batches of the same size, scored on the run's "
               "own directions (Monte Carlo, cached); the verdict uses the overall p-value (below 1e-3) and the "
               "collapse modes, so a run slightly above its band can be healthy. Markers: the run's alerts "
               "(▲ deterioration, ✕ collapse), in the verdict's colour."
               + (" Smoothing: the p-value and the verdict are never smoothed." if smooth else ""))
    for note in _band_notes(series, bands):
        st.caption(note)
    c1, c2 = st.columns(2)
    with c1:
        _clicked(_chart(figs["p-value"], "monitor_p_value", key="mon_click_p", **sel), runs)
    with c2:
        _clicked(_chart(figs["RankMe"], "monitor_rankme", key="mon_click_rankme", **sel), runs)
    _chart(figs["Verdict"], "monitor_verdict")
    t1, t2 = st.tabs(["Per-slice quantiles", "Distribution over steps"])
    with t1:
        _clicked(_chart(figs["Per-slice quantiles"], "monitor_slice_quantiles", key="mon_click_q", **sel), runs)
    with t2:
        _chart(figs["Per-slice distribution"], "monitor_slice_distribution")
        st.caption("TensorBoard's distribution mode, from the quantiles each step logged (median, 95 %, max over "
                   "the slices); the dashed line is the one-slice null 95 % quantile (exact law).")

    scalars = _scalar_columns(series)
    if scalars:
        st.subheader("Your logged scalars")
        default = [c for c in ("loss", "pred_loss", "sigreg_loss", "knn_accuracy", "linear_probe_accuracy")
                   if c in scalars] or scalars[:1]  # the probes' curves (RunWriter.log(labels=)) shown when logged
        chosen = st.multiselect("Scalars", scalars, default=default, key="mon_scalars")
        log_y = st.toggle("Log scale", value=False, key="mon_scalar_log")
        cols = st.columns(2)
        for i, c in enumerate(chosen):
            figs[c] = MF.scalar_figure(series, c, log=log_y, smoothing=smooth, **kw)
            with cols[i % 2]:
                _clicked(_chart(figs[c], f"monitor_{c}", key=f"mon_click_s_{i}", **sel), runs)

    _config_section(series, configs, rule)
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
    """One logged step with a kept snapshot: its embedding cloud here, its full report on the Inspect page."""
    loaded = SS.get("mon_loaded") or {}
    names = [n for n in runs if n in loaded]
    if not names:
        return None
    st.subheader("One step: its embedding cloud, or its full report on Inspect")
    settings = _settings()
    cfg = (settings.preset, settings.num_slices, settings.seed, settings.max_rows)
    if SS.get("mon_open_run") not in names:
        SS.pop("mon_open_run", None)
    c1, c2, c3 = st.columns([1.5, 2, 1.5], vertical_alignment="bottom")
    name = c1.selectbox("Run", names, key="mon_open_run")
    path = runs[name]
    try:
        df = _series(path, run_version(path), cfg)
    except Exception as exc:  # reported above already
        st.caption(md(exc, None))
        return None
    have = df[df["snapshot"].notna()]
    if have.empty:
        st.caption(f"{md(name)}: no snapshot kept (retention dropped them all).")
        return None
    steps = [int(s) for s in have["step"]]
    want = SS.get("mon_open_step")
    if want is not None and want not in steps:
        try:
            near = min(steps, key=lambda s: abs(s - int(want)))
        except (TypeError, ValueError):
            near = steps[-1]
        st.caption(f"Step {_md(want)} kept no snapshot (retention): showing the nearest kept step, {near}.")
        SS["mon_open_step"] = near
    verdict = dict(zip(have["step"].astype(int), have["verdict"].fillna("not scored")))
    step = c2.selectbox("Step (snapshots kept; type to search, or click a point on a curve)", steps[::-1],
                        key="mon_open_step", format_func=lambda s: f"step {s} — {verdict.get(s, '')}")
    if c3.button("Open in Inspect", key="mon_open_btn", icon=":material/biotech:", type="primary"):
        try:
            p = RunReader(path).snapshot_path(step)
        except EmbeddingLoadError as exc:  # an index pointing outside the run
            st.error(md(exc, None))
            return None
        if p is None:
            st.error(f"{md(name)}: the snapshot of step {step} is gone (dropped by retention); pick another step.")
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
            "every logged step, for every run. Log a run with `RunWriter` (two lines in the training loop; pass "
            "`config={...}` to group runs) or try `sigreg demo-train`; see `docs/monitor.md`.")
_read_url()
settings = _settings()
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
    x_axis = c4.radio("Horizontal axis", list(MF.X_MODES), horizontal=True, key="mon_x",
                      format_func={"step": "step", "wall": "wall time", "relative": "relative"}.get,
                      help="Step; wall-clock time of each logged step (UTC); or time since each run's first step.")
    configs = _configs(runs)
    keys = config_keys(configs)
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
rule = AlertRule(warmup=int(warmup), margin=int(margin))
group = None if group == NO_GROUP else group

if not runs:
    st.info("Pick at least one run above (the shipped demo runs are under `sample_data/runs/`), or clear the filter.")
    _write_url({"runs": [], "smoothing": float(smoothing), "x": x_axis, "group": group})
    st.stop()


@st.fragment(run_every=interval if live else None)
def live_section() -> None:
    _live_body(runs, colours, _settings(), {"x": x_axis, "smoothing": float(smoothing), "rule": rule,
                                            "group": group})


live_section()
opened = _open_step(runs)
_write_url({"runs": list(runs), "smoothing": float(smoothing), "x": x_axis, "group": group, "step": opened})
