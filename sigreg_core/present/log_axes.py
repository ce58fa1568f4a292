"""Log axes whose tick labels are full numbers, and labelled horizontal reference lines.

Plotly's default log axis labels the 2 and 5 of a decade with a bare "2" and "5" (the "2" of 2000
reads as 2).  :func:`log_ticks` picks explicit ticks instead: powers of ten over two and a half
decades or more (every 1, 2, 5, ... decades, about 8 labels at most), the 1-2-5 series over a
narrower range, evenly spaced round numbers when the range is under a factor of about 2.5 —
every label written in full.  :func:`log_axis` puts them on a figure's y axis; :func:`hline`
draws a reference line with its label on the line (annotations on a log axis take log10
coordinates).  Pure plotly, no streamlit.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import plotly.graph_objects as go

__all__ = ["log_ticks", "log_axis", "log_axis_layout", "hline", "hline_items"]


def _tick_text(v: float, power: bool) -> str:
    """A full tick label: 2000, not a bare "2" (and 10^-k written as a power when ``power``)."""
    e = math.floor(math.log10(v) + 1e-9)
    mant = v / 10 ** e
    if power and abs(mant - 1) < 1e-9:
        return f"10<sup>{e}</sup>" if e not in (0, 1) else ("1" if e == 0 else "10")
    if 1e-4 <= v < 1e7:
        return np.format_float_positional(float(f"{v:.6g}"), trim="-")
    return f"{mant:.3g}e{e}" if abs(mant - 1) > 1e-9 else f"1e{e}"


def log_ticks(lo: float, hi: float, power: bool = False) -> tuple[list, list]:
    """(values, labels) of log-axis ticks between ``lo`` and ``hi``, every label a full number.

    Two and a half decades or more: powers of ten (every 1, 2, 5, ... decades, at most about 8
    labels); narrower: the 1-2-5 series (at most 9 labels); narrower still (under a factor of
    about 2.5): evenly spaced round numbers (multiples of 1, 2 or 5 x 10^k, at least three).
    """
    if not (lo > 0 and hi >= lo and math.isfinite(hi)):
        return [], []
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    span = math.log10(hi) - math.log10(lo)
    inside = lambda v: lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)  # noqa: E731
    vals: list = []
    if span >= 2.5:
        step = next((k for k in (1, 2, 5, 10, 20, 50, 100) if span / k <= 8), 100)
        vals = [10.0 ** e for e in range(e0, e1 + 1) if e % step == 0 and inside(10.0 ** e)]
        if vals and step == 1:  # a curve beyond the outer powers gets a labelled line too (200 above 100)
            series = [m * 10.0 ** e for e in range(e0, e1 + 1) for m in (1, 2, 5) if inside(m * 10.0 ** e)]
            if series and hi > 2 * vals[-1]:
                vals.append(float(f"{series[-1]:.12g}"))
            if series and lo < vals[0] / 2:
                vals.insert(0, float(f"{series[0]:.12g}"))
    if len(vals) < 2:
        vals = [float(f"{m * 10.0 ** e:.12g}") for e in range(e0, e1 + 1) for m in (1, 2, 5) if inside(m * 10.0 ** e)]
        if len(vals) > 9:
            vals = [v for v in vals if abs(math.log10(v) - round(math.log10(v))) < 1e-9] or vals
    if len(vals) < 3:
        for k in range(e1, e0 - 6, -1):
            found = None
            for m in (5, 2, 1):
                d = m * 10.0 ** k
                cand = [float(f"{i * d:.12g}") for i in range(math.ceil(lo / d - 1e-9), math.floor(hi / d + 1e-9) + 1)]
                if len(cand) >= 3:
                    found = cand
                    break
            if found:
                vals = [v for v in found if v > 0]
                break
    return vals, [_tick_text(v, power) for v in vals]


def log_axis_layout(values, *, power: bool = False) -> dict:
    """The layout of a log y axis over ``values`` (the positive finite ones): explicit ticks, full labels."""
    v = np.asarray([float(a) for a in values if a is not None and np.isfinite(a) and a > 0], dtype=np.float64)
    kw: dict = {"type": "log"}
    if v.size:
        vals, text = log_ticks(float(v.min()), float(v.max()), power)
        if vals:
            kw.update(tickmode="array", tickvals=vals, ticktext=text)
            if math.log10(v.max()) - math.log10(v.min()) >= 0.7:
                kw["minor"] = {"ticks": "inside", "ticklen": 3, "showgrid": False}
    return kw


def log_axis(fig: go.Figure, values, *, power: bool = False, row=None, col=None) -> None:
    """Log y axis with explicit ticks, every label a full number (no bare "2" or "5" for 2000 or 5e-3)."""
    kw = log_axis_layout(values, power=power)
    if row is None:
        fig.update_yaxes(**kw)
    else:
        fig.update_yaxes(row=row, col=col, **kw)


def hline_items(y: float, text: str, colour: str, *, log: bool, dash: str = "dash", position: str = "right",
                yshift: int = 0, yref: str = "y") -> tuple[dict, Optional[dict]]:
    """(shape, annotation or None) of a horizontal line on the y axis ``yref`` with its label on the line
    (annotations on a log axis take log10 coordinates; shapes take the data value)."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": yref, "y0": y, "y1": y,
             "line": {"color": colour, "dash": dash, "width": 1}}
    if not text:
        return shape, None
    return shape, {"xref": "paper", "x": 1.0 if position == "right" else 0.0, "yref": yref,
                   "y": math.log10(y) if log else y, "text": text, "showarrow": False,
                   "xanchor": "right" if position == "right" else "left", "yanchor": "bottom", "yshift": yshift,
                   "font": {"size": 10, "color": colour}, "bgcolor": "rgba(255,255,255,0.6)"}


def hline(fig: go.Figure, y: float, text: str, colour: str, *, log: bool, dash: str = "dash",
          position: str = "right", yshift: int = 0, yref: str = "y") -> None:
    """A horizontal line with its label on the line (:func:`hline_items`), added to ``fig``."""
    shape, ann = hline_items(y, text, colour, log=log, dash=dash, position=position, yshift=yshift, yref=yref)
    fig.add_shape(**shape)
    if ann:
        fig.add_annotation(**ann)
