"""Plotly figures of training runs over steps (the Monitor page), from plain pandas data.

Every function is pure: a mapping ``{run name: time-series DataFrame}`` (as returned by
:meth:`sigreg_core.runs.RunReader.timeseries`) in, a ``plotly.graph_objects.Figure``
out; no streamlit, no torch.  Runs are overlaid, one colour per run
(:func:`run_colours`: a stable palette, disjoint from the verdict colours of
:mod:`sigreg_core.assessment.severity`).

What is drawn, per logged step (SIGReg = mean over M slices of the Epps–Pulley
statistic ``EP(x) = N sum_k c_k [(Cbar_k - exp(-t_k^2/2))^2 + Sbar_k^2]``; LeJEPA,
arXiv 2511.08544; LeWorldModel, arXiv 2603.19312):

* SIGReg, the p-value, RankMe, the logged scalars and the verdict strip: the panels of one
  stacked figure, :func:`sigreg_core.present.monitor_stack.stack_figure` (one hover across them);
* :func:`quantiles_figure` — per-slice statistic quantiles (median, 95 %, max);
* :func:`distribution_figure` — the same quantiles as nested bands over steps, one panel
  per run (TensorBoard's distribution mode, from the logged quantiles);
* :func:`group_figure` — mean ± 1 sd over the runs of each config group;
* :func:`steps_table` and :func:`figures_html` — every run's steps as one table, figures as one HTML file.

Common options: ``x`` (``"step"``, ``"wall"`` wall-clock time, ``"relative"`` time since
the run's first logged step), ``smoothing`` (TensorBoard's debiased exponential moving
average, weight 0–0.99; the raw line stays drawn faint) and ``colours``.  The alert rule
(:mod:`sigreg_core.runs.alerts`: a deterioration from the best level reached, or a collapse) is
re-exported here for the page's alert table.  The shared pieces live in :mod:`sigreg_core.present.run_traces` (colours, x values, smoothing, the
curves) and :mod:`sigreg_core.present.log_axes` (full tick labels on log axes); the Monitor's
stacked figure with one hover across its panels is :mod:`sigreg_core.present.monitor_stack`.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sigreg_core.present.figures import _layout  # the house layout of every figure
from sigreg_core.present.log_axes import hline as _hline, log_axis as _log_axis, log_ticks
from sigreg_core.present.run_traces import (RUN_COLOURS, X_MODES, _common, _finish, _lines, _rgba, _safe, _xtitle,
                                            ema, run_colours, x_values)
from sigreg_core.util.text import plotly_text
from sigreg_core.runs.alerts import alert_events, alert_step, alert_table, run_alert

__all__ = [
    "RUN_COLOURS", "run_colours", "ema", "x_values", "X_MODES",
    "run_alert", "alert_step", "alert_table", "alert_events",
    "quantiles_figure", "distribution_figure", "steps_table", "figures_html", "log_ticks", "group_figure",
]


def quantiles_figure(runs: Mapping[str, pd.DataFrame], *, colours: Optional[Mapping] = None, x: str = "step",
                     smoothing: float = 0.0) -> go.Figure:
    """Per-slice statistic quantiles per step: median (solid), 95 % (dash), max (dot), log y."""
    runs, colours = _safe(runs, colours)
    fig = go.Figure()
    colours, unit = _common(runs, colours, x)
    _lines(fig, runs, "q50", colours, x=x, smoothing=smoothing, unit=unit, suffix=" median")
    _lines(fig, runs, "q95", colours, x=x, smoothing=smoothing, unit=unit, dash="dash", suffix=" 95 %", width=1.5)
    _lines(fig, runs, "qmax", colours, x=x, smoothing=smoothing, unit=unit, dash="dot", suffix=" max", width=1.5,
           marker=False)
    q = [float(df["slice_null_q95"].dropna().iloc[0]) for df in runs.values()
         if "slice_null_q95" in df and df["slice_null_q95"].notna().any()]
    vals = [v for df in runs.values() for c in ("q50", "q95", "qmax") if c in df for v in df[c].dropna()]
    if q:
        _hline(fig, q[0], f"one slice, null 95 %: {q[0]:.3g}", "#555555", log=True, position="left")
        vals.append(q[0])
    _log_axis(fig, vals)
    return _finish(fig, runs, "Per-slice statistic: median, 95 % and max over slices", "statistic (log scale)", x,
                   height=460)


def distribution_figure(runs: Mapping[str, pd.DataFrame], *, colours: Optional[Mapping] = None,
                        x: str = "step") -> go.Figure:
    """Distribution of the per-slice statistic over steps, one panel per run (TensorBoard's distribution mode).

    From the quantiles each step logged: a dark band from the median to the 95 % quantile
    over slices, a light band from the 95 % quantile to the maximum, the median as a line,
    and the one-slice null 95 % quantile (exact chi-square-mixture law) dashed.  A healthy
    run's dark band straddles the null line; a collapse lifts every band.
    """
    runs, colours = _safe(runs, colours)
    colours, unit = _common(runs, colours, x)
    names = [n for n, df in runs.items() if len(df) and {"q50", "q95", "qmax"} <= set(df.columns)]
    rows = max(1, len(names))
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.3 / rows),
                        subplot_titles=names or ["no run with logged quantiles"])
    for r, name in enumerate(names, start=1):
        df = runs[name]
        xs = np.asarray(x_values(df, x, unit))
        c = colours[name]
        q50, q95, qmax = (pd.to_numeric(df[k], errors="coerce").to_numpy(dtype=np.float64) for k in ("q50", "q95", "qmax"))
        for lo, hi, alpha, label in ((q50, q95, 0.45, "median – 95 %"), (q95, qmax, 0.18, "95 % – max")):
            fig.add_trace(go.Scatter(x=xs, y=lo, mode="lines", line={"width": 0}, showlegend=False,
                                     hoverinfo="skip", legendgroup=name), row=r, col=1)
            fig.add_trace(go.Scatter(x=xs, y=hi, mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor=_rgba(c, alpha), name=f"{name}: {label}", legendgroup=name,
                                     showlegend=(r == 1), hovertemplate=f"{name} {label}: %{{y:.4g}}<extra></extra>"),
                          row=r, col=1)
        fig.add_trace(go.Scatter(x=xs, y=q50, mode="lines", line={"color": c, "width": 1.5},
                                 name=f"{name}: median", legendgroup=name, showlegend=False,
                                 hovertemplate=f"{name} median over slices: %{{y:.4g}}<extra></extra>"), row=r, col=1)
        nq = df["slice_null_q95"].dropna() if "slice_null_q95" in df else pd.Series(dtype=float)
        if len(nq):
            fig.add_hline(y=float(nq.iloc[0]), line={"color": "#555555", "dash": "dash", "width": 1}, row=r, col=1)
        _log_axis(fig, list(q50) + list(qmax) + list(nq), row=r, col=1)
    fig.update_xaxes(title_text=_xtitle(x, runs), row=rows, col=1)
    fig.update_layout(title={"text": "Per-slice statistic over steps: median–95 % (dark) and 95 %–max (light) "
                                     "bands; dashed: one-slice null 95 %", "x": 0.0, "font": {"size": 14}},
                      height=140 + 170 * rows, margin={"l": 60, "r": 20, "t": 60, "b": 40}, showlegend=False)
    return fig


def steps_table(runs: Mapping[str, pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """One table of the steps of every run (a ``run`` column first, then ``columns`` present, scalars, snapshot)."""
    parts = []
    for name, df in runs.items():
        extra = [c for c in df.attrs.get("scalar_columns", []) if c in df]
        cols = [c for c in columns if c in df] + extra + (["snapshot"] if "snapshot" in df else [])
        part = df[cols].copy()
        if "time" in df:
            part.insert(1 if "step" in cols else 0, "wall_time",
                        pd.to_datetime(pd.to_numeric(df["time"], errors="coerce"), unit="s", utc=True))
        part.insert(0, "run", name)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["run", *columns])
    return pd.concat(parts, ignore_index=True, sort=False)


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


def group_figure(stats: Mapping[str, pd.DataFrame], *, column: str = "sigreg", log: bool = True,
                 colours: Optional[Mapping] = None) -> go.Figure:
    """Mean ± one standard deviation over the runs of each group, per step (``stats`` from
    :func:`sigreg_core.runs.groups.group_stats`); the band is clipped at the group's min and max."""
    fig = go.Figure()
    from sigreg_core.runs.discovery import run_colour

    vals = []
    for g, d in stats.items():
        label = plotly_text(g)
        c = (colours or {}).get(g) or run_colour(g)
        steps = d["step"].to_numpy()
        mean = d["mean"].to_numpy(dtype=np.float64)
        sd = d["std"].to_numpy(dtype=np.float64)
        lo = np.maximum(mean - sd, d["min"].to_numpy(dtype=np.float64))
        hi = np.minimum(mean + sd, d["max"].to_numpy(dtype=np.float64))
        fig.add_trace(go.Scatter(x=np.concatenate([steps, steps[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                 fill="toself", mode="lines", line={"width": 0}, fillcolor=_rgba(c, 0.18),
                                 name=f"{label}: ± 1 sd", legendgroup=label, showlegend=False, hoverinfo="skip"))
        custom = np.stack([sd, d["runs"].to_numpy(), d["min"].to_numpy(), d["max"].to_numpy()], -1)
        fig.add_trace(go.Scatter(x=steps, y=mean, mode="lines+markers", name=f"{label} (n = {int(d['runs'].max())})",
                                 legendgroup=label, line={"color": c, "width": 2}, marker={"size": 4},
                                 customdata=custom,
                                 hovertemplate=f"{label}<br>step %{{x}}<br>mean %{{y:.4g}} ± %{{customdata[0]:.3g}} "
                                               "(sd over %{customdata[1]} runs; min %{customdata[2]:.4g}, "
                                               "max %{customdata[3]:.4g})<extra></extra>"))
        vals += list(lo[lo > 0]) + list(hi)
    if log:
        _log_axis(fig, vals)
    name = {"sigreg": "SIGReg", "rankme": "RankMe"}.get(column, plotly_text(column))
    return _layout(fig, f"{name} per group: mean ± 1 sd over the group's runs", "step",
                   name + (" (log scale)" if log else ""), height=420, legend="bottom")
