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

from sigreg_core.compare.model import DELTA_METRICS, Comparison, _jsonable
from sigreg_core.util.text import csv_safe_frame

__all__ = ["comparison_csv", "comparison_json", "comparison_html", "comparison_text", "download_stem",
           "download_files"]


def download_stem(cmp: Comparison) -> str:
    """Download names that say which sets and settings: ``comparison_<a>_vs_<b>..._<preset>_seed<s>`` (at most
    four names, each cut to 24 characters of letters, digits, ``-`` and ``_``)."""
    safe = ["".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(n))[:24] for n in cmp.names[:4]]
    more = f"_and_{len(cmp.names) - 4}_more" if len(cmp.names) > 4 else ""
    return f"comparison_{'_vs_'.join(safe)}{more}_{cmp.preset.name}_seed{cmp.seed}"


def download_files(cmp: Comparison, *, slice_index: Optional[int] = None, source: Optional[dict] = None) -> list:
    """The comparison's downloads as ``(kind, data, file name, mime)``: ``csv`` and ``json`` as bytes, ``html``
    (the offline report showing slice ``slice_index``) as a function that builds it when asked."""
    stem = download_stem(cmp)
    return [("csv", comparison_csv(cmp), f"{stem}.csv", "text/csv"),
            ("json", comparison_json(cmp), f"{stem}.json", "application/json"),
            ("html", lambda: comparison_html(cmp, slice_index=slice_index, source=source), f"{stem}.html",
             "text/html")]


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


def _table_html(headers: list, rows: list, right: set = frozenset(), cls: str = "") -> str:
    """A small table: human headers, formatted cells (every cell escaped), numbers right-aligned."""
    num = ' class="num"'

    def cell(i, c, tag):
        text = c if isinstance(c, str) else _cell(c)
        return f"<{tag}{num if i in right else ''}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell(i, str(h), "th") for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(i, c, "td") for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{cls}"><tr>{head}</tr>{body}</table></div>'


def _p(v) -> str:
    """A p-value as the page prints it ('< 1e-300' at the floor of the exact law)."""
    if v is None or not math.isfinite(float(v)):
        return "–"
    v = float(v)
    return "< 1e-300" if v <= 1e-300 else f"{v:.3g}"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.6em 0 1.2em;font-size:0.92em}th,td{border:1px solid #ddd;padding:4px 10px;
text-align:left;vertical-align:top}th{background:#f5f5f5;font-weight:600}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums}.scroll{max-width:100%;overflow-x:auto}code{font-size:0.9em;word-break:break-all}
.verdict{border-left:6px solid var(--c);background:color-mix(in srgb,var(--c) 12%,white);padding:0.7em 1em;
border-radius:4px;margin:1em 0}.verdict p.big{font-size:1.35em;font-weight:700;margin:0.2em 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}.card{flex:1 1 200px;max-width:100%;border:1px solid #e3e3e3;
border-top:5px solid var(--c);border-radius:6px;padding:8px 12px;min-width:0}.card .name{font-weight:700;
overflow-wrap:anywhere}.card .word{color:var(--c);font-weight:700}.card .value{font-size:1.5em;font-weight:600}
.card .help{color:#666;font-size:0.82em}.note{color:#444;background:#f7f7f7;padding:6px 10px}.caveat{color:#a15c00}
.src td,.src th{font-size:0.9em;padding:2px 8px}section{max-width:100%;overflow:hidden}"""


def comparison_html(cmp: Comparison, *, title: str = "latent-health comparison", slice_index: Optional[int] = None,
                    source: Optional[dict] = None) -> str:
    """A standalone HTML page that reads like the Compare page and the Inspect report.

    The healthiest set and the ranking first (coloured by verdict, one card per set), then the
    pairs against the reference (bootstrap intervals; "significant" means the interval excludes
    0, and no second criterion is printed beside it), the slice-paired tests, the settings and
    the source as small tables, and every comparison figure.  Everything fits 1000 px; every
    string from a file or a set name is HTML-escaped.  plotly.js is inlined once: no network.
    """
    from sigreg_core.present import compare_figures as CF
    from sigreg_core.present.figures import plotly_config
    from sigreg_core.compare.ranking import interval_text
    from sigreg_core.present.verdict_card import verdict_colour

    esc = html.escape
    figs = CF.comparison_figures(cmp, slice_index=slice_index)
    parts = []
    for i, (name, fig) in enumerate(figs.items()):
        parts.append(f'<section id="{esc(name)}">' + fig.to_html(
            full_html=False, include_plotlyjs=(i == 0), config=plotly_config(name), default_width="100%")
            + "</section>")
    rk = cmp.ranking_frame()
    best = rk.iloc[0]
    pct = int(round(cmp.level * 100))
    cards = []
    for r in rk.itertuples(index=False):
        sr = cmp.sets[r.set]
        ref = " (reference)" if r.set == cmp.reference else ""
        modes = ", ".join(str(m).replace("_", " ") for m in sr.modes) or "none"
        cards.append(
            f'<div class="card" style="--c:{verdict_colour(sr.verdict)}"><div class="name">{r.rank}. {esc(r.set)}'
            f'{esc(ref)}</div><div class="word">{esc(str(sr.verdict))}</div>'
            f'<div class="value">{_cell(sr.sigreg_over_null, 3)} × null mean</div>'
            f'<div class="help">SIGReg {_cell(sr.sigreg)} · p-value {esc(_p(sr.p_value))} · {sr.n:,} rows · '
            f'collapse modes: {esc(modes)}</div></div>')
    rank_rows = [[int(r.rank), r.set, str(r.verdict), float(r.x_null),
                  interval_text(float(r.x_null_low), float(r.x_null_high)),
                  float(r.excess_over_best), r.vs_above or "–"] for r in rk.itertuples(index=False)]
    ranking = _table_html(["rank", "set", "verdict", "× null mean", f"{pct} % interval", "excess over best",
                           "against the set above"], rank_rows, {0, 3, 5})
    order = {name: i for i, name in enumerate(rk["set"])}
    pair_rows = []
    for r in cmp.pairwise_frame("sigreg").itertuples(index=False):
        if order.get(r.set, 0) <= order.get(r.reference, 0):
            continue  # each pair once: the lower-ranked set against the higher-ranked one
        ci = r.note or interval_text(float(r.relative_low), float(r.relative_high), signed=True)
        pair_rows.append([f"{r.set} vs {r.reference}", float(r.relative), ci,
                          "–" if r.note else ("yes" if r.significant else "no"),
                          r.healthier if isinstance(r.healthier, str) and r.healthier else "–"])
    pairs = _table_html(["pair (lower-ranked vs higher-ranked)", "SIGReg difference (× null mean)",
                         f"{pct} % interval", "significant", "healthier"], pair_rows, {1})
    delta_rows = []
    for d in cmp.deltas:
        label = DELTA_METRICS[d.metric][0]
        ci = d.note or interval_text(d.ci_low, d.ci_high, signed=True)
        sig = "–" if d.note else ("yes" if d.significant else "no")
        delta_rows.append([d.set, label, d.value, ci, sig, d.healthier or "–"])
    deltas = (_table_html(["set", "metric", f"set − {cmp.reference}", f"{pct} % interval", "significant",
                           "healthier"], delta_rows, {2}) if delta_rows else "<p>No deltas (one set only).</p>")
    paired_rows = [[pt.set, f"{100 * pt.fraction_lower:.1f} %", pt.median_difference, pt.design_effect,
                    _p(pt.wilcoxon_p_adjusted), _p(pt.sign_p_adjusted), pt.healthier or "–"] for pt in cmp.paired]
    paired = (_table_html(["set", f"slices where it scores lower than {cmp.reference}", "median difference",
                           "design effect", "Wilcoxon p (adjusted)", "sign p (adjusted)", "healthier"],
                          paired_rows, {1, 2, 3, 4, 5}) if paired_rows else "")
    cfg = cmp.config()
    setting_rows = [["preset", f"{cfg['preset']} ({cmp.preset.description})" if cmp.preset.description else cfg["preset"]],
                    ["slices", f"M = {int(cfg['num_slices']):,} ({cfg['family']}), shared by every set"],
                    ["seed", str(cfg["seed"])], ["dimensions", f"D = {int(cfg['dim']):,}"],
                    ["rows", cmp.row_note], ["bootstrap", f"{int(cfg['n_boot'])} resamples of rows per set, "
                                                          f"{pct} % intervals"],
                    ["reference", cfg["reference"]]]
    settings = _table_html(["setting", "value"], setting_rows)
    src_rows = []
    for k, v in (source or {}).items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        for item in vals:
            src_rows.append([str(k), item if isinstance(item, str) else json.dumps(_jsonable(item))])
    src = _table_html(["source", "value"], src_rows, cls="src") if src_rows else ""
    caveats = "".join(f"<p class='caveat'>{esc(c)}</p>" for c in cmp.caveats)
    word = str(cmp.sets[best.set].verdict)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{_CSS}</style>
</head><body>
<h1>{esc(title)}</h1>
<div class="verdict" style="--c:{verdict_colour(word)}"><p class="big">Healthiest: {esc(str(best.set))}
({esc(word)}, {_cell(float(best.x_null), 3)} × null mean)</p>
<p>{len(cmp.names)} sets scored on the same {int(cfg['num_slices']):,} slices; ranked by verdict severity, then by
SIGReg over its null mean (about 1 when healthy). Reference for the pairs: <b>{esc(cmp.reference)}</b>.</p></div>
{caveats}
<div class="cards">{''.join(cards)}</div>
<h2>Ranking, best first</h2>
{ranking}
<h2>Every pair</h2>
<p class="note">SIGReg of one set minus the other's, in units of the null mean, with its {pct} % bootstrap
interval over rows; significant means the interval excludes 0.</p>
{pairs}
<h2>Every set against {esc(cmp.reference)}</h2>
<p class="note">Differences with their {pct} % bootstrap intervals over rows; significant means the interval
excludes 0.</p>
{deltas}
{'<h2>Paired over slices</h2><p class="note">Approximate: the slices share the data, so the p-values are '
 'adjusted by the design effect; the intervals above are the evidence.</p>' + paired if paired else ''}
<h2>Settings</h2>
{settings}
{'<h2>Source</h2>' + src if src else ''}
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
        health = (s.answers or {}).get("health") or {}
        dirs = health.get("effective_directions")
        rows.append([i + 1, n + (" (ref)" if n == cmp.reference else ""), s.n, s.verdict,
                     f"{dirs:.3g} ({100 * health.get('relative_effective_rank', float('nan')):.3g} %)"
                     if isinstance(dirs, (int, float)) else "-", s.distance, s.sigreg,
                     s.sigreg_over_null, _p(s.p_value), ", ".join(s.modes) or "none", s.metrics.get("rankme")])
    lines.append("Sets, best first (the headline: the verdict, then the share of N(0, I)'s directions in use, then the "
                 "distance from N(0, I); sigreg_core.assessment.verdict.rank_key):")
    lines += _text_table(["rank", "set", "rows", "verdict", "directions", "distance", "SIGReg", "x null", "p-value",
                          "modes", "RankMe"], rows, {0, 2, 5, 6, 7, 8, 10})
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
