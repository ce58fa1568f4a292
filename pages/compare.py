"""Compare page: two or more embedding sets on the same slices and the same N, with significance.

Thin: widgets, and calls into sigreg_core for everything else: where sets come from
(:mod:`sigreg_core.compare.sources`), choosing and aligning them, labels and the comparison
itself (:mod:`sigreg_core.compare.choice`), texts built from data (:mod:`sigreg_core.compare.notices`),
tables (:mod:`sigreg_core.present.compare_tables`), figures (:mod:`sigreg_core.present.compare_figures`)
and exports (:mod:`sigreg_core.compare.exports`).  Uploads are data only; encoders (which carry
code) are read from server paths below the allowed roots only.
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

from sigreg_core.present import compare_figures as CF, compare_tables as CT
from sigreg_core.compare import choice as C, notices as N, sources as S  # the page's logic, tested without Streamlit
from sigreg_core.compare.ranking import BEST_PREDICTOR, RANK_MEASURES, available_measures, pairwise_matrix
from sigreg_core.assessment.probes import INTERACTIVE_ROWS
from sigreg_core.present.quality import compare_quality_frame
from sigreg_core.compare.exports import download_files, download_stem
from sigreg_core.present.figures import plotly_config
from sigreg_core.inputs.loading import SUPPORTED_EXTENSIONS, allowed_roots
from sigreg_core.inputs.labels import LABEL_TYPES
from sigreg_core.util.text import md  # text from files is data: escaped before markdown
from sigreg_core.inputs.limits import ENCODERS_OFF, encoders_allowed, max_upload_bytes, max_upload_mb
from sigreg_core.present.report import DEFAULTS, Settings
from sigreg_core.inputs.samples import list_samples

MAX_UPLOAD_MB = max_upload_mb()  # LATENT_HEALTH_MAX_UPLOAD; decoding an upload gets the same byte limit
UPLOAD_TYPES = sorted({ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS})
DEFAULT_SAMPLES = ["healthy", "heavy-tailed"]
MAX_CACHED = 4


def _settings() -> Settings:
    s = st.session_state.get("lh_settings")
    return s if isinstance(s, Settings) else DEFAULTS


def _chart(fig, name: str, **kwargs):
    return st.plotly_chart(fig, width="stretch", config=plotly_config(name), **kwargs)


def _table(df, key: str, digits: dict | None = None):
    return st.dataframe(CT.display_frame(df, digits), hide_index=True, width="stretch", key=key)


def _csv_button(label: str, df, name: str, key: str):
    st.download_button(label, CT.table_csv(df), file_name=name, mime="text/csv", key=key, icon=":material/table:",
                       on_click="ignore")


# ------------------------------------------------------------------ sources
def _read_all(sources: list, errors: tuple = ()) -> list:
    """(name, record, source) of every source (S.*_sources) read once per identity (C.loaded_set); a refused
    path or an unreadable set is one line, and the other sets go on."""
    for line in errors:
        st.error(line)
    cache, out = st.session_state.setdefault("cmp_arrays", {}), []
    for s in sources:
        if s.ident not in cache:
            try:
                with st.spinner(f"Reading {md(s.label)} ..."):
                    cache[s.ident] = C.loaded_set(s.read())
            except C.LOAD_ERRORS as exc:
                st.error(N.load_error(s.label, exc))
                continue
            if note := N.views_caption(s.label, cache[s.ident]["array"].shape):
                st.caption(note)
        out.append((s.name, cache[s.ident], s.source))
    return out


def _sample_sets(max_rows: int) -> list:
    samples = {s.name: s for s in list_samples()}
    chosen = st.multiselect("Shipped samples", list(samples), default=[n for n in DEFAULT_SAMPLES if n in samples],
                            key="cmp_samples", help="Small deterministic sets (2048 × 64) showing each collapse mode.")
    return _read_all(S.sample_sources(samples, chosen, max_rows))


def _upload_sets(max_rows: int) -> list:
    files = st.file_uploader(
        f"Upload embedding files ({', '.join('.' + t for t in UPLOAD_TYPES)})", type=UPLOAD_TYPES,
        accept_multiple_files=True, max_upload_size=MAX_UPLOAD_MB, key="cmp_upload",
        help="Data only (N × D arrays): nothing is unpickled and no code is run. Encoders must come from a "
             "server path (below).")
    return _read_all(S.upload_sources(files or [], max_rows, max_upload_bytes()))


def _path_sets(max_rows: int) -> list:
    st.caption(N.roots_caption(allowed_roots()))
    text = st.text_area("Embedding files on the server (one path per line)", key="cmp_paths", height=80,
                        placeholder="e.g. healthy.safetensors\n/data/run1/step_1000.safetensors")
    return _read_all(*S.path_sources(C.nonblank_lines(text), max_rows))


def _encoder_sets(settings: Settings) -> list:
    if not encoders_allowed():  # an encoder is code run with the server's rights: off unless the operator opted in
        st.info(md(ENCODERS_OFF, None))
        return []
    st.caption(N.encoder_caption(settings.device))
    encoders = C.nonblank_lines(st.text_area("Encoder files on the server (one per line)", key="cmp_encoders",
                                             height=68))
    probe = st.text_input("Probe batch on the server (.safetensors / .npy / .pt; axis 0 = rows)", key="cmp_probe")
    c1, c2 = st.columns(2)
    pool = c1.selectbox("Pool outputs (B, T, D) by", ["none", "mean", "first"], key="cmp_pool")
    batch = int(c2.number_input("Batch size", min_value=1, max_value=65536, value=256, key="cmp_batch"))
    if not encoders:
        return []
    if not probe.strip():
        st.info("Give the probe batch the encoders should embed.")
        return []
    return _read_all(*S.encoder_sources(encoders, probe, pool=pool, batch_size=batch, device=settings.device,
                                        max_rows=settings.max_rows))


def _run_sets() -> list:
    labels = C.run_choices(list(allowed_roots()))  # the same names as on the Monitor page
    if not labels:
        st.caption("No monitored runs below the allowed directories "
                   "(runs written by `sigreg_core.runs.RunWriter`, or folders of step-numbered snapshots).")
        return []
    run = st.selectbox("Run", list(labels), format_func=lambda k: labels[k], key="cmp_run")
    try:
        reader, steps = C.open_run(run)
    except (OSError, ValueError) as exc:
        st.error(f"run {md(labels[run])}: {md(exc, None)}")
        return []
    if not steps:
        st.caption("This run kept no snapshots.")
        return []
    st.text_input("Add steps by list or range", key="cmp_steps_spec", on_change=_apply_step_spec, args=(steps,),
                  placeholder=C.step_placeholder(steps),
                  help="Comma-separated steps; a-b adds every kept step from a to b; a-b/k every k-th of them. "
                       "A step without a kept snapshot is replaced by the nearest kept one.")
    if st.session_state.get("cmp_steps_note"):
        st.caption(md(st.session_state["cmp_steps_note"], None))
    chosen = st.multiselect(f"Steps ({len(steps):,} snapshots kept; type to search)", steps, key="cmp_steps",
                            help="Each step's stored embeddings become one set.")
    return _read_all(S.run_step_sources(reader, run, labels[run], chosen))


def _apply_step_spec(steps: list) -> None:
    ss = st.session_state
    ss["cmp_steps"], ss["cmp_steps_note"] = C.add_steps(ss.get("cmp_steps_spec", ""), ss.get("cmp_steps", []), steps)


def _label_files(entries: list) -> dict:
    """The labels widgets: {set name: uploaded labels file} (one file for every set of equal N, or one per set)."""
    with st.expander("Labels (optional): k-NN and linear-probe accuracy of each set", icon=":material/label:",
                     expanded=bool(st.session_state.get("cmp_labels"))):
        files = st.file_uploader(f"Labels files ({', '.join('.' + t for t in LABEL_TYPES)})", type=LABEL_TYPES,
                                 accept_multiple_files=True, max_upload_size=MAX_UPLOAD_MB, key="cmp_labels",
                                 help="One class per row, in the rows' order. One file is used for every set "
                                      "(sets of the same N, e.g. checkpoints embedding one probe batch); "
                                      "several are matched to the sets below.")
        if not files:
            st.caption("Without labels the sets are ranked by label-free measures only.")
            return {}
        by_id = {f.file_id: f for f in files}
        opts = ["none"] + list(by_id)
        out = {}
        for i, (name, _got, _src) in enumerate(entries):
            pick = st.selectbox(f"Labels of {md(name)}", opts,
                                index=opts.index(C.labels_guess([f.file_id for f in files], i, len(entries))),
                                format_func=lambda o: "none" if o == "none" else by_id[o].name,
                                key=C.labels_widget_key(name))
            if pick != "none":
                out[name] = by_id[pick]
        return out


def _probes(entries: list, files: dict) -> dict:
    """{set: label_quality} for the sets with labels (C.probe_sets, cached per set and labels file); a refusal
    is one ``st.error`` line naming the set, and that set goes on without probes."""
    bar = st.empty()
    out, errors = C.probe_sets(entries, files, st.session_state.setdefault("cmp_probe_memo", {}), progress=lambda n:
                               lambda fr, m: bar.progress(min(1.0, float(fr)), text=f"Probes of {md(n)}: {m} ..."))
    bar.empty()
    for line in errors:
        st.error(line)
    return out


# ------------------------------------------------------------------ compute
def _compute(sets: dict, reference: str, settings: Settings, family: str, same_n: bool, n_boot: int):
    with st.status(f"Comparing {len(sets)} sets on {settings.num_slices} shared slices ...", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        t0 = time.perf_counter()
        try:
            cmp = C.compare_with_settings(sets, reference, settings, family, same_n, n_boot, progress=lambda fr, m:
                                          bar.progress(min(1.0, max(0.0, fr)), text=m))
        except C.COMPARE_ERRORS as exc:
            status.update(label="Could not compare these sets", state="error", expanded=True)
            st.error(md(exc, None))
            return None
        status.update(label=f"Compared in {time.perf_counter() - t0:.1f} s", state="complete", expanded=False)
    return cmp


# ------------------------------------------------------------------ results
def _ranking(cmp) -> None:
    st.subheader("Ranking, best first")
    _table(CT.ranking_table(cmp), "cmp_ranking_table", {"p-value": 3})
    st.caption(N.RANKING_NOTE)
    rk = cmp.ranking_frame()
    _chart(CF.ranking_figure(rk), "compare_ranking")
    _csv_button("Ranking CSV", rk, f"{download_stem(cmp)}_ranking.csv", "cmp_dl_ranking")


def _use_best_predictor() -> None:
    st.session_state["cmp_rank_by"] = BEST_PREDICTOR


def _quality(cmp, probes: dict) -> None:
    """Quality measures of every set as rankable columns; the ordering comes from compare.ranking.rank_by."""
    st.subheader("Quality measures")
    measures = available_measures(cmp, probes)
    if st.session_state.get("cmp_rank_by") not in measures:
        st.session_state["cmp_rank_by"] = "verdict"
    c1, c2 = st.columns([2, 1.6], vertical_alignment="bottom")
    by = c1.selectbox("Rank by", measures, key="cmp_rank_by", format_func=lambda k: RANK_MEASURES[k][0],
                      help="The verdict (the headline), any measure column, or probe accuracy when labels are given.")
    c2.button(f"Rank by the best predictor ({RANK_MEASURES[BEST_PREDICTOR][0]})", on_click=_use_best_predictor,
              key="cmp_rank_best", icon=":material/trending_up:", disabled=by == BEST_PREDICTOR)
    frame = compare_quality_frame(cmp, probes, by=by)
    _table(frame, "cmp_quality_table")
    st.caption(N.quality_caption(RANK_MEASURES[by][0], bool(probes), INTERACTIVE_ROWS))
    _csv_button("Quality CSV", frame, f"{download_stem(cmp)}_quality_by_{by}.csv", "cmp_dl_quality")


def _pairwise(cmp) -> None:
    st.subheader("Every pair")
    if not cmp.n_boot:
        st.caption("No bootstrap (resamples = 0): pairwise deltas without intervals or significance.")
    code, text = pairwise_matrix(cmp, "sigreg")
    _chart(CF.pairwise_figure(code, text), "compare_pairwise")
    st.caption(N.PAIRWISE_NOTE)
    _csv_button("Pairwise CSV", cmp.pairwise_frame("sigreg"), f"{download_stem(cmp)}_pairwise.csv",
                "cmp_dl_pairwise")  # names are data: formula-safe like every CSV
    names = cmp.names
    c1, c2 = st.columns(2)
    a = c1.selectbox("Compare set", names, index=min(1, len(names) - 1), key="cmp_pair_a")
    b = c2.selectbox("with set", names, index=0, key="cmp_pair_b")
    if a == b:
        st.caption("Pick two different sets.")
        return
    deltas, pt = cmp.pair(a, b)
    _table(CT.pair_table(deltas), "cmp_pair_table")
    st.caption(N.pair_caption(a, b, pt))


def _rows(figs: dict, rows: list) -> None:
    """CF.view_rows drawn: a row of one chart at full width, of two side by side."""
    for row in rows:
        if len(row) == 1:
            _chart(figs[row[0][0]], row[0][1])
            continue
        for col, (fig, name) in zip(st.columns(len(row)), row):
            with col:
                _chart(figs[fig], name)


def _views(cmp) -> int:
    """The views of the sets (scatter, sorted curves, spectra, one slice's histograms and CF); the slice shown."""
    st.subheader("Views")
    names = cmp.names
    others = [n for n in names if n != cmp.reference] or names
    c1, c2, c3 = st.columns([2, 2, 3])
    xa = c1.selectbox("Scatter: x", names, index=names.index(cmp.reference), key="cmp_pair_x")
    ya = c2.selectbox("Scatter: y", names, index=names.index(others[0]), key="cmp_pair_y")
    how = c3.radio("Slice for the histograms and CF", ["largest change", "worst", "median", "index"],
                   horizontal=True, key="cmp_slice_how")
    j = CF.pick_slice(cmp, how, ya if ya != cmp.reference else None, index=int(st.number_input(
        "Slice index", min_value=0, max_value=cmp.num_slices_scored - 1, value=0, key="cmp_slice_index"))
        if how == "index" else None)
    figs = CF.comparison_figures(cmp, slice_index=j, pair=(xa, ya))
    above, below = CF.view_rows(figs, j)
    _rows(figs, above)
    st.markdown(N.slice_line(cmp, j, how))
    _rows(figs, below)
    return j


def _results(cmp, sources: dict, probes: dict | None = None) -> None:
    st.info(md(cmp.row_note, None), icon=":material/straighten:")  # set names inside: data
    for c in cmp.caveats:
        st.warning(md(c, None), icon=":material/warning:")
    st.subheader("Summary")
    _table(cmp.summary_frame(), "cmp_summary_table", {"p_value": 3})
    st.caption(N.summary_caption(cmp))
    _ranking(cmp)
    _quality(cmp, probes or {})
    _pairwise(cmp)

    st.subheader(f"Against {md(cmp.reference, None)}")
    if cmp.n_boot:
        for kind, line in N.reference_lines(cmp):
            {"success": st.success, "error": st.error, "info": st.info}[kind](line)
    else:
        st.caption("No bootstrap (resamples = 0): deltas without intervals.")
    df = CT.deltas_table(cmp)
    if df is not None:
        _table(df, "cmp_deltas_table")
        st.caption(N.deltas_caption(cmp))
    st.markdown("**Paired test over slices** (same slice indices)")
    _table(CT.paired_table(cmp), "cmp_paired_table")
    st.caption(N.PAIRED_NOTE)
    j = _views(cmp)

    st.subheader("Export")
    labels = {"csv": ("Comparison CSV", ":material/table:"), "json": ("Comparison JSON", ":material/data_object:"),
              "html": ("HTML report (offline)", ":material/description:")}
    for col, (kind, data, name, mime) in zip(st.columns(3), download_files(cmp, slice_index=j, source=sources)):
        col.download_button(labels[kind][0], data, file_name=name, mime=mime, key=f"cmp_dl_{kind}",
                            icon=labels[kind][1], on_click="ignore")


# --------------------------------------------------------------------- page
st.title("Compare")
st.markdown(N.INTRO)
settings = _settings()
family, family_note = C.comparable_family(settings.family)
if family_note:
    st.warning(family_note, icon=":material/info:")

entries: list = []
with st.container(border=True):
    st.markdown("**Embedding sets** (choose two or more)")
    tabs = st.tabs(["Samples", "Uploads", "Server files", "Encoders + probe", "Run steps"])
    for tab, sets in zip(tabs, (lambda: _sample_sets(settings.max_rows), lambda: _upload_sets(settings.max_rows),
                                lambda: _path_sets(settings.max_rows), lambda: _encoder_sets(settings), _run_sets)):
        with tab:
            entries += sets()

entries = C.unique_names(entries)
if len(entries) < 2:
    st.info(f"Choose at least two sets ({len(entries)} chosen).")
    st.stop()

names = [e[0] for e in entries]
for line in N.set_notices(entries):
    st.caption(line)
c1, c2, c3 = st.columns([2, 1.3, 1.3], vertical_alignment="bottom")
reference = c1.selectbox("Reference set", names, key="cmp_reference",
                         help="Deltas and tests are computed against this set.")
# a short label: at 1000 px with the sidebar open a longer one was cut ("Same N (subsample ever…")
same_n = c2.checkbox("Same N", value=True, key="cmp_same_n",
                     help="Subsample every set to the smallest set's rows (without replacement): SIGReg of "
                          "non-Gaussian data grows about linearly in N, so compare at equal N.")
n_boot = int(c3.number_input("Bootstrap resamples", min_value=0, max_value=2000, value=200, step=50, key="cmp_n_boot",
                             help="Per set; 0 for no intervals. At least 20 otherwise."))
for line in N.rows_captions({n: got["array"].shape[-2] for n, got, _ in entries}, same_n, settings.seed,
                            settings.max_rows):  # rows: N of (V, N, D) views
    st.caption(line)

label_files = _label_files(entries)
key = C.comparison_key(entries, reference, settings.key(), family, same_n, n_boot)
results = st.session_state.setdefault("cmp_results", {})
if st.button("Compare", type="primary", key="cmp_go", icon=":material/compare_arrows:") and key not in results:
    cmp = _compute({n: got["array"] for n, got, _ in entries}, reference, settings, family, same_n, n_boot)
    if cmp is not None:
        results[key] = cmp
        C.trim_oldest(results, MAX_CACHED)
cmp = results.get(key)
if cmp is None:
    st.info("Press **Compare** to score the sets on shared slices and test the differences.")
    st.stop()
probes = _probes([e for e in entries if e[0] in cmp.sets], label_files)
_results(cmp, {n: src for n, _got, src in entries}, probes)
