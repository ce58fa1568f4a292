"""The Compare page's logic, tested without Streamlit: choosing and aligning sets
(:mod:`sigreg_core.compare.choice`), where sets come from (:mod:`sigreg_core.compare.sources`), the texts
built from data (:mod:`sigreg_core.compare.notices`), the export files (:mod:`sigreg_core.compare.exports`),
the tables as data (:mod:`sigreg_core.present.compare_tables`) and the views' layout
(:func:`sigreg_core.present.compare_figures.view_rows`).

Oracles: hashlib on the float32 bytes, the labels indexed by the rows the loader kept, the
library's own ``label_quality`` / ``compare_sets`` / ``load_embeddings`` called directly, the
comparison's raw frames, and hand-written expected strings.
"""
from __future__ import annotations

import hashlib
import io
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sigreg_core.assessment.probes import INTERACTIVE_ROWS, label_quality
from sigreg_core.compare import choice as C
from sigreg_core.compare import notices as N
from sigreg_core.compare import sources as S
from sigreg_core.compare.comparison import DELTA_METRICS, compare_sets, comparison_csv, comparison_html, comparison_json
from sigreg_core.compare.exports import download_files, download_stem
from sigreg_core.compare.model import NO_SPREAD
from sigreg_core.inputs.loading import load_embeddings
from sigreg_core.present import compare_figures as CF, compare_tables as CT
from sigreg_core.present.report import Settings

FAST = dict(num_slices=64, n_boot=40, null_draws=0, cache_dir=False, device="cpu")


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class _Upload:
    """What the page gets from st.file_uploader: an id, a name, a size and the bytes."""

    def __init__(self, file_id, name, data):
        self.file_id, self.name, self.size, self._data = file_id, name, len(data), data

    def getvalue(self):
        return self._data


@pytest.fixture(scope="module")
def cmp():
    """A healthy Gaussian reference and a set collapsed onto 2 of its 16 dimensions."""
    rng = np.random.default_rng(3)
    good = rng.standard_normal((600, 16)).astype(np.float32)
    bad = good.copy()
    bad[:, 2:] *= 0.02
    return compare_sets({"good": good, "bad": bad}, **FAST)


# ----------------------------------------------------------------------------- choice
def test_loaded_set_keeps_float32_rows_their_digest_and_the_file_rows_for_labels():
    z = np.random.default_rng(0).standard_normal((50, 4))  # float64 in the file
    got = load_embeddings(_npy(z), name="z.npy", max_rows=20)
    rec = C.loaded_set(got)
    assert rec["array"].dtype == np.float32 and rec["array"].flags["C_CONTIGUOUS"]
    assert rec["array"].shape == (20, 4)
    np.testing.assert_allclose(rec["array"], z[np.asarray(got.row_indices)].astype(np.float32))
    assert rec["digest"] == hashlib.sha256(z[np.asarray(got.row_indices)].astype(np.float32).tobytes()).hexdigest()[:16]
    assert rec["original_rows"] == 50 and len(rec["row_indices"]) == 20
    plain = C.loaded_set(np.ones((3, 7, 2)))  # views, no loader: every row kept
    assert plain["original_rows"] == 7 and plain["row_indices"] is None and plain["notices"] == []
    assert plain["digest"] != C.loaded_set(np.zeros((3, 7, 2)))["digest"]


def test_repeated_names_are_numbered_and_nothing_else_changes():
    entries = [("a", 1, "s1"), ("b", 2, "s2"), ("a", 3, "s3"), ("a", 4, "s4")]
    assert C.unique_names(entries) == [("a", 1, "s1"), ("b", 2, "s2"), ("a#2", 3, "s3"), ("a#3", 4, "s4")]
    assert C.nonblank_lines("  x.npy \n\n\t\ny/z.pt") == ["x.npy", "y/z.pt"]
    assert C.nonblank_lines(None) == []


def test_kept_steps_placeholder_and_adding_steps_by_spec():
    ts = {"step": [0, 100, 200, 300, 400, 500], "snapshot": ["s0", None, "nan", "", "None", "s5"]}
    assert C.kept_steps(ts) == [0, 500]
    steps = list(range(0, 1001, 100))
    assert C.step_placeholder(steps) == "e.g. 0, 1000  or  0-1000/2"
    assert C.step_placeholder([7]) == "e.g. 7, 7  or  7-7/1"
    chosen, note = C.add_steps("130, 500-800/2, x, 9-", [0, 100], steps)
    assert chosen == [0, 100, 500, 700] and note == "Not understood: x, 9-"  # 130 -> 100: already there
    assert C.add_steps("", [300], steps) == ([300], "")


def test_labels_files_are_offered_one_for_all_or_one_per_set():
    assert [C.labels_guess(["f"], i, 3) for i in range(3)] == ["f", "f", "f"]
    assert [C.labels_guess(["f", "g", "h"], i, 3) for i in range(3)] == ["f", "g", "h"]
    assert [C.labels_guess(["f", "g"], i, 3) for i in range(3)] == ["none"] * 3
    k1, k2 = C.labels_widget_key("run@100"), C.labels_widget_key("run@200")
    assert k1 != k2 and k1 == C.labels_widget_key("run@100")
    assert k1 == "cmp_labels_for_" + hashlib.sha1(b"run@100").hexdigest()[:12]
    assert set(C.labels_widget_key("[x](y)\n*z*")) <= set("cmp_labelsfor0123456789abcdef")


def test_trim_keeps_the_newest_and_the_family_falls_back_to_shared_slices():
    d = {i: i for i in range(6)}
    assert list(C.trim_oldest(d, 4)) == [2, 3, 4, 5]
    assert C.comparable_family("random") == ("random", None)
    assert C.comparable_family("coordinate") == ("coordinate", None)
    fam, note = C.comparable_family("principal")
    assert fam == "random" and "`principal`" in note and "random slices" in note


def test_comparison_key_changes_with_data_and_settings():
    e1 = [("a", {"digest": "1"}, {}), ("b", {"digest": "2"}, {})]
    e2 = [("a", {"digest": "1"}, {}), ("b", {"digest": "3"}, {})]
    k = C.comparison_key(e1, "a", (1,), "random", True, 40)
    assert k == (( ("a", "1"), ("b", "2")), "a", (1,), "random", True, 40)
    assert k != C.comparison_key(e2, "a", (1,), "random", True, 40)
    assert k != C.comparison_key(e1, "a", (1,), "random", True, 0)


def test_probe_quality_aligns_the_file_labels_with_the_rows_kept():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    z = (np.eye(3)[y] @ rng.standard_normal((3, 8)) * 3 + rng.standard_normal((300, 8))).astype(np.float32)
    rec = C.loaded_set(load_embeddings(_npy(z), name="z.npy", max_rows=200))
    got = C.probe_quality(rec, _npy(y), "y.npy")
    want = label_quality(rec["array"], y[np.asarray(rec["row_indices"])], max_rows=INTERACTIVE_ROWS, seed=0)
    assert got["knn_accuracy"] == want["knn_accuracy"] > 0.6
    assert got["linear_probe_accuracy"] == want["linear_probe_accuracy"]
    with pytest.raises(ValueError):
        C.probe_quality(rec, _npy(y[:123]), "short.npy")


def test_probe_sets_memoise_and_refuse_one_set_in_one_line():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 120)
    z = (y[:, None] * 4.0 + rng.standard_normal((120, 5))).astype(np.float32)
    rec = C.loaded_set(z)
    entries = [("ok", rec, {}), ("bad\nname", C.loaded_set(z + 1), {}), ("none", rec, {})]
    files = {"ok": _Upload("f1", "y.npy", _npy(y)), "bad\nname": _Upload("f2", "y.npy", _npy(y[:7]))}
    memo, seen = {}, []
    out, errors = C.probe_sets(entries, files, memo, progress=lambda n: (lambda fr, m: seen.append(n)))
    assert list(out) == ["ok"] and out["ok"]["knn_accuracy"] > 0.9
    assert len(errors) == 1 and errors[0].startswith(r"bad\\nname: labels have 7 values") and "\n" not in errors[0]
    assert set(seen) == {"ok"} and list(memo) == [(rec["digest"], "f1")]
    again, _ = C.probe_sets(entries, files, memo)
    assert again["ok"] is out["ok"]  # from the memo, not recomputed
    C.probe_sets(entries, {"ok": _Upload("f3", "y2.npy", _npy(y))}, memo, keep=1)  # a new file: the oldest goes
    assert list(memo) == [(rec["digest"], "f3")]


def test_compare_with_settings_is_compare_sets_with_the_sidebar_settings():
    rng = np.random.default_rng(4)
    sets = {"a": rng.standard_normal((300, 8)).astype(np.float32),
            "b": (rng.standard_normal((200, 8)) ** 3).astype(np.float32)}
    s = Settings(num_slices=64, seed=5, device="cpu", null_draws=0)
    got = C.compare_with_settings(sets, "b", s, "random", True, 20)
    want = compare_sets(sets, reference="b", num_slices=64, seed=5, preset=s.preset, family="random", same_n=True,
                        n_boot=20, device="cpu", null_draws=0)
    assert got.reference == "b" and got.seed == 5 and got.num_slices_scored == 64
    for n in sets:
        np.testing.assert_array_equal(got.sets[n].statistic, want.sets[n].statistic)
    assert [d.value for d in got.deltas] == [d.value for d in want.deltas]


def test_a_run_is_listed_by_name_and_opened_with_its_kept_steps(tmp_path):
    from sigreg_core.runs import RunWriter

    run = tmp_path / "runs" / "lam"
    with RunWriter(run, summary=False, max_rows=None) as w:
        for step in (0, 10, 20):
            w.log(step, np.full((16, 3), step, dtype=np.float32))
    runs = C.run_choices([tmp_path])
    assert list(runs.values()) == ["runs/lam"]
    reader, steps = C.open_run(next(iter(runs)))
    assert steps == [0, 10, 20]
    (src,) = S.run_step_sources(reader, next(iter(runs)), "runs/lam", [10])
    assert src.name == "runs/lam@10" and src.label == "runs/lam step 10" and src.ident[2] == 10
    assert src.source == {"kind": "run step", "run": next(iter(runs)), "step": 10}
    np.testing.assert_array_equal(C.loaded_set(src.read())["array"], np.full((16, 3), 10, dtype=np.float32))


# ----------------------------------------------------------------------------- sources
def test_samples_and_uploads_read_what_load_embeddings_reads():
    from sigreg_core.inputs.samples import list_samples

    samples = {s.name: s for s in list_samples()}
    (src,) = S.sample_sources(samples, ["healthy"], 100)
    assert (src.name, src.ident, src.label, src.source) == ("healthy", ("sample", "healthy", 100), "sample healthy",
                                                            {"kind": "sample", "name": "healthy"})
    s = samples["healthy"]
    np.testing.assert_array_equal(src.read().array, load_embeddings(s.path, key=s.key, max_rows=100).array)
    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    (up,) = S.upload_sources([_Upload("id9", "z.npy", _npy(z))], None, 1 << 20)
    assert up.ident == ("upload", "id9", None) and up.source["bytes"] == len(_npy(z))
    np.testing.assert_array_equal(up.read().array, z)
    (tiny,) = S.upload_sources([_Upload("id9", "z.npy", _npy(z))], None, 10)  # the byte limit reaches the loader
    with pytest.raises(Exception):
        tiny.read()


def test_server_paths_below_the_allowed_roots_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(tmp_path / "ok"))
    (tmp_path / "ok").mkdir()
    z = np.ones((5, 2), dtype=np.float32)
    (tmp_path / "ok" / "z.npy").write_bytes(_npy(z))
    (tmp_path / "no.npy").write_bytes(_npy(z))
    good, errors = S.path_sources([str(tmp_path / "ok" / "z.npy"), str(tmp_path / "no.npy")], None)
    assert [s.name for s in good] == ["z.npy"] and len(errors) == 1
    assert good[0].ident[:2] == ("path", str((tmp_path / "ok" / "z.npy").resolve()))
    np.testing.assert_array_equal(good[0].read().array, z)
    enc, enc_errors = S.encoder_sources([str(tmp_path / "no.pt")], str(tmp_path / "ok" / "z.npy"), pool="none",
                                        batch_size=4, device="cpu", max_rows=None)
    assert enc == [] and len(enc_errors) == 1


def test_an_encoder_on_the_server_embeds_the_probe_batch(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("LATENT_HEALTH_ALLOWED_ROOTS", str(tmp_path))
    lin = torch.nn.Linear(3, 2)
    torch.jit.save(torch.jit.script(lin), str(tmp_path / "enc.pt"))
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    (tmp_path / "probe.npy").write_bytes(_npy(x))
    (src,), errors = S.encoder_sources([str(tmp_path / "enc.pt")], f" {tmp_path / 'probe.npy'} ", pool="none",
                                       batch_size=4, device="cpu", max_rows=None)
    assert errors == [] and src.name == "enc.pt" and src.source["kind"] == "encoder"
    with torch.no_grad():
        want = lin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(C.loaded_set(src.read())["array"], want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- notices
def test_captions_from_sets_escape_names_and_say_the_rows():
    assert N.views_caption("a", (100, 8)) is None
    assert N.views_caption("*v*", (3, 1000, 8)).startswith("\\*v\\*: 3 views of 1,000 x 8;")
    entries = [("a", {"notices": ["kept 10 of 12 rows", "*x*"]}, {}), ("[b]", {"notices": []}, {}),
               ("c\n", {"notices": ["n"]}, {})]
    assert N.set_notices(entries) == ["a: kept 10 of 12 rows", "a: \\*x\\*", "c\\\\n: n"]
    assert N.roots_caption([]) == "Allowed directories: none (set `LATENT_HEALTH_ALLOWED_ROOTS` to change)."
    assert "\\[x\\]" in N.roots_caption(["[x](y)"])
    assert N.encoder_caption("cpu").count("the CPU") == 1 and "the GPU" in N.encoder_caption("cuda")
    assert N.rows_captions({"a": 500, "b": 300}, True, 7, 65536) == [
        "Every set will be scored on 300 rows (the smallest set), subsampled without replacement (seed 7)."]
    assert N.rows_captions({"a": 5000, "b": 3000}, False, 0, 4000) == [
        "All rows kept: a 5,000, b 3,000. Caveat: with different N, part of each delta is the change of N.",
        "Sets larger than the sidebar's row limit (4,000) were read as a random subset of that many rows."]
    assert N.rows_captions({"a": 10, "b": 10}, False, 0, None) == ["All rows kept: a 10, b 10."]
    assert N.probe_error("s", ValueError("labels have 7 rows,\n  the set 120")) == "s: labels have 7 rows, the set 120"
    assert N.load_error("upload *x*", KeyError("k")) == "upload \\*x\\*: 'k'"


def test_texts_from_a_comparison_carry_its_numbers(cmp):
    assert N.summary_caption(cmp) == (f"Preset `{cmp.preset.name}` · 64 random slices (seed 0) shared by every set "
                                      f"· D = 16 · reference **good**")
    lines = N.reference_lines(cmp)
    (d,) = [d for d in cmp.deltas if d.metric == "sigreg"]
    assert d.set == "bad" and d.significant and d.healthier == "good"  # the collapsed set is less healthy
    assert lines == [("error", f"**bad**: ΔSIGReg = {d.value:.4g} ({d.value / cmp.sets['good'].null_mean:.4g}× the "
                               f"null mean), {int(round(d.level * 100))}% interval "
                               f"{CT.interval_cell(d.ci_low, d.ci_high, d.note)} — significant: **good** is healthier")]
    _, pt = cmp.pair("bad", "good")
    cap = N.pair_caption("bad", "good", pt)
    assert cap.startswith(f"bad − good. Paired test over slices: {pt.fraction_lower:.0%} of slices lower for bad; ")
    assert f"{pt.wilcoxon_p_adjusted:.3g}" in cap
    assert cap.endswith(f"; healthier: {pt.healthier}." if pt.healthier else "; no significant difference.")
    won = SimpleNamespace(fraction_lower=0.25, wilcoxon_p_adjusted=0.012345, healthier="a*")
    assert N.pair_caption("a*", "b", won) == ("a\\* − b. Paired test over slices: 25% of slices lower for a\\*; "
                                              "Wilcoxon p (adjusted for the slices' dependence) 0.0123; "
                                              "healthier: a\\*.")
    line = N.slice_line(cmp, 5, "index")
    assert line == (f"**Slice 5** (index): good {cmp.sets['good'].statistic[5]:.4g}, "
                    f"bad {cmp.sets['bad'].statistic[5]:.4g}")
    assert N.deltas_caption(cmp).startswith("Deltas are set − good. Intervals: 40 bootstrap resamples of the rows of "
                                            "each set")
    assert "q +0.962" in N.quality_caption("RankMe", False, 4000) and "Probes" not in N.quality_caption("x", False, 9)
    assert "at most 4,000 rows per set" in N.quality_caption("x", True, 4000)


def test_download_names_are_safe_and_short():
    one = SimpleNamespace(names=["a b", "=c/d"], preset=SimpleNamespace(name="lejepa"), seed=3)
    assert download_stem(one) == "comparison_a_b_vs__c_d_lejepa_seed3"
    many = SimpleNamespace(names=[f"s{i}" for i in range(6)], preset=SimpleNamespace(name="p"), seed=0)
    assert download_stem(many) == "comparison_s0_vs_s1_vs_s2_vs_s3_and_2_more_p_seed0"
    assert len(download_stem(SimpleNamespace(names=["x" * 99], preset=SimpleNamespace(name="p"), seed=0))) == \
        len("comparison_") + 24 + len("_p_seed0")


def test_the_export_files_are_the_exporters_output_under_one_stem(cmp):
    files = download_files(cmp, slice_index=3, source={"good": {"kind": "sample"}})
    stem = download_stem(cmp)
    assert stem == f"comparison_good_vs_bad_{cmp.preset.name}_seed0"
    assert [(k, n, m) for k, _, n, m in files] == [("csv", f"{stem}.csv", "text/csv"),
                                                  ("json", f"{stem}.json", "application/json"),
                                                  ("html", f"{stem}.html", "text/html")]
    assert files[0][1] == comparison_csv(cmp) and files[1][1] == comparison_json(cmp)
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # Plotly's div ids
    got, want = files[2][1](), comparison_html(cmp, slice_index=3, source={"good": {"kind": "sample"}})
    assert uuid.sub("id", got) == uuid.sub("id", want) and "slice 3" in got


# ----------------------------------------------------------------------------- tables
def test_numbers_and_missing_values_as_shown():
    assert CT.fmt(1.23456789) == "1.235" and CT.fmt(0.012345, 3) == "0.0123"
    assert CT.fmt(float("nan")) == "–" and CT.fmt(np.inf) == "–" and CT.fmt("n/a") == "n/a" and CT.fmt(None) == "None"
    df = pd.DataFrame({"b": [True, False], "i": [3, 4], "x": [0.123456, np.nan], "p": [0.000123456, 1.0],
                       "o": [None, ""], "s": ["yes", np.nan], "ob": pd.Series([True, False], dtype=object)})
    out = CT.display_frame(df, {"p": 3})
    assert out["b"].tolist() == ["yes", "no"] and out["i"].tolist() == [3, 4]
    assert out["x"].tolist() == ["0.1235", "–"] and out["p"].tolist() == ["0.000123", "1"]
    assert out["o"].tolist() == ["–", "–"] and out["s"].tolist() == ["yes", "–"] and out["ob"].tolist() == ["yes", "no"]
    assert CT.interval_cell(1.0, 2.0, "why not") == "why not"
    assert CT.interval_cell(np.nan, 2.0, None) == "–"
    assert CT.interval_cell(1913.9, 1914.1, float("nan")) == "[1913.9, 1914.1]"


def test_table_csv_keeps_formulas_as_text_and_numbers_as_numbers():
    df = pd.DataFrame({"set": ["=HYPERLINK(\"http://x\",\"y\")", "ok"], "delta": [-1.5, 2.0]})
    lines = CT.table_csv(df).decode().splitlines()
    assert lines[0] == "set,delta"
    assert lines[1].startswith("\"'=HYPERLINK(") and lines[1].endswith(",-1.5") and lines[2] == "ok,2.0"


def test_views_are_laid_out_with_deltas_beside_the_curves_when_there_are_any():
    above, below = CF.view_rows({"deltas": 1}, 7)
    assert above == [[("slice_scatter", "compare_slice_scatter")],
                     [("sorted_curves", "compare_sorted_curves"), ("deltas", "compare_deltas")]]
    assert below == [[("histograms", "compare_histograms_slice_7"), ("cf", "compare_cf_slice_7")],
                     [("spectra", "compare_spectra")]]
    above, below = CF.view_rows({}, 0)
    assert above[1][1] == ("spectra", "compare_spectra") and len(below) == 1


def test_tables_of_a_comparison_keep_its_values(cmp):
    rk, shown = cmp.ranking_frame(), CT.ranking_table(cmp)
    assert shown.columns.tolist() == ["rank", "set", "verdict", "SIGReg × null mean",
                                      f"{int(cmp.level * 100)} % interval", "excess over best (× null)", "p-value",
                                      "RankMe", "modes", "against the set above"]
    assert shown["set"].tolist() == rk["set"].tolist() == ["good", "bad"]
    assert shown["SIGReg × null mean"].tolist() == rk["x_null"].tolist()
    deltas, _ = cmp.pair("bad", "good")
    pair = CT.pair_table(deltas)
    assert pair["metric"].tolist() == [DELTA_METRICS[d.metric][0] for d in deltas]
    assert pair["delta"].tolist() == [d.value for d in deltas]
    assert pair.loc[0, "significant"] == "yes" and pair.loc[0, "healthier"] == "good"
    dt = CT.deltas_table(cmp)
    assert dt.columns.tolist() == ["set", "metric", "delta", "interval", "se", "significant", "healthier"]
    assert dt["delta"].tolist() == cmp.deltas_frame()["value"].tolist()
    pt = CT.paired_table(cmp)
    assert pt["Wilcoxon p (adjusted)"].tolist() == cmp.paired_frame()["wilcoxon_p_adjusted"].tolist()
    assert pt.columns[3:6].tolist() == ["median_difference", "design effect", "Wilcoxon p (adjusted)"]


def test_a_delta_without_spread_is_neither_significant_nor_not():
    rng = np.random.default_rng(5)  # two fully collapsed sets (all rows equal): the bootstrap has no spread
    same = compare_sets({"a": np.tile(rng.standard_normal((1, 8)), (300, 1)).astype(np.float32),
                         "b": np.tile(rng.standard_normal((1, 8)) * 3, (300, 1)).astype(np.float32)}, **FAST)
    dt = CT.deltas_table(same)
    spread = dt["interval"] == NO_SPREAD
    assert spread.any()
    assert set(dt.loc[spread, "significant"]) == {"–"} and set(dt.loc[~spread, "significant"]) <= {"yes", "no"}
