"""The curves of training runs over steps, shared by every Monitor figure: colours, x values, lines.

A run is a time-series DataFrame (:meth:`sigreg_core.runs.RunReader.timeseries`: one row per
logged step).  Here: one stable colour per run (:func:`run_colours`, a palette apart from the
verdict colours), the x value of each step (:func:`x_values`: step, wall-clock time, or time since
the run's first step), TensorBoard's smoothing (:func:`ema`: the debiased exponential moving
average ``s_i = w s_(i-1) + (1 - w) v_i`` divided by ``1 - w^k``), and the traces every figure
draws: a line per run with the step, verdict and run name in its ``customdata`` (a click on a
point opens that step), and a marker at each alert of :mod:`sigreg_core.runs.alerts` (the dotted
line through every panel at each alert is drawn by :mod:`sigreg_core.present.monitor_stack`).  Every run name drawn goes through :func:`sigreg_core.util.text.plotly_text`
(names are data).  Pure plotly / pandas, no streamlit.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sigreg_core.assessment.severity import verdict_colour, verdict_levels
from sigreg_core.assessment.verdict import GATE_P
from sigreg_core.present.figures import _layout  # the house layout of every figure
from sigreg_core.runs.alerts import alert_events
from sigreg_core.util.text import plotly_text

#: one colour per run: blues, purples, pink, brown, black — none of them a verdict colour
#: (green, amber, vermilion and the ramp between them)
RUN_COLOURS = ["#0072B2", "#CC79A7", "#6A3D9A", "#56B4E9", "#1B1B1B", "#8C564B", "#17BECF", "#9E9AC8",
               "#1F3A5F", "#B07AA1"]
SUSPICIOUS_P = GATE_P  # the verdict's gate, from its one home (assessment/verdict.py)
#: x-axis choices: column label shown on the axis
X_MODES = {"step": "step", "wall": "wall-clock time", "relative": "relative time"}


def run_colours(names: Sequence[str], universe: Optional[Sequence[str]] = None) -> dict:
    """A colour per run, stable under filtering: run i of ``sorted(universe)`` gets colour i.

    Pass every run the user could pick as ``universe`` so a run keeps its colour when
    others are added, removed or filtered out.
    """
    pool = sorted(set(universe or []) | set(names))
    return {n: RUN_COLOURS[pool.index(n) % len(RUN_COLOURS)] for n in names}


def _colours(runs: Mapping, colours: Optional[Mapping]) -> dict:
    base = run_colours(list(runs))
    return {n: (colours or {}).get(n, base[n]) for n in runs}


def ema(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: debiased exponential moving average with ``weight`` in [0, 1).

    ``s_i = w s_{i-1} + (1 - w) v_i`` from ``s = 0``, divided by ``1 - w^k`` (k = finite
    values so far); non-finite values are passed through and do not enter the average.
    """
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)
    w = float(weight)
    if not 0.0 <= w < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    if w == 0.0:
        return v.copy()
    out = np.empty_like(v)
    last, k = 0.0, 0
    for i, x in enumerate(v):
        if not math.isfinite(x):
            out[i] = x
            continue
        last = last * w + (1.0 - w) * x
        k += 1
        out[i] = last / (1.0 - w ** k)
    return out


def _time_unit(span_s: float) -> tuple[float, str]:
    if span_s < 120:
        return 1.0, "s"
    if span_s < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def x_values(df: pd.DataFrame, x: str = "step", unit: Optional[tuple] = None):
    """The x values of a run for ``x`` in :data:`X_MODES` (wall: datetimes; relative: seconds/min/h)."""
    if x == "step" or "time" not in df:
        return df["step"].to_numpy()
    t = pd.to_numeric(df["time"], errors="coerce")
    if x == "wall":
        return pd.to_datetime(t, unit="s", utc=True).dt.tz_convert(None)
    if x == "relative":
        scale, _ = unit or _time_unit(float(t.max() - t.min()) if t.notna().any() else 0.0)
        return ((t - t.min()) / scale).to_numpy()
    raise ValueError(f"x must be one of {sorted(X_MODES)}, got {x!r}")


def _rel_unit(runs: Mapping[str, pd.DataFrame]) -> tuple:
    spans = [float(pd.to_numeric(df["time"], errors="coerce").agg(lambda s: s.max() - s.min()))
             for df in runs.values() if len(df) and "time" in df]
    return _time_unit(max([s for s in spans if math.isfinite(s)] or [0.0]))


def _xtitle(x: str, runs) -> str:
    if x == "relative":
        return f"time since the run's first logged step ({_rel_unit(runs)[1]})"
    return {"step": "step", "wall": "wall-clock time (UTC)"}[x]


def _finish(fig: go.Figure, runs: Mapping[str, pd.DataFrame], title: str, ytitle: str, x: str = "step",
            **kw) -> go.Figure:
    """Common layout: legend below the plot; for steps, x range = the logged steps (a little padding)."""
    if x == "step":
        steps = [float(v) for df in runs.values() if len(df) for v in (df["step"].min(), df["step"].max())]
        if steps:
            lo, hi = min(steps), max(steps)
            pad = max(1.0, 0.02 * (hi - lo))
            fig.update_xaxes(range=[lo - pad, hi + pad])
    return _layout(fig, title, _xtitle(x, runs), ytitle, legend="bottom", **kw)


def _custom(df: pd.DataFrame, name: str = ""):
    """Per point: step, verdict, modes (for the hover) and the run's name (a click on the point opens that step)."""
    n = len(df)
    return np.stack([df["step"].astype(str).to_numpy(),
                     df["verdict"].fillna("").astype(str).to_numpy() if "verdict" in df else np.full(n, ""),
                     df["modes"].fillna("").astype(str).to_numpy() if "modes" in df else np.full(n, ""),
                     np.full(n, name, dtype=object)], -1)


def _lines(fig, runs, column, colours, *, x="step", smoothing=0.0, dash=None, suffix="", hover_fmt=".4g",
           width=2.0, show_legend=True, marker=True, unit=None):
    for name, df in runs.items():
        if column not in df or not df[column].notna().any():
            continue
        xs = x_values(df, x, unit)
        y = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        c = colours[name]
        hover = (f"{name}<br>step %{{customdata[0]}}<br>{plotly_text(column)} %{{y:{hover_fmt}}}"
                 + ("<br>%{customdata[1]} %{customdata[2]}" if "verdict" in df else "") + "<extra></extra>")
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=xs, y=y, mode="lines", name=f"{name}{suffix} (raw)", legendgroup=name,
                                     showlegend=False, opacity=0.25, line={"color": c, "dash": dash, "width": 1},
                                     customdata=_custom(df, name), hovertemplate=hover))
            y = ema(y, smoothing)
            hover = hover.replace(f"{plotly_text(column)} %", f"{plotly_text(column)} (smoothed) %")
        fig.add_trace(go.Scatter(
            x=xs, y=y, mode="lines+markers" if marker else "lines", name=f"{name}{suffix}",
            legendgroup=name, showlegend=show_legend,
            line={"color": c, "dash": dash, "width": width}, marker={"size": 4},
            customdata=_custom(df, name), hovertemplate=hover))


def _events(fig, runs, column, colours, *, x="step", smoothing=0.0, unit=None, show_legend=False, rule=None,
            yaxis="y", suffix=""):
    """A marker at each alert event on the curve of ``column`` (verdict colour, run-colour outline)."""
    for name, df in runs.items():
        if column not in df:
            continue
        ev = alert_events(df, rule)
        if not ev:
            continue
        y_all = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        if smoothing > 0:
            y_all = ema(y_all, smoothing)
        xs_all = np.asarray(x_values(df, x, unit))
        steps = df["step"].to_numpy()
        pts = [(xs_all[np.flatnonzero(steps == e["step"])[0]], y_all[np.flatnonzero(steps == e["step"])[0]], e)
               for e in ev if (steps == e["step"]).any()]
        pts = [p for p in pts if np.isfinite(p[1])]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=f"{name}{suffix}: alerts", yaxis=yaxis,
            legendgroup=name, showlegend=show_legend,
            marker={"size": 13, "symbol": ["x" if p[2]["severity"] >= len(verdict_levels()) - 1 else "triangle-up"
                                           for p in pts],
                    "color": [verdict_colour(p[2]["verdict"]) for p in pts],
                    "line": {"color": colours[name], "width": 2}},
            text=[f"{name}: {p[2]['label']} at step {p[2]['step']}" + (f" ({p[2]['modes']})" if p[2]["modes"] else "")
                  for p in pts],
            hovertemplate="%{text}<extra></extra>"))


def _safe(runs: Mapping[str, pd.DataFrame], colours: Optional[Mapping]) -> tuple[dict, dict]:
    """Run names are data: every name drawn (trace name, hover, annotation, tick) goes through plotly_text."""
    colours = _colours(runs, colours)
    return ({plotly_text(n): df for n, df in runs.items()}, {plotly_text(n): c for n, c in colours.items()})


def _common(runs, colours, x):
    colours = _colours(runs, colours)
    unit = _rel_unit(runs) if x == "relative" else None
    return colours, unit


def _rgba(hex_colour: str, alpha: float) -> str:
    return f"rgba({int(hex_colour[1:3], 16)},{int(hex_colour[3:5], 16)},{int(hex_colour[5:7], 16)},{alpha})"
