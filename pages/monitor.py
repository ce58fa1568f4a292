"""Monitor page: watch latent health over the steps of one or several training runs, live.

Thin: widgets, and calls into :mod:`sigreg_core.runs` (reading the runs' indexes) and
:mod:`sigreg_core.present.monitor_figures` (the figures).  A run is a directory written by
``sigreg_core.runs.RunWriter`` (or ``sigreg demo-train``), or a folder of snapshot files
whose names carry a step number, below an allowed server root.  The time series come
from the run's SQLite index, never from the snapshot files, and are cached on the
index's size and mtime, so a live refresh only re-reads a run that changed.
Choosing a step opens its full report on the Inspect page (no second implementation).
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

from sigreg_core.present import figures as F
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


@st.cache_data(show_spinner=False, ttl=10)
def _discover(roots: tuple) -> list:
    return [str(p) for p in find_runs([_Path(r) for r in roots])]


def _chart(fig, name: str, **kw):
    return st.plotly_chart(fig, width="stretch", config=F.plotly_config(name), **kw)


# ------------------------------------------------------------------------ run choice
def _choose_runs() -> dict:
    roots = tuple(str(r) for r in allowed_roots())
    found = _discover(roots)
    extra = st.session_state.setdefault("mon_extra_runs", [])
    options = list(dict.fromkeys(found + extra))
    labels = _labels(options)
    pending = st.session_state.pop("mon_pending_add", None)
    if pending and pending in options:
        st.session_state["mon_runs"] = list(dict.fromkeys(list(st.session_state.get("mon_runs", [])) + [pending]))
    if "mon_runs" not in st.session_state:
        st.session_state["mon_runs"] = [p for p in options if _Path(p).parent == SHIPPED.resolve()] or options[:2]
    st.session_state["mon_runs"] = [p for p in st.session_state["mon_runs"] if p in options]
    picked = st.multiselect("Runs", options, key="mon_runs", format_func=labels.get,
                            help="Run directories written by RunWriter / `sigreg demo-train`, or folders of "
                                 "snapshot files named with a step number, found below the allowed directories.")
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
    return {labels[p]: p for p in picked}


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
def _alerts(series: dict) -> None:
    for name, df in series.items():
        a = MF.run_alert(df)
        if a is None:
            st.info(f"**{md(name)}**: no scored step yet.", icon=":material/hourglass_empty:")
        elif a["level"] == "collapsed":
            st.error(f"**{md(name)}**: {a['message']}", icon=":material/warning:")
        elif a["level"] == "suspicious":
            st.warning(f"**{md(name)}**: {a['message']}", icon=":material/error:")
        else:
            st.success(f"**{md(name)}**: {a['message']}", icon=":material/check_circle:")
        bad = df["error"].notna().sum() if "error" in df else 0
        if bad:
            st.caption(f"{md(name)}: {bad} step(s) could not be scored (see the table's error column).")


def _scalar_columns(series: dict) -> list:
    cols = []
    for df in series.values():
        for c in df.attrs.get("scalar_columns", []):
            if c not in cols and pd.to_numeric(df[c], errors="coerce").notna().any():
                cols.append(c)
    return cols


def _live_body(runs: dict, settings: Settings) -> None:
    series, bands, errors = _load(runs, settings)
    for name, msg in errors.items():
        st.error(f"{md(name)}: {md(msg, None)}")
    if not series:
        return
    st.session_state["mon_loaded"] = {n: runs[n] for n in series}
    _alerts(series)
    figs = {
        "SIGReg": MF.sigreg_figure(series, bands),
        "p-value": MF.pvalue_figure(series),
        "Verdict": MF.verdict_figure(series),
        "RankMe": MF.rankme_figure(series),
        "Per-slice quantiles": MF.quantiles_figure(series),
    }
    _chart(figs["SIGReg"], "monitor_sigreg")
    st.caption("Null band: central 95 % of SIGReg over 200 N(0, I) batches of the same size, scored on the run's "
               "own directions (Monte Carlo, cached). Dotted vertical lines: a run's alert step.")
    c1, c2 = st.columns(2)
    with c1:
        _chart(figs["p-value"], "monitor_p_value")
    with c2:
        _chart(figs["RankMe"], "monitor_rankme")
    _chart(figs["Verdict"], "monitor_verdict")
    _chart(figs["Per-slice quantiles"], "monitor_slice_quantiles")

    scalars = _scalar_columns(series)
    if scalars:
        st.subheader("Your logged scalars")
        default = [c for c in ("loss", "pred_loss", "sigreg_loss") if c in scalars] or scalars[:1]
        chosen = st.multiselect("Scalars", scalars, default=default, key="mon_scalars")
        log_y = st.toggle("Log scale", value=False, key="mon_scalar_log")
        cols = st.columns(2)
        for i, c in enumerate(chosen):
            figs[c] = MF.scalar_figure(series, c, log=log_y)
            with cols[i % 2]:
                _chart(figs[c], f"monitor_{c}")

    st.subheader("Steps")
    names = list(series)
    pick = st.selectbox("Run", names, key="mon_table_run") if len(names) > 1 else names[0]
    df = series.get(pick, series[names[0]])
    extra = [c for c in df.attrs.get("scalar_columns", []) if c in df]
    table = df[[c for c in TABLE_COLUMNS if c in df] + extra + ["snapshot"]]
    st.dataframe(table, hide_index=True, width="stretch", height=320,
                 column_config={"p_value": st.column_config.NumberColumn(format="%.3g"),
                                "sigreg": st.column_config.NumberColumn(format="%.4g"),
                                "sigreg_over_null": st.column_config.NumberColumn("× null mean", format="%.3g")})
    c = st.columns(2)
    c[0].download_button("Steps CSV", table.to_csv(index=False).encode(), file_name=f"{pick}_steps.csv",
                         mime="text/csv", key="mon_dl_csv", icon=":material/table:", on_click="ignore")
    c[1].download_button("All charts (HTML, offline)", lambda: MF.figures_html(figs, f"latent-health: {', '.join(names)}"),
                         file_name="monitor_charts.html", mime="text/html", key="mon_dl_html",
                         icon=":material/description:", on_click="ignore")
    st.caption("PNG of any chart: the camera icon in the chart's toolbar.")


def _open_step(runs: dict) -> None:
    """Pick a logged step with a kept snapshot and open its full report on the Inspect page."""
    loaded = st.session_state.get("mon_loaded") or {}
    names = [n for n in runs if n in loaded]
    if not names:
        return
    st.subheader("Open a step on the Inspect page")
    settings = _settings()
    cfg = (settings.preset, settings.num_slices, settings.seed, settings.max_rows)
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
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
    step = c2.selectbox("Step (snapshots kept)", steps[::-1], key="mon_open_step",
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


# ------------------------------------------------------------------------------ page
st.title("Monitor")
st.markdown("Latent health over training: SIGReg, its p-value and verdict, RankMe and the per-slice statistics at "
            "every logged step, for one or several runs. Log a run with `RunWriter` (two lines in the training "
            "loop) or try `sigreg demo-train`; see `docs/monitor.md`.")
settings = _settings()
with st.container(border=True):
    runs = _choose_runs()
    c1, c2 = st.columns([1, 2])
    live = c1.toggle("Live refresh", value=False, key="mon_live",
                     help="Re-read the runs' indexes every few seconds (only runs that changed are re-read).")
    interval = c2.select_slider("Refresh every (seconds)", INTERVALS, value=5, key="mon_interval",
                                disabled=not live)

if not runs:
    st.info("Pick at least one run above (the shipped demo runs are under `sample_data/runs/`).")
    st.stop()


@st.fragment(run_every=interval if live else None)
def live_section() -> None:
    _live_body(runs, _settings())


live_section()
_open_step(runs)
