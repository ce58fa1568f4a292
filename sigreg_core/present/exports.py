"""Exports of a report: the per-slice table as CSV, the assessment as JSON, the standalone HTML page.

The CSV has one row per slice (statistic EP_m, its exact per-slice p-value, moments);
the JSON carries the summary, settings, null quantiles, companion metrics, the
assessment's own dict and the per-slice table; the HTML page is built by
:mod:`sigreg_core.present.html_report` and reads like the Inspect page.
"""
from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Optional

from sigreg_core.util.jsonsafe import to_jsonable
from sigreg_core.util.text import csv_safe_frame

if TYPE_CHECKING:  # pragma: no cover
    from sigreg_core.present.report import Report, SliceView

__all__ = ["per_slice_csv", "assessment_json", "html_report"]


def _jsonable(x: Any) -> Any:
    return to_jsonable(x)


def per_slice_csv(report: Report) -> bytes:
    """The per-slice table as CSV (one row per slice, columns as on the page); text cells starting with
    ``= + - @`` are neutralised (:func:`sigreg_core.util.text.csv_safe_frame`)."""
    return csv_safe_frame(report.per_slice).to_csv(index=False, float_format="%.10g").encode("utf-8")


def assessment_json(report: Report, source: Optional[dict] = None, probes: Optional[dict] = None) -> bytes:
    """The assessment as JSON: summary, settings, metrics, per-slice table, the assessment's own dict;
    with ``probes`` (:func:`sigreg_core.assessment.probes.label_quality`) also ``knn_accuracy``,
    ``linear_probe_accuracy``, their intervals and the details under ``probes``, as ``sigreg score --labels``."""
    doc = {
        "tool": "latent-health",
        "source": _jsonable(source or {}),
        "settings": dataclasses.asdict(report.settings),
        "summary": _jsonable(report.summary),
        "null_quantiles": {"0.95": report.q95, "0.999": report.q999},
        "metrics": _jsonable(report.metrics),
        "assessment": report.assessment,
        "per_slice": _jsonable(report.per_slice.to_dict(orient="list")),
    }
    if probes:
        doc.update(_jsonable(probes))
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def html_report(report: Report, view: SliceView, *, title: str = "latent-health report",
                source: Optional[dict] = None, reference: Optional[dict] = None, probes: Optional[dict] = None) -> str:
    """A standalone HTML page that reads like the Inspect page; see :mod:`sigreg_core.present.html_report`."""
    from sigreg_core.present.html_report import html_report as _html

    return _html(report, view, title=title, source=source, reference=reference, probes=probes)
