"""The verdict card's text: the three answers of an assessment, for the Inspect page and the HTML report.

The verdict of SIGReg's assessment (LeJEPA, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312; rules in :mod:`sigreg_core.assessment.verdict`) carries three
answers: is it collapsing (scale-free), how far from N(0, I) and which way
(graded: healthy < mild < marked < severe), which conventions it follows.  This
module turns ``Assessment.answers`` into Streamlit markdown (one distinct badge
colour per level), HTML (escaped), and the outlier rows as CSV.  Every string
is ours (mode and convention names, numbers), and is still escaped.
"""
from __future__ import annotations

import html
import io
import math

from sigreg_core.assessment.severity import verdict_colour as _ramp_colour
from sigreg_core.assessment.verdict import TOO_FEW, describe_verdict

__all__ = ["BADGE", "answer_lines", "card_markdown", "card_html", "outliers_csv", "verdict_colour"]

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


def answer_lines(answers: dict) -> list[tuple[str, str]]:
    """[(question, plain-text answer)] for the three answers (empty when there are none)."""
    if not answers:
        return []
    col = answers.get("collapse", {})
    dist = answers.get("distance", {})
    conv = answers.get("conventions", [])
    a1 = {"no": "no", "full": "yes: full collapse", "dimensional": "yes: dimensional collapse"}.get(
        col.get("answer"), str(col.get("answer", "n/a")))
    a1 += (f" (relative spread {_g(col.get('relative_spread'))}, full collapse below "
           f"{_g(col.get('relative_spread_threshold'))}; centred RankMe {_g(col.get('centred_rankme_fraction'))} "
           f"of min(N - 1, D), collapse below {_g(col.get('rankme_fraction_threshold'))})")
    modes = dist.get("modes") or []
    ways = ", ".join(f"{m['mode']} ({_g(m.get('value'))})" for m in modes) or "no particular way"
    a2 = (f"{dist.get('level', 'n/a')}: relative distance {_g(dist.get('relative_distance'))} "
          f"(0 = N(0, I), 1 = collapse onto 0; largest on the {dist.get('largest_on', 'n/a')} screen), "
          f"SIGReg {_g(dist.get('sigreg_over_null'))} x its null mean, p = {_g(dist.get('p_value'))}"
          + (f" ({dist['p_calibration']})" if dist.get("p_calibration") else "") + f"; way: {ways}")
    if dist.get("note"):
        a2 += f" ({dist['note']})"
    if conv:
        parts = []
        for c in conv:
            after = f"x null {_g(c.get('sigreg_over_null_after'))} after {c.get('rescale')}"
            if c.get("applied"):
                after += f" (as given: x null {_g(c.get('sigreg_over_null_as_given'))}; scored after the rescale)"
            parts.append(f"{c.get('name')}: {c.get('evidence')}; {after}")
        a3 = "; ".join(parts)
    else:
        a3 = "none detected (rows not normalised, mean and scale near the target's)"
    return [("Collapsing?", a1), ("How far from N(0, I), which way?", a2), ("Conventions", a3)]


def _md_escape(text: str) -> str:
    out = str(text)
    for ch in "\\`*_[]<>#|$~:":
        out = out.replace(ch, "\\" + ch)
    return out


def card_markdown(verdict: str, answers: dict) -> str:
    """Markdown for ``st.markdown``: a coloured badge with the verdict and the three answers."""
    badge = BADGE.get(str(verdict), "gray")
    lines = [f"**Verdict: {_md_escape(verdict)}** :{badge}-background[{_md_escape(describe_verdict(verdict))}]"]
    for q, a in answer_lines(answers):
        lines.append(f"- **{_md_escape(q)}** {_md_escape(a)}")
    return "\n".join(lines)


def card_html(verdict: str, answers: dict) -> str:
    """HTML for the report: the verdict in its level's colour and the three answers (escaped)."""
    colour = verdict_colour(verdict)
    rows = "".join(f"<tr><th>{html.escape(q)}</th><td>{html.escape(a)}</td></tr>" for q, a in answer_lines(answers))
    return (f'<p class="verdict" style="border-left:8px solid {colour};padding-left:8px">'
            f'Verdict: <span style="color:{colour}">{html.escape(str(verdict))}</span> — '
            f'{html.escape(describe_verdict(verdict))}</p><table>{rows}</table>')


def outliers_csv(outliers: dict) -> bytes:
    """The flagged rows as CSV (row index, robust squared distance over its median)."""
    buf = io.StringIO()
    buf.write("row,robust_distance\n")
    for r, d in zip(outliers.get("rows", []), outliers.get("robust_distance", [])):
        buf.write(f"{int(r)},{float(d):.6g}\n")
    return buf.getvalue().encode("utf-8")
