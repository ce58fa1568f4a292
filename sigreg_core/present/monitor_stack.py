"""The Monitor's curves as one figure of stacked panels on one step axis, so one hover lines them all up.

Panels, top to bottom: SIGReg (log y, each run's 95 % null band, the exact null mean), the
verdict's p-value (log y, the 1e-3 gate), RankMe (with its maximum min(N, D)), one panel per
logged scalar the user picked (any column of the run's index: loss, lambda, k-NN accuracy, ...;
drawn generically), and the verdict strip (one row per run).  SIGReg = mean over M slices of the
Epps–Pulley statistic ``EP(x) = N sum_k c_k [(Cbar_k - exp(-t_k^2/2))^2 + Sbar_k^2]`` (LeJEPA,
arXiv 2511.08544; LeWorldModel, arXiv 2603.19312).

Why one figure: every trace sits on the same x axis (``xaxis="x"``; each panel has its own y axis
and a slice of the height), so

* ``hover="run"`` (the default; plotly ``hovermode="closest"``): the hovered point's label lists that
  run's logged values on every panel at that step, and a spike line (``spikemode="across"``) marks
  the step across all panels; a click selects exactly the point under the pointer (the page
  opens that step);
* ``hover="step"`` (plotly ``hovermode="x"`` with ``hoversubplots="axis"``): every panel shows a
  label for every run at the hovered step.  A click then selects the first point plotly lists
  at that step, not necessarily the run under the pointer (plotly's rule), so the page says so.

Each alert of :mod:`sigreg_core.runs.alerts` (a deterioration from the best level reached, or a
collapse) is a marker on the SIGReg curve and a dotted line, in the verdict's colour, through
every panel.  Pure plotly / pandas, no streamlit; run names go through ``plotly_text``.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sigreg_core.assessment.severity import VERDICT_COLOURS, severity, verdict_colour, verdict_levels
from sigreg_core.present.log_axes import hline_items, log_axis_layout
from sigreg_core.present.run_traces import (SUSPICIOUS_P, _common, _custom, _events, _finish, _safe, ema,
                                            x_values)
from sigreg_core.runs.alerts import AlertRule, alert_events
from sigreg_core.util.text import plotly_text

__all__ = ["HOVER_MODES", "STACK_TITLE", "stack_figure", "panels"]

#: hover choices: what one hover shows
HOVER_MODES = {"run": "one run", "step": "every run"}
STACK_TITLE = "SIGReg per step, and every curve of the run at the same step"
_GAP = 0.035  # vertical gap between panels (fraction of the plot height)


def panels(scalars: Sequence[str] = ()) -> list[tuple[str, str, float]]:
    """The stacked panels: (column, title, relative height), top to bottom (the verdict strip last)."""
    out = [("sigreg", "SIGReg (log scale), 95 % null band", 1.6), ("p_value", "Overall p-value (log scale)", 1.0),
           ("rankme", "RankMe (collapse drives it to 1)", 1.0)]
    out += [(c, plotly_text(c), 0.9) for c in scalars]
    return out + [("verdict", "Verdict", 0.0)]


def _fmt(v, fmt: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return format(f, fmt) if math.isfinite(f) else "–"


def _lineup(df: pd.DataFrame, name: str, cols: Sequence[tuple[str, str]]) -> np.ndarray:
    """Per step, the run's logged values on every panel (the hover label of any of its points)."""
    n = len(df)
    head = [f"<b>{name}</b> step {s}" for s in df["step"].astype(str)]
    verdict = df["verdict"].fillna("not scored").astype(str).to_numpy() if "verdict" in df else np.full(n, "")
    modes = df["modes"].fillna("").astype(str).to_numpy() if "modes" in df else np.full(n, "")
    parts = [[f"{h}: {v}" + (f" ({m})" if m else "") for h, v, m in zip(head, verdict, modes)]]
    for col, label in cols:
        vals = df[col].to_numpy() if col in df else np.full(n, np.nan)
        fmt = ".3g" if col in ("p_value", "rankme") else ".4g"
        parts.append([f"{label} {_fmt(v, fmt)}" for v in vals])
    return np.asarray(["<br>".join(p) for p in zip(*parts)], dtype=object)


def _axis(k: int) -> str:
    return "y" if k == 1 else f"y{k}"


def stack_figure(runs: Mapping[str, pd.DataFrame], bands: Optional[Mapping[str, tuple]] = None, *,
                 colours: Optional[Mapping] = None, x: str = "step", smoothing: float = 0.0,
                 rule: Optional[AlertRule] = None, scalars: Sequence[str] = (), log_scalars: bool = False,
                 hover: str = "run") -> go.Figure:
    """SIGReg, p-value, RankMe, the chosen scalars and the verdict strip stacked on one x axis."""
    if hover not in HOVER_MODES:
        raise ValueError(f"hover must be one of {sorted(HOVER_MODES)}, got {hover!r}")
    runs, colours = _safe(runs, colours)
    colours, unit = _common(runs, colours, x)
    bands = {plotly_text(n): b for n, b in (bands or {}).items()}
    names = list(runs)
    spec = panels([c for c in scalars if any(c in df for df in runs.values())])
    strip = 0.12 + 0.09 * len(names)
    heights = [h if col != "verdict" else strip for col, _, h in spec]
    total = sum(heights)
    avail = 1.0 - _GAP * (len(spec) - 1)  # the panels' share of the plot height
    lineup_cols = [(c, t.split(" (")[0].split(",")[0]) for c, t, _ in spec if c != "verdict"]
    custom = {n: np.column_stack([_custom(df, n), _lineup(df, n, lineup_cols)]) for n, df in runs.items()}
    fig = _Parts()  # traces, shapes and annotations collected, validated once as one figure at the end
    layout: dict = {}
    top = 1.0
    smooth_note = " (smoothed here: %{y:.4g})" if smoothing > 0 else ""
    for k, ((col, title, _), h) in enumerate(zip(spec, heights), start=1):
        ax = _axis(k)
        lo = max(0.0, top - h / total * avail)
        axis: dict = {"domain": [lo, top], "anchor": "x", "title": {"text": ""}}
        layout[f"yaxis{'' if k == 1 else k}"] = axis
        fig.annotations.append({"xref": "paper", "yref": "paper", "x": 0.0, "y": top, "xanchor": "left",
                                "yanchor": "bottom", "text": f"<b>{title}</b>", "showarrow": False,
                                "font": {"size": 12}})
        top = lo - _GAP
        if col == "verdict":
            _verdict_rows(fig, runs, colours, x, unit, ax, axis)
            continue
        vals: list = []
        for name, df in runs.items():
            if col not in df or not pd.to_numeric(df[col], errors="coerce").notna().any():
                continue
            xs = x_values(df, x, unit)
            y = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
            if col == "p_value":
                y = np.clip(y, 1e-300, None)
            c = colours[name]
            own = name if k == 1 else f"{name}: {title.split(' (')[0]}"
            hovertemplate = "%{customdata[4]}" + smooth_note + "<extra></extra>"
            smooth = smoothing > 0 and col != "p_value"  # the p-value is never smoothed
            if smooth:
                fig.add_trace(dict(type="scatter", x=xs, y=y, mode="lines", name=f"{own} (raw)", legendgroup=name,
                                   showlegend=False, opacity=0.25, line={"color": c, "width": 1}, yaxis=ax,
                                   customdata=custom[name], hovertemplate="%{customdata[4]}<extra></extra>"))
                y = ema(y, smoothing)
            if band := (bands.get(name) if col == "sigreg" else None):
                x0, x1 = (xs.min(), xs.max()) if hasattr(xs, "min") else (min(xs), max(xs))
                fig.add_trace(dict(type="scatter", x=[x0, x1, x1, x0, x0],
                                   y=[band[0]] * 2 + [band[1]] * 2 + [band[0]], fill="toself", mode="lines",
                                   line={"width": 0}, fillcolor=c, opacity=0.15, name=f"{name}: 95 % null band",
                                   legendgroup=name, hoverinfo="skip", yaxis=ax, showlegend=False))
                vals += list(band)
            fig.add_trace(dict(type="scatter", x=xs, y=y, mode="lines+markers", name=own, legendgroup=name,
                               showlegend=k == 1, line={"color": c, "width": 2}, marker={"size": 4},
                               customdata=custom[name], yaxis=ax,
                               hovertemplate=hovertemplate if smooth else "%{customdata[4]}<extra></extra>"))
            vals += [v for v in y if np.isfinite(v)]
        if col == "sigreg":
            _events(fig, runs, "sigreg", colours, x=x, smoothing=smoothing, unit=unit, show_legend=True,
                    rule=rule, yaxis=ax)
            nm = [float(df["null_mean"].dropna().iloc[0]) for df in runs.values()
                  if "null_mean" in df and df["null_mean"].notna().any()]
            if nm:
                fig.line(nm[0], f"null mean {nm[0]:.4g}", "#555555", log=True, position="left", yref=ax)
                vals.append(nm[0])
            axis.update(log_axis_layout(vals))
        elif col == "p_value":
            fig.line(SUSPICIOUS_P, f"p = {SUSPICIOUS_P:g} (significant below)", VERDICT_COLOURS[2], log=True,
                     yref=ax)
            axis.update(log_axis_layout(vals + [SUSPICIOUS_P, 1.0], power=True))
        elif col == "rankme":
            tops = {float(np.nanmin([df["n"].astype(float).max(), df["d"].astype(float).max()]))
                    for df in runs.values() if len(df) and "d" in df and df["d"].notna().any()}
            for t in sorted(tops):
                fig.line(t, f"max min(N, D) = {t:g}", "#555555", log=False, dash="dot", yref=ax)
        elif log_scalars:
            axis.update(log_axis_layout(vals))
    _alert_lines_across(fig, runs, x, unit, rule)
    layout.update(annotations=fig.annotations, shapes=fig.shapes, hovermode="closest" if hover == "run" else "x",
                  hoversubplots="axis", spikedistance=-1, hoverdistance=30,
                  xaxis={"anchor": _axis(len(spec)), "showspikes": True, "spikemode": "across", "spikesnap": "cursor",
                         "spikethickness": 1, "spikedash": "dot", "spikecolor": "#444444"})
    out = go.Figure(data=fig.traces, layout=layout)
    _finish(out, runs, STACK_TITLE, "", x, height=int(150 + 175 * total + 20 * len(spec)))
    out.update_layout(yaxis_title_text="", margin_t=64)
    return out


class _Parts:
    """What the stack is made of, collected as plain dicts (one validation for the whole figure)."""

    def __init__(self):
        self.traces, self.shapes, self.annotations = [], [], []

    def add_trace(self, trace) -> None:
        self.traces.append(trace)

    def line(self, y: float, text: str, colour: str, **kw) -> None:
        shape, ann = hline_items(y, text, colour, **kw)
        self.shapes.append(shape)
        if ann:
            self.annotations.append(ann)


def _verdict_rows(fig, runs, colours, x, unit, ax: str, axis: dict) -> None:
    """The verdict per step: one row per run (numeric rows, the run's name as tick), verdict colours."""
    names = list(runs)
    found = {str(v) for df in runs.values() if "verdict" in df for v in df["verdict"].dropna()}
    for verdict in sorted(set(verdict_levels()) | found, key=lambda v: (severity(v), v)):
        xs, ys, cds = [], [], []
        for i, (name, df) in enumerate(runs.items()):
            if "verdict" not in df:
                continue
            mask = (df["verdict"] == verdict).to_numpy()
            xs.append(np.asarray(x_values(df, x, unit))[mask])
            ys.append(np.full(int(mask.sum()), float(len(names) - 1 - i)))
            cds.append(_custom(df, name)[mask])
        if not sum(len(a) for a in xs) and verdict not in verdict_levels():
            continue
        fig.add_trace(dict(
            type="scatter", x=np.concatenate(xs) if xs else [], y=np.concatenate(ys) if ys else [], mode="markers",
            name=verdict, yaxis=ax, customdata=np.concatenate(cds) if cds else None,
            marker={"color": verdict_colour(verdict), "size": 10, "symbol": "square"},
            hovertemplate="%{customdata[3]} step %{customdata[0]}: " + verdict + "<extra></extra>"))
    axis.update(tickvals=list(range(len(names))), ticktext=names[::-1], range=[-0.6, len(names) - 0.4],
                showgrid=False, zeroline=False)


def _alert_lines_across(fig, runs, x, unit, rule) -> None:
    """A dotted line through every panel, in the verdict's colour, at each alert of each run."""
    for df in runs.values():
        if not len(df):
            continue
        steps = df["step"].to_numpy()
        xs = np.asarray(x_values(df, x, unit))
        for e in alert_events(df, rule):
            hit = np.flatnonzero(steps == e["step"])
            if hit.size:
                xv = xs[hit[0]]
                if isinstance(xv, np.datetime64):
                    xv = pd.Timestamp(xv).isoformat()
                fig.shapes.append({"type": "line", "xref": "x", "x0": xv, "x1": xv, "yref": "paper", "y0": 0, "y1": 1,
                                   "layer": "below",
                                   "line": {"color": verdict_colour(e["verdict"]), "dash": "dot", "width": 1.2}})
