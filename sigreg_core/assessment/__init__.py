"""The assessment: from embeddings to a verdict a statistician would sign.

Per-slice scores and moments (:mod:`.slices`), slice families — random, coordinate,
principal, worst (:mod:`.families`), companion metrics such as RankMe and the VICReg
terms (:mod:`.metrics`), the collapse and departure modes (:mod:`.diagnosis`), and
``assess`` with its calibrated p-values and verdict (:mod:`.assess`).  Builds on
:mod:`sigreg_core.core`; never imports Streamlit or plotly.
"""
