"""Exports of a comparison: CSV, JSON, standalone HTML and the plain-text tables the CLI prints.

Every exporter takes a :class:`sigreg_core.compare.model.Comparison` (SIGReg of several
sets on shared slices; LeJEPA, arXiv 2511.08544) and returns bytes or text; text from
files (set names) is escaped for HTML.
"""
from __future__ import annotations

import html
import json
import math
from typing import Optional

import numpy as np
import pandas as pd

from sigreg_core.compare.model import DELTA_METRICS, NO_SPREAD, Comparison, _jsonable
from sigreg_core.util.text import csv_safe_frame

__all__ = ["comparison_csv", "comparison_json", "comparison_html", "comparison_text"]


def comparison_csv(cmp: Comparison) -> bytes:
    """Summary table (one row per set) with the deltas against the reference as extra columns."""
    df = cmp.summary_frame()
    for d in cmp.deltas:
        for col, val in ((f"delta_{d.metric}", d.value), (f"delta_{d.metric}_ci_low", d.ci_low),
                         (f"delta_{d.metric}_ci_high", d.ci_high), (f"delta_{d.metric}_significant", d.significant)):
            if col not in df.columns:
                df[col] = None
            df.loc[df["set"] == d.set, col] = val
    for pt in cmp.paired:
        for col, val in (("paired_wilcoxon_p_adjusted", pt.wilcoxon_p_adjusted), ("paired_sign_p_adjusted", pt.sign_p_adjusted),
                         ("paired_design_effect", pt.design_effect), ("paired_wilcoxon_p", pt.wilcoxon_p),
                         ("paired_sign_p", pt.sign_p), ("paired_fraction_lower", pt.fraction_lower)):
            if col not in df.columns:
                df[col] = None
            df.loc[df["set"] == pt.set, col] = val
    df.insert(1, "reference", df["set"] == cmp.reference)
    # set names come from file names: "=HYPERLINK(...)" must stay text in a spreadsheet
    return csv_safe_frame(df).to_csv(index=False, float_format="%.10g").encode("utf-8")


def comparison_json(cmp: Comparison) -> bytes:
    return (json.dumps(cmp.to_dict(), indent=2, allow_nan=False) + "\n").encode("utf-8")


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def comparison_html(cmp: Comparison, *, title: str = "latent-health comparison", slice_index: Optional[int] = None,
                    source: Optional[dict] = None) -> str:
    """Standalone HTML page: settings, summary, deltas, paired tests and every comparison figure."""
    from sigreg_core.present import compare_figures as CF
    from sigreg_core.present.figures import plotly_config

    figs = CF.comparison_figures(cmp, slice_index=slice_index)
    parts = []
    for i, (name, fig) in enumerate(figs.items()):
        parts.append(f'<section id="{html.escape(name)}">' + fig.to_html(
            full_html=False, include_plotlyjs=(i == 0), config=plotly_config(name), default_width="100%")
            + "</section>")
    cfg = cmp.config()
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in cfg.items() if k != "preset_config")
    caveats = "".join(f"<p class='caveat'>{html.escape(c)}</p>" for c in cmp.caveats)
    src = html.escape(json.dumps(_jsonable(source or {})))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:0.9em}}th,td{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
th{{background:#f5f5f5}}.caveat{{color:#a15c00}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Sets: {html.escape(", ".join(cmp.names))}; reference: <b>{html.escape(cmp.reference)}</b>.</p>
<p>{html.escape(cmp.row_note)}</p>{caveats}
<p>Source: <code>{src}</code></p>
<h2>Settings</h2><table>{settings}</table>
<h2>Summary</h2>{_table_html(cmp.summary_frame())}
<h2>Ranking, best first</h2>{_table_html(cmp.ranking_frame())}
<h2>Every pair (SIGReg; relative = delta / null mean)</h2>{_table_html(cmp.pairwise_frame("sigreg"))}
<h2>Deltas against {html.escape(cmp.reference)} ({int(round(cmp.level * 100))}% bootstrap intervals over rows, {cmp.n_boot} resamples per set)</h2>
{_table_html(cmp.deltas_frame())}
<h2>Paired test over slices (approximate: slices share the data; adjusted p-values use the design effect)</h2>
{_table_html(cmp.paired_frame())}
<h2>Figures</h2>
{''.join(parts)}
<p>SIGReg: sliced Epps–Pulley statistic (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312).
Generated by latent-health; this page needs no network.</p>
</body></html>
"""


def _cell(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return "-"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:.{digits}g}"
    return str(v)


def _text_table(headers: list, rows: list, right: set) -> list:
    cells = [[_cell(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    for r in [headers] + cells:
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def comparison_text(cmp: Comparison) -> str:
    """The comparison as plain-text tables (what ``sigreg compare`` prints)."""
    lines = []
    rows = []
    for i, n in enumerate(cmp.order()):
        s = cmp.sets[n]
        rows.append([i + 1, n + (" (ref)" if n == cmp.reference else ""), s.n, s.verdict, s.distance, s.sigreg,
                     s.sigreg_over_null, s.p_value, ", ".join(s.modes) or "none", s.metrics.get("rankme")])
    lines.append("Sets, best first (the headline: verdict, then distance; sigreg_core.assessment.verdict.rank_key):")
    lines += _text_table(["rank", "set", "rows", "verdict", "distance", "SIGReg", "x null", "p-value", "modes",
                          "RankMe"], rows, {0, 2, 4, 5, 6, 7, 9})
    from sigreg_core.compare.ranking import ranking_frame

    rk = ranking_frame(cmp)
    lines.append("")
    lines.append("Each set against the one ranked above it (bootstrap interval of the SIGReg delta):")
    lines += _text_table(["rank", "set", "verdict", "x null", "excess over best (x null)", "vs the set above"],
                         [[r.rank, r.set, r.verdict, r.x_null, r.excess_over_best, r.vs_above or "-"]
                          for r in rk.itertuples(index=False)], {0, 3, 4})
    if cmp.deltas:
        lines.append("")
        pct = int(round(cmp.level * 100))
        lines.append(f"Deltas against {cmp.reference} ({pct}% bootstrap intervals over rows, {cmp.n_boot} resamples per set):")
        rows = []
        for d in cmp.deltas:
            has = math.isfinite(d.ci_low) and math.isfinite(d.ci_high)
            ci = f"[{_cell(d.ci_low)}, {_cell(d.ci_high)}]" if has else (d.note or "-")
            rows.append([d.set, DELTA_METRICS[d.metric][0], d.value, ci, d.p_boot,
                         ("yes" if d.significant else "no") if has else "-", d.healthier or "-",
                         d.note if has and d.note else ""])
        lines += _text_table(["set", "metric", "delta", "interval", "p (boot)", "significant", "healthier", "note"],
                             rows, {2, 4})
    if cmp.paired:
        lines.append("")
        lines.append("Paired test over slices (approximate: the slices share the data; p adjusted by the design effect "
                     "deff; the intervals above are the evidence):")
        rows = [[p.set, p.num_slices, p.fraction_lower, p.median_difference, p.design_effect, p.wilcoxon_p_adjusted,
                 p.sign_p_adjusted, p.wilcoxon_p, p.healthier or "-"] for p in cmp.paired]
        lines += _text_table(["set", "slices", "frac. lower", "median diff", "deff", "Wilcoxon p adj.", "sign p adj.",
                              "Wilcoxon p indep.", "healthier"], rows, {1, 2, 3, 4, 5, 6, 7})
    lines.append("")
    lines.append(cmp.row_note)
    lines += [f"convention: {n}: {c}" for n, c in cmp.conventions().items()]
    lines += [f"caveat: {c}" for c in cmp.caveats]
    lines.append(f"preset {cmp.preset.name}, {cmp.num_slices_scored} {cmp.family} slices, seed {cmp.seed}, "
                 f"D = {cmp.directions.shape[0]}, reference {cmp.reference}")
    return "\n".join(lines)
