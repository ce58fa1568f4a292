"""Comparison: several embedding sets scored on the same directions and the same N.

Deltas with bootstrap intervals and the paired slice test (:mod:`.comparison`).
"""
from sigreg_core.compare.comparison import (  # noqa: F401  (the public names of the old sigreg_core.compare)
    CompareError,
    Comparison,
    compare_sets,
    comparison_csv,
    comparison_html,
    comparison_json,
    comparison_text,
)
