"""Property-based fuzz of the loaders (hypothesis).

Valid files of every format are mutated (bytes flipped, overwritten, cut, inserted,
duplicated) or replaced by random bytes.  Whatever comes in, ``load_embeddings``
either returns a well-formed result (float32, 2-D/3-D, at least 2 rows, finite,
within the byte limit) or raises ``EmbeddingLoadError`` with one line: never
another exception, never executed code, never an allocation past the limit.
"""
from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigreg_core.inputs.loading import EmbeddingLoadError, list_keys, load_embeddings

LIMIT = 8 * 1024**2


def _valid_files() -> dict:
    from safetensors.numpy import save as st_bytes

    rng = np.random.default_rng(0)
    z = rng.standard_normal((24, 6)).astype(np.float32)
    files = {}
    b = io.BytesIO()
    np.save(b, z)
    files["emb.npy"] = b.getvalue()
    b = io.BytesIO()
    np.savez(b, z=z, w=z[:, :2])
    files["emb.npz"] = b.getvalue()
    b = io.BytesIO()
    np.savez_compressed(b, z=z)
    files["emb_c.npz"] = b.getvalue()
    b = io.BytesIO()
    torch.save({"z": torch.from_numpy(z), "step": 3}, b)
    files["emb.pt"] = b.getvalue()
    files["emb.safetensors"] = st_bytes({"z": z, "v": z.reshape(2, 12, 6)})
    files["emb.csv"] = pd.DataFrame(z, columns=list("abcdef")).assign(label="x").to_csv(index=False).encode()
    files["emb.tsv"] = pd.DataFrame(z).to_csv(sep="\t", index=False, header=False).encode()
    b = io.BytesIO()
    pd.DataFrame({"id": np.arange(24), "emb": list(z)}).to_parquet(b)
    files["emb.parquet"] = b.getvalue()
    return files


VALID = _valid_files()
NAMES = sorted(VALID)


def _mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for kind, pos, value, length in ops:
        if not buf:
            buf = bytearray(value)
            continue
        i = pos % len(buf)
        if kind == "flip":
            buf[i] ^= 1 << (value[0] % 8) if value else 0xFF
        elif kind == "overwrite":
            buf[i:i + len(value)] = value
        elif kind == "insert":
            buf[i:i] = value
        elif kind == "delete":
            del buf[i:i + length]
        elif kind == "truncate":
            del buf[i:]
        elif kind == "duplicate":
            buf[i:i] = buf[i:i + length]
        elif kind == "int":  # plant an extreme integer, as header-size lies do
            buf[i:i + 8] = (value[0] * 0x0101010101010101 % (1 << 64)).to_bytes(8, "little")
    return bytes(buf)


mutation = st.tuples(
    st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "duplicate", "int"]),
    st.integers(min_value=0, max_value=1 << 20),
    st.binary(min_size=1, max_size=16),
    st.integers(min_value=1, max_value=64),
)


def _check(data: bytes, name: str, **kwargs):
    try:
        e = load_embeddings(data, name=name, max_bytes=LIMIT, **kwargs)
    except EmbeddingLoadError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg
        return None
    a = e.array
    assert a.dtype == np.float32 and a.ndim in (2, 3)
    assert a.shape[-2] >= 2 and a.shape[-1] >= 1
    assert np.isfinite(a).all()
    assert a.nbytes <= LIMIT
    return e


FUZZ = settings(
    max_examples=int(os.environ.get("LOADING_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


@pytest.mark.parametrize("name", NAMES)
def test_valid_seed_files_load(name):
    e = _check(VALID[name], name, key={"emb.npz": "z", "emb.safetensors": "z"}.get(name))
    assert e is not None and e.array.shape[-2:] == (24, 6)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=4), drop=st.booleans(), max_rows=st.sampled_from([None, 5]))
def test_mutated_files_load_or_refuse(name, ops, drop, max_rows):
    data = _mutate(VALID[name], ops)
    key = {"emb.npz": "z", "emb.safetensors": "z"}.get(name)
    _check(data, name, key=key, drop_nonfinite=drop, max_rows=max_rows)
    _check(data, name, drop_nonfinite=True)
    try:
        list_keys(data, name=name, max_bytes=LIMIT)
    except EmbeddingLoadError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(data=st.binary(max_size=2048), name=st.sampled_from(NAMES + ["x.pth", "x.pq", "x.bin"]))
def test_random_bytes_load_or_refuse(data, name):
    _check(data, name)


@FUZZ
@given(prefix=st.sampled_from([b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"PAR1", b"\x80\x04", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
       tail=st.binary(max_size=512), name=st.sampled_from(NAMES))
def test_plausible_magic_then_garbage(prefix, tail, name):
    _check(prefix + tail, name)


def test_fuzz_file_written_to_disk_also_handled(tmp_path):
    """Path sources go through memory maps: a mutated file on disk is refused the same way."""
    rng = np.random.default_rng(1)
    for name in NAMES:
        for _ in range(10):
            data = bytearray(VALID[name])
            for _ in range(3):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            p = tmp_path / name
            p.write_bytes(bytes(data))
            try:
                e = load_embeddings(p, max_bytes=LIMIT, drop_nonfinite=True, key={"emb.npz": "z", "emb.safetensors": "z"}.get(name))
            except EmbeddingLoadError as exc:
                assert "\n" not in str(exc)
            else:
                assert e.array.dtype == np.float32 and np.isfinite(e.array).all()
