"""The shipped sample sets: reproducible from the script, and each is what it says."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from sigreg_core.inputs.samples import DEFAULT_SAMPLE, SAMPLE_DIR, get_sample, list_samples, load_sample

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_reproduces_shipped_files_byte_for_byte(tmp_path):
    # the real-encoder set is checked (up to float rounding) in tests/test_verdicts_real.py
    written = _script().make_all(tmp_path, encoder=False)
    shipped = {p.name for p in SAMPLE_DIR.iterdir() if p.suffix in (".safetensors", ".json")}
    assert {p.name for p in written} == shipped - {"minilm-sentences.safetensors"}
    for p in written:
        assert p.read_bytes() == (SAMPLE_DIR / p.name).read_bytes(), f"{p.name} differs from the shipped file"


def test_index_lists_eight_sets_healthy_first_with_descriptions():
    samples = list_samples()
    names = [s.name for s in samples]
    assert names[0] == DEFAULT_SAMPLE == "healthy"
    assert set(names) == {"healthy", "full-collapse", "dimensional-collapse", "shifted", "anisotropic",
                          "heavy-tailed", "bimodal", "minilm-sentences"}
    total = 0
    for s in samples:
        assert s.path.is_file()
        assert len(s.description) > 20 and "\n" not in s.description
        total += s.path.stat().st_size
        with safe_open(str(s.path), "np") as f:
            assert list(f.keys()) == ["embeddings"]
            assert f.metadata()["description"] == s.description
    assert total < 8 * 2**20  # "a few MB in all"


def test_unknown_sample_names_the_choices():
    with pytest.raises(ValueError, match="healthy"):
        get_sample("nope")


def _excess_kurtosis(x):
    x = x - x.mean(0)
    return (x**4).mean(0) / (x**2).mean(0) ** 2 - 3


def test_each_sample_is_what_its_description_says():
    z = {s.name: load_sample(s.name).astype(np.float64) for s in list_samples()}
    for name, a in z.items():
        assert a.shape == ((384, 384) if name == "minilm-sentences" else (2048, 64)) and np.isfinite(a).all()

    e = z["minilm-sentences"]  # real sentence embeddings, rows L2-normalised as the model ships them
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    u = e @ e.T
    assert 0.02 < (u.sum() - 384) / (384 * 383) < 0.5  # a cone (anisotropic), not one direction

    h = z["healthy"]
    assert abs(h.mean()) < 0.01 and abs(h.std() - 1) < 0.01
    assert np.abs(np.cov(h, rowvar=False) - np.eye(64)).max() < 0.15

    c = z["full-collapse"]
    assert c.std(0).max() < 2e-3  # one point plus noise of std 1e-3

    d = z["dimensional-collapse"]
    sv = np.linalg.svd(d - d.mean(0), compute_uv=False)
    assert sv[3] > 100 * sv[4]  # rank 4 (float32 round-off beyond)
    assert np.sum(sv[:4] ** 2) / np.sum(sv**2) > 0.999999

    s = z["shifted"]
    assert abs(s.mean() - 0.5) < 0.01 and abs(s.std(0).mean() - 1) < 0.02

    a = z["anisotropic"]
    ratio = a.std(0) / np.geomspace(3.0, 0.1, 64)
    assert np.all(np.abs(ratio - 1) < 0.1)

    t = z["heavy-tailed"]
    assert abs(t.var(0).mean() - 1) < 0.1
    assert _excess_kurtosis(t).mean() > 1.0  # t(5) has excess kurtosis 6; finite-sample estimate is lower
    norms = np.linalg.norm(t, axis=1)  # shared chi-square scale: row norms vary far more than for N(0, I)
    assert norms.std() / norms.mean() > 2 * (np.linalg.norm(h, axis=1).std() / np.linalg.norm(h, axis=1).mean())

    b = z["bimodal"]
    assert set(np.unique(b)) == {-1.0, 1.0}
    assert abs((b > 0).mean() - 0.5) < 0.01


def test_index_json_matches_files():
    idx = json.loads((SAMPLE_DIR / "samples.json").read_text())
    for e in idx["samples"]:
        assert (SAMPLE_DIR / e["file"]).is_file()
        assert (e["rows"], e["dim"]) == ((384, 384) if e["name"] == "minilm-sentences" else (2048, 64))
