"""The shipped sample embedding sets (``sample_data/``).

Seven small deterministic sets (2048 x 64 float32, safetensors, key ``embeddings``)
written by ``scripts/make_sample_data.py``: healthy N(0, I), full collapse,
dimensional collapse, shifted, anisotropic, heavy-tailed, bimodal coordinates.
They show what each collapse mode looks like under SIGReg, the sliced
Epps–Pulley statistic of LeJEPA (arXiv 2511.08544) and LeWorldModel
(arXiv 2603.19312), and give the app a complete report on first start.

``list_samples()`` reads the index ``sample_data/samples.json``;
``load_sample(name)`` returns the array (read with safetensors, never pickle).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Sample", "SAMPLE_DIR", "DEFAULT_SAMPLE", "list_samples", "get_sample", "load_sample"]

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
DEFAULT_SAMPLE = "healthy"


@dataclass(frozen=True)
class Sample:
    """One shipped embedding set."""

    name: str
    path: Path
    description: str
    key: str = "embeddings"
    kind: str = ""
    rows: int = 0
    dim: int = 0


def list_samples(sample_dir: Path | str = SAMPLE_DIR) -> list[Sample]:
    """The shipped samples, in the order of ``samples.json`` (the healthy one first)."""
    sample_dir = Path(sample_dir)
    index = sample_dir / "samples.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"no sample index at {index}; run `python scripts/make_sample_data.py` to write the samples"
        )
    entries = json.loads(index.read_text(encoding="utf-8"))["samples"]
    return [
        Sample(
            name=e["name"],
            path=sample_dir / e["file"],
            description=e["description"],
            key=e.get("key", "embeddings"),
            kind=e.get("kind", ""),
            rows=int(e.get("rows", 0)),
            dim=int(e.get("dim", 0)),
        )
        for e in entries
    ]


def get_sample(name: str, sample_dir: Path | str = SAMPLE_DIR) -> Sample:
    """The :class:`Sample` called ``name`` (ValueError naming the choices otherwise)."""
    samples = list_samples(sample_dir)
    for s in samples:
        if s.name == name:
            return s
    raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(s.name for s in samples)}")


def load_sample(name: str, sample_dir: Path | str = SAMPLE_DIR) -> np.ndarray:
    """The float32 array (N, D) of sample ``name``."""
    from safetensors.numpy import load_file

    s = get_sample(name, sample_dir)
    return load_file(str(s.path))[s.key]
