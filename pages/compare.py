"""Compare page: two or more embedding sets on the same slices and the same N, with significance.

Thin: it collects the sets (shipped samples, uploads, server files, TorchScript /
torch.export encoders run on a probe batch, steps of a monitored run), calls
:func:`sigreg_core.compare.comparison.compare_sets` and draws
:mod:`sigreg_core.present.compare_figures`.  Uploads are data only; encoders (which carry
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

import hashlib
import time

import numpy as np
import pandas as pd

from sigreg_core.present import compare_figures as CF
from sigreg_core.inputs.checkpoints import CheckpointError, embed_checkpoint
from sigreg_core.compare.ranking import BEST_PREDICTOR, RANK_MEASURES, available_measures, interval_text, pairwise_matrix
from sigreg_core.assessment.probes import INTERACTIVE_ROWS, label_quality
from sigreg_core.inputs.labels import align_to_rows, load_labels
from sigreg_core.present.quality import compare_quality_frame
from sigreg_core.compare.comparison import (
    COMPARABLE_FAMILIES,
    DELTA_METRICS,
    CompareError,
    compare_sets,
    comparison_csv,
    comparison_html,
    comparison_json,
)
from sigreg_core.present.figures import plotly_config
from sigreg_core.inputs.loading import (
    SUPPORTED_EXTENSIONS,
    EmbeddingLoadError,
    allowed_roots,
    load_embeddings,
    resolve_server_path,
)
from sigreg_core.util.text import csv_safe_frame, md  # text from files is data: escaped before markdown
from sigreg_core.inputs.limits import ENCODERS_OFF, encoders_allowed, max_upload_bytes, max_upload_mb
from sigreg_core.present.report import DEFAULTS, Settings
from sigreg_core.util.steps import parse_steps
from sigreg_core.inputs.samples import list_samples

MAX_UPLOAD_MB = max_upload_mb()  # LATENT_HEALTH_MAX_UPLOAD; decoding an upload gets the same byte limit
UPLOAD_TYPES = sorted({ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS})
DEFAULT_SAMPLES = ["healthy", "heavy-tailed"]
LABEL_TYPES = ["npy", "npz", "pt", "safetensors", "csv", "tsv", "parquet"]
MAX_CACHED = 4


def _settings() -> Settings:
    s = st.session_state.get("lh_settings")
    return s if isinstance(s, Settings) else DEFAULTS


def _chart(fig, name: str, **kwargs):
    return st.plotly_chart(fig, width="stretch", config=plotly_config(name), **kwargs)


def _loaded() -> dict:
    """Arrays already read this session, keyed by their source identity."""
    return st.session_state.setdefault("cmp_arrays", {})


def _read(ident: tuple, thunk, label: str):
    """Load once per identity; on error show one line and return None (nothing else is lost)."""
    cache = _loaded()
    if ident in cache:
        return cache[ident]
    try:
        with st.spinner(f"Reading {md(label)} ..."):
            value = thunk()
    except (EmbeddingLoadError, CheckpointError, KeyError, ValueError, FileNotFoundError) as exc:
        st.error(f"{md(label)}: {md(exc, None)}")
        return None
    arr = value.array if hasattr(value, "array") else value
    notices = list(getattr(value, "notices", []))
    if arr.ndim == 3:
        st.caption(f"{md(label)}: {arr.shape[0]} views of {arr.shape[1]:,} x {arr.shape[2]}; every view is scored on the "
                   f"same slices, SIGReg averaged over the views, rows resampled jointly.")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    digest = hashlib.sha256(arr.tobytes()).hexdigest()[:16]
    shape = tuple(getattr(value, "original_shape", ()) or ())
    cache[ident] = {"array": arr, "digest": digest, "notices": notices,
                    # labels of the file's rows are aligned with the rows the loader kept (issue 22)
                    "original_rows": int(shape[-2]) if len(shape) >= 2 else int(arr.shape[-2]),
                    "row_indices": getattr(value, "row_indices", None)}
    return cache[ident]


# ------------------------------------------------------------------ sources
def _sample_sets(max_rows: int) -> list:
    samples = {s.name: s for s in list_samples()}
    names = list(samples)
    chosen = st.multiselect("Shipped samples", names, default=[n for n in DEFAULT_SAMPLES if n in samples],
                            key="cmp_samples", help="Small deterministic sets (2048 × 64) showing each collapse mode.")
    out = []
    for n in chosen:
        s = samples[n]
        got = _read(("sample", n, max_rows), lambda s=s: load_embeddings(s.path, key=s.key, max_rows=max_rows),
                    f"sample {n}")
        if got is not None:
            out.append((n, got, {"kind": "sample", "name": n}))
    return out


def _upload_sets(max_rows: int) -> list:
    files = st.file_uploader(
        f"Upload embedding files ({', '.join('.' + t for t in UPLOAD_TYPES)})", type=UPLOAD_TYPES,
        accept_multiple_files=True, max_upload_size=MAX_UPLOAD_MB, key="cmp_upload",
        help="Data only (N × D arrays): nothing is unpickled and no code is run. Encoders must come from a "
             "server path (below).")
    out = []
    for f in files or []:
        got = _read(("upload", f.file_id, max_rows),
                    lambda f=f: load_embeddings(f.getvalue(), name=f.name, max_bytes=max_upload_bytes(), max_rows=max_rows), f"upload {f.name}")
        if got is not None:
            out.append((f.name, got, {"kind": "upload", "name": f.name, "bytes": f.size}))
    return out


def _path_sets(max_rows: int) -> list:
    roots = allowed_roots()
    st.caption("Allowed directories: " + (", ".join(md(r, None) for r in roots) or "none")
               + " (set `LATENT_HEALTH_ALLOWED_ROOTS` to change).")
    text = st.text_area("Embedding files on the server (one path per line)", key="cmp_paths", height=80,
                        placeholder="e.g. healthy.safetensors\n/data/run1/step_1000.safetensors")
    out = []
    for line in [ln.strip() for ln in (text or "").splitlines() if ln.strip()]:
        try:
            p = resolve_server_path(line)
        except EmbeddingLoadError as exc:
            st.error(md(exc, None))
            continue
        got = _read(("path", str(p), p.stat().st_mtime_ns, max_rows),
                    lambda p=p: load_embeddings(p, max_rows=max_rows), f"server file {p.name}")
        if got is not None:
            out.append((p.name, got, {"kind": "server path", "name": str(p)}))
    return out


def _encoder_sets(settings: Settings) -> list:
    if not encoders_allowed():  # an encoder is code run with the server's rights: off unless the operator opted in
        st.info(md(ENCODERS_OFF, None))
        return []
    st.caption("TorchScript (`torch.jit.save`) or `torch.export` (`.pt2`) encoders run on one probe batch, on "
               f"{'the GPU' if settings.device != 'cpu' else 'the CPU'} when available. Server paths only: these "
               "files carry code. For ordinary state_dict checkpoints use `sigreg embed` (see docs/compare.md).")
    enc_text = st.text_area("Encoder files on the server (one per line)", key="cmp_encoders", height=68)
    probe = st.text_input("Probe batch on the server (.safetensors / .npy / .pt; axis 0 = rows)", key="cmp_probe")
    c1, c2 = st.columns(2)
    pool = c1.selectbox("Pool outputs (B, T, D) by", ["none", "mean", "first"], key="cmp_pool")
    batch = int(c2.number_input("Batch size", min_value=1, max_value=65536, value=256, key="cmp_batch"))
    encoders = [ln.strip() for ln in (enc_text or "").splitlines() if ln.strip()]
    if not encoders:
        return []
    if not probe.strip():
        st.info("Give the probe batch the encoders should embed.")
        return []
    out = []
    for e in encoders:
        try:
            ep = resolve_server_path(e)
            pp = resolve_server_path(probe.strip())
        except EmbeddingLoadError as exc:
            st.error(md(exc, None))
            continue
        ident = ("encoder", str(ep), ep.stat().st_mtime_ns, str(pp), pp.stat().st_mtime_ns, pool, settings.max_rows)
        got = _read(ident, lambda ep=ep, pp=pp: embed_checkpoint(
            ep, pp, batch_size=batch, device=settings.device, max_rows=settings.max_rows,
            pool=None if pool == "none" else pool), f"encoder {ep.name}")
        if got is not None:
            out.append((ep.name, got, {"kind": "encoder", "name": str(ep), "probe": str(pp)}))
    return out


def _run_sets() -> list:
    try:
        from sigreg_core.runs import RunReader, find_runs
    except ImportError:  # pragma: no cover - runs.py ships with the package
        return []
    roots = list(allowed_roots())
    runs = find_runs(roots)
    if not runs:
        st.caption("No monitored runs below the allowed directories "
                   "(runs written by `sigreg_core.runs.RunWriter`, or folders of step-numbered snapshots).")
        return []
    from sigreg_core.runs.discovery import run_name

    labels = {str(r): run_name(r, roots) for r in runs}  # the same name as on the Monitor page
    run = st.selectbox("Run", list(labels), format_func=lambda k: labels[k], key="cmp_run")
    try:
        reader = RunReader(run)
        ts = reader.timeseries()
    except (OSError, ValueError) as exc:
        st.error(f"run {md(labels[run])}: {md(exc, None)}")
        return []
    steps = [int(s) for s, snap in zip(ts["step"], ts["snapshot"]) if snap is not None and str(snap) not in ("", "None", "nan")]
    if not steps:
        st.caption("This run kept no snapshots.")
        return []
    st.text_input("Add steps by list or range", key="cmp_steps_spec", on_change=_apply_step_spec, args=(steps,),
                  placeholder=f"e.g. {steps[0]}, {steps[-1]}  or  {steps[0]}-{steps[-1]}/{max(1, len(steps) // 4)}",
                  help="Comma-separated steps; a-b adds every kept step from a to b; a-b/k every k-th of them. "
                       "A step without a kept snapshot is replaced by the nearest kept one.")
    if st.session_state.get("cmp_steps_note"):
        st.caption(md(st.session_state["cmp_steps_note"], None))
    chosen = st.multiselect(f"Steps ({len(steps):,} snapshots kept; type to search)", steps, key="cmp_steps",
                            help="Each step's stored embeddings become one set.")
    out = []
    for s in chosen:
        got = _read(("run", run, s), lambda s=s: reader.snapshot(s), f"{labels[run]} step {s}")
        if got is not None:
            out.append((f"{labels[run]}@{s}", got, {"kind": "run step", "run": run, "step": s}))
    return out


def _apply_step_spec(steps: list) -> None:
    got, bad = parse_steps(st.session_state.get("cmp_steps_spec", ""), steps)
    st.session_state["cmp_steps"] = list(dict.fromkeys(list(st.session_state.get("cmp_steps", [])) + got))
    st.session_state["cmp_steps_note"] = (f"Not understood: {', '.join(bad)}" if bad else "")


def _unique(entries: list) -> list:
    seen, out = {}, []
    for name, got, src in entries:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", got, src))
    return out


# ------------------------------------------------------------------ compute
def _compute(sets: dict, reference: str, settings: Settings, family: str, same_n: bool, n_boot: int):
    with st.status(f"Comparing {len(sets)} sets on {settings.num_slices} shared slices ...", expanded=True) as status:
        bar = st.progress(0.0, text="starting")

        def progress(frac: float, msg: str) -> None:
            bar.progress(min(1.0, max(0.0, frac)), text=msg)

        t0 = time.perf_counter()
        try:
            cmp = compare_sets(sets, reference=reference, num_slices=settings.num_slices, seed=settings.seed,
                               preset=settings.preset, family=family, same_n=same_n, n_boot=n_boot,
                               device=settings.device, progress=progress,
                               null_draws=settings.resolved_null_draws() if hasattr(settings, "resolved_null_draws")
                               else None)
        except (CompareError, ValueError, RuntimeError) as exc:
            status.update(label="Could not compare these sets", state="error", expanded=True)
            st.error(md(exc, None))
            return None
        status.update(label=f"Compared in {time.perf_counter() - t0:.1f} s", state="complete", expanded=False)
    return cmp


def _fmt(v, digits: int = 4) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


def _display(df: pd.DataFrame, digits: dict | None = None) -> pd.DataFrame:
    """A frame for st.dataframe: numbers formatted, missing values and None as "–" (never "None" or "nan")."""
    digits = digits or {}
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = df[c]
        if col.dtype == bool:
            out[c] = np.where(col, "yes", "no")
        elif pd.api.types.is_integer_dtype(col):
            out[c] = col
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_integer_dtype(col):
            out[c] = [_fmt(v, digits.get(c, 4)) for v in col]
        else:
            out[c] = ["–" if v is None or (isinstance(v, float) and not np.isfinite(v)) or v == "" else
                      (("yes" if v else "no") if isinstance(v, (bool, np.bool_)) else str(v)) for v in col]
    return out


def _md(text) -> str:
    """Set names come from file names: escape them before they go into markdown (sigreg_core.util.text)."""
    return md(text, None)


def _interval(lo, hi, note) -> str:
    if isinstance(note, str) and note:
        return note
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "–"
    return interval_text(lo, hi)


def _stem(cmp) -> str:
    """Download names that say which sets and settings: comparison_<a>_vs_<b>..._<preset>_seed<s>."""
    safe = ["".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(n))[:24] for n in cmp.names[:4]]
    more = f"_and_{len(cmp.names) - 4}_more" if len(cmp.names) > 4 else ""
    return f"comparison_{'_vs_'.join(safe)}{more}_{cmp.preset.name}_seed{cmp.seed}"


def _ranking(cmp) -> None:
    st.subheader("Ranking, best first")
    rk = cmp.ranking_frame()
    show = rk.assign(interval=[_interval(a, b, n) for a, b, n in zip(rk["x_null_low"], rk["x_null_high"],
                                                                     rk["interval_note"])])
    show = show[["rank", "set", "verdict", "x_null", "interval", "excess_over_best", "p_value", "rankme", "modes",
                 "vs_above"]].rename(columns={"x_null": "SIGReg × null mean", "interval": f"{int(cmp.level * 100)} % interval",
                                              "excess_over_best": "excess over best (× null)",
                                              "p_value": "p-value", "rankme": "RankMe",
                                              "vs_above": "against the set above"})
    st.dataframe(_display(show, {"p-value": 3}), hide_index=True, width="stretch", key="cmp_ranking_table")
    st.caption("Ranked as the verdict ranks (the verdict, then the share of N(0, I)'s directions the set uses, then its "
               "distance from N(0, I); docs/calibration.md). SIGReg is shown as a multiple of its exact null mean "
               "(1 = the healthy floor). Intervals: bootstrap over rows; "
               "“against the set above”: the bootstrap interval of the SIGReg delta to the set ranked just above.")
    _chart(CF.ranking_figure(rk), "compare_ranking")
    st.download_button("Ranking CSV", csv_safe_frame(rk).to_csv(index=False).encode(), file_name=f"{_stem(cmp)}_ranking.csv",
                       mime="text/csv", key="cmp_dl_ranking", icon=":material/table:", on_click="ignore")


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
            guess = files[0].file_id if len(files) == 1 else files[i].file_id if len(files) == len(entries) else "none"
            pick = st.selectbox(f"Labels of {md(name)}", opts, index=opts.index(guess),
                                format_func=lambda o: "none" if o == "none" else by_id[o].name,
                                key=f"cmp_labels_for_{hashlib.sha1(str(name).encode()).hexdigest()[:12]}")
            if pick != "none":
                out[name] = by_id[pick]
        return out


def _probes(entries: list, files: dict) -> dict:
    """{set: label_quality} for the sets with labels (cached per set and labels file); a refusal is one
    ``st.error`` line naming the set, and that set goes on without probes."""
    memo = st.session_state.setdefault("cmp_probe_memo", {})
    out = {}
    for name, got, _src in entries:
        f = files.get(name)
        if f is None:
            continue
        mk = (got["digest"], f.file_id)
        if mk not in memo:
            bar = None
            try:
                y = align_to_rows(load_labels(f.getvalue(), name=f.name, max_bytes=max_upload_bytes()),
                                  got["original_rows"], got["row_indices"])
                bar = st.progress(0.0, text=f"Probes of {md(name)} ...")
                memo[mk] = label_quality(got["array"], y, max_rows=INTERACTIVE_ROWS, seed=0, progress=lambda fr, m:
                                         bar.progress(min(1.0, float(fr)), text=f"Probes of {md(name)}: {m} ..."))
            except (EmbeddingLoadError, ValueError) as exc:  # bad labels (InputError is a ValueError): one line
                st.error(f"{md(name)}: {md(' '.join(str(exc).split()), None)}")
                continue
            finally:
                if bar is not None:
                    bar.empty()
            while len(memo) > 32:
                memo.pop(next(iter(memo)))
        out[name] = memo[mk]
    return out


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
    st.dataframe(_display(frame, {}), hide_index=True, width="stretch", key="cmp_quality_table")
    st.caption(f"Ranked by {RANK_MEASURES[by][0]}. On our sweep of the demo world model, RankMe tracked the held-out "
               "probe R² best of the label-free measures (Spearman ρ +0.969; the health verdict's q +0.962; "
               "docs/quality.md): rank by it when there are no labels. α-ReQ: closest to 1 is best; LiDAR needs views. "
               + (f"Probes: held-out k-NN (k = 20) and linear probe on at most {INTERACTIVE_ROWS:,} rows per set, "
                  "95 % Wilson intervals." if probes else ""))
    st.download_button("Quality CSV", csv_safe_frame(frame).to_csv(index=False).encode(),
                       file_name=f"{_stem(cmp)}_quality_by_{by}.csv", mime="text/csv", key="cmp_dl_quality",
                       icon=":material/table:", on_click="ignore")


def _pairwise(cmp) -> None:
    st.subheader("Every pair")
    if not cmp.n_boot:
        st.caption("No bootstrap (resamples = 0): pairwise deltas without intervals or significance.")
    code, text = pairwise_matrix(cmp, "sigreg")
    _chart(CF.pairwise_figure(code, text), "compare_pairwise")
    st.caption("Cell (row a, column b): SIGReg(a) − SIGReg(b) in units of b's null mean, with its bootstrap interval; "
               "green: a significantly healthier, vermilion: a significantly less healthy, grey: no significant "
               "difference.")
    pf = cmp.pairwise_frame("sigreg")
    st.download_button("Pairwise CSV", pf.to_csv(index=False).encode(), file_name=f"{_stem(cmp)}_pairwise.csv",
                       mime="text/csv", key="cmp_dl_pairwise", icon=":material/table:", on_click="ignore")
    names = cmp.names
    c1, c2 = st.columns(2)
    a = c1.selectbox("Compare set", names, index=min(1, len(names) - 1), key="cmp_pair_a")
    b = c2.selectbox("with set", names, index=0, key="cmp_pair_b")
    if a == b:
        st.caption("Pick two different sets.")
        return
    deltas, pt = cmp.pair(a, b)
    rows = [{"metric": DELTA_METRICS[d.metric][0], "delta": d.value,
             "interval": _interval(d.ci_low, d.ci_high, d.note),
             "significant": ("yes" if d.significant else "no") if not d.note else "–",
             "healthier": d.healthier} for d in deltas]
    # "significant" is the interval excluding 0; a bootstrap p beside it could disagree with it (a second
    # criterion): it stays in the CSV / JSON exports
    st.dataframe(_display(pd.DataFrame(rows), {}), hide_index=True, width="stretch", key="cmp_pair_table")
    st.caption(f"{_md(a)} − {_md(b)}. Paired test over slices: {pt.fraction_lower:.0%} of slices lower for {_md(a)}; "
               f"Wilcoxon p (adjusted for the slices' dependence) {_fmt(pt.wilcoxon_p_adjusted, 3)}"
               + (f"; healthier: {_md(pt.healthier)}" if pt.healthier else "; no significant difference") + ".")


def _results(cmp, sources: dict, probes: dict | None = None) -> None:
    st.info(md(cmp.row_note, None), icon=":material/straighten:")  # set names inside: data
    for c in cmp.caveats:
        st.warning(md(c, None), icon=":material/warning:")

    st.subheader("Summary")
    st.dataframe(_display(cmp.summary_frame(), {"p_value": 3}), hide_index=True, width="stretch",
                 key="cmp_summary_table")
    st.caption(f"Preset `{cmp.preset.name}` · {cmp.num_slices_scored} {cmp.family} slices (seed {cmp.seed}) shared "
               f"by every set · D = {cmp.directions.shape[0]} · reference **{_md(cmp.reference)}**")
    _ranking(cmp)
    _quality(cmp, probes or {})
    _pairwise(cmp)

    st.subheader(f"Against {_md(cmp.reference)}")
    if cmp.n_boot:
        for d in cmp.deltas:
            if d.metric != "sigreg":
                continue
            verdict = (f"significant: **{_md(d.healthier)}** is healthier" if d.significant
                       else _md(d.note) if d.note else "not significant (the interval contains 0)")
            line = (f"**{_md(d.set)}**: ΔSIGReg = {_fmt(d.value)} ({_fmt(d.value / cmp.sets[cmp.reference].null_mean, 4)}× "
                    f"the null mean), {int(round(d.level * 100))}% interval "
                    f"{_interval(d.ci_low, d.ci_high, d.note)} — {verdict}")
            (st.success if d.significant and d.healthier == d.set else
             st.error if d.significant else st.info)(line)
    else:
        st.caption("No bootstrap (resamples = 0): deltas without intervals.")
    df = cmp.deltas_frame()
    if len(df):
        df = df.assign(metric=[DELTA_METRICS[m][0] for m in df["metric"]],
                       interval=[_interval(a, b, n) for a, b, n in zip(df["ci_low"], df["ci_high"], df["note"])])
        df = df[["set", "metric", "value", "interval", "se", "significant", "healthier"]]  # no p_boot: see _pairwise
        df["significant"] = [("yes" if s else "no") if i != "no spread: interval not defined" else "–"
                             for s, i in zip(df["significant"], df["interval"])]
        st.dataframe(_display(df.rename(columns={"value": "delta"}), {}),
                     hide_index=True, width="stretch", key="cmp_deltas_table")
        st.caption(f"Deltas are set − {_md(cmp.reference)}. Intervals: {cmp.n_boot} bootstrap resamples of the rows of "
                   "each set (same directions), centred on the observed delta; significant when the interval "
                   "excludes 0. Lower SIGReg and VICReg variance, higher RankMe and std of normalised rows are "
                   "healthier; the VICReg covariance term depends on scale and gets no direction.")
    st.markdown("**Paired test over slices** (same slice indices)")
    cols = ["set", "num_slices", "fraction_lower", "median_difference", "design_effect", "wilcoxon_p_adjusted",
            "sign_p_adjusted", "wilcoxon_p", "sign_p", "healthier"]
    st.dataframe(_display(cmp.paired_frame()[cols].rename(columns={
        "wilcoxon_p_adjusted": "Wilcoxon p (adjusted)", "sign_p_adjusted": "sign-test p (adjusted)",
        "wilcoxon_p": "Wilcoxon p (as if independent)", "sign_p": "sign-test p (as if independent)",
        "design_effect": "design effect", "fraction_lower": "fraction of slices lower"}), {}),
        hide_index=True, width="stretch", key="cmp_paired_table")
    st.caption("Approximate: the slices share the data, so their statistics are correlated. The plain p-values treat "
               "them as independent and overstate the evidence when M ≫ D; the adjusted ones inflate the variance by "
               "the design effect estimated from the bootstrap. The bootstrap intervals above are the evidence; this "
               "test says how consistently the slices move.")

    st.subheader("Views")
    names = cmp.names
    others = [n for n in names if n != cmp.reference] or names
    c1, c2, c3 = st.columns([2, 2, 3])
    xa = c1.selectbox("Scatter: x", names, index=names.index(cmp.reference), key="cmp_pair_x")
    ya = c2.selectbox("Scatter: y", names, index=names.index(others[0]), key="cmp_pair_y")
    how = c3.radio("Slice for the histograms and CF", ["largest change", "worst", "median", "index"],
                   horizontal=True, key="cmp_slice_how")
    if how == "index":
        j = int(st.number_input("Slice index", min_value=0, max_value=cmp.num_slices_scored - 1, value=0,
                                key="cmp_slice_index"))
    else:
        j = CF.pick_slice(cmp, how, ya if ya != cmp.reference else None)
    figs = CF.comparison_figures(cmp, slice_index=j, pair=(xa, ya))
    _chart(figs["slice_scatter"], "compare_slice_scatter")
    c1, c2 = st.columns(2)
    with c1:
        _chart(figs["sorted_curves"], "compare_sorted_curves")
    with c2:
        if "deltas" in figs:
            _chart(figs["deltas"], "compare_deltas")
        else:
            _chart(figs["spectra"], "compare_spectra")
    st.markdown(f"**Slice {j}** ({how}): " + ", ".join(f"{_md(n)} {_fmt(cmp.sets[n].statistic[j])}" for n in names))
    c1, c2 = st.columns(2)
    with c1:
        _chart(figs["histograms"], f"compare_histograms_slice_{j}")
    with c2:
        _chart(figs["cf"], f"compare_cf_slice_{j}")
    if "deltas" in figs:
        _chart(figs["spectra"], "compare_spectra")

    st.subheader("Export")
    c = st.columns(3)
    c[0].download_button("Comparison CSV", comparison_csv(cmp), file_name=f"{_stem(cmp)}.csv", mime="text/csv",
                         key="cmp_dl_csv", icon=":material/table:", on_click="ignore")
    c[1].download_button("Comparison JSON", comparison_json(cmp), file_name=f"{_stem(cmp)}.json",
                         mime="application/json", key="cmp_dl_json", icon=":material/data_object:", on_click="ignore")
    c[2].download_button("HTML report (offline)",
                         lambda: comparison_html(cmp, slice_index=j, source=sources),
                         file_name=f"{_stem(cmp)}.html", mime="text/html", key="cmp_dl_html",
                         icon=":material/description:", on_click="ignore")


# --------------------------------------------------------------------- page
st.title("Compare")
st.markdown("Did the latent space get healthier? Put checkpoints, runs or models side by side: every set is scored "
            "on the **same slices** (same seed and family) and, by default, the **same number of rows**, because "
            "SIGReg grows with N for non-Gaussian data.")
settings = _settings()
family = settings.family
if family not in COMPARABLE_FAMILIES:
    st.warning(f"The sidebar's slice family `{family}` picks directions from each set's own data, so sets would not "
               "share slices; this page compares on random slices.", icon=":material/info:")
    family = "random"

entries: list = []
with st.container(border=True):
    st.markdown("**Embedding sets** (choose two or more)")
    tabs = st.tabs(["Samples", "Uploads", "Server files", "Encoders + probe", "Run steps"])
    with tabs[0]:
        entries += _sample_sets(settings.max_rows)
    with tabs[1]:
        entries += _upload_sets(settings.max_rows)
    with tabs[2]:
        entries += _path_sets(settings.max_rows)
    with tabs[3]:
        entries += _encoder_sets(settings)
    with tabs[4]:
        entries += _run_sets()

entries = _unique(entries)
if len(entries) < 2:
    st.info(f"Choose at least two sets ({len(entries)} chosen).")
    st.stop()

names = [e[0] for e in entries]
for name, got, _src in entries:
    for note in got["notices"]:
        st.caption(f"{md(name)}: {md(note, None)}")
c1, c2, c3 = st.columns([2, 1.3, 1.3], vertical_alignment="bottom")
reference = c1.selectbox("Reference set", names, key="cmp_reference",
                         help="Deltas and tests are computed against this set.")
# a short label: at 1000 px with the sidebar open a longer one was cut ("Same N (subsample ever…")
same_n = c2.checkbox("Same N", value=True, key="cmp_same_n",
                     help="Subsample every set to the smallest set's rows (without replacement): SIGReg of "
                          "non-Gaussian data grows about linearly in N, so compare at equal N.")
n_boot = int(c3.number_input("Bootstrap resamples", min_value=0, max_value=2000, value=200, step=50, key="cmp_n_boot",
                             help="Per set; 0 for no intervals. At least 20 otherwise."))
sizes = {n: got["array"].shape[-2] for n, got, _ in entries}  # rows (N of (V, N, D) views)
if same_n:
    st.caption(f"Every set will be scored on {min(sizes.values()):,} rows (the smallest set), subsampled without "
               f"replacement (seed {settings.seed}).")
else:
    st.caption("All rows kept: " + ", ".join(f"{md(n)} {k:,}" for n, k in sizes.items())
               + (". Caveat: with different N, part of each delta is the change of N." if len(set(sizes.values())) > 1 else "."))
if settings.max_rows and any(got["array"].shape[-2] >= settings.max_rows for _, got, _ in entries):
    st.caption(f"Sets larger than the sidebar's row limit ({settings.max_rows:,}) were read as a random subset of "
               "that many rows.")

label_files = _label_files(entries)
key = (tuple((n, got["digest"]) for n, got, _ in entries), reference, settings.key(), family, same_n, n_boot)
results = st.session_state.setdefault("cmp_results", {})
clicked = st.button("Compare", type="primary", key="cmp_go", icon=":material/compare_arrows:")
if clicked and key not in results:
    cmp = _compute({n: got["array"] for n, got, _ in entries}, reference, settings, family, same_n, n_boot)
    if cmp is not None:
        results[key] = cmp
        while len(results) > MAX_CACHED:
            results.pop(next(iter(results)))
cmp = results.get(key)
if cmp is None:
    st.info("Press **Compare** to score the sets on shared slices and test the differences.")
    st.stop()
probes = _probes([e for e in entries if e[0] in cmp.sets], label_files)
_results(cmp, {n: src for n, _got, src in entries}, probes)
