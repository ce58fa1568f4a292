"""Inspect page: load an embedding set and get the full latent-health report.

Thin: it arranges widgets and calls ``sigreg_core`` (loader, assessment, report,
figures).  The report is cached on (sha256 of the data + load options, settings),
so selecting a slice or switching pages never recomputes the statistic.

Speed: every section of the report is one function below (``_section_*``), called in
order by :func:`_report`.  Slice selection (the radio, the index, a click on a point)
lives in a fragment (``st.fragment``): it reruns only that section, on the cached
report and the slice's cached figures (``selected_slice_figures``).  Sections that
do not depend on the selected slice are built once per report.  To add a section,
write a ``_section_<name>(rep, z, source)`` function and call it from :func:`_report`.

Honest states: the report shown always belongs to the current selection (source,
file, array, view, settings); after a bad file or a failed computation only the
error is shown.
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

import time

import numpy as np

from sigreg_core.present import figures as F
from sigreg_core.present import verdict_card as VC
from sigreg_core.present import inspect_text as IT
from sigreg_core.inputs.loading import (
    SUPPORTED_EXTENSIONS,
    EmbeddingLoadError,
    allowed_roots,
    list_keys,
    load_embeddings,
    resolve_server_path,
)
from sigreg_core.util.text import md  # text from files is data: escaped before markdown
from sigreg_core.assessment.probes import INTERACTIVE_ROWS, label_quality
from sigreg_core.inputs.labels import LABEL_COLUMNS, LABEL_TYPES, align_to_rows, label_keys, load_labels
from sigreg_core.inputs.limits import max_upload_bytes, max_upload_mb
from sigreg_core.present.exports import assessment_json, html_report, per_slice_csv
from sigreg_core.present.report_cache import ReportCache
from sigreg_core.present import prefetch as PF
from sigreg_core.present import background as BG
from sigreg_core.present.report import (
    DEFAULTS,
    Settings,
    format_p,
    healthy_references,
    metrics_table,
    min_p_note,
    overview_figures,
    pick_slice,
    selected_slice_figures,
    slice_rank,
    verdict_tone,
)
from sigreg_core.inputs.samples import DEFAULT_SAMPLE, list_samples

MAX_UPLOAD_MB = max_upload_mb()  # LATENT_HEALTH_MAX_UPLOAD; decoding an upload gets the same byte limit
UPLOAD_TYPES = sorted({ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS})


@st.cache_resource(show_spinner=False)
def report_cache() -> ReportCache:
    """One bounded LRU of reports per server process (keyed on data digest and settings)."""
    return ReportCache(max_entries=16)  # room for the other presets' reports, prefetched


@st.cache_resource(show_spinner=False)
def kernel_warmup(first: str) -> list:
    """Once per server: compile every preset's kernels in the background (the page's preset first); until
    a preset's are ready it is scored on the exact torch path, so no click waits for numba."""
    return PF.start_kernels(first)


@st.cache_resource(show_spinner=False)
def prefetcher() -> PF.Prefetcher:
    """The background worker that makes every preset ready before it is asked for (issue 23)."""
    return PF.Prefetcher(report_cache())


def _settings() -> Settings:
    s = st.session_state.get("lh_settings")
    return s if isinstance(s, Settings) else DEFAULTS


def _chart(fig, name: str, **kwargs):
    return st.plotly_chart(fig, width="stretch", config=F.plotly_config(name), **kwargs)


# ------------------------------------------------------------------ sources
def _take_request() -> None:
    """Honour ``st.session_state["lh_inspect_request"]`` = {"path": ..., "label": ...} set by another page
    (the Monitor opens a run's snapshot here): load it as a server path (allowed roots apply)."""
    req = st.session_state.pop("lh_inspect_request", None)
    if not isinstance(req, dict) or not req.get("path"):
        return
    st.session_state["insp_source"] = "Server path"
    st.session_state["insp_path"] = str(req["path"])
    st.session_state["insp_path_loaded"] = str(req["path"])
    st.session_state["insp_request_label"] = str(req.get("label") or req["path"])


def _choose_source(settings: Settings):
    """Return (load_key, loader thunk, source description) or None when nothing is chosen yet."""
    _take_request()
    kind = st.radio("Source", ["Sample", "Upload", "Server path"], horizontal=True, key="insp_source",
                    help="Shipped sample sets, files uploaded from your browser (held in RAM, "
                         f"{MAX_UPLOAD_MB} MB at most each), or a file on the server below an allowed directory.")
    max_rows = settings.max_rows
    drop = False
    if kind != "Sample":  # samples are finite; files may hold NaN / Inf rows
        drop = st.checkbox("Drop non-finite rows", key="insp_drop_nonfinite",
                           help="Score the rows whose values are all finite and say how many were dropped; "
                                "unticked, a file with NaN or Inf values is refused.")
    if kind == "Sample":
        samples = {s.name: s for s in list_samples()}
        names = list(samples)
        name = st.selectbox("Sample set", names, index=names.index(DEFAULT_SAMPLE), key="insp_sample")
        s = samples[name]
        st.caption(s.description)
        st.session_state["insp_container"] = lambda: (s.path, None)  # where a labels key would be read
        return (("sample", name, max_rows),
                lambda: load_embeddings(s.path, key=s.key, max_rows=max_rows),
                {"kind": "sample", "name": name})
    if kind == "Upload":
        files = st.file_uploader(
            f"Embedding files ({', '.join('.' + t for t in UPLOAD_TYPES)})", type=UPLOAD_TYPES,
            accept_multiple_files=True, max_upload_size=MAX_UPLOAD_MB, key="insp_upload",
            help="Shape (N, D), or (V, N, D) for V views. Nothing is unpickled: safetensors, "
                 "torch.load(weights_only=True), numpy without pickle.",
        )
        if not files:
            st.session_state.pop("insp_upload_seen", None)
            st.caption("Drop one or more files; pick which one to inspect below.")
            return None
        by_id = {f.file_id: f for f in files}
        seen = st.session_state.get("insp_upload_seen") or []
        new = [i for i in by_id if i not in seen]
        if new and seen and len(files) > 1:
            st.session_state["insp_upload_pick"] = new[-1]  # a newly added file becomes the selection
        st.session_state["insp_upload_seen"] = list(by_id)
        fid = st.selectbox("File", list(by_id), format_func=lambda i: f"{by_id[i].name} ({by_id[i].size:,} bytes)",
                           key="insp_upload_pick") if len(files) > 1 else files[0].file_id
        f = by_id.get(fid, files[0])
        st.session_state["insp_container"] = lambda: (f.getvalue(), f.name)
        key = _key_picker(("upload", f.file_id), lambda: list_keys(f.getvalue(), name=f.name, max_bytes=max_upload_bytes()))
        return (("upload", f.file_id, f.name, key, drop, max_rows),
                lambda: load_embeddings(f.getvalue(), name=f.name, max_bytes=max_upload_bytes(), key=key, max_rows=max_rows,
                                        drop_nonfinite=drop),
                {"kind": "upload", "name": f.name, "bytes": f.size, "key": key})
    roots = allowed_roots()
    st.caption("Allowed directories: " + (", ".join(md(r, None) for r in roots) or "none")
               + " (set `LATENT_HEALTH_ALLOWED_ROOTS` to change).")
    with st.form("insp_path_form", border=False):
        path = st.text_input("Path on the server", key="insp_path",
                             placeholder="e.g. healthy.safetensors or /data/run1/step_1000.safetensors")
        submitted = st.form_submit_button("Load")
    if submitted:
        st.session_state["insp_path_loaded"] = path
    chosen = st.session_state.get("insp_path_loaded")
    if not chosen:
        return None
    try:
        resolved = resolve_server_path(chosen)
    except EmbeddingLoadError as exc:
        st.session_state["insp_path_loaded"] = None
        st.error(md(exc, None))
        return False
    mtime = resolved.stat().st_mtime_ns
    st.session_state["insp_container"] = lambda: (resolved, None)
    key = _key_picker(("path", str(resolved), mtime), lambda: list_keys(resolved))
    desc = {"kind": "server path", "name": str(resolved), "key": key}
    label = st.session_state.get("insp_request_label")
    if label and chosen == st.session_state.get("insp_path"):
        desc["label"] = label
        st.caption(f"Opened from another page: {md(label)}")
    return (("path", str(resolved), mtime, key, drop, max_rows),
            lambda: load_embeddings(resolved, key=key, max_rows=max_rows, drop_nonfinite=drop), desc)


def _key_picker(ident: tuple, lister) -> str | None:
    """When a container holds several usable arrays, let the user pick one (listing is cached)."""
    cache = st.session_state.setdefault("insp_keys", {})
    if ident not in cache:
        try:
            cache[ident] = [e for e in lister() if e.usable]
        except EmbeddingLoadError:
            cache[ident] = []  # the load itself will report the problem
    entries = cache[ident]
    if len(entries) <= 1:
        return None
    labels = {e.key: str(e) for e in entries}
    return st.selectbox("Array in the file", list(labels), format_func=labels.get, key=f"insp_key_{hash(ident)}")


def _load(choice) -> bool:
    """Load the chosen source unless it is the one already loaded.

    True when ``insp_loaded`` now holds the chosen data; False after a load error (shown as
    one line): the page then shows no report, since the previous one belongs to another file.
    """
    load_key, thunk, desc = choice
    if st.session_state.get("insp_load_key") == load_key:
        return True
    if st.session_state.get("insp_failed_key") == load_key:
        st.error(md(st.session_state["insp_failed_msg"], None))
        return False
    try:
        with st.spinner(f"Reading {md(desc['name'])} ..."):
            emb = thunk()
    except EmbeddingLoadError as exc:
        st.session_state["insp_failed_key"] = load_key
        st.session_state["insp_failed_msg"] = IT.name_the_control(" ".join(str(exc).split()))
        st.error(md(st.session_state["insp_failed_msg"], None))
        return False
    st.session_state["insp_loaded"] = IT.loaded_record(emb, desc, load_key)
    st.session_state["insp_load_key"] = load_key
    st.session_state.pop("insp_failed_key", None)
    st.session_state["insp_slice"] = None
    return True


# ------------------------------------------------------------------ report
def _compute(z: np.ndarray, digest: str, settings: Settings):
    """The report of z under settings; records in ``insp_origin`` whether it was computed by this
    run, read from the cache, or prepared in the background (the headline says which)."""
    cache = report_cache()
    rep = cache.get(digest, settings)
    if rep is not None:
        st.session_state["insp_origin"] = ("background" if prefetcher().is_prefetched(digest, settings)
                                           else "cache")
        return rep
    shape = " × ".join(f"{k:,}" for k in z.shape)
    label = (f"Finishing the {settings.preset} report prepared in the background ..."
             if cache.building(digest, settings)
             else f"Scoring {shape} with {settings.num_slices} {settings.family} slices ...")
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="starting")

        def progress(fraction: float, message: str) -> None:
            bar.progress(min(1.0, max(0.0, float(fraction))), text=str(message)[:120])

        t0 = time.perf_counter()
        try:
            with PF.foreground():  # the background prefetch waits meanwhile
                rep = cache.get_or_build(digest, settings, z, progress=progress)
        except (ValueError, RuntimeError) as exc:
            status.update(label="Could not compute the report", state="error", expanded=True)
            st.error(md(exc, None))
            return None
        status.update(label=f"Computed in {time.perf_counter() - t0:.2f} s", state="complete", expanded=False)
    st.session_state["insp_origin"] = "computed"
    return rep


@st.cache_resource(show_spinner=False)
def background_builds() -> BG.BackgroundBuilds:
    """Long Monte Carlo nulls, built on a thread while the page stays usable."""
    return BG.BackgroundBuilds(report_cache())


def _report_with_background_null(z: np.ndarray, digest: str, settings: Settings):
    """The report for settings; a large Monte Carlo null (``BG.runs_in_background``) is built in the
    background meanwhile, and the report without it is shown until it is done."""
    if not BG.runs_in_background(settings) or (digest, settings) in report_cache():
        return _compute(z, digest, settings)
    bg = background_builds()
    job = bg.start(digest, settings, z)
    if job.done:  # in the cache (or, if evicted since, quick to rebuild: the null is cached on disk)
        return _compute(z, digest, settings)
    _background_status(digest, settings, z)
    return _compute(z, digest, BG.quick_settings(settings))


@st.fragment(run_every=1.0)
def _background_status(digest: str, settings: Settings, z: np.ndarray) -> None:
    """Progress, time left and a cancel for the background null; reruns the page when it is done."""
    bg = background_builds()
    job = bg.job(digest, settings)
    if job is None:
        return
    draws = settings.null_draws
    if job.done:
        st.rerun(scope="app")  # the full report is in the cache now
    with st.container(border=True):
        if job.running:
            left = job.seconds_left()
            eta = "estimating the time left" if left is None else f"about {left:.0f} s left"
            st.progress(job.fraction, text=f"Monte Carlo null, {draws:,} draws, in the background: "
                                           f"{job.message} · {eta} (running {job.elapsed:.0f} s)")
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.caption("The report below is the one without this null (exact per-slice law, or the automatic "
                       "null); the page stays usable and the full report replaces it when the draws are done.")
            if c2.button("Cancel", key="insp_bg_cancel", icon=":material/cancel:"):
                bg.cancel(digest, settings)
                st.rerun(scope="app")
        else:
            why = "cancelled" if job.cancelled else f"failed: {md(job.error, None)}"
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.warning(f"Monte Carlo null of {draws:,} draws {why}. The report below is without it; "
                       "set **Monte Carlo null draws** in the sidebar to auto, or run it again.",
                       icon=":material/info:")
            if c2.button("Run again", key="insp_bg_again", icon=":material/replay:"):
                bg.start(digest, settings, z, again=True)
                st.rerun(scope="app")


def _prefetch(digest: str, z: np.ndarray, settings: Settings) -> None:
    """After the page is drawn: the other presets' tables, kernels and reports, in the background."""
    if not PF.enabled():
        return
    pf = prefetcher()
    pf.warm_grids()
    if not BG.runs_in_background(settings):  # the other presets with a large null each: too costly to guess
        pf.want_reports(digest, z, settings)


#: Verdict tone (``sigreg_core.present.report.verdict_tone``, the one mapping) → Streamlit call.
_TONE_CALLS = {"good": st.success, "info": st.info, "warn": st.warning, "bad": st.error}


def _headline(items) -> None:
    """Metrics in a wrapping row, each as wide as its value: nothing is cut at any width."""
    with st.container(horizontal=True, wrap=True, gap="medium"):
        for label, value, helptext in items:
            st.metric(label, value, help=helptext, width="content", border=True)


def _section_verdict(rep) -> None:
    s = rep.summary
    show = _TONE_CALLS[verdict_tone(s["verdict"])]
    show(VC.card_markdown(s["verdict"], s.get("answers") or {}), icon=":material/monitor_heart:")
    out = s.get("outliers") or {}
    if out.get("count"):
        st.download_button(f"Outlier rows ({out['count']}, CSV)", VC.outliers_csv(out),
                           f"{_stem(st.session_state.get('insp_loaded', {}).get('source') or {})}_outlier_rows.csv",
                           "text/csv", key="dl_outliers", help=out.get("rule"))
    _headline([
        ("SIGReg", f"{s['sigreg']:.4g}", "Mean over slices of the Epps–Pulley statistic."),
        ("× null mean", f"{s['sigreg_over_null']:.3g}",
         f"SIGReg / exact null mean ({s['null_mean']:.4g}); about 1 when healthy."),
        ("Overall p-value", format_p(s["p_value"]),
         "Combination of the per-slice p-values that is valid although slices share the data. "
         "'< 1e-300' means below the smallest p-value the exact law reports."),
        IT.compute_time_metric(st.session_state.get("insp_origin", "computed"), s["seconds"]),
    ])
    st.caption(IT.summary_caption(s))
    if s.get("work_budget"):  # the work budget changed the method: say so (assessment/budget.py)
        st.caption(f"Work budget: {md(s['work_budget'], None)}")
    ev = s.get("mode_evidence") or {}
    if ev:
        lines = []
        for mode, e in ev.items():
            text = e.get("evidence") if isinstance(e, dict) else None
            lines.append(f"- **{str(mode).replace('_', ' ')}**: {text or e}")
        st.markdown("\n".join(lines))
        _evidence_buttons(ev)


def _open_evidence(family: str, index: int) -> None:
    """A click on a mode's evidence: switch to the family that holds the slice and select it."""
    if st.session_state.get("lh_family") != family:
        st.session_state["lh_family"] = family  # the sidebar's widget: the report is rebuilt for that family
    st.session_state["insp_evidence_slice"] = (family, int(index))


def _evidence_buttons(ev: dict) -> None:
    """One button per mode whose evidence names a slice: a click opens that slice here."""
    refs = IT.evidence_refs(ev)
    if not refs:
        return
    cols = st.columns(min(len(refs), 4))
    for i, (mode, fam, index, label, helptext) in enumerate(refs):
        cols[i % len(cols)].button(label, key=f"insp_ev_{mode}", on_click=_open_evidence, args=(fam, index),
                                   help=helptext)


def _slice_picker(rep) -> int:
    m = rep.num_slices
    cur = st.session_state.get("insp_slice")
    if cur is None or not 0 <= cur < m:
        cur = pick_slice(rep, "worst")
        st.session_state["insp_slice"] = cur
        st.session_state["insp_pick"] = "worst"  # the radio says what is shown

    def on_pick():
        _forget_chart_click()
        how = st.session_state["insp_pick"]
        if how != "index":
            st.session_state["insp_slice"] = pick_slice(rep, how)

    def on_index():
        _forget_chart_click()
        st.session_state["insp_pick"] = "index"
        st.session_state["insp_slice"] = pick_slice(rep, "index", int(st.session_state["insp_index"]))

    c1, c2 = st.columns([3, 1])
    c1.radio("Select a slice (or click a point in the chart)", ["worst", "median", "best", "index"],
             horizontal=True, key="insp_pick", on_change=on_pick)
    if st.session_state.get("insp_index") is None or st.session_state.get("insp_pick") != "index":
        st.session_state["insp_index"] = int(st.session_state["insp_slice"])
    c2.number_input("Slice index", min_value=0, max_value=m - 1, step=1, key="insp_index", on_change=on_index)
    return int(st.session_state["insp_slice"])


def _chart_key() -> str:
    return f"insp_slice_chart_{st.session_state.get('insp_chart_gen', 0)}"


def _forget_chart_click() -> None:
    """A selection made otherwise than by a click: a point clicked earlier must not stay highlighted.

    The sorted chart is the same figure for every slice (so the browser does not redraw it), which
    would leave plotly's own highlight on the last clicked point; a new key gives a fresh chart,
    only after a click (the one case with a highlight to clear)."""
    if st.session_state.pop("insp_chart_clicked", False):
        st.session_state["insp_chart_gen"] = st.session_state.get("insp_chart_gen", 0) + 1


def _on_chart_select() -> None:
    state = st.session_state.get(_chart_key())
    try:
        points = state["selection"]["points"]
    except (KeyError, TypeError):
        return
    for p in points:
        j = IT.point_slice(dict(p))
        if j is not None:
            st.session_state["insp_slice"] = j
            st.session_state["insp_pick"] = "index"
            st.session_state["insp_index"] = j
            st.session_state["insp_chart_clicked"] = True
            return


@st.fragment
def _section_slices(rep, z: np.ndarray, source: dict) -> None:
    """Slice selection and the selected slice's views: reruns alone (a fragment) on a new selection."""
    st.subheader("Per-slice statistics")
    j = _slice_picker(rep)
    if (not st.session_state.get("insp_full_run") and st.session_state.get("insp_cloud_kind") == "slice"
            and st.session_state.get("insp_cloud_slice") not in (None, j) and st.session_state.get("insp_cloud_pending") != j):
        # the cloud (its own fragment) shows the selected slice: a new slice reruns the page once so it follows
        st.session_state["insp_cloud_pending"] = j
        st.rerun(scope="app")
    view, sf = selected_slice_figures(rep, z, j)
    _chart(sf["slice_statistics"], "slice_statistics", key=_chart_key(), on_select=_on_chart_select,
           selection_mode="points")
    # the sorted chart above is the same for every slice (no redraw of its M points): the rank is said here
    st.subheader(f"Slice {j}: statistic {view.statistic:.4g}, p-value {format_p(view.p_value)}")
    st.caption(f"Rank {slice_rank(rep, j):,} of {rep.num_slices:,} in the sorted chart above (1 = worst).")
    note = min_p_note(rep, j)
    if note:
        st.caption(note)
    else:
        st.empty()  # same element tree for every slice: the browser updates the charts instead of remounting them
    _headline([(label, f"{view.moments[key]:.4g}", f"{ref:g} for N(0, 1)")
               for label, key, ref in [("mean", "mean", 0.0), ("std", "std", 1.0), ("skewness", "skew", 0.0),
                                       ("excess kurtosis", "kurtosis", 0.0)]])
    # histogram, Q-Q, characteristic function, weighted error: one 2 x 2 chart (one browser redraw, one PNG)
    _chart(sf["slice_views"], f"slice_{j}_views", key="insp_slice_views")


def _section_all_slices(rep, z: np.ndarray, source: dict) -> None:
    """What does not depend on the selected slice: p-value histogram, the table, the ECF band."""
    ov = overview_figures(rep)
    st.subheader("All slices")
    c1, c2 = st.columns(2)
    with c1:
        _chart(ov["p_values"], "p_values")
    with c2:
        _chart(ov["ecf_band"], "ecf_band")
    # the table on the full width: at 1000 px a half-width column cut its headers ("log10_p_valu")
    st.dataframe(rep.per_slice, height=320, hide_index=True, width="stretch",
                 column_config={"p_value": st.column_config.NumberColumn(format="%.3g"),
                                "statistic": st.column_config.NumberColumn(format="%.4g")})


@st.cache_data(show_spinner=False, max_entries=16)
def _references(n: int, d: int) -> dict:
    return healthy_references(n, d)


def _label_choice(n_orig: int, exclude):
    """The labels widgets: (identity, thunk returning the raw labels) or None (no labels chosen)."""
    keys_memo = st.session_state.setdefault("insp_label_keys", {})
    cont = st.session_state.get("insp_container")
    ident = (st.session_state.get("insp_load_key"), n_orig)
    if ident not in keys_memo and cont is not None:
        src, name = cont()
        keys_memo.clear()
        keys_memo[ident] = label_keys(src, n_orig, name=name, exclude=exclude, named_columns_only=True)
    keys = keys_memo.get(ident) or []
    modes = ["none", "upload"] + (["key"] if keys else [])
    if st.session_state.get("insp_labels_mode") not in modes:
        st.session_state["insp_labels_mode"] = "none"
    mode = st.radio("Labels", modes, horizontal=True, key="insp_labels_mode",
                    format_func={"none": "none", "upload": "upload a labels file",
                                 "key": "an array of this file"}.get,
                    help="One class per row of the embeddings, in the same order (integers, whole numbers or "
                         "text). Adds held-out k-NN and linear-probe accuracy to the companion metrics.")
    if mode == "none":
        return None
    if mode == "key":
        key = st.selectbox("Labels array", keys, key="insp_labels_key")
        return ("key", ident, key), lambda: _labels_from(cont(), key)
    up = st.file_uploader(f"Labels file ({', '.join('.' + t for t in LABEL_TYPES)})", type=LABEL_TYPES,
                          max_upload_size=MAX_UPLOAD_MB, key="insp_labels_upload")
    if up is None:
        st.caption(f"One label per row ({n_orig:,} rows): a 1-D array, or a table column "
                   f"(named {', '.join(LABEL_COLUMNS)}, or picked below).")
        return None
    cols = label_keys(up.getvalue(), n_orig, name=up.name)
    key = None
    if len(cols) > 1:
        guess = next((i for i, c in enumerate(cols) if c.strip().lower() in LABEL_COLUMNS), 0)
        key = st.selectbox("Labels column / array", cols, index=guess, key=f"insp_labels_col_{up.file_id}")
    return (("upload", up.file_id, key),
            lambda: load_labels(up.getvalue(), name=up.name, key=key, max_bytes=max_upload_bytes()))


def _labels_from(container: tuple, key: str):
    source, name = container
    return load_labels(source, name=name, key=key, max_bytes=max_upload_bytes())


def _probes(z: np.ndarray, digest: str) -> dict | None:
    """k-NN and linear-probe accuracy of the labels chosen (cached per data and labels), or None.

    Bad labels are one ``st.error`` line and the rest of the page goes on.  At most
    ``INTERACTIVE_ROWS`` rows (a seeded subsample above it, said so in the table), with a progress bar."""
    loaded = st.session_state["insp_loaded"]
    n_orig = int(loaded["original_rows"])
    choice = _label_choice(n_orig, loaded["source"].get("key"))
    if choice is None:
        st.session_state.pop("insp_probes_current", None)
        return None
    ident, thunk = choice
    memo = st.session_state.setdefault("insp_probe_memo", {})
    mk = (digest, ident)
    if mk not in memo:
        bar = None
        try:
            y = align_to_rows(thunk(), n_orig, loaded.get("row_indices"))
            bar = st.progress(0.0, text="Probes: starting ...")
            q = label_quality(z, y, max_rows=INTERACTIVE_ROWS, seed=0,
                              progress=lambda f, m: bar.progress(min(1.0, float(f)), text=f"Probes: {m} ..."))
        except (EmbeddingLoadError, ValueError) as exc:  # bad labels (InputError is a ValueError): one line
            st.session_state.pop("insp_probes_current", None)
            st.error(md(" ".join(str(exc).split()), None))
            return None
        finally:
            if bar is not None:
                bar.empty()
        memo.clear()  # one result kept: labels of one set
        memo[mk] = q
    st.session_state["insp_probes_current"] = (digest, memo[mk])
    return memo[mk]


def _section_companions(rep, z: np.ndarray, source: dict, digest: str = "") -> None:
    st.subheader("Companion metrics")
    with st.expander("Labels (optional): k-NN and linear-probe accuracy",
                     expanded=st.session_state.get("insp_labels_mode", "none") != "none", icon=":material/label:"):
        probes = _probes(z, digest)
    if rep.metrics:
        ref = _references(int(rep.summary["n"]), int(rep.summary["d"]))
        table = metrics_table(rep, ref, probes)
        for col in ("this set", "N(0, I) reference"):
            table[col] = [f"{v:.4g}" if np.isfinite(v) else "–" for v in table[col]]
        st.table(table, hide_index=True)  # static: the "reads" sentences wrap instead of being cut
        st.caption(f"Reference: what an N(0, I) set of this shape ({rep.summary['n']:,} × {rep.summary['d']}) scores, "
                   "drawn from the exact laws of these metrics (Wishart spectra); RankMe, the spectrum and the "
                   "covariance term depend on N / D, so a fixed number would mislead."
                   + (" Probe accuracies have no N(0, I) reference: chance is 1 / classes." if probes else ""))
    ov = overview_figures(rep)
    c1, c2 = st.columns(2)
    with c1:
        _chart(ov["spectrum"], "spectrum")
    with c2:
        _chart(ov["per_dimension"], "per_dimension")


_stem = IT.file_stem  # the file-name stem of the set on the page (downloads never collide)


def _section_export(rep, z: np.ndarray, source: dict, digest: str = "") -> None:
    st.subheader("Export")
    s = rep.summary
    stem = f"{_stem(source)}_{s['preset']}_seed{s['seed']}"  # what and which set: downloads never collide

    cur = st.session_state.get("insp_probes_current")
    probes = cur[1] if cur and cur[0] == digest else None  # the labels' probes go into the HTML and JSON

    def html_now() -> str:  # the slice selected when the button is pressed (the fragment may have changed it)
        j = st.session_state.get("insp_slice")
        j = int(j) if isinstance(j, int) and 0 <= j < rep.num_slices else pick_slice(rep, "worst")
        view, _ = selected_slice_figures(rep, z, j)
        return html_report(rep, view, title=f"latent-health: {stem}", source=source,
                           reference=_references(int(rep.summary["n"]), int(rep.summary["d"])), probes=probes)

    with st.container(horizontal=True, wrap=True):
        st.download_button("Per-slice CSV", lambda: per_slice_csv(rep), file_name=f"{stem}_slices.csv",
                           mime="text/csv", key="insp_dl_csv", icon=":material/table:", on_click="ignore")
        st.download_button("Assessment JSON", lambda: assessment_json(rep, source, probes),
                           file_name=f"{stem}_assessment.json", mime="application/json", key="insp_dl_json",
                           icon=":material/data_object:", on_click="ignore")
        st.download_button("HTML report (offline)", html_now, file_name=f"{stem}_report.html", mime="text/html",
                           key="insp_dl_html", icon=":material/description:", on_click="ignore")
    st.caption("PNG of any chart: the camera icon in the chart's toolbar (rendered by your browser). "
               "Every table: the download icon above it (CSV).")


@st.fragment
def _section_cloud(rep, z: np.ndarray, source: dict) -> None:
    """The cloud view (issue 13); its view control reruns only this fragment."""
    j = st.session_state.get("insp_slice")
    j = int(j) if isinstance(j, int) and 0 <= j < rep.num_slices else pick_slice(rep, "worst")
    _cloud_section(z, rep, j, source)
    st.session_state["insp_cloud_slice"] = j
    st.session_state.pop("insp_cloud_pending", None)


#: the sections below the selected slice, one tab each (at 1440 px the page is about 3 900 px tall instead of 5 800)
REPORT_TABS = ("Cloud", "All slices", "Companion metrics", "Export")


def _report(rep, z: np.ndarray, source: dict, digest: str = "") -> None:
    """The report, section by section (each section one function; slices and cloud are fragments).

    The verdict and the selected slice are always at the top; the other sections are tabs below them
    (all built on each run, so a tab opens at once and keeps its widgets' state)."""
    _section_verdict(rep)
    _section_slices(rep, z, source)
    tabs = st.tabs(list(REPORT_TABS), key="insp_tabs")
    with tabs[0]:
        _section_cloud(rep, z, source)
    with tabs[1]:
        _section_all_slices(rep, z, source)
    with tabs[2]:
        _section_companions(rep, z, source, digest)
    with tabs[3]:
        _section_export(rep, z, source, digest)


def _cloud_section(z: np.ndarray, rep, j: int, source: dict) -> None:
    """The embedding cloud itself (sigreg_core.present.cloud): principal axes, or slice j against an orthogonal axis."""
    from sigreg_core.present.cloud import cloud_figure, cloud_view, outlier_frame

    with st.container():
        st.subheader("The cloud: rows on the top-2 principal axes, or on the selected slice")
        # labels that do not change with the slice: a changed label would make a new widget (selection lost)
        kind = st.radio("View", ["pca", "slice"], horizontal=True, key="insp_cloud_kind",
                        format_func={"pca": "top-2 principal axes",
                                     "slice": "the selected slice against an orthogonal principal axis"}.get)
        memo = st.session_state.setdefault("insp_cloud_memo", {})
        flat = z.reshape(-1)
        probe = flat[:: max(1, flat.size // 4096)].tobytes()  # cheap fingerprint: ~4k values, not the whole array
        key = (hash(probe), z.shape, kind, j if kind == "slice" else None)
        try:
            view = memo.get(key)
            if view is None:
                memo.clear()  # one view kept: the arrays are up to 5000 points
                view = memo[key] = cloud_view(z, kind, slice_index=j,
                                              direction=rep.directions[:, j] if kind == "slice" else None)
        except ValueError as exc:
            st.error(md(exc, None))
            return
        _chart(cloud_figure(view), f"cloud_{kind}" + (f"_slice_{j}" if kind == "slice" else ""), key="insp_cloud_chart")
        st.caption(IT.cloud_caption(view))
        if view.outlier_rows.size:
            st.download_button("Outlier rows CSV", outlier_frame(view).to_csv(index=False).encode(),
                               file_name=f"{_stem(source)}_outlier_rows.csv", mime="text/csv", key="insp_dl_outliers",
                               icon=":material/table:", on_click="ignore")


# --------------------------------------------------------------------- page
st.title("Inspect")
st.markdown("Is this embedding set healthy or collapsing? SIGReg scores it against an isotropic Gaussian, "
            "slice by slice. See the **Method** page for how to read each plot.")
settings = _settings()
if PF.enabled():
    kernel_warmup(DEFAULTS.preset)
with st.container(border=True):
    choice = _choose_source(settings)
    current = bool(choice) and _load(choice)

if choice is None:
    st.info("Choose a sample, upload a file or give a server path to see the report.")
    st.stop()
if not current:
    st.stop()  # the error above says why; no report of another file is shown

loaded = st.session_state["insp_loaded"]
arr = loaded["array"]
st.markdown(f"**Data:** {md(loaded['describe'], None)}")
for note in loaded["notices"]:
    st.caption(f"Note: {md(note, None)}")
if arr.shape[-2] < loaded["original_rows"]:
    st.warning(f"Row limit: scoring {arr.shape[-2]:,} of {loaded['original_rows']:,} rows, a uniform random "
               f"subset (seed 0). Raise the row limit in the sidebar to score more.", icon=":material/filter_alt:")

digest = loaded["digest"]
if arr.ndim == 3:
    v = arr.shape[0]
    opts = ["all"] + list(range(v))
    pick = st.selectbox(f"View ({v} views, each scored separately)", opts, key="insp_view",
                        format_func=lambda o: "all views (summary)" if o == "all" else f"view {o}")
    if pick == "all":
        rep_all = _compute(arr, f"{digest}|all", settings)
        if rep_all is None:
            st.stop()
        _section_verdict(rep_all)
        st.subheader("Views")
        st.dataframe(rep_all.view_rows, hide_index=True, width="stretch")
        st.caption("SIGReg of all views is their average (as lejepa logs it); the p-value combines the views' "
                   "p-values (Cauchy combination). Pick one view above for its full report.")
        st.stop()
    z = np.ascontiguousarray(arr[int(pick)])
    digest = f"{digest}|view{int(pick)}"
    loaded = {**loaded, "source": {**loaded["source"], "view": int(pick)}}
else:
    z = arr

rep = _report_with_background_null(z, digest, settings)
if rep is None:
    st.stop()  # the error is shown; the previous report belongs to other data or settings
if st.session_state.get("insp_report_id") != (digest, rep.settings.key()):
    st.session_state["insp_report_id"] = (digest, rep.settings.key())
    how = st.session_state.get("insp_pick")
    if how in ("worst", "median", "best"):  # re-resolved on the new report: the caption and the chart agree
        st.session_state["insp_slice"] = pick_slice(rep, how)
    elif st.session_state.get("insp_slice") is not None and not 0 <= st.session_state["insp_slice"] < rep.num_slices:
        st.session_state["insp_slice"] = None
pending = st.session_state.get("insp_evidence_slice")
if pending and pending[0] == rep.settings.family and 0 <= pending[1] < rep.num_slices:
    st.session_state.pop("insp_evidence_slice")  # a mode's evidence asked for this slice: select it
    st.session_state["insp_slice"] = pending[1]
    st.session_state["insp_pick"] = "index"
    st.session_state["insp_index"] = pending[1]
st.session_state["insp_full_run"] = True  # fragments read it: True while the whole page runs
try:
    _report(rep, z, loaded["source"], digest)
finally:
    st.session_state["insp_full_run"] = False
_prefetch(digest, z, settings)
