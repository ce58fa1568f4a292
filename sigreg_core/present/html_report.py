"""The standalone HTML report: reads like the Inspect page, opens offline.

Coloured verdict (:func:`sigreg_core.present.reading.verdict_tone`), the headline
numbers with labels, the evidence of each collapse mode as sentences, the source as a
small table, the companion metrics beside their N(0, I) reference, then every figure of
the report with plotly.js inlined once (no network).  Every string that comes from the
data or a file is HTML-escaped.

SIGReg = mean over M unit directions u_m of the Epps–Pulley statistic
EP(Zu) = s(N) Σ_k c_k [(mean cos t_k x − e^{−t_k²/2})² + (mean sin t_k x)²]
(LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312).
"""
from __future__ import annotations

import html
import math
from typing import Optional

import numpy as np
import plotly.graph_objects as go

from sigreg_core.present import figures as F
from sigreg_core.present import verdict_card as VC
from sigreg_core.present.reading import format_p, metrics_table, verdict_tone
from sigreg_core.present.report import Report, SliceView, _jsonable, report_figures, slice_rank
from sigreg_core.util.text import visible


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else "n/a"
    return str(v)

__all__ = ["html_report"]


_SOURCE_LABELS = [("label", "opened from"), ("kind", "source"), ("name", "file"), ("key", "array"),
                  ("format", "format"), ("original_shape", "shape in the file"), ("view", "view"),
                  ("bytes", "bytes"), ("sha256", "sha256")]


def _source_rows(source: Optional[dict]) -> list[tuple[str, str]]:
    src = _jsonable(source or {})
    rows = []
    for key, label in _SOURCE_LABELS:
        v = src.get(key)
        if v is None or v == "":
            continue
        if key == "original_shape" and isinstance(v, list):
            v = " × ".join(f"{int(x):,}" for x in v)
        elif key == "bytes" and isinstance(v, (int, float)):
            v = f"{int(v):,}"
        rows.append((label, str(v)))
    rows += [(str(k), str(v)) for k, v in src.items() if k not in dict(_SOURCE_LABELS)]
    return rows


def _mode_label(mode: str) -> str:
    return str(mode).replace("_", " ").capitalize()


def slice_caption(report: Report, view: SliceView) -> str:
    """What the plotted slice shows *for this set*: its rank, statistic and p-value, whether it is
    evidence against N(0, 1) taken alone, and, when it is not but the verdict is not healthy, where
    the verdict comes from (so a severe set's report never calls its plotted slice healthy-looking
    without saying so).

    Under the null the M per-slice p-values are uniform, so the smallest is above
    q05 = 1 - 0.95^(1/M) 95 % of the time (the same bound as ``min_p_note``); any other slice
    is judged against 0.05.
    """
    s = report.summary
    m = report.num_slices
    j = int(view.index)
    rank = slice_rank(report, j)
    ratio = view.statistic / s["null_mean"] if s.get("null_mean") else float("nan")
    head = (f"Plotted: slice {j}, rank {rank:,} of {m:,} (1 = worst), statistic {view.statistic:.4g} "
            f"({ratio:.3g} × the null mean), p-value {format_p(view.p_value)}.")
    p = report.p_values
    smallest = m >= 2 and np.isfinite(p).any() and j == int(np.nanargmin(p))
    bound = 1.0 - 0.95 ** (1.0 / m) if smallest else 0.05
    alone = float(view.p_value) < bound if np.isfinite(view.p_value) else False
    if alone:
        why = (f" Below {bound:.2g}, what the smallest of {m:,} N(0, 1) p-values stays above 95 % of the time: "
               "this slice alone is evidence against N(0, 1)." if smallest else
               " Below 0.05: this slice is unlike an N(0, 1) slice.")
        return head + why
    tail = (f" Taken alone this slice is within what N(0, 1) slices show (the smallest of {m:,} p-values is "
            f"above {bound:.2g} 95 % of the time)." if smallest else
            " Taken alone this slice is within what N(0, 1) slices show.")
    if str(s.get("verdict", "")).lower() != "healthy":
        tail += (f" The verdict for this set ({s.get('verdict')}) comes from the checks under Evidence, "
                 "not from this slice's shape.")
    return head + tail


def html_report(report: Report, view: SliceView, *, title: str = "latent-health report",
                source: Optional[dict] = None, reference: Optional[dict] = None,
                probes: Optional[dict] = None) -> str:
    """A standalone HTML page that reads like the Inspect page (plotly.js inlined once).

    ``probes`` (the labels' :func:`sigreg_core.assessment.probes.label_quality`) adds the k-NN and
    linear-probe accuracies to the companion metrics, as on the page.

    Coloured verdict, the headline numbers with their labels, the evidence for each
    collapse mode as sentences, the source as a small table, companion metrics beside
    their N(0, I) reference, then every figure.  Every string from the data or a file
    is HTML-escaped.
    """
    def esc(text, quote: bool = True) -> str:  # file names are data: bidi/tag/control characters shown as escapes
        return html.escape(visible(text), quote)

    figs = report_figures(report, view)
    s = report.summary
    tone = verdict_tone(s["verdict"])
    colour = VC.verdict_colour(s["verdict"])  # the shared severity ramp (Monitor, Compare, the card)
    parts = []
    first = True
    for name, fig in figs.items():
        fig = go.Figure(fig).update_layout(template="plotly_white")  # a copy: cached figures stay as they are
        if name == "slice_statistics":  # nothing to click in a file: say what the ring marks instead
            fig.update_layout(title_subtitle_text=f"worst first; the ring marks slice {view.index}, plotted below")
        parts.append(f'<section id="{esc(name)}">' + fig.to_html(
            full_html=False, include_plotlyjs=True if first else False,
            config=F.plotly_config(name), default_width="100%") + "</section>")
        first = False
    cards = "".join(
        f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
        f'<div class="help">{esc(helptext)}</div></div>'
        for label, value, helptext in [
            ("SIGReg", f'{s["sigreg"]:.4g}', "mean over slices of the Epps–Pulley statistic"),
            ("× null mean", f'{s["sigreg_over_null"]:.3g}', f'SIGReg / exact null mean {s["null_mean"]:.4g}; '
                                                             "about 1 when healthy"),
            ("overall p-value", format_p(s["p_value"]), "dependence-robust combination of the slices"),
            ("compute time", f'{s["seconds"]:.2f} s', f'device {s["device"]}'),
        ])
    views = f'{s["views"]} views × ' if s.get("views", 1) > 1 else ""
    setting_rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>"
        for k, v in [("data", f'{views}N = {s["n"]:,} rows × D = {s["d"]:,} dims'),
                     ("slices", f'M = {s["m"]:,} ({s["family"]})'), ("preset", s["preset"]), ("seed", s["seed"]),
                     ("null band", s.get("null_quantiles_source") or "n/a"),
                     ("Monte Carlo null draws", s.get("null_draws") or 0)]
    )
    src_rows = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>" for k, v in _source_rows(source))
    try:
        table = metrics_table(report, reference, probes)
    except Exception:  # noqa: BLE001 - the reference is optional in an export; the values are not
        table = metrics_table(report, {}, probes)
    metric_rows = "".join(
        f"<tr><th>{esc(r['metric'])}</th><td>{esc(_fmt(r['this set']))}</td>"
        f"<td>{esc(_fmt(r['N(0, I) reference']))}</td><td>{esc(r['reads'])}</td></tr>"
        for _, r in table.iterrows())
    ev = s.get("mode_evidence") or {}
    items = []
    for mode, e in ev.items():
        text = e.get("evidence") if isinstance(e, dict) else None
        items.append(f"<li><strong>{esc(_mode_label(mode))}</strong>: {esc(str(text or e))}</li>")
    evidence = (f"<ul>{''.join(items)}</ul>" if items else
                "<p>No collapse mode was detected: every check stayed inside its healthy range.</p>")
    modes = ", ".join(_mode_label(m) for m in s["modes"]) or "none"
    note_html = f'<p class="note">{esc(slice_caption(report, view))}</p>'

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}}
table{{border-collapse:collapse;margin:0.6em 0 1.2em}}th,td{{border:1px solid #ddd;padding:4px 10px;text-align:left;
vertical-align:top}}th{{background:#f5f5f5;font-weight:600}}code{{font-size:0.9em;word-break:break-all}}
.verdict{{border-left:6px solid {colour};background:{colour}1f;padding:0.7em 1em;border-radius:4px;margin:1em 0}}
.verdict p.verdict{{font-size:1.4em;font-weight:700;margin:0.2em 0}}
.cards{{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}}.card{{flex:1 1 180px;border:1px solid #e3e3e3;
border-radius:6px;padding:8px 12px}}.card .label{{color:#555;font-size:0.9em}}.card .value{{font-size:1.6em;
font-weight:600}}.card .help{{color:#777;font-size:0.8em}}.note{{color:#444;background:#f7f7f7;padding:6px 10px}}
.src td,.src th{{font-size:0.9em;padding:2px 8px}}</style>
</head><body>
<h1>{esc(title)}</h1>
<div class="verdict tone-{tone}">{VC.card_html(s["verdict"], s.get("answers") or {})}
<p>Collapse modes: {esc(modes)}</p></div>
<div class="cards">{cards}</div>
<table>{setting_rows}</table>
<h2>Evidence</h2>
{evidence}
<h2>Source</h2><table class="src">{src_rows or '<tr><td>not recorded</td></tr>'}</table>
<h2>Companion metrics</h2>
<table><tr><th>metric</th><th>this set</th><th>N(0, I) of the same shape</th><th>reads</th></tr>{metric_rows}</table>
<h2>Figures (selected slice: {view.index}, p-value {esc(format_p(view.p_value))})</h2>
{note_html}
{''.join(parts)}
<p>SIGReg: sliced Epps–Pulley statistic (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312).
Generated by latent-health; this page needs no network.</p>
</body></html>
"""
