"""The verdict card's text: the three answers of an assessment, for the Inspect page and the HTML report.

The verdict of SIGReg's assessment (LeJEPA, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312; rules in :mod:`sigreg_core.assessment.verdict`) carries three
answers: health (how many effective directions the rows use, against N(0, I) and the
atlas of public encoders), is it collapsing, how far from N(0, I) once the conventions
are undone (and which way), which conventions it follows; then what the level means and
what to try, for a JEPA/SIGReg-trained and for a contrastive encoder
(:mod:`sigreg_core.present.advice`).  This module turns ``Assessment.answers`` into
Streamlit markdown (one distinct badge colour per level, the word said once), HTML
(escaped), and the outlier rows as CSV.  Every string
is ours (mode and convention names, numbers), and is still escaped.
"""
from __future__ import annotations

import html
import io
import math

from sigreg_core.assessment.severity import verdict_colour as _ramp_colour
from sigreg_core.assessment.verdict import TOO_FEW, describe_verdict
from sigreg_core.present.advice import LEVEL_ADVICE, advice_lines

__all__ = ["BADGE", "answer_lines", "atlas_place", "card_markdown", "card_html", "outliers_csv", "verdict_colour"]

#: Streamlit markdown background colour per level (distinct; Streamlit has no hex colours in markdown;
#: HTML and plots use the shared green -> amber -> vermilion ramp of the severity module)
BADGE = {"healthy": "green", "mild": "blue", "marked": "orange", "severe": "violet", "collapsed": "red",
         "suspicious": "orange", TOO_FEW: "gray"}


def verdict_colour(verdict: str) -> str:
    """The verdict's colour on the shared ramp (green healthy ... vermilion collapsed, grey no verdict)."""
    return _ramp_colour(verdict)


def _g(x, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"


def _mode_text(m: dict) -> str:
    """A mode in words with its evidence (never a bare number)."""
    name = str(m.get("mode", "")).replace("_", " ")
    ev = m.get("evidence")
    return f"{name} ({ev})" if ev else name


def answer_lines(answers: dict) -> list[tuple[str, str]]:
    """[(question, plain-text answer)] for the answers (empty when there are none)."""
    if not answers:
        return []
    health = answers.get("health") or {}
    col = answers.get("collapse", {})
    dist = answers.get("distance", {})
    conv = answers.get("conventions", [])
    out = []
    if health:
        h = (f"{_g(health.get('effective_directions'))} effective directions, {_g(100 * float(health.get('relative_effective_rank', float('nan'))))} % "
             f"of the {_g(health.get('reference_directions'), 4)} that N(0, I) uses at this N x D; mean cosine between rows "
             f"{_g(health.get('mean_cosine'), 2)}")
        place = atlas_place(health.get("relative_effective_rank"))
        if place:
            h += f"; {place}"
        out.append(("Health (effective directions)", h))
    a1 = {"no": "no", "full": "yes: the rows point one way", "dimensional": "yes: an exact rank loss"}.get(
        col.get("answer"), str(col.get("answer", "n/a")))
    if col.get("evidence"):
        a1 += f" ({col['evidence']})"
    out.append(("Collapsing?", a1))
    modes = dist.get("modes") or []
    ways = "; ".join(_mode_text(m) for m in modes) or "no particular way"
    a2 = (f"{dist.get('level', 'n/a')}: {_g(dist.get('relative_distance'))} on a scale from N(0, I) (0) to a set on one "
          f"line (1), after centring and one global scale"
          + (" (clipped at 1)" if dist.get("clipped") else "")
          + f"; SIGReg as given {_g(dist.get('sigreg_over_null'))} x its null mean, p {_p(dist.get('p_value'))}"
          + (f" ({dist['p_calibration']})" if dist.get("p_calibration") else "") + f". Ways: {ways}")
    if dist.get("note"):
        a2 += f" ({dist['note']})"
    out.append(("Distance from N(0, I), the SIGReg target", a2))
    if conv:
        parts = []
        for c in conv:
            after = f"x null {_g(c.get('sigreg_over_null_after'))} after {c.get('rescale')}"
            if c.get("applied"):
                after += f" (as given: x null {_g(c.get('sigreg_over_null_as_given'))}; scored after the rescale)"
            parts.append(f"{str(c.get('name')).replace('_', ' ')}: {c.get('evidence')}; {after}")
        a3 = "; ".join(parts)
    else:
        a3 = "none detected (rows not normalised, mean and scale near the target's)"
    out.append(("Conventions", a3))
    return out


def _p(p) -> str:
    try:
        v = float(p)
    except (TypeError, ValueError):
        return "n/a"
    return "< 1e-300" if 0 <= v <= 1e-300 else f"= {_g(v)}"


def atlas_place(q) -> str:
    """Where q falls among the atlas of reference sets and public encoders (empty if unknown)."""
    from sigreg_core.assessment.atlas import place

    return place(q)


def _md_escape(text: str) -> str:
    out = str(text)
    for ch in "\\`*_[]<>#|$~:":
        out = out.replace(ch, "\\" + ch)
    return out


def _headline(verdict: str, answers: dict) -> str:
    means = LEVEL_ADVICE.get(str(verdict), (describe_verdict(verdict),))[0]
    return means


def card_markdown(verdict: str, answers: dict) -> str:
    """Markdown for ``st.markdown``: the verdict as a coloured badge, then the answers and what to try."""
    badge = BADGE.get(str(verdict), "gray")
    lines = [f"**Verdict: {_md_escape(verdict)}** :{badge}-background[{_md_escape(_headline(verdict, answers))}]"]
    for q, a in answer_lines(answers):
        lines.append(f"- **{_md_escape(q)}** {_md_escape(a)}")
    modes = [m.get("mode") for m in (answers or {}).get("distance", {}).get("modes") or []]
    tips = advice_lines(str(verdict), modes)
    if tips:
        lines.append("")
        lines.append("**What to try**")
        for t, a in tips:
            lines.append(f"- *{_md_escape(t)}*: {_md_escape(a)}")
    return "\n".join(lines)


def card_html(verdict: str, answers: dict) -> str:
    """HTML for the report: the verdict in its level's colour, the answers and what to try (escaped)."""
    colour = verdict_colour(verdict)
    rows = "".join(f"<tr><th>{html.escape(q)}</th><td>{html.escape(a)}</td></tr>" for q, a in answer_lines(answers))
    modes = [m.get("mode") for m in (answers or {}).get("distance", {}).get("modes") or []]
    tips = "".join(f"<li><em>{html.escape(t)}</em>: {html.escape(a)}</li>" for t, a in advice_lines(str(verdict), modes))
    return (f'<p class="verdict" style="border-left:8px solid {colour};padding-left:8px">'
            f'Verdict: <span style="color:{colour}"><b>{html.escape(str(verdict))}</b></span> — '
            f'{html.escape(_headline(verdict, answers))}</p><table>{rows}</table>'
            + (f"<p><b>What to try</b></p><ul>{tips}</ul>" if tips else ""))


def outliers_csv(outliers: dict) -> bytes:
    """The flagged rows as CSV (row index, robust squared distance over its median)."""
    buf = io.StringIO()
    buf.write("row,robust_distance\n")
    for r, d in zip(outliers.get("rows", []), outliers.get("robust_distance", [])):
        buf.write(f"{int(r)},{float(d):.6g}\n")
    return buf.getvalue().encode("utf-8")
