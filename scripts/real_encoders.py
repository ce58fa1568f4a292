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

The families live in ``scripts/encoder_sets/`` (``text``, ``vision``, ``ppocr``; shared ``inputs`` and
``base``); this file lists them and writes the sets.

Output: ``DIR/<family>__<kind>.npy`` and ``DIR/index.json`` (one entry per set: family, kind,
model, package and version, architecture, quantised, pooling, normalised rows, N, D, seconds),
each file written atomically and the index re-written after every set, so a reader can use the
sets while the script runs.  Families whose package is missing are skipped with a message.

Usage:  python scripts/real_encoders.py --out DIR [--n 2048] [--families minilm,ppocr-cls,...]
        python scripts/real_encoders.py --out DIR --table   (mean cosine, spread, RankMe of every set)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # encoder_sets/, also when loaded by path (tests)

from encoder_sets.base import (BITS, GROUP, ROOT, SEED, Result, Writer, l2_normalise, quantise_rtn,  # noqa: E402,F401
                               quantise_torch, summary, table)
from encoder_sets.inputs import face_windows, image_crops, sentences, text_lines  # noqa: E402,F401
from encoder_sets.ppocr import (OnnxNet, ppocr_available, ppocr_cls, ppocr_common, ppocr_det,  # noqa: E402,F401
                                ppocr_rec)
from encoder_sets.text import (minilm, minilm_available, minilm_common, minilm_models,  # noqa: E402,F401
                               paraphrase, paraphrase_available, paraphrase_common, paraphrase_models,
                               paraphrase_onnx_check, sre, sre_available, sre_common)
from encoder_sets.vision import (effnet, effnet_available, effnet_common, effnet_models, onet,  # noqa: E402,F401
                                 onet_available, onet_common, onet_models)


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
