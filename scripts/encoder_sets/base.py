"""What every family shares: 4-bit RTN quantisation, L2 rows, the set writer and the summary table."""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


ROOT = Path(__file__).resolve().parents[2]  # the project
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


