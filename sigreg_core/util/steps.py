"""Choosing logged steps by text: ``"100, 400, 1000-2000/5"`` → the kept steps meant.

Used by the Compare page's step picker, so a run with thousands of kept snapshots is
reachable without scrolling a list: a number picks the nearest kept step (ties to the
lower), ``a-b`` every kept step from a to b (either order), ``a-b/k`` every k-th of them.
"""
from __future__ import annotations

import re
from typing import Iterable

__all__ = ["parse_steps"]

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)(?:\s*/\s*(\d+))?")


def parse_steps(spec: str, steps: Iterable[int]) -> tuple[list, list]:
    """(kept steps chosen, in the order given and without repeats; parts not understood)."""
    kept = sorted(int(s) for s in steps)
    out, bad = [], []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        m = _RANGE.fullmatch(part)
        if m:
            a, b, k = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            inside = [s for s in kept if min(a, b) <= s <= max(a, b)]
            out += inside[:: max(1, k)]
        elif part.isdigit() and kept:
            v = int(part)
            out.append(min(kept, key=lambda s: (abs(s - v), s)))
        else:
            bad.append(part)
    return list(dict.fromkeys(out)), bad
