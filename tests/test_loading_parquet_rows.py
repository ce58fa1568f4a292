"""A row subset of a parquet file is decoded in bounded slices (``iter_batches``), not whole.

The result must be the whole-column decode at ``ctx.plan``'s rows, bit for bit, with the same
notices and errors; the byte budget is one slice plus the result, so a file whose whole column
is over the limit loads as a subset whatever its row groups, even one huge row group (peak
memory measured in a child process, as in test_loading_hostile.py).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings
from test_loading_hostile import LOAD_SECONDS, MiB, ROOT, _child

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N, D, GROUPS = 4000, 12, 20


def _vector_column(z: np.ndarray, kind: str):
    n, d = z.shape
    if kind == "fixed_size_list<float16>":
        return pa.FixedSizeListArray.from_arrays(pa.array(z.astype(np.float16).ravel()), d)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), pa.array(z.ravel()))


def _table(z: np.ndarray, kind: str):
    ids = pa.array(np.arange(len(z)))
    if kind == "numeric":
        cols = {"id": ids, **{f"dim_{j}": pa.array(z[:, j].astype(np.float64)) for j in range(z.shape[1])}}
        return pa.table(cols)
    return pa.table({"id": ids, "v": _vector_column(z, kind)})


def _expected_values(z: np.ndarray, kind: str) -> np.ndarray:
    """What the file holds, as float32, computed without the loader."""
    if kind == "fixed_size_list<float16>":
        return z.astype(np.float16).astype(np.float32)
    return z.astype(np.float32)


def _no_whole_read(monkeypatch):
    """Make a whole-file read fail, so a test passes only through the row-group path."""
    def refuse(*_a, **_k):
        raise AssertionError("the whole column was read")
    monkeypatch.setattr(pq.ParquetFile, "read", refuse)


@pytest.mark.parametrize("kind", ["list<float32>", "fixed_size_list<float16>", "numeric"])
def test_subset_of_many_row_groups_is_the_whole_decode_at_the_planned_rows(tmp_path, kind, monkeypatch):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((N, D)) * 3).astype(np.float32)
    m, seed = 500, 7
    idx = np.sort(np.random.default_rng(seed).choice(N, size=m, replace=False))  # ctx.plan's draw
    z[idx[[5, 321]], [2, 7]] = np.nan  # two drawn rows are non-finite (row numbers must be the file's)
    z[np.setdiff1d(np.arange(N), idx)[100], 0] = np.inf  # and one row that is not drawn
    one, many = tmp_path / "one.parquet", tmp_path / "many.parquet"
    pq.write_table(_table(z, kind), one)  # a single row group: today's whole-column path
    pq.write_table(_table(z, kind), many, row_group_size=N // GROUPS)
    assert pq.ParquetFile(one).metadata.num_row_groups == 1
    assert pq.ParquetFile(many).metadata.num_row_groups == GROUPS

    ref = load_embeddings(one, max_rows=m, seed=seed, drop_nonfinite=True)
    with monkeypatch.context() as mp:
        _no_whole_read(mp)
        got = load_embeddings(many, max_rows=m, seed=seed, drop_nonfinite=True)

    keep = idx[np.isfinite(z[idx]).all(axis=1)]
    assert len(keep) == m - 2
    np.testing.assert_array_equal(got.row_indices, keep)
    assert got.array.dtype == np.float32 and got.array.shape == (m - 2, D)
    assert np.array_equal(got.array.view(np.uint32), ref.array.view(np.uint32))  # bit-identical
    assert np.array_equal(got.array.view(np.uint32), _expected_values(z, kind)[keep].view(np.uint32))
    assert got.notices == ref.notices
    assert any(f"dropped 2 rows with NaN values (first at row {idx[5]}, column 2)" in x for x in got.notices), got.notices
    assert got.original_shape == ref.original_shape == (N, D)
    assert got.original_dtype == ref.original_dtype


def test_subset_without_nonfinite_rows_matches_the_full_decode_indexed(tmp_path, monkeypatch):
    z = np.random.default_rng(1).standard_normal((N, D)).astype(np.float32)
    p = tmp_path / "many.parquet"
    pq.write_table(_table(z, "list<float32>"), p, row_group_size=N // GROUPS)
    full = load_embeddings(p)
    _no_whole_read(monkeypatch)
    sub = load_embeddings(p, max_rows=777, seed=3)
    assert np.array_equal(sub.array.view(np.uint32), full.array[sub.row_indices].view(np.uint32))
    np.testing.assert_array_equal(sub.row_indices, np.sort(np.random.default_rng(3).choice(N, 777, replace=False)))


# ----------------------------------------------------------------------------- null and ragged rows
def _list_file(path, rows: list, row_group_size: int):
    pq.write_table(pa.table({"v": pa.array(rows, type=pa.list_(pa.float32()))}), path, row_group_size=row_group_size)


def _message(path, **kw) -> str:
    with pytest.raises(EmbeddingLoadError) as info:
        load_embeddings(path, **kw)
    return str(info.value)


def _rows(n=2000, d=6):
    return [[float(i)] * d for i in range(n)]


def test_null_rows_in_later_row_groups_are_reported_with_their_global_row_numbers(tmp_path):
    rows = _rows()
    rows[1234] = None
    rows[1777] = None
    p = tmp_path / "nulls.parquet"
    _list_file(p, rows, 100)
    msg = _message(p, max_rows=300)
    assert "has 2 empty (null) rows, first at row 1234" in msg, msg
    assert msg == _message(p)  # the whole-column decode says the same


def test_null_rows_in_a_fixed_size_list_are_reported_with_their_global_row_number(tmp_path):
    flat = pa.array(np.arange(2000 * 4, dtype=np.float32))
    mask = np.zeros(2000, bool)
    mask[1501] = True
    col = pa.FixedSizeListArray.from_arrays(flat, 4, mask=pa.array(mask))
    p = tmp_path / "fsl_nulls.parquet"
    pq.write_table(pa.table({"v": col}), p, row_group_size=100)
    msg = _message(p, max_rows=300)
    assert "has 1 empty (null) rows, first at row 1501" in msg, msg
    assert msg == _message(p)


def test_a_ragged_row_in_a_later_row_group_is_reported_with_its_global_row_number(tmp_path):
    rows = _rows()
    rows[1500] = rows[1500][:-1]
    rows[1900] = rows[1900] + [1.0]
    p = tmp_path / "ragged.parquet"
    _list_file(p, rows, 100)
    msg = _message(p, max_rows=300)
    assert "ragged: row 0 has 6 values but row 1500 has 5" in msg, msg
    assert msg == _message(p)


def test_nulls_after_a_ragged_row_win_as_in_the_whole_decode(tmp_path):
    rows = _rows()
    rows[300] = rows[300][:2]
    rows[1700] = None
    p = tmp_path / "both.parquet"
    _list_file(p, rows, 100)
    msg = _message(p, max_rows=300)
    assert "1 empty (null) rows, first at row 1700" in msg, msg
    assert msg == _message(p)


def test_a_first_row_without_values_is_refused_as_in_the_whole_decode(tmp_path):
    rows = _rows()
    rows[0] = []
    p = tmp_path / "empty_first.parquet"
    _list_file(p, rows, 100)
    msg = _message(p, max_rows=300)
    assert "ragged: row 0 has 0 values but row 1 has 6" in msg, msg
    assert msg == _message(p)


# ----------------------------------------------------------------------------- byte budget, measured
_SUBSET_CHILD = r"""
import sys, time
sys.path.insert(0, {root!r})
import numpy, pyarrow.parquet, pandas  # in the baseline: the loader's imports (pyarrow's conversions import pandas)
from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
base = hwm()
t0 = time.perf_counter()
try:
    emb = load_embeddings({path!r}, max_rows={max_rows!r}, max_bytes={max_bytes!r})
    ok = bool((emb.array == (emb.row_indices % 251)[:, None]).all())
    out = "LOADED " + "x".join(map(str, emb.array.shape)) + (" values-ok" if ok else " values-WRONG")
except EmbeddingLoadError as exc:
    out = "REFUSED " + str(exc)
dt = time.perf_counter() - t0
sys.stdout.write(f"{{dt:.3f}} {{base}} {{hwm()}}\n{{out}}\n")
"""

BIG_N, BIG_D = 200_000, 64  # 12.8 M float32 values: 51 MB of arrow values, ~205 MB for a whole decode
LIMIT = "64MiB"


def _big_file(path, kind: str, row_group_size: int):
    """Row r holds the value r % 251 in every dimension (compresses to a small file)."""
    z = np.repeat((np.arange(BIG_N) % 251).astype(np.float32)[:, None], BIG_D, axis=1)
    col = _vector_column(z, "list<float32>") if kind == "list" else pa.FixedSizeListArray.from_arrays(pa.array(z.ravel()), BIG_D)
    pq.write_table(pa.table({"v": col}), path, row_group_size=row_group_size, compression="zstd")


def _load_in_child(path, max_rows):
    code = _SUBSET_CHILD.format(root=str(ROOT), path=str(path), max_rows=max_rows, max_bytes=LIMIT)
    rc, out, err, _sec, _peak = _child([sys.executable, "-c", code])
    assert rc == 0, err.decode("utf-8", "replace")[-2000:]
    first, result = out.split("\n", 1)
    dt, base, peak = first.split()
    return float(dt), (int(peak) - int(base)) * 1024, result.strip()


@pytest.mark.parametrize("kind", ["list", "fixed_size_list"])
def test_subset_of_a_file_over_the_limit_loads_in_bounded_memory(tmp_path, kind):
    p = tmp_path / f"big_{kind}.parquet"
    _big_file(p, kind, BIG_N // 20)  # 20 row groups of 10,000 rows (2.6 MB of values each)

    dt, extra, result = _load_in_child(p, None)  # the whole column: refused from the footer
    assert result.startswith("REFUSED ") and "checked from the footer before decoding" in result, result
    assert "12,800,000 values" in result, result
    assert extra < 32 * MiB and dt < LOAD_SECONDS, (extra / MiB, dt)

    dt, extra, result = _load_in_child(p, 20_000)
    assert result == f"LOADED 20000x{BIG_D} values-ok", result
    # a whole decode holds >= 51 MB of arrow values plus a 102 MB float64 copy (measured: 265 MB
    # over the baseline with one row group). One row group at a time holds ~8 MB plus the 5 MB
    # result; measured 36-67 MB, the rest being arrow's allocator (mimalloc) keeping freed pages a
    # while: it levels off after a few row groups (~62 MB for 100 groups of 1,000,000 rows too)
    assert extra < 100 * MiB, f"peak {extra / MiB:.1f} MiB over the baseline"
    assert dt < LOAD_SECONDS, dt


@pytest.mark.parametrize("kind", ["list", "fixed_size_list"])
def test_one_huge_row_group_is_decoded_in_bounded_slices_with_max_rows(tmp_path, kind):
    """Issue 24: one row group is no longer the unit; a subset reads bounded slices of it."""
    p = tmp_path / f"one_group_{kind}.parquet"
    _big_file(p, kind, BIG_N)
    assert pq.ParquetFile(p).metadata.num_row_groups == 1
    dt, extra, result = _load_in_child(p, None)  # the whole 51 MB column: refused from the footer
    assert result.startswith("REFUSED ") and "checked from the footer before decoding" in result, result
    assert extra < 32 * MiB and dt < LOAD_SECONDS, (extra / MiB, dt)
    dt, extra, result = _load_in_child(p, 20_000)
    assert result == f"LOADED 20000x{BIG_D} values-ok", result
    assert extra < 100 * MiB and dt < LOAD_SECONDS, (extra / MiB, dt)  # a whole decode: 265 MB


def test_numeric_columns_budget_is_per_row_group(tmp_path, monkeypatch):
    n, d = 20_000, 40
    z = np.random.default_rng(2).standard_normal((n, d))
    table = pa.table({f"c{j}": z[:, j] for j in range(d)})  # float64: 6.4 MB decoded
    many, one = tmp_path / "many.parquet", tmp_path / "one.parquet"
    pq.write_table(table, many, row_group_size=1000)
    pq.write_table(table, one)
    with pytest.raises(EmbeddingLoadError, match="pass max_rows"):
        load_embeddings(many, max_bytes="4MiB")
    _no_whole_read(monkeypatch)
    for path in (many, one):  # one row group of 6.4 MB is read in slices under the 4 MiB limit too
        emb = load_embeddings(path, max_bytes="4MiB", max_rows=2000, seed=5)
        assert np.array_equal(emb.array, z[emb.row_indices].astype(np.float32))
