"""The order of verdict levels, read from one place, and the colours that go with them.

The assessment (:mod:`sigreg_core.assessment.assess`) names its verdict levels in
``VERDICTS``, mildest first (``healthy`` ... ``collapsed``).  Everything that ranks or
colours verdicts (the Monitor alert table, the Compare ranking, the verdict strips)
asks this module, so a new level added to ``VERDICTS`` is ranked and coloured
without touching the pages.

* :func:`verdict_levels` — the known levels, mildest first (``VERDICTS`` at call time).
* :func:`severity` — the rank of a verdict string: its index in ``VERDICTS``; a name
  that is not there (an older or newer run's level) is placed by its words: ``healthy``
  / ``ok`` at 0, anything containing ``collaps`` at the top, anything else just below
  the most severe level; ``None``/empty/``not scored``/``too few rows`` give ``-1`` (no verdict).
* :func:`is_alert` — severity above the mildest level.
* :func:`is_collapse` — the most severe level, or a name containing ``collaps``.
* :func:`verdict_colour` — green (mildest) through amber to vermilion (the worst graded level),
  interpolated for intermediate levels, and a deep red (:data:`COLLAPSE_COLOUR`) for collapse,
  so collapsed never reads as the orange of severe; none of these is a run colour
  (:data:`RUN_COLOURS` of :mod:`sigreg_core.present.monitor_figures` is disjoint).
"""
from __future__ import annotations

from typing import Optional

__all__ = ["verdict_levels", "severity", "is_alert", "is_collapse", "verdict_colour", "VERDICT_COLOURS",
           "NO_VERDICT", "COLLAPSE_COLOUR"]

#: anchors of the verdict colour ramp (Okabe–Ito green, orange, vermilion)
VERDICT_COLOURS = ("#009E73", "#E69F00", "#D55E00")
#: colour of a collapse (the most severe level): red, apart from the vermilion of the worst graded level
COLLAPSE_COLOUR = "#B40426"
#: colour of a step without a verdict (not scored, or an error)
NO_VERDICT = "#BBBBBB"


def verdict_levels() -> tuple:
    """The verdict levels of the assessment, mildest first (the one table in :mod:`.verdict`)."""
    from sigreg_core.assessment.verdict import VERDICTS

    return tuple(str(v) for v in VERDICTS)


def _norm(v) -> str:
    return str(v).strip().lower().replace("_", " ") if v is not None else ""


def severity(verdict: Optional[str]) -> float:
    """Rank of ``verdict`` (0 = healthy; higher = worse; -1 = no verdict). Tolerant of unknown names."""
    levels = verdict_levels()
    if verdict is None:
        return -1
    if isinstance(verdict, float) and verdict != verdict:  # NaN from pandas
        return -1
    text = str(verdict)
    if text in levels:
        return levels.index(text)
    low = _norm(text)
    lowered = [_norm(v) for v in levels]
    if low in lowered:
        return lowered.index(low)
    if low in ("", "none", "nan", "error") or "not scored" in low or "no scored" in low or "too few" in low:
        return -1
    if "collaps" in low:
        return len(levels) - 1
    if low == "suspicious" and "marked" in lowered:  # the name before the levels (runs logged then): docs/calibration.md
        return lowered.index("marked")
    if low in ("healthy", "ok", "good"):
        return 0
    return max(len(levels) - 1.5, 0.5)  # an unknown level: an alert, below the worst


def is_alert(verdict: Optional[str]) -> bool:
    """True for any level above the mildest (suspicious, collapsed, and any level between)."""
    return severity(verdict) > 0


def is_collapse(verdict: Optional[str]) -> bool:
    """True for the most severe level (or any name that says collapse)."""
    levels = verdict_levels()
    return severity(verdict) >= len(levels) - 1 or "collaps" in _norm(verdict)


def _mix(a: str, b: str, f: float) -> str:
    ca = [int(a[i:i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * f):02X}" for x, y in zip(ca, cb))


def verdict_colour(verdict: Optional[str]) -> str:
    """Colour of a verdict: the ramp green → amber → vermilion over the graded levels; collapse is red."""
    s = severity(verdict)
    if s < 0:
        return NO_VERDICT
    if is_collapse(verdict):
        return COLLAPSE_COLOUR
    top = max(len(verdict_levels()) - 2, 1)  # the worst graded level (the one below collapse) is vermilion
    f = min(1.0, s / top)
    if f <= 0.5:
        return _mix(VERDICT_COLOURS[0], VERDICT_COLOURS[1], f / 0.5) if f > 0 else VERDICT_COLOURS[0]
    return _mix(VERDICT_COLOURS[1], VERDICT_COLOURS[2], (f - 0.5) / 0.5)
