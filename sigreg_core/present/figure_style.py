"""The house style of every latent-health figure: colours, the layout, log axes, the PNG button.

Split from :mod:`sigreg_core.present.figures` (issue 23), which re-exports every name here.  Colours are
Okabe–Ito (colour-blind safe); legends sit below the axes and margins are given up front so plotly draws
a figure once; a log axis labels its ticks with their magnitude (2000, not "2").
"""
from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go

__all__ = ["BLUE", "ORANGE", "GREEN", "RED", "PURPLE", "GREY", "PLOTLY_CONFIG", "plotly_config", "log_axis"]

# Colours (colour-blind safe: Okabe–Ito).
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
RED = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#7f7f7f"

#: Modebar settings: PNG download at 2x, no plotly logo.
PLOTLY_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


def plotly_config(filename: str) -> dict:
    """:data:`PLOTLY_CONFIG` with the PNG file name set (``filename.png``)."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PLOTLY_CONFIG.items()}
    # a download name only: letters, digits, '.', '-', '_' (the name may come from a file)
    cfg["toImageButtonOptions"]["filename"] = re.sub(r"[^\w.-]+", "_", str(filename), flags=re.ASCII)[:100] or "chart"
    return cfg


#: Legends sit outside the plotting area, below the x-axis title (``yref="container"``: plotly grows
#: the bottom margin to fit them), so no legend covers a curve at any width.
_LEGEND = {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0.0, "xanchor": "left", "x": 0.0,
           "font": {"size": 11}, "itemwidth": 30}


#: Margins as plotly's auto-margin leaves them in the app: y tick labels and title (l), x tick labels,
#: x title and a one-row legend below (b).  Given up front, so the first draw is the last one: when
#: auto-margin has to grow a margin after drawing, plotly draws the whole figure a second time (issue 12:
#: on a fresh page that is every chart).  ``autoexpand`` stays on: wider labels or a legend that wraps in
#: a narrow window still get the room they need.
_MARGIN = {"l": 72, "r": 16, "t": 40, "b": 96, "autoexpand": True}


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, height: int = 400,
            legend: str = "bottom", subtitle: str = "") -> go.Figure:
    """Common layout: short title (a second, smaller line for details), legend below the axes.

    Titles are kept short (they must fit a half-width column at a 1000 px window); details go
    on the second line.  ``legend`` is kept for callers; every legend now sits below the axes.
    """
    head = {"text": title, "x": 0.01, "xanchor": "left", "xref": "container", "font": {"size": 14},
            "yref": "container", "y": 0.985, "yanchor": "top"}
    if subtitle:
        head["subtitle"] = {"text": subtitle, "font": {"size": 11, "color": "#555"}}
    fig.update_layout(
        title=head,
        xaxis_title=xtitle,
        yaxis_title=ytitle,
        height=height,
        margin=dict(_MARGIN, t=66 if subtitle else 40),
        legend=dict(_LEGEND),
    )
    return fig


def log_axis(fig: go.Figure, values, axis: str = "y") -> go.Figure:
    """A log axis whose labels carry their magnitude (2000, not "2") and whose range runs from the
    decade below the smallest value to the decade above the largest, so every value sits
    between two labelled ticks."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = (math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))) if v.size else (-1, 1)
    if hi <= lo:
        hi = lo + 1
    kw = dict(type="log", range=[lo, hi], tickformat="~g", exponentformat="power", minor={"showgrid": False})
    (fig.update_yaxes if axis == "y" else fig.update_xaxes)(**kw)
    return fig
