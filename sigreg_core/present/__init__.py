"""Presentation: plotly figures (:mod:`.figures`, :mod:`.monitor_figures`,
:mod:`.compare_figures`) and the report model with its CSV / JSON / HTML exports
(:mod:`.report`).  No Streamlit import: the pages and the CLI call into this.
"""
