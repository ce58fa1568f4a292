"""Issue 24, part 1: one work budget for every input, strict parsers, names are data.

The hostile files of the audit are built here in a temporary directory (nothing binary is
committed) and each is loaded in a fresh child process (see tests/test_loading_hostile.py):
exit status, one line, wall time, and the child's own peak RSS (VmHWM) over its baseline
after imports, which must stay within the memory budget ``LATENT_HEALTH_MAX_MEMORY`` (1 GiB).
Before this change every one of them ran past 40 s and was killed (docs/loading.md).
"""
from __future__ import annotations

import io
import json
import struct
import sys
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from sigreg_core.inputs.context import draw_rows
from sigreg_core.inputs.errors import array_digest
from sigreg_core.inputs.formats.safetensors import f8_table
from sigreg_core.inputs.limits import DEFAULT_MAX_ROWS, row_limit
from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings
from sigreg_core.util.text import csv_cell, csv_safe_frame, md, plotly_text, visible
from tests.test_loading_hostile import MiB, _assert_cli_refusal, _cli, _load_in_child

BUDGET = 1024 * MiB  # LATENT_HEALTH_MAX_MEMORY's default
SECONDS = 60.0  # a few seconds on a quiet machine; the suite runs beside 7 other sessions on 2 cores


def _loaded(path, shape_rows: int, env=None):
    dt, extra, result = _load_in_child(path, env)
    assert result.startswith("LOADED "), result
    rows, dim = (int(x) for x in result.split()[1].split("x")[-2:])
    assert rows == shape_rows, result
    assert dt < SECONDS, dt
    assert extra < BUDGET, f"{extra / MiB:.0f} MiB over the baseline"
    return dt, extra


# ----------------------------------------------------------------------------- the audit's rows
def test_many_views_are_refused_from_the_header_in_the_loader_and_the_cli(tmp_path):
    """50 000 views of 2 x 4 (1.6 MB): before, > 150 s and 6.7 GiB (one assessment per view)."""
    p = tmp_path / "views.npy"
    np.save(p, np.zeros((50_000, 2, 4), np.float32))
    dt, extra, result = _load_in_child(p)
    assert result.startswith("REFUSED ") and "50,000 views" in result and "LATENT_HEALTH_MAX_VIEWS" in result, result
    assert dt < SECONDS and extra < 64 * MiB, (dt, extra / MiB)
    text = _assert_cli_refusal(["score", p], "over the limit of 256 views")
    assert "--view" in text
    # one view of it is an ordinary batch
    assert load_embeddings(p, view=7).array.shape == (2, 4)
    # the assessment's own budget check says the same for an array handed to it directly
    from sigreg_core.assessment.budget import WorkBudgetError, check_assessment

    with pytest.raises(WorkBudgetError, match="50,000 views of 2 x 4"):
        check_assessment(2, 4, 50_000)
    check_assessment(2, 4, 256)  # at the limit: scored


@pytest.mark.slow
def test_deflated_npz_of_50m_rows_is_sampled_while_streaming(tmp_path):
    """50 M x 2 zeros deflated into ~400 KB: before, > 150 s then killed."""
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("z.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (50_000_000, 2)})
            block = bytes(4 << 20)
            left = 50_000_000 * 8
            while left:
                f.write(block[: min(left, len(block))])
                left -= min(left, len(block))
    assert p.stat().st_size < 1_000_000
    _loaded(p, DEFAULT_MAX_ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dictionary", "fixed_size_list"])
def test_parquet_of_one_huge_row_group_is_decoded_in_bounded_slices(tmp_path, kind):
    """One dictionary + zstd row group of 40 M x 2 zeros (fixed-size list: 30 M x 2), a few hundred KB:
    before, > 150 s and 2.1 GiB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / f"{kind}.parquet"
    if kind == "dictionary":
        n = 40_000_000
        table = pa.table({"a": np.zeros(n, np.float32), "b": np.zeros(n, np.float32)})
    else:
        n = 30_000_000
        table = pa.table({"z": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2 * n, np.float32)), 2)})
    pq.write_table(table, p, compression="zstd", use_dictionary=True, row_group_size=n)
    del table
    assert pq.ParquetFile(p).metadata.num_row_groups == 1 and p.stat().st_size < 2_000_000
    _loaded(p, DEFAULT_MAX_ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "safetensors"])
def test_sparse_file_of_1_5_gib_is_sampled_within_the_memory_budget(tmp_path, fmt):
    """1.5 GiB of zeros that use no disk: before, 71-97 s and 3.3 GiB against a 1 GiB budget.  The
    memory-mapped pages read while sampling are released as they go (they would count in the RSS)."""
    n, d = 3_145_728, 128
    p = tmp_path / f"sparse.{fmt}"
    if fmt == "npy":
        np.lib.format.open_memmap(p, mode="w+", dtype=np.float32, shape=(n, d)).flush()
    else:
        head = json.dumps({"z": {"dtype": "F32", "shape": [n, d], "data_offsets": [0, n * d * 4]}}).encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(head)) + head)
            f.truncate(8 + len(head) + n * d * 4)
    rows = row_limit(d)[0]
    assert rows == DEFAULT_MAX_ROWS
    _dt, extra = _loaded(p, rows)
    assert extra < 4 * rows * d + 256 * MiB  # the 512 MiB result and the finite check, not the 1.5 GiB file


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_tall_narrow_sets_keep_a_million_rows(tmp_path, fmt):
    """2.5 M x 1 .npy and 5 M x 1 CSV: before, 68 s and 50 s / 1.1 GiB.  The product promises N >= 10^6
    on a CPU: the row limit is 2^20."""
    p = tmp_path / f"tall.{fmt}"
    if fmt == "npy":
        n = 2_500_000
        np.save(p, np.random.default_rng(0).standard_normal((n, 1)).astype(np.float32))
    else:
        n = 5_000_000
        p.write_text("x\n" + "0.5\n-1.25\n" * (n // 2))
    assert DEFAULT_MAX_ROWS >= 10**6
    _loaded(p, DEFAULT_MAX_ROWS)


def test_the_row_limit_follows_the_environment_and_the_memory_budget(tmp_path, monkeypatch):
    z = np.random.default_rng(1).standard_normal((5000, 16)).astype(np.float32)
    p = tmp_path / "z.npy"
    np.save(p, z)
    monkeypatch.setenv("LATENT_HEALTH_MAX_ROWS", "1000")
    emb = load_embeddings(p, seed=3)
    assert emb.array.shape == (1000, 16)
    assert np.array_equal(emb.array, z[emb.row_indices])  # the rows said, in file order
    assert any("LATENT_HEALTH_MAX_ROWS" in n and "5,000 → 1,000" in n for n in emb.notices), emb.notices
    assert load_embeddings(p, max_rows=300).array.shape == (300, 16)  # fewer on request
    assert load_embeddings(p, max_rows=3000).array.shape == (1000, 16)  # never more than the limit
    monkeypatch.delenv("LATENT_HEALTH_MAX_ROWS")
    monkeypatch.setenv("LATENT_HEALTH_MAX_MEMORY", str(16 * 4 * 2000))  # 2000 float32 rows of 16
    emb = load_embeddings(p)
    assert emb.array.shape == (2000, 16) and "LATENT_HEALTH_MAX_MEMORY" in emb.notices[-1]
    assert row_limit(16, views=2)[0] == 1000  # views share the budget
    monkeypatch.setenv("LATENT_HEALTH_MAX_MEMORY", "2GiB")
    from sigreg_core.assessment.budget import max_memory

    assert max_memory() == 2 * 1024**3 and row_limit(1024)[0] == 2 * 1024**3 // 4096


def test_row_draw_beyond_2_23_rows_is_a_uniform_subset_in_bounded_memory(monkeypatch):
    """The block draw (hypergeometric count per block) against the exact inclusion probabilities of a
    uniform m-subset: P(i in S) = m / n and P(i, j in S) = m (m - 1) / (n (n - 1)), within and across blocks."""
    import sigreg_core.inputs.context as C

    monkeypatch.setattr(C, "_DRAW_WHOLE_MAX", 0)
    monkeypatch.setattr(C, "_DRAW_BLOCK", 7)
    n, m, trials = 30, 9, 6000
    first = np.zeros(n)
    pair_in, pair_across = 0, 0
    for seed in range(trials):
        idx = draw_rows(n, m, seed)
        assert idx.size == m and np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n
        hit = np.zeros(n, bool)
        hit[idx] = True
        first += hit
        pair_in += hit[0] and hit[1]  # same block
        pair_across += hit[3] and hit[20]  # different blocks
    p1 = m / n
    se1 = np.sqrt(p1 * (1 - p1) / trials)
    assert np.all(np.abs(first / trials - p1) < 5 * se1), first / trials
    p2 = m * (m - 1) / (n * (n - 1))
    se2 = np.sqrt(p2 * (1 - p2) / trials)
    assert abs(pair_in / trials - p2) < 5 * se2 and abs(pair_across / trials - p2) < 5 * se2, (pair_in, pair_across)
    monkeypatch.undo()
    # below 2^23 rows the draw is numpy's, bit for bit (earlier releases' row choices are kept)
    assert np.array_equal(draw_rows(10_000, 100, 5), np.sort(np.random.default_rng(5).choice(10_000, 100, replace=False)))
    big = draw_rows(50_000_000, 1 << 20, 0)  # numpy's choice would permute all 5e7 indices (400 MB)
    assert big.size == 1 << 20 and np.all(np.diff(big) > 0) and big[-1] < 50_000_000


# ----------------------------------------------------------------------------- strict parsers
def _st(header: dict, data: bytes, raw: bytes | None = None) -> bytes:
    head = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


_Z = np.arange(12, dtype=np.float32).reshape(4, 3)


@pytest.mark.parametrize("header,data,fragment", [
    ({"z": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
      "w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}}, _Z.tobytes(), "overlaps the tensor before it"),
    ({"z": {"dtype": "F32", "shape": [4, 3], "data_offsets": [8, 56]}}, bytes(8) + _Z.tobytes(), "leaves a gap of 8 bytes"),
    ({"z": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}}, _Z.tobytes() + bytes(8), "8 bytes after its last tensor"),
    ({"z": {"dtype": "F4", "shape": [4, 4], "data_offsets": [0, 8]}}, bytes(8), "dtype F4: packed 4-bit floats"),
    ({"z": {"dtype": "BOOL", "shape": [4, 3], "data_offsets": [0, 12]}}, bytes(12), "dtype BOOL: booleans"),
    ({"z": {"dtype": "C64", "shape": [4, 3], "data_offsets": [0, 96]}}, bytes(96), "dtype C64: complex"),
    ({"z": {"dtype": "Q7", "shape": [4, 3], "data_offsets": [0, 12]}}, bytes(12), "not a safetensors dtype"),
])
def test_safetensors_is_as_strict_as_its_format(header, data, fragment):
    with pytest.raises(EmbeddingLoadError, match=fragment):
        load_embeddings(_st(header, data), name="x.safetensors")


def test_safetensors_duplicate_key_is_refused_not_last_one_wins():
    raw = (b'{"z":{"dtype":"F32","shape":[4,3],"data_offsets":[0,48]},'
           b'"z":{"dtype":"F32","shape":[2,3],"data_offsets":[48,72]}}')
    with pytest.raises(EmbeddingLoadError, match="has the key 'z' twice"):
        load_embeddings(_st({}, _Z.tobytes() + bytes(24), raw=raw), name="x.safetensors")
    # two tensors end to end are fine
    ok = {"a": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
          "b": {"dtype": "F16", "shape": [4, 3], "data_offsets": [48, 72]}}
    got = load_embeddings(_st(ok, _Z.tobytes() + _Z.astype(np.float16).tobytes()), name="x.safetensors", key="b")
    assert np.array_equal(got.array, _Z)


@pytest.mark.parametrize("dt,torch_name", [("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"),
                                           ("F8_E8M0", "float8_e8m0fnu")])
def test_8_bit_float_tensors_are_read_exactly(dt, torch_name):
    """A valid F8 tensor used to be called forged (its item size was read from the digits of the name).
    Oracle: torch's own float8 types widened to float32, for all 256 codes."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch, torch_name):
        pytest.skip(f"torch has no {torch_name}")
    ref = torch.arange(256, dtype=torch.uint8).view(getattr(torch, torch_name)).float().numpy()
    table = f8_table(dt)
    assert np.array_equal(table, ref, equal_nan=True)
    codes = np.array([c for c in range(256) if np.isfinite(table[c])], dtype=np.uint8)[:128]
    data = codes.tobytes()
    header = {"z": {"dtype": dt, "shape": [32, 4], "data_offsets": [0, len(data)]}}
    got = load_embeddings(_st(header, data), name="f8.safetensors")
    assert got.array.shape == (32, 4) and np.array_equal(got.array.ravel(), ref[codes])


def test_8_bit_float_closed_forms():
    e4 = f8_table("F8_E4M3")
    assert e4[0x38] == 1.0 and e4[0x7E] == 448.0 and e4[0x01] == 2.0**-9 and np.isnan(e4[0x7F]) and e4[0xB8] == -1.0
    e5 = f8_table("F8_E5M2")
    assert e5[0x3C] == 1.0 and e5[0x7B] == 57344.0 and np.isinf(e5[0x7C]) and np.isnan(e5[0x7D]) and e5[0x01] == 2.0**-16
    e8 = f8_table("F8_E8M0")
    assert e8[127] == 1.0 and e8[0] == 2.0**-127 and np.isnan(e8[255])


def test_npz_with_a_duplicated_member_is_refused():
    """One reader lists one 'z.npy', another loads the other."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        with zipfile.ZipFile(buf, "w") as zf:
            for value in (1.0, 2.0):
                member = io.BytesIO()
                np.save(member, np.full((4, 3), value, np.float32))
                zf.writestr("z.npy", member.getvalue())
    with pytest.raises(EmbeddingLoadError, match="holds the member 'z.npy' twice"):
        load_embeddings(buf.getvalue(), name="dup.npz")


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised():
    for bad in ("=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\r=1"):
        assert csv_cell(bad) == "'" + bad
    assert csv_cell("emb.npy") == "emb.npy" and csv_cell(-1.5) == -1.5
    df = pd.DataFrame({"set": ["=1+1", "ok"], "value": [-1.0, 2.0], "=col": ["@x", "y"]})
    text = csv_safe_frame(df).to_csv(index=False)
    assert text.splitlines() == ["set,value,'=col", "'=1+1,-1.0,'@x", "ok,2.0,y"]


def test_comparison_and_report_csv_exports_neutralise_names():
    from sigreg_core.compare.comparison import compare_sets
    from sigreg_core.compare.exports import comparison_csv

    rng = np.random.default_rng(0)
    sets = {"=HYPERLINK(\"http://evil\",\"x\")": rng.standard_normal((200, 8)).astype(np.float32),
            "@b": rng.standard_normal((200, 8)).astype(np.float32)}
    cmp = compare_sets(sets, num_slices=16, n_boot=0, null_draws=0, cache_dir=False, device="cpu")
    rows = pd.read_csv(io.BytesIO(comparison_csv(cmp)))
    assert set(rows["set"]) == {"'=HYPERLINK(\"http://evil\",\"x\")", "'@b"}
    assert all(not str(v).startswith(("=", "+", "@")) for v in rows.astype(str).to_numpy().ravel())


# ----------------------------------------------------------------------------- names are data
def test_markdown_cannot_form_auto_links():
    for text in ("www.evil.example", "WWW.evil.example/p", "mail me@evil.example", "https://evil.example",
                 "http:evil.example", "mailto:a@b.c", "<a href=\"https:evil.example\">CLICK"):
        out = md(text)
        # GFM auto-links start at "www." / "http://" / "https://" / an e-mail "x@y"; each is broken by an escape
        assert "www." not in out.lower() and "http://" not in out and "https://" not in out
        assert "@" not in out.replace("\\@", "") and "http:" not in out
        assert "<" not in out.replace("\\<", "")
        assert out.replace("\\", "") == text  # the text itself reads unchanged
    assert md("emb.safetensors") == "emb.safetensors" and md("runs/lambda-0") == "runs/lambda-0"
    assert md("lambda-0.05@200") == "lambda-0.05@200"  # no dotted domain after '@': no e-mail link, left as is


def test_compare_figures_show_hostile_set_names_as_text():
    """Plotly renders <a href> and <b> in trace names, hover text and tick labels: a set named like a link
    must arrive escaped everywhere (and a name holding %{...} must not become a hover template field)."""
    from sigreg_core.compare.comparison import compare_sets
    from sigreg_core.compare.ranking import pairwise_matrix, ranking_frame
    from sigreg_core.present import compare_figures as CF

    rng = np.random.default_rng(1)
    evil = "<a href=\"https:evil.example\">CLICK</a>\u202e%{x}"
    sets = {evil: rng.standard_normal((300, 8)).astype(np.float32),
            "plain": rng.standard_normal((300, 8)).astype(np.float32)}
    cmp = compare_sets(sets, num_slices=16, n_boot=20, null_draws=0, cache_dir=False, device="cpu")
    figs = list(CF.comparison_figures(cmp, pair=(evil, "plain")).values())
    figs.append(CF.ranking_figure(ranking_frame(cmp)))
    figs.append(CF.pairwise_figure(*pairwise_matrix(cmp, "sigreg")))
    blob = json.dumps([f.to_plotly_json() for f in figs], default=str, ensure_ascii=False)
    assert "<a href" not in blob and "\u202e" not in blob and "</a>" not in blob
    assert "&lt;a href" in blob  # shown, escaped
    scatter = figs[0].to_plotly_json()["data"]
    templates = [t.get("hovertemplate", "") for t in scatter]
    assert any("&#37;{x}" in t for t in templates) and not any(plotly_text(evil) in t for t in templates)


def test_terminal_output_of_compare_escapes_names(tmp_path):
    from sigreg_core.compare.cli import _labels

    labels = _labels([str(tmp_path / "a\x1b]8;;http://evil\x07b.npy"), str(tmp_path / "x\ny | forged.npy")])
    assert all("\x1b" not in lab and "\n" not in lab and "\x07" not in lab for lab in labels)
    assert labels[1] == "x\\ny | forged.npy"


# ----------------------------------------------------------------------------- caches and encoders
def test_report_digest_is_of_the_bytes_scored_not_of_the_file_afterwards(tmp_path):
    """A server file replaced between loading and hashing must not lend its digest to the old data."""
    from sigreg_core.present.report_cache import data_digest

    p = tmp_path / "z.npy"
    z = np.random.default_rng(2).standard_normal((100, 4)).astype(np.float32)
    np.save(p, z)
    emb = load_embeddings(p)
    np.save(p, z + 1)  # replaced after the load, before any digest was asked for
    assert emb.data_sha256 == data_digest(z) == array_digest(emb.array)
    assert emb.data_sha256 != data_digest(z + 1)
    assert data_digest(z) != data_digest(z.reshape(4, 100))  # the shape is part of the key
    import hashlib

    oracle = hashlib.sha256(b"<f4|(100, 4)|" + z.tobytes()).hexdigest()  # written out independently
    assert emb.data_sha256 == oracle


def test_encoders_are_off_unless_the_server_opted_in(monkeypatch):
    from sigreg_core.inputs.limits import ALLOW_ENCODERS_ENV, ENCODERS_OFF, encoders_allowed

    monkeypatch.delenv(ALLOW_ENCODERS_ENV, raising=False)
    assert not encoders_allowed()
    for value in ("0", "yes", "true", " "):
        monkeypatch.setenv(ALLOW_ENCODERS_ENV, value)
        assert not encoders_allowed()
    monkeypatch.setenv(ALLOW_ENCODERS_ENV, "1")
    assert encoders_allowed()
    assert "LATENT_HEALTH_ALLOW_ENCODERS=1" in ENCODERS_OFF and "read and write anything" in ENCODERS_OFF


def test_embed_help_says_encoders_and_models_run_code():
    import argparse

    from sigreg_core.inputs.embed_cli import add_embed_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_embed_parser(sub)
    text = " ".join(sub.choices["embed"].format_help().split())
    assert "--model imports and runs Python code" in text and "--encoder runs the program stored in the file" in text
    assert "sandbox" in text


def test_compare_page_runs_no_encoder_without_the_opt_in(monkeypatch):
    """The Encoders + probe tab offers nothing to run unless the server was started with the opt-in."""
    from streamlit.testing.v1 import AppTest

    from tests.test_app_compare import SHELL

    monkeypatch.delenv("LATENT_HEALTH_ALLOW_ENCODERS", raising=False)
    at = AppTest.from_string(SHELL, default_timeout=240)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Encoders are off on this server" in i.value for i in at.info)
    assert not [t for t in at.text_area if t.key == "cmp_encoders"]
    monkeypatch.setenv("LATENT_HEALTH_ALLOW_ENCODERS", "1")
    at = AppTest.from_string(SHELL, default_timeout=240)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t for t in at.text_area if t.key == "cmp_encoders"]
    assert not any("Encoders are off" in i.value for i in at.info)
