"""Presentation: plotly figures (:mod:`.figures`, :mod:`.monitor_figures`,
:mod:`.compare_figures`), the report model with its CSV / JSON exports (:mod:`.report`),
how to read its numbers — verdict colours, p-value floor, N(0, I) references, the
smallest-of-M note (:mod:`.reading`) — and the standalone HTML report (:mod:`.html_report`).
No Streamlit import: the pages and the CLI call into this.
"""
