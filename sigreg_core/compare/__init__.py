"""Comparison: several embedding sets scored on the same directions and the same N.

``compare_sets`` (:mod:`.comparison`) scores every set on one draw of directions; the
result classes are in :mod:`.model`, the bootstrap, deltas and paired slice test in
:mod:`.statistics`, the ranking of every set and the pairwise tables in :mod:`.ranking`,
CSV / JSON / HTML / text in :mod:`.exports`, and ``sigreg compare`` in :mod:`.cli`.  What the Compare
page does between its widgets: where sets come from in :mod:`.sources`, choosing and aligning them
in :mod:`.choice`, its texts built from data in :mod:`.notices`.
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
