"""Plotly figures of training runs over steps (the Monitor page), from plain pandas data.

Every function is pure: a mapping ``{run name: time-series DataFrame}`` (as returned by
:meth:`sigreg_core.runs.RunReader.timeseries`) in, a ``plotly.graph_objects.Figure``
out; no streamlit, no torch.  Runs are overlaid, one colour per run.

What is drawn, per logged step (SIGReg = mean over M slices of the Epps–Pulley
statistic ``EP(x) = N sum_k c_k [(Cbar_k - exp(-t_k^2/2))^2 + Sbar_k^2]``; LeJEPA,
arXiv 2511.08544; LeWorldModel, arXiv 2603.19312):

* :func:`sigreg_figure` — SIGReg (log scale) with the run's 95 % null band (Monte
  Carlo of N(0, I) batches on the same directions) and the exact null mean;
* :func:`pvalue_figure` — the verdict's p-value (log scale) with the 1e-3 threshold;
* :func:`verdict_figure` — the verdict (healthy / mild / marked / severe / collapsed) as a strip;
* :func:`rankme_figure` — RankMe against its maximum min(N, D);
* :func:`quantiles_figure` — per-slice statistic quantiles (median, 95 %, max) with
  the one-slice null 95 % quantile;
* :func:`scalar_figure` — one of the user's logged scalars (loss, lambda, ...).

A vertical dotted line marks each run's alert step (:func:`alert_step`).
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sigreg_core.assessment import verdict as _V
from sigreg_core.present.figures import _layout  # the house layout of every figure

__all__ = [
    "RUN_COLOURS",
    "VERDICT_LEVEL",
    "run_alert",
    "alert_step",
    "sigreg_figure",
    "pvalue_figure",
    "verdict_figure",
    "rankme_figure",
    "quantiles_figure",
    "scalar_figure",
    "figures_html",
]

#: Okabe–Ito (colour-blind safe), one per run
RUN_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
#: verdict order and one distinct colour per level (healthy < mild < marked < severe < collapsed;
#: "suspicious" is the earlier name of mild..severe, kept for runs logged before the levels)
VERDICT_LEVEL = dict(_V.VERDICT_RANK)
_VERDICT_COLOUR = dict(_V.VERDICT_COLOURS)
SUSPICIOUS_P = _V.GATE_P


def _off(verdict) -> bool:
    """Neither healthy nor collapsed (nor too few rows): one of the graded departures."""
    return _V.verdict_rank(verdict) in (1, 2, 3)


def _colour(i: int) -> str:
    return RUN_COLOURS[i % len(RUN_COLOURS)]


def run_alert(df: pd.DataFrame) -> Optional[dict]:
    """The alert of one run, or None while it has no scored step.

    Returns ``{"level", "step", "latest", "modes", "message"}`` where ``step`` is the
    alert step (None when there is none):

    * ``collapsed`` — the run collapsed at some step: ``step`` is the first such step;
    * ``suspicious`` — the latest step departs (mild, marked or severe): ``step`` is the first
      step it turned so after having been healthy, or its first step if it never was healthy;
    * ``healthy`` — the latest step is healthy; if it turned suspicious on the way,
      ``step`` is the first such step and the message says so.
    """
    d = df[df["verdict"].notna()].sort_values("step") if len(df) else df
    if d is None or len(d) == 0:
        return None
    steps = [int(s) for s in d["step"]]
    verdicts = list(d["verdict"])
    modes = [m if isinstance(m, str) else "" for m in d["modes"]] if "modes" in d else [""] * len(d)
    latest, last_step = verdicts[-1], steps[-1]

    def with_modes(i):
        return f" ({modes[i]})" if modes[i] else ""

    tail = f"; latest step {last_step}: {latest}"
    if "collapsed" in verdicts:
        i = verdicts.index("collapsed")
        return {"level": "collapsed", "step": steps[i], "latest": latest, "modes": modes[i],
                "message": f"collapsed at step {steps[i]}{with_modes(i)}" + (tail if i != len(steps) - 1 else "")}
    turn = None
    seen_healthy = False
    for i, v in enumerate(verdicts):
        if v == "healthy":
            seen_healthy = True
        elif seen_healthy and _off(v):
            turn = i
            break
    if _off(latest):
        if turn is None:
            return {"level": "suspicious", "step": None, "latest": latest, "modes": modes[-1],
                    "message": f"not healthy yet: {latest} since step {steps[0]}{with_modes(len(steps) - 1)}"}
        return {"level": "suspicious", "step": steps[turn], "latest": latest, "modes": modes[turn],
                "message": f"turned {verdicts[turn]} at step {steps[turn]}{with_modes(turn)}"
                           + (tail if turn != len(steps) - 1 else "")}
    j = len(verdicts) - 1
    while j > 0 and verdicts[j - 1] == "healthy":
        j -= 1
    msg = f"healthy since step {steps[j]} (latest step {last_step})"
    if turn is not None:
        msg += f"; it turned {verdicts[turn]} at step {steps[turn]}{with_modes(turn)} on the way"
    return {"level": "healthy", "step": None if turn is None else steps[turn], "latest": latest, "modes": "",
            "message": msg}


def alert_step(df: pd.DataFrame) -> Optional[int]:
    """The step of a run's alert: first collapsed, or first turned suspicious (None if neither)."""
    a = run_alert(df)
    return None if a is None else a["step"]


def _alert_lines(fig: go.Figure, runs: Mapping[str, pd.DataFrame]) -> None:
    for i, (name, df) in enumerate(runs.items()):
        s = alert_step(df)
        if s is not None:
            fig.add_vline(x=s, line={"color": _colour(i), "dash": "dot", "width": 1.5})


def _finish(fig: go.Figure, runs: Mapping[str, pd.DataFrame], title: str, ytitle: str, **kw) -> go.Figure:
    """Common layout: legend below the plot, x range = the logged steps (a little padding)."""
    steps = [float(v) for df in runs.values() if len(df) for v in (df["step"].min(), df["step"].max())]
    if steps:
        lo, hi = min(steps), max(steps)
        pad = max(1.0, 0.02 * (hi - lo))
        fig.update_xaxes(range=[lo - pad, hi + pad])
    return _layout(fig, title, "step", ytitle, legend="bottom", **kw)


def _lines(fig, runs, column, *, dash=None, suffix="", hover_fmt=".4g", width=2.0, show_legend=True, marker=True):
    for i, (name, df) in enumerate(runs.items()):
        if column not in df or not df[column].notna().any():
            continue
        fig.add_trace(go.Scatter(
            x=df["step"], y=df[column], mode="lines+markers" if marker else "lines", name=f"{name}{suffix}",
            legendgroup=name, showlegend=show_legend,
            line={"color": _colour(i), "dash": dash, "width": width}, marker={"size": 4},
            customdata=np.stack([df["verdict"].fillna("").astype(str), df["modes"].fillna("").astype(str)], -1)
            if "verdict" in df else None,
            hovertemplate=f"{name}<br>step %{{x}}<br>{column} %{{y:{hover_fmt}}}"
                          + ("<br>%{customdata[0]} %{customdata[1]}" if "verdict" in df else "") + "<extra></extra>",
        ))


def sigreg_figure(runs: Mapping[str, pd.DataFrame], bands: Optional[Mapping[str, tuple]] = None) -> go.Figure:
    """SIGReg per step (log y), each run's 95 % null band and the exact null mean."""
    fig = go.Figure()
    bands = bands or {}
    for i, (name, df) in enumerate(runs.items()):
        band = bands.get(name)
        if band is not None and len(df):
            lo, hi = band
            x0, x1 = float(df["step"].min()), float(df["step"].max())
            fig.add_trace(go.Scatter(
                x=[x0, x1, x1, x0, x0], y=[lo, lo, hi, hi, lo], fill="toself", mode="lines",
                line={"width": 0}, fillcolor=_colour(i), opacity=0.15, name=f"{name}: 95 % null band",
                legendgroup=name, hoverinfo="skip"))
    _lines(fig, runs, "sigreg")
    nm = [float(df["null_mean"].dropna().iloc[0]) for df in runs.values() if "null_mean" in df and df["null_mean"].notna().any()]
    if nm:
        fig.add_hline(y=nm[0], line={"color": "#7f7f7f", "dash": "dash", "width": 1},
                      annotation={"text": f"null mean {nm[0]:.4g}", "font": {"size": 10}},
                      annotation_position="bottom right")
    _alert_lines(fig, runs)
    fig.update_yaxes(type="log")
    return _finish(fig, runs, "SIGReg per step (with the 95 % null band)", "SIGReg (log scale)", height=440)


def pvalue_figure(runs: Mapping[str, pd.DataFrame]) -> go.Figure:
    """The verdict's p-value per step (log y), with the suspicious threshold 1e-3."""
    fig = go.Figure()
    clipped = {n: df.assign(p_value=df["p_value"].clip(lower=1e-300)) for n, df in runs.items()}
    _lines(fig, clipped, "p_value", hover_fmt=".3g")
    fig.add_hline(y=SUSPICIOUS_P, line={"color": "#D55E00", "dash": "dash", "width": 1},
                  annotation={"text": "p = 1e-3 (significant below)", "font": {"size": 10}},
                  annotation_position="bottom right")
    _alert_lines(fig, runs)
    fig.update_yaxes(type="log", exponentformat="power")
    return _finish(fig, runs, "Overall p-value per step", "p-value (log scale)")


def verdict_figure(runs: Mapping[str, pd.DataFrame]) -> go.Figure:
    """The verdict per step: one row per run, one colour per level (healthy ... collapsed)."""
    fig = go.Figure()
    names = list(runs)
    for verdict, colour in _VERDICT_COLOUR.items():
        xs, ys, text = [], [], []
        for name, df in runs.items():
            d = df[df["verdict"] == verdict]
            xs += list(d["step"])
            ys += [name] * len(d)
            text += list(d["modes"].fillna("")) if "modes" in d else [""] * len(d)
        if not xs and verdict not in ("healthy", "collapsed"):
            continue  # the legend lists the levels present (and always healthy / collapsed)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=verdict, text=text,
                                 marker={"color": colour, "size": 11, "symbol": "square"},
                                 hovertemplate="%{y}<br>step %{x}: " + verdict + "<br>%{text}<extra></extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    _alert_lines(fig, runs)
    return _finish(fig, runs, "Verdict per step", "", height=max(220, 130 + 45 * len(names)))


def rankme_figure(runs: Mapping[str, pd.DataFrame]) -> go.Figure:
    """RankMe per step, with each run's maximum min(N, D) dotted."""
    fig = go.Figure()
    _lines(fig, runs, "rankme", hover_fmt=".3g")
    tops = set()
    for df in runs.values():
        if len(df) and df["d"].notna().any():
            tops.add(float(np.nanmin([df["n"].astype(float).max(), df["d"].astype(float).max()])))
    for top in sorted(tops):
        fig.add_hline(y=top, line={"color": "#7f7f7f", "dash": "dot", "width": 1},
                      annotation={"text": f"max min(N, D) = {top:g}", "font": {"size": 10}},
                      annotation_position="bottom right")
    _alert_lines(fig, runs)
    return _finish(fig, runs, "RankMe per step (collapse drives it to 1)", "RankMe")


def quantiles_figure(runs: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Per-slice statistic quantiles per step: median (solid), 95 % (dash), max (dot)."""
    fig = go.Figure()
    _lines(fig, runs, "q50", suffix=" median")
    _lines(fig, runs, "q95", dash="dash", suffix=" 95 %", width=1.5)
    _lines(fig, runs, "qmax", dash="dot", suffix=" max", width=1.5, marker=False)
    q = [float(df["slice_null_q95"].dropna().iloc[0]) for df in runs.values()
         if "slice_null_q95" in df and df["slice_null_q95"].notna().any()]
    if q:
        fig.add_hline(y=q[0], line={"color": "#7f7f7f", "dash": "dash", "width": 1},
                      annotation={"text": f"one slice, null 95 %: {q[0]:.3g}", "font": {"size": 10}},
                      annotation_position="bottom right")
    _alert_lines(fig, runs)
    fig.update_yaxes(type="log")
    return _finish(fig, runs, "Per-slice statistic: median, 95 % and max over slices", "statistic (log scale)",
                   height=460)


def scalar_figure(runs: Mapping[str, pd.DataFrame], column: str, *, log: bool = False) -> go.Figure:
    """One user scalar per step (e.g. the loss), overlaid across the runs that logged it."""
    fig = go.Figure()
    num = {n: df.assign(**{column: pd.to_numeric(df[column], errors="coerce")}) for n, df in runs.items() if column in df}
    _lines(fig, num, column, hover_fmt=".4g")
    _alert_lines(fig, runs)
    if log:
        fig.update_yaxes(type="log")
    return _finish(fig, runs, f"{column} per step", column + (" (log scale)" if log else ""))


def figures_html(figs: Mapping[str, go.Figure], title: str = "latent-health monitor") -> bytes:
    """All figures in one standalone HTML file (plotly.js inlined once; opens offline)."""
    import html as _html

    parts = []
    title = _html.escape(title)
    for i, (name, fig) in enumerate(figs.items()):
        parts.append(f"<h2>{_html.escape(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
    return (head + f"<h1>{title}</h1>" + "".join(parts) + "</body></html>").encode("utf-8")
