"""Loading embeddings: every format round-trips, options behave, server paths stay confined.

Oracles: the array written is the array read (bitwise for binary formats), the
safetensors reference reader (``safetensors.numpy`` / ``safetensors.torch``), and
the exact float32 widening of bfloat16 done by torch.
"""
from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sigreg_core.inputs.loading import (
    ALLOWED_ROOTS_ENV,
    MAX_BYTES_ENV,
    EmbeddingLoadError,
    LoadedEmbeddings,
    allowed_roots,
    default_max_bytes,
    list_keys,
    load_embeddings,
    load_server_path,
    parse_byte_size,
    resolve_server_path,
    source_digest,
)

FORMATS = ["npy", "npz", "npz-compressed", "pt", "pth", "safetensors", "csv", "tsv", "parquet", "parquet-vectors"]


def batch(n=257, d=16, seed=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d)).astype(np.float32)
    z[:, 0] *= 3.0  # not all coordinates alike, so a transposition or shuffle shows
    z[:, 1] += 0.5
    return z


def write(z: np.ndarray, fmt: str, directory: Path, stem: str = "emb") -> Path:
    """Write ``z`` in one of the supported formats, the way each stack does it."""
    from safetensors.numpy import save_file

    if fmt == "npy":
        p = directory / f"{stem}.npy"
        np.save(p, z)
    elif fmt == "npz":
        p = directory / f"{stem}.npz"
        np.savez(p, embeddings=z)
    elif fmt == "npz-compressed":
        p = directory / f"{stem}_c.npz"
        np.savez_compressed(p, embeddings=z)
    elif fmt in ("pt", "pth"):
        p = directory / f"{stem}.{fmt}"
        torch.save(torch.from_numpy(z.copy()), p)
    elif fmt == "safetensors":
        p = directory / f"{stem}.safetensors"
        save_file({"embeddings": np.ascontiguousarray(z)}, str(p))
    elif fmt in ("csv", "tsv"):
        p = directory / f"{stem}.{fmt}"
        df = pd.DataFrame(z, columns=[f"dim_{j}" for j in range(z.shape[1])])
        df.to_csv(p, sep="," if fmt == "csv" else "\t", index=False, float_format="%.9g")
    elif fmt == "parquet":
        p = directory / f"{stem}.parquet"
        pd.DataFrame(z, columns=[f"dim_{j}" for j in range(z.shape[1])]).to_parquet(p)
    elif fmt == "parquet-vectors":
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = directory / f"{stem}_v.parquet"
        vec = pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1)), z.shape[1])
        pq.write_table(pa.table({"image_id": np.arange(len(z)), "embedding": vec}), p)
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return p


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_path_and_bytes(fmt, tmp_path):
    z = batch()
    p = write(z, fmt, tmp_path)
    from_path = load_embeddings(p)
    from_bytes = load_embeddings(p.read_bytes(), name=p.name)
    from_filelike = load_embeddings(io.BytesIO(p.read_bytes()), name=p.name)
    for e in (from_path, from_bytes, from_filelike):
        assert isinstance(e, LoadedEmbeddings)
        assert e.array.dtype == np.float32 and e.array.flags.c_contiguous
        np.testing.assert_array_equal(e.array, z)
        assert e.original_shape == z.shape
        assert e.num_rows == 257 and e.dim == 16 and e.num_views == 1
    assert from_path.sha256 == from_bytes.sha256 == source_digest(p.read_bytes())
    assert len(from_path.sha256) == 64


def test_round_trip_scores_identically(tmp_path):
    """The same batch saved in every format gives the same SIGReg, slice by slice."""
    statistic = pytest.importorskip("sigreg_core.assessment.slices")
    from sigreg_core.core.directions import sample_directions

    z = batch(n=300, d=12)
    directions = sample_directions(12, 64, seed=0)
    ref = statistic.score_slices(z, directions, preset="lejepa", device="cpu")
    for fmt in FORMATS:
        e = load_embeddings(write(z, fmt, tmp_path))
        got = statistic.score_slices(e.array, directions, preset="lejepa", device="cpu")
        np.testing.assert_array_equal(got.statistic, ref.statistic, err_msg=fmt)
        assert got.sigreg == ref.sigreg


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_bfloat16_and_float16_widen_exactly(fmt, tmp_path):
    z = batch(n=64, d=8)
    for tdtype in (torch.bfloat16, torch.float16):
        t = torch.from_numpy(z).to(tdtype)
        p = tmp_path / f"h.{fmt}"
        if fmt == "pt":
            torch.save({"z": t}, p)
        else:
            from safetensors.torch import save_file

            save_file({"z": t}, str(p))
        e = load_embeddings(p)
        np.testing.assert_array_equal(e.array, t.to(torch.float32).numpy())
        assert e.original_dtype == str(tdtype).replace("torch.", "")
        assert not any("converted" in n for n in e.notices)


def test_safetensors_matches_reference_reader(tmp_path):
    """Our header parser + memory map agree with the safetensors library on every dtype."""
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(0)
    tensors = {
        "f64": rng.standard_normal((20, 5)),
        "f32": rng.standard_normal((21, 6)).astype(np.float32),
        "f16": rng.standard_normal((22, 7)).astype(np.float16),
        "i32": rng.integers(-5, 5, size=(23, 3)).astype(np.int32),
        "views": rng.standard_normal((2, 24, 4)).astype(np.float32),
    }
    p = tmp_path / "many.safetensors"
    save_file(tensors, str(p), metadata={"source": "test"})
    ref = load_file(str(p))
    for k in tensors:
        e = load_embeddings(p, key=k)
        np.testing.assert_array_equal(e.array, ref[k].astype(np.float32))
        assert e.key == k
    assert any("converted int32" in n for n in load_embeddings(p, key="i32").notices)
    keys = {entry.key: entry for entry in list_keys(p)}
    assert set(keys) == set(tensors)
    assert keys["f16"].shape == (22, 7) and keys["f16"].dtype == "float16" and keys["f16"].usable


def test_float64_and_fortran_order_npy(tmp_path):
    z = batch(n=50, d=6).astype(np.float64)
    p = tmp_path / "f.npy"
    np.save(p, np.asfortranarray(z))
    e = load_embeddings(p)
    np.testing.assert_array_equal(e.array, z.astype(np.float32))
    assert e.original_dtype == "float64"
    q = tmp_path / "f.npz"
    np.savez_compressed(q, z=np.asfortranarray(z))
    np.testing.assert_array_equal(load_embeddings(q, max_rows=10, seed=1).array, z.astype(np.float32)[load_embeddings(q, max_rows=10, seed=1).row_indices])


def test_big_endian_npy(tmp_path):
    z = batch(n=10, d=3)
    p = tmp_path / "be.npy"
    np.save(p, z.astype(">f4"))
    np.testing.assert_array_equal(load_embeddings(p).array, z)


# ----------------------------------------------------------------------------- containers and keys


def test_npz_several_arrays_needs_key(tmp_path):
    z = batch(n=40, d=4)
    p = tmp_path / "two.npz"
    np.savez(p, a=z, b=z[:, :2], labels=np.arange(40))
    with pytest.raises(EmbeddingLoadError, match=r"several arrays.*key='a'.*--key a"):
        load_embeddings(p)
    np.testing.assert_array_equal(load_embeddings(p, key="b").array, z[:, :2])
    with pytest.raises(EmbeddingLoadError, match="no array named 'c'"):
        load_embeddings(p, key="c")
    keys = list_keys(p)
    assert [k.key for k in keys] == ["a", "b", "labels"]
    assert [k.usable for k in keys] == [True, True, False]


def test_pt_nested_dict_dotted_key(tmp_path):
    z = batch(n=30, d=5)
    p = tmp_path / "ckpt.pt"
    torch.save({"step": 10, "outputs": [torch.zeros(3), {"z": torch.from_numpy(z)}], "proj": torch.ones(30, 2)}, p)
    with pytest.raises(EmbeddingLoadError, match=r"several arrays.*outputs\.1\.z"):
        load_embeddings(p)
    e = load_embeddings(p, key="outputs.1.z")
    np.testing.assert_array_equal(e.array, z)
    assert e.key == "outputs.1.z"
    assert {k.key for k in list_keys(p)} == {"outputs.0", "outputs.1.z", "proj"}


def test_pt_single_tensor_among_other_values(tmp_path):
    z = batch(n=30, d=5)
    p = tmp_path / "one.pth"
    torch.save({"epoch": 3, "name": "run", "emb": torch.from_numpy(z), "bias": torch.zeros(5)}, p)
    e = load_embeddings(p)
    assert e.key == "emb"
    assert any("picked 'emb'" in n for n in e.notices)


def test_three_d_views(tmp_path):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((3, 40, 6)).astype(np.float32)
    for fmt in ("npy", "npz", "pt", "safetensors"):
        p = write(z, fmt, tmp_path, stem=f"v_{fmt}")
        e = load_embeddings(p)
        assert e.array.shape == (3, 40, 6) and e.num_views == 3
        assert all(np.array_equal(a, b) for a, b in zip(e.views, z))
        np.testing.assert_array_equal(load_embeddings(p, view=1).array, z[1])
        np.testing.assert_array_equal(load_embeddings(p, view=-1).array, z[2])
        with pytest.raises(EmbeddingLoadError, match="view 3 does not exist"):
            load_embeddings(p, view=3)
        sub = load_embeddings(p, max_rows=7, seed=5)
        assert sub.array.shape == (3, 7, 6)
        np.testing.assert_array_equal(sub.array, z[:, sub.row_indices, :])


def test_view_on_2d_is_refused(tmp_path):
    p = write(batch(n=10, d=2), "npy", tmp_path)
    with pytest.raises(EmbeddingLoadError, match="2-D"):
        load_embeddings(p, view=1)


# ----------------------------------------------------------------------------- tables


def test_csv_sets_aside_text_and_id_columns(tmp_path):
    z = batch(n=20, d=3)
    df = pd.DataFrame(z, columns=["a", "b", "c"])
    df.insert(0, "id", np.arange(20))
    df["label"] = ["cat", "dog"] * 10
    df["caption"] = [f"image {i}" for i in range(20)]
    p = tmp_path / "t.csv"
    df.to_csv(p, index=True, float_format="%.9g")  # also writes an unnamed index column
    e = load_embeddings(p)
    np.testing.assert_array_equal(e.array, z)
    text = " | ".join(e.notices)
    assert "id" in text and "label" in text and "caption" in text and "Unnamed: 0" in text


def test_csv_without_header_and_with_missing_values(tmp_path):
    z = batch(n=12, d=4)
    p = tmp_path / "nh.csv"
    np.savetxt(p, z, delimiter=",", fmt="%.9g")
    np.testing.assert_array_equal(load_embeddings(p).array, z)
    lines = p.read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = ""
    lines[5] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(EmbeddingLoadError, match=r"1 of 12 rows contain NaN.*first at row 5, column 2"):
        load_embeddings(p)


def test_csv_with_a_bad_cell_names_it(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("a,b\n1,2\n3,oops\n5,6\n7,8\n")
    with pytest.raises(EmbeddingLoadError, match=r"column 'b'.*'oops' at data row 1"):
        load_embeddings(p)


def test_parquet_list_column_ragged_and_nulls(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"v": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0]])}), p)
    with pytest.raises(EmbeddingLoadError, match=r"ragged: row 0 has 2 values but row 2 has 1"):
        load_embeddings(p)
    q = tmp_path / "n.parquet"
    pq.write_table(pa.table({"v": pa.array([[1.0, 2.0], None, [5.0, 6.0]])}), q)
    with pytest.raises(EmbeddingLoadError, match=r"null\) rows, first at row 1"):
        load_embeddings(q)
    ok = tmp_path / "ok.parquet"
    pq.write_table(pa.table({"v": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], type=pa.list_(pa.float32())), "w": pa.array([[1.0], [2.0], [3.0]])}), ok)
    with pytest.raises(EmbeddingLoadError, match="several vector columns"):
        load_embeddings(ok)
    np.testing.assert_array_equal(load_embeddings(ok, key="v").array, [[1, 2], [3, 4], [5, 7]])


# ----------------------------------------------------------------------------- options


def test_max_rows_subsamples_the_same_rows_in_every_format(tmp_path):
    z = batch(n=500, d=8)
    picked = None
    for fmt in FORMATS:
        e = load_embeddings(write(z, fmt, tmp_path), max_rows=60, seed=7)
        assert e.array.shape == (60, 8)
        idx = e.row_indices
        assert len(np.unique(idx)) == 60 and np.all(np.diff(idx) > 0)
        np.testing.assert_array_equal(e.array, z[idx])
        assert any("subsampled 500 → 60 rows at random (seed 7)" in n for n in e.notices)
        if picked is None:
            picked = idx
        np.testing.assert_array_equal(idx, picked, err_msg=fmt)
    assert not np.array_equal(load_embeddings(write(z, "npy", tmp_path), max_rows=60, seed=8).row_indices, picked)
    full = load_embeddings(write(z, "npy", tmp_path), max_rows=10_000)
    assert full.row_indices is None and not full.notices


def test_nonfinite_reported_or_dropped(tmp_path):
    z = batch(n=30, d=4)
    z[7, 2] = np.nan
    z[11, 0] = np.inf
    z[20, 3] = -np.inf
    p = write(z, "npy", tmp_path)
    with pytest.raises(EmbeddingLoadError) as info:
        load_embeddings(p)
    msg = str(info.value)
    assert "3 of 30 rows contain NaN, Inf values (first at row 7, column 2" in msg
    assert "drop_nonfinite=True" in msg and "\n" not in msg
    e = load_embeddings(p, drop_nonfinite=True)
    keep = [i for i in range(30) if i not in (7, 11, 20)]
    np.testing.assert_array_equal(e.array, z[keep])
    np.testing.assert_array_equal(e.row_indices, keep)
    assert any("dropped 3 rows" in n for n in e.notices)


def test_float64_beyond_float32_range_counts_as_inf(tmp_path):
    z = batch(n=10, d=2).astype(np.float64)
    z[4, 1] = 1e300
    p = tmp_path / "big.npy"
    np.save(p, z)
    with pytest.raises(EmbeddingLoadError, match="first at row 4, column 1"):
        load_embeddings(p)


def test_byte_limit_from_argument_and_environment(tmp_path, monkeypatch):
    z = batch(n=1000, d=16)  # 64 000 bytes as float32
    p = write(z, "npy", tmp_path)
    with pytest.raises(EmbeddingLoadError, match=r"over the limit of 31\.2 KiB.*max_rows"):
        load_embeddings(p, max_bytes=32_000)
    assert load_embeddings(p, max_bytes=32_000, max_rows=400).array.shape == (400, 16)
    monkeypatch.setenv(MAX_BYTES_ENV, "32KB")
    assert default_max_bytes() == 32 * 1024
    with pytest.raises(EmbeddingLoadError, match="over the limit"):
        load_embeddings(p)
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(EmbeddingLoadError, match=MAX_BYTES_ENV):
        load_embeddings(p)
    monkeypatch.delenv(MAX_BYTES_ENV)
    assert default_max_bytes() == 8 * 1024**3


def test_parse_byte_size():
    assert parse_byte_size("8GiB") == 8 * 1024**3
    assert parse_byte_size("512M") == 512 * 1024**2
    assert parse_byte_size("1e9") == 10**9
    assert parse_byte_size(12345) == 12345
    for bad in ("", "-1", "0", "ten", "1.5X"):
        with pytest.raises(EmbeddingLoadError):
            parse_byte_size(bad)


def test_memory_mapped_subsample_reads_only_the_rows(tmp_path):
    """A 32 MiB .npy subsampled to 1 000 rows allocates well under 1 MiB (mmap + gather)."""
    n, d = 131_072, 64
    p = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(p, mode="w+", dtype=np.float32, shape=(n, d))
    mm[:] = np.arange(n, dtype=np.float32)[:, None]
    mm.flush()
    del mm
    for path in (p,):
        tracemalloc.start()
        e = load_embeddings(path, max_rows=1000, seed=0)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        np.testing.assert_array_equal(e.array[:, 0], e.row_indices.astype(np.float32))
        assert peak < 1 << 20, peak
    # a compressed .npz is streamed: peak stays near one read chunk, far below the 32 MiB array
    q = tmp_path / "big.npz"
    np.savez_compressed(q, z=np.load(p, mmap_mode="r"))
    tracemalloc.start()
    e = load_embeddings(q, max_rows=1000, seed=0)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(e.array[:, 0], e.row_indices.astype(np.float32))
    assert peak < 20 * 1024**2, peak


def test_bad_arguments(tmp_path):
    p = write(batch(n=10, d=2), "npy", tmp_path)
    with pytest.raises(EmbeddingLoadError, match="max_rows=1 is too small"):
        load_embeddings(p, max_rows=1)
    with pytest.raises(EmbeddingLoadError, match="max_rows must be a whole number"):
        load_embeddings(p, max_rows="many")
    with pytest.raises(EmbeddingLoadError, match="pass a file path or the file's bytes"):
        load_embeddings(12345)
    with pytest.raises(EmbeddingLoadError, match="file not found"):
        load_embeddings(tmp_path / "missing.npy")
    with pytest.raises(EmbeddingLoadError, match="is a directory"):
        load_embeddings(tmp_path)
    with pytest.raises(EmbeddingLoadError, match=r"unknown extension \.bin"):
        load_embeddings(b"\x00" * 10, name="x.bin")
    with pytest.raises(EmbeddingLoadError, match=r"unknown extension \(none\)"):
        load_embeddings(b"\x00" * 10)


def test_error_is_a_value_error_with_one_line():
    err = EmbeddingLoadError("a\nb\n\nc")
    assert isinstance(err, ValueError)
    assert str(err) == "a b c"


# ----------------------------------------------------------------------------- server paths


def test_resolve_server_path_confinement(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    good = write(batch(n=10, d=2), "npy", root / "sub", stem="good")
    outside = write(batch(n=10, d=2), "npy", tmp_path, stem="secret")
    (root / "escape.npy").symlink_to(outside)
    (root / "inside_link.npy").symlink_to(good)
    (root / "dirlink").symlink_to(tmp_path)
    roots = [root]

    assert resolve_server_path(good, roots) == good.resolve()
    assert resolve_server_path("sub/good.npy", roots) == good.resolve()
    assert resolve_server_path("inside_link.npy", roots) == good.resolve()
    np.testing.assert_array_equal(load_server_path("sub/good.npy", roots).array, np.load(good))

    cases = {
        str(outside): "outside the allowed directories",
        "escape.npy": "outside the allowed directories",
        "dirlink/secret.npy": "outside the allowed directories",
        "sub/../sub/good.npy": "contains '..'",
        "../secret.npy": "contains '..'",
        str(root / ".." / "secret.npy"): "contains '..'",
        "/etc/passwd": "outside the allowed directories",
        "sub": "not a regular file",
        "nothing.npy": "not found below the allowed directories",
        "": "empty server path",
        "a\x00b": "NUL byte",
    }
    for path, fragment in cases.items():
        with pytest.raises(EmbeddingLoadError, match=fragment) as info:
            resolve_server_path(path, roots)
        assert "\n" not in str(info.value)
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe.npy")
        with pytest.raises(EmbeddingLoadError, match="not a regular file"):
            resolve_server_path("pipe.npy", roots)


def test_allowed_roots_from_environment(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, os.pathsep.join([str(a), str(b)]))
    assert allowed_roots() == [a.resolve(), b.resolve()]
    p = write(batch(n=10, d=2), "npy", b)
    assert resolve_server_path("emb.npy") == p.resolve()
    monkeypatch.delenv(ALLOWED_ROOTS_ENV)
    defaults = allowed_roots()
    repo = Path(__file__).resolve().parents[1]
    assert defaults == [(repo / "sample_data").resolve(), (repo / "runs").resolve()]
    assert Path.cwd().resolve() not in defaults and Path.home().resolve() not in defaults
