"""A corpus of malicious and malformed files: none runs code, none allocates past the limit.

Every file is generated here into ``tmp_path``.  Each must raise
``EmbeddingLoadError`` with a one-line message naming the file and saying what is
wrong (checked against an expected fragment, so a refusal for the wrong reason,
or a generic out-of-memory fallback, fails the test).  Pickles that would create a
file are checked by looking for that file afterwards.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sigreg_core.inputs.loading import SUPPORTED_EXTENSIONS, EmbeddingLoadError, list_keys, load_embeddings

LIMIT = 64 * 1024**2  # the byte limit every corpus file is loaded under


class _TouchFile:
    """Unpickling this would create ``path`` (via os.system)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _ExecWrite:
    """Unpickling this would write ``path`` (via builtins.exec)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


def _npy_header(shape, descr="<f4", version=(1, 0)) -> bytes:
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack("<H", len(header)) + header.encode("latin1")


def _zip_with(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _patch_zip_sizes(data: bytes, uncompressed: int) -> bytes:
    """Rewrite the declared uncompressed size of the first member (local header and central directory)."""
    out = bytearray(data)
    struct.pack_into("<I", out, 22, uncompressed)
    c = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, c + 24, uncompressed)
    return bytes(out)


def _safetensors_bytes(header: dict, data: bytes, hlen: int | None = None) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def build_corpus(d: Path) -> list:
    """Write the corpus; returns (path, expected message fragment, markers that must not appear)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((64, 8)).astype(np.float32)
    corpus = []

    def add(name: str, data: bytes, fragment: str, markers=()):
        p = d / name
        p.write_bytes(data)
        corpus.append((p, fragment, tuple(markers)))

    # --- pickles that would run code --------------------------------------------------------
    m1 = d / "MARKER_os_system"
    buf = io.BytesIO()
    torch.save({"z": torch.from_numpy(z), "x": _TouchFile(m1)}, buf)
    add("evil_os_system.pt", buf.getvalue(), "calls posix.system", [m1])
    m2 = d / "MARKER_exec"
    buf = io.BytesIO()
    torch.save([torch.from_numpy(z), _ExecWrite(m2)], buf)
    add("evil_exec.pth", buf.getvalue(), "its pickle calls exec,", [m2])
    m3 = d / "MARKER_raw_pickle"
    add("raw_pickle.pt", pickle.dumps(_TouchFile(m3)), "raw pickle", [m3])
    from fractions import Fraction

    buf = io.BytesIO()
    torch.save({"z": torch.from_numpy(z), "meta": Fraction(1, 3)}, buf)
    add("non_tensor_global.pt", buf.getvalue(), "calls fractions.Fraction")
    m4 = d / "MARKER_npy"
    buf = io.BytesIO()
    np.save(buf, np.array([_TouchFile(m4), 1], dtype=object), allow_pickle=True)
    add("object_dtype.npy", buf.getvalue(), "dtype object", [m4])
    m5 = d / "MARKER_npz"
    buf = io.BytesIO()
    np.savez(buf, z=np.array([[_TouchFile(m5)]] * 3, dtype=object))
    add("npz_holding_pickle.npz", buf.getvalue(), "dtype object", [m5])
    m6 = d / "MARKER_npz_raw"
    add("npz_raw_pickle_member.npz", _zip_with({"z.npy": pickle.dumps(_TouchFile(m6))}), "raw Python pickle, which is refused", [m6])

    # --- header lies and bombs ------------------------------------------------------------
    add("npy_promises_1e12.npy", _npy_header((10**6, 10**6)) + z.tobytes(), "header promises shape (1000000, 1000000)")
    add("npy_truncated.npy", _npy_header(z.shape) + z.tobytes()[:1000], "holds only")
    add("npy_trailing_junk.npy", _npy_header(z.shape) + z.tobytes() + b"junk", "unexpected bytes after the array")
    add("npy_header_too_long.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b"{" * 60000, "corrupt .npy header")
    st_ok = _safetensors_bytes({"z": {"dtype": "F32", "shape": [64, 8], "data_offsets": [0, 2048]}}, z.tobytes())
    add("safetensors_truncated.safetensors", st_ok[: len(st_ok) // 2], "truncated or forged")
    add("safetensors_header_length_lie.safetensors", struct.pack("<Q", 2**62) + st_ok[8:], "header length field says")
    add(
        "safetensors_shape_lie.safetensors",
        _safetensors_bytes({"z": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 2048]}}, z.tobytes()),
        "forged header",
    )
    add("safetensors_not_json.safetensors", struct.pack("<Q", 12) + b"not json at!" + z.tobytes(), "corrupt safetensors header")
    add("safetensors_deep_json.safetensors", struct.pack("<Q", 200_000) + b"[" * 200_000, "corrupt safetensors header")
    add(
        "safetensors_object_dtype.safetensors",
        _safetensors_bytes({"z": {"dtype": "STR", "shape": [64, 8], "data_offsets": [0, 512]}}, bytes(512)),
        "which is not a safetensors dtype",
    )
    bomb = _zip_with({"z.npy": _npy_header((8192, 8192)) + bytes(8192 * 8192 * 4)})  # 256 MiB of zeros, ~260 KiB zipped
    add("zip_bomb.npz", bomb, "declares 256.0 MiB uncompressed")
    add("zip_forged_size.npz", _patch_zip_sizes(_zip_with({"z.npy": _npy_header(z.shape) + z.tobytes()}), 3 * 1024**3),
        "declares 3.0 GiB uncompressed")
    add("zip_impossible_ratio.npz", _patch_zip_sizes(_zip_with({"z.npy": bytes(100)}), 50 * 1024**2), "beyond what deflate can produce")
    small_lie = _zip_with({"z.npy": _npy_header(z.shape) + z.tobytes()})
    add("zip_size_understated.npz", _patch_zip_sizes(small_lie, 200), "Bad CRC-32")
    buf = io.BytesIO()
    torch.save(torch.from_numpy(z), buf)
    pt_deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(pt_deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    add("pt_compressed_members.pt", pt_deflated.getvalue(), "compressed, which torch.save never does")
    add("pt_truncated.pt", buf.getvalue()[: len(buf.getvalue()) // 2], "not a readable PyTorch file")

    # --- random bytes under every extension, and empty files -------------------------------
    for ext in sorted(SUPPORTED_EXTENSIONS):
        add(f"random{ext}", rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes(), "")
        add(f"empty{ext}", b"", "is empty (0 bytes)")
    add("random.pkl", rng.integers(0, 256, size=64, dtype=np.uint8).tobytes(), "unknown extension .pkl")

    # --- wrong content ----------------------------------------------------------------------
    def npy(a) -> bytes:
        b = io.BytesIO()
        np.save(b, a)
        return b.getvalue()

    zn = z.copy()
    zn[5, 3] = np.nan
    add("nan.npy", npy(zn), "1 of 64 rows contain NaN values (first at row 5, column 3")
    add("inf.csv", b"a,b\n1,2\n3,inf\n5,6\n", "contain Inf values (first at row 1, column 1")
    add("one_d.npy", npy(np.arange(10.0)), "1-D")
    add("zero_d.npy", npy(np.float32(1.0)), "0-D")
    add("four_d.npy", npy(np.zeros((2, 2, 2, 2), np.float32)), "4-D")
    add("one_row.npy", npy(z[:1]), "1 row(s); SIGReg needs at least 2")
    add("no_columns.npy", npy(np.zeros((5, 0), np.float32)), "zero dimensions per row")
    add("bool.npy", npy(z > 0), "booleans")
    add("complex.npy", npy(z.astype(np.complex64)), "complex numbers")
    add("structured.npy", npy(np.zeros(5, dtype=[("a", "f4"), ("b", "f4")])), "structured dtype")
    add("strings.npy", npy(np.array([["a", "b"], ["c", "d"]])), "holds text")
    add("strings.csv", b"name,colour\ncat,black\ndog,brown\n", "has no numeric columns")
    add("ragged.csv", b"1,2,3\n4,5\n6,7,8,9\n", "cannot be parsed as CSV")
    add("binary_as.tsv", npy(z), "is binary, not TSV text (it looks like a .npy array)")
    add("npy_named_npz.npz", npy(z), "not a readable .npz archive")
    add("latin1.csv", "a,b\n1,2\n3,\xe9\n".encode("latin-1"), "not UTF-8")
    add("strings.parquet", _parquet_bytes(pd.DataFrame({"name": ["a", "b", "c"]})), "has no numeric columns")
    buf = io.BytesIO()
    torch.save({"z": torch.from_numpy(z).to_sparse()}, buf)
    add("sparse.pt", buf.getvalue(), "sparse_coo tensor")
    buf = io.BytesIO()
    torch.save({"step": 3, "name": "nothing here"}, buf)
    add("no_tensors.pt", buf.getvalue(), "holds no tensors (it holds a dict)")
    buf = io.BytesIO()
    torch.save({"z": torch.from_numpy(z).to(torch.complex64)}, buf)
    add("complex.pt", buf.getvalue(), "complex numbers")
    add("npz_empty_archive.npz", _zip_with({}), "holds no arrays")
    return corpus


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    b = io.BytesIO()
    df.to_parquet(b)
    return b.getvalue()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return d, build_corpus(d)


def test_corpus_size(corpus_dir):
    _d, corpus = corpus_dir
    assert len(corpus) >= 20
    assert len({p.suffix for p, _f, _m in corpus}) >= 8


def test_every_corpus_file_is_refused_with_one_line(corpus_dir):
    _d, corpus = corpus_dir
    for path, fragment, markers in corpus:
        for source, name in ((path, None), (path.read_bytes(), path.name)):
            tracemalloc.start()
            try:
                with pytest.raises(EmbeddingLoadError) as info:
                    load_embeddings(source, name=name, max_bytes=LIMIT)
                _cur, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            msg = str(info.value)
            assert "\n" not in msg and msg.startswith(path.name + ":"), (path.name, msg)
            assert fragment in msg, (path.name, msg)
            assert "out of memory" not in msg, (path.name, msg)
            assert peak < LIMIT, (path.name, peak)
            for marker in markers:
                assert not marker.exists(), f"{path.name}: its pickle ran and created {marker.name}"


def test_list_keys_refuses_the_same_files(corpus_dir):
    for path, _fragment, markers in corpus_dir[1]:
        try:
            entries = list_keys(path, max_bytes=LIMIT)
        except EmbeddingLoadError as exc:
            assert "\n" not in str(exc)
        else:  # listing headers may succeed; loading is what must refuse
            assert isinstance(entries, list)
        for marker in markers:
            assert not marker.exists()


def test_corpus_peak_rss_in_a_fresh_process(corpus_dir):
    """Resident memory (which also sees torch and C++ allocations) stays far below the limit."""
    tmp_path = corpus_dir[0]
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        import numpy, torch, pandas, pyarrow.parquet
        from sigreg_core.inputs.loading import load_embeddings, EmbeddingLoadError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        refused = 0
        for p in sorted(Path({str(tmp_path)!r}).iterdir()):
            if p.name.startswith("MARKER"):
                continue
            try:
                load_embeddings(p, max_bytes={LIMIT})
            except EmbeddingLoadError:
                refused += 1
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(refused, base, peak)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    refused, base, peak = map(int, out.stdout.split())
    assert refused == len([p for p in tmp_path.iterdir() if not p.name.startswith("MARKER")])
    assert (peak - base) * 1024 < LIMIT, (base, peak)  # ru_maxrss is in KiB on Linux
