"""The assessment: from embeddings to a verdict a statistician would sign.

Per-slice scores and moments (:mod:`.slices`), slice families — random, coordinate,
principal, worst (:mod:`.families`), companion metrics such as RankMe and the VICReg
terms (:mod:`.metrics`), the collapse and departure modes (:mod:`.diagnosis`), the rows
pass with outlier rows (:mod:`.rows`), the screens (:mod:`.screens`), the Monte Carlo null
and p-value calibration (:mod:`.montecarlo`), the three answers and the graded levels
(:mod:`.verdict`), and ``assess`` that runs them (:mod:`.assess`).  Builds on
:mod:`sigreg_core.core`; never imports Streamlit or plotly.
"""
