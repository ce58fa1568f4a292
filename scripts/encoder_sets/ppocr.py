"""PP-OCR CNNs shipped as ONNX graphs in rapidocr: the angle classifier, the detector backbone and the
recogniser; their untrained and 4-bit twins are rewritten graphs (:class:`OnnxNet`)."""
from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from encoder_sets.base import BITS, GROUP, SEED, Result, _rng, _version, quantise_rtn
from encoder_sets.inputs import image_crops, text_lines


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


