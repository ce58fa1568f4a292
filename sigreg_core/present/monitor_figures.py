"""Plotly figures of training runs over steps (the Monitor page), from plain pandas data.

Every function is pure: a mapping ``{run name: time-series DataFrame}`` (as returned by
:meth:`sigreg_core.runs.RunReader.timeseries`) in, a ``plotly.graph_objects.Figure``
out; no streamlit, no torch.  Runs are overlaid, one colour per run
(:func:`run_colours`: a stable palette, disjoint from the verdict colours of
:mod:`sigreg_core.assessment.severity`).

What is drawn, per logged step (SIGReg = mean over M slices of the Epps–Pulley
statistic ``EP(x) = N sum_k c_k [(Cbar_k - exp(-t_k^2/2))^2 + Sbar_k^2]``; LeJEPA,
arXiv 2511.08544; LeWorldModel, arXiv 2603.19312):

* :func:`sigreg_figure` — SIGReg (log scale) with each run's 95 % null band (Monte
  Carlo of N(0, I) batches on the same directions, labelled on its edges) and the
  exact null mean (labelled on its line);
* :func:`pvalue_figure` — the verdict's p-value (log scale) with the 1e-3 threshold;
* :func:`verdict_figure` — the verdict per step as a strip (verdict colours);
* :func:`rankme_figure` — RankMe against its maximum min(N, D);
* :func:`quantiles_figure` — per-slice statistic quantiles (median, 95 %, max);
* :func:`distribution_figure` — the same quantiles as nested bands over steps, one panel
  per run (TensorBoard's distribution mode, from the logged quantiles);
* :func:`scalar_figure` — one of the user's logged scalars (loss, lambda, ...).

Common options: ``x`` (``"step"``, ``"wall"`` wall-clock time, ``"relative"`` time since
the run's first logged step), ``smoothing`` (TensorBoard's debiased exponential moving
average, weight 0–0.99; the raw line stays drawn faint) and ``colours``.  Each alert
(the one rule of :mod:`sigreg_core.runs.alerts`: a deterioration from the best level reached, or a
collapse; ``rule`` sets its warm-up and margin) is marked on the curves, in the verdict's colour.  Log axes carry explicit ticks with full
labels (:func:`log_ticks`: powers of ten over a decade or more, else 1-2-5; never a bare "2" for
2000).  Every run name drawn goes through :func:`sigreg_core.util.text.plotly_text` (names are data).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sigreg_core.assessment.verdict import GATE_P
from sigreg_core.assessment.severity import VERDICT_COLOURS, verdict_colour, verdict_levels, severity
from sigreg_core.present.figures import _layout  # the house layout of every figure
from sigreg_core.util.text import plotly_text
from sigreg_core.runs.alerts import AlertRule, alert_events, alert_step, alert_table, run_alert

__all__ = [
    "RUN_COLOURS", "run_colours", "ema", "x_values", "X_MODES",
    "run_alert", "alert_step", "alert_table", "alert_events",
    "sigreg_figure", "pvalue_figure", "verdict_figure", "rankme_figure", "quantiles_figure",
    "distribution_figure", "scalar_figure", "steps_table", "figures_html", "log_ticks", "group_figure",
]

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


def _log_axis(fig: go.Figure, values, *, power: bool = False, row=None, col=None) -> None:
    """Log y axis with explicit ticks, every label a full number (no bare "2" or "5" for 2000 or 5e-3)."""
    v = np.asarray([float(a) for a in values if a is not None and np.isfinite(a) and a > 0], dtype=np.float64)
    kw: dict = {"type": "log"}
    if v.size:
        vals, text = log_ticks(float(v.min()), float(v.max()), power)
        if vals:
            kw.update(tickmode="array", tickvals=vals, ticktext=text)
            if math.log10(v.max()) - math.log10(v.min()) >= 0.7:
                kw["minor"] = {"ticks": "inside", "ticklen": 3, "showgrid": False}
    if row is None:
        fig.update_yaxes(**kw)
    else:
        fig.update_yaxes(row=row, col=col, **kw)


def _hline(fig: go.Figure, y: float, text: str, colour: str, *, log: bool, dash: str = "dash",
           position: str = "right", yshift: int = 0) -> None:
    """A horizontal line with its label on the line (annotations on a log axis take log10 coordinates)."""
    fig.add_hline(y=y, line={"color": colour, "dash": dash, "width": 1})
    if text:
        fig.add_annotation(xref="paper", x=1.0 if position == "right" else 0.0, yref="y",
                           y=math.log10(y) if log else y, text=text, showarrow=False,
                           xanchor="right" if position == "right" else "left", yanchor="bottom",
                           yshift=yshift, font={"size": 10, "color": colour}, bgcolor="rgba(255,255,255,0.6)")


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


def _events(fig, runs, column, colours, *, x="step", smoothing=0.0, unit=None, show_legend=False, rule=None):
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
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=f"{name}: alerts",
            legendgroup=name, showlegend=show_legend,
            marker={"size": 13, "symbol": ["x" if p[2]["severity"] >= len(verdict_levels()) - 1 else "triangle-up"
                                           for p in pts],
                    "color": [verdict_colour(p[2]["verdict"]) for p in pts],
                    "line": {"color": colours[name], "width": 2}},
            text=[f"{name}: {p[2]['label']} at step {p[2]['step']}" + (f" ({p[2]['modes']})" if p[2]["modes"] else "")
                  for p in pts],
            hovertemplate="%{text}<extra></extra>"))


def _alert_lines(fig: go.Figure, runs: Mapping[str, pd.DataFrame], colours: Mapping, x: str = "step", unit=None,
                 rule=None, **where) -> None:
    """A dotted vertical line, in the verdict's colour, at every alert event of every run."""
    for name, df in runs.items():
        steps = df["step"].to_numpy() if len(df) else np.array([])
        xs = np.asarray(x_values(df, x, unit)) if len(df) else np.array([])
        for e in alert_events(df, rule):
            hit = np.flatnonzero(steps == e["step"])
            if hit.size:
                xv = xs[hit[0]]
                if isinstance(xv, np.datetime64):
                    xv = pd.Timestamp(xv).isoformat()
                fig.add_vline(x=xv, line={"color": verdict_colour(e["verdict"]), "dash": "dot", "width": 1.2},
                              **where)


def _safe(runs: Mapping[str, pd.DataFrame], colours: Optional[Mapping]) -> tuple[dict, dict]:
    """Run names are data: every name drawn (trace name, hover, annotation, tick) goes through plotly_text."""
    colours = _colours(runs, colours)
    return ({plotly_text(n): df for n, df in runs.items()}, {plotly_text(n): c for n, c in colours.items()})


def _common(runs, colours, x):
    colours = _colours(runs, colours)
    unit = _rel_unit(runs) if x == "relative" else None
    return colours, unit


def sigreg_figure(runs: Mapping[str, pd.DataFrame], bands: Optional[Mapping[str, tuple]] = None, *,
                  colours: Optional[Mapping] = None, x: str = "step", smoothing: float = 0.0,
                  rule: Optional[AlertRule] = None) -> go.Figure:
    """SIGReg per step (log y), each run's 95 % null band (labelled on its edges), the exact null mean."""
    runs, colours = _safe(runs, colours)
    fig = go.Figure()
    colours, unit = _common(runs, colours, x)
    bands = {plotly_text(n): b for n, b in (bands or {}).items()}
    vals = []
    for name, df in runs.items():
        band = bands.get(name)
        if band is not None and len(df):
            lo, hi = band
            xs = x_values(df, x, unit)
            x0, x1 = (xs.min(), xs.max()) if hasattr(xs, "min") else (min(xs), max(xs))
            fig.add_trace(go.Scatter(
                x=[x0, x1, x1, x0, x0], y=[lo, lo, hi, hi, lo], fill="toself", mode="lines",
                line={"width": 0}, fillcolor=colours[name], opacity=0.15, name=f"{name}: 95 % null band",
                legendgroup=name, hoverinfo="skip"))
            vals += [lo, hi]
    _lines(fig, runs, "sigreg", colours, x=x, smoothing=smoothing, unit=unit)
    _events(fig, runs, "sigreg", colours, x=x, smoothing=smoothing, unit=unit, show_legend=True, rule=rule)
    for df in runs.values():
        vals += list(pd.to_numeric(df.get("sigreg", pd.Series(dtype=float)), errors="coerce").dropna())
    nm = [float(df["null_mean"].dropna().iloc[0]) for df in runs.values()
          if "null_mean" in df and df["null_mean"].notna().any()]
    if nm:
        _hline(fig, nm[0], f"null mean {nm[0]:.4g}", "#555555", log=True, position="left")
        vals.append(nm[0])
    groups: dict = {}  # runs with the same band (same N, D, settings) share one pair of labels
    for name, band in bands.items():
        if name in runs and band is not None:
            groups.setdefault((round(band[0], 4), round(band[1], 4)), []).append(name)
    for (lo, hi), members in groups.items():
        who = "" if len(groups) == 1 else ", ".join(members) + " "
        for y, txt, ysh in ((hi, "97.5 %", 0), (lo, "2.5 %", -14)):
            fig.add_annotation(xref="paper", x=1.0, yref="y", y=math.log10(y), showarrow=False,
                               text=f"{who}null {txt}", xanchor="right", yanchor="bottom", yshift=ysh,
                               font={"size": 10, "color": colours[members[0]] if who else "#555555"})
    _log_axis(fig, vals)
    return _finish(fig, runs, "SIGReg per step (with the 95 % null band)", "SIGReg (log scale)", x, height=440)


def pvalue_figure(runs: Mapping[str, pd.DataFrame], *, colours: Optional[Mapping] = None, x: str = "step",
                  smoothing: float = 0.0, rule: Optional[AlertRule] = None) -> go.Figure:
    """The verdict's p-value per step (log y), with the suspicious threshold 1e-3 (never smoothed)."""
    runs, colours = _safe(runs, colours)
    fig = go.Figure()
    colours, unit = _common(runs, colours, x)
    clipped = {n: df.assign(p_value=pd.to_numeric(df["p_value"], errors="coerce").clip(lower=1e-300))
               for n, df in runs.items()}
    _lines(fig, clipped, "p_value", colours, x=x, unit=unit, hover_fmt=".3g")
    _events(fig, clipped, "p_value", colours, x=x, unit=unit, rule=rule)
    _hline(fig, SUSPICIOUS_P, f"p = {SUSPICIOUS_P:g} (significant below)", VERDICT_COLOURS[2], log=True)
    vals = [v for df in clipped.values() for v in df["p_value"].dropna()] + [SUSPICIOUS_P, 1.0]
    _log_axis(fig, vals, power=True)
    return _finish(fig, runs, "Overall p-value per step", "p-value (log scale)", x)


def verdict_figure(runs: Mapping[str, pd.DataFrame], *, colours: Optional[Mapping] = None,
                   x: str = "step", rule: Optional[AlertRule] = None) -> go.Figure:
    """The verdict per step: one row per run, coloured by the verdict's severity (any level name).

    Rows are numeric (run i at y = i, labelled with the run's name) and the hover carries the
    step as a number, so a 10 000-step run builds as typed arrays, not lists of strings.
    """
    runs, colours = _safe(runs, colours)
    fig = go.Figure()
    colours, unit = _common(runs, colours, x)
    names = list(runs)
    found = {str(v) for df in runs.values() if "verdict" in df for v in df["verdict"].dropna()}
    order = sorted(set(verdict_levels()) | found, key=lambda v: (severity(v), v))
    for verdict in order:
        xs, ys, steps = [], [], []
        for i, (name, df) in enumerate(runs.items()):
            if "verdict" not in df:
                continue
            mask = (df["verdict"] == verdict).to_numpy()
            xs.append(np.asarray(x_values(df, x, unit))[mask])
            ys.append(np.full(int(mask.sum()), float(len(names) - 1 - i)))
            steps.append(df["step"].to_numpy()[mask])
        n = sum(len(a) for a in xs)
        if not n and verdict not in verdict_levels():
            continue
        fig.add_trace(go.Scatter(
            x=np.concatenate(xs) if xs else [], y=np.concatenate(ys) if ys else [], mode="markers", name=verdict,
            customdata=np.concatenate(steps) if steps else [],
            marker={"color": verdict_colour(verdict), "size": 11, "symbol": "square"},
            hovertemplate="step %{customdata}: " + verdict + "<extra></extra>"))
    fig.update_yaxes(tickvals=list(range(len(names))), ticktext=names[::-1], range=[-0.6, len(names) - 0.4],
                     showgrid=False, zeroline=False)
    _alert_lines(fig, runs, colours, x, unit, rule)
    return _finish(fig, runs, "Verdict per step", "", x, height=max(220, 130 + 45 * len(names)))


def rankme_figure(runs: Mapping[str, pd.DataFrame], *, colours: Optional[Mapping] = None, x: str = "step",
                  smoothing: float = 0.0, rule: Optional[AlertRule] = None) -> go.Figure:
    """RankMe per step, with each run's maximum min(N, D) dotted and labelled on its line."""
    runs, colours = _safe(runs, colours)
    fig = go.Figure()
    colours, unit = _common(runs, colours, x)
    _lines(fig, runs, "rankme", colours, x=x, smoothing=smoothing, unit=unit, hover_fmt=".3g")
    _events(fig, runs, "rankme", colours, x=x, smoothing=smoothing, unit=unit, rule=rule)
    tops = set()
    for df in runs.values():
        if len(df) and "d" in df and df["d"].notna().any():
            tops.add(float(np.nanmin([df["n"].astype(float).max(), df["d"].astype(float).max()])))
    for top in sorted(tops):
        _hline(fig, top, f"max min(N, D) = {top:g}", "#555555", log=False, dash="dot")
    return _finish(fig, runs, "RankMe per step (collapse drives it to 1)", "RankMe", x)


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


def _rgba(hex_colour: str, alpha: float) -> str:
    return f"rgba({int(hex_colour[1:3], 16)},{int(hex_colour[3:5], 16)},{int(hex_colour[5:7], 16)},{alpha})"


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


def scalar_figure(runs: Mapping[str, pd.DataFrame], column: str, *, log: bool = False,
                  colours: Optional[Mapping] = None, x: str = "step", smoothing: float = 0.0,
                  rule: Optional[AlertRule] = None) -> go.Figure:
    """One user scalar per step (e.g. the loss), overlaid across the runs that logged it."""
    runs, colours = _safe(runs, colours)
    fig = go.Figure()
    colours, unit = _common(runs, colours, x)
    num = {n: df.assign(**{column: pd.to_numeric(df[column], errors="coerce")}) for n, df in runs.items() if column in df}
    _lines(fig, num, column, colours, x=x, smoothing=smoothing, unit=unit, hover_fmt=".4g")
    _events(fig, num, column, colours, x=x, smoothing=smoothing, unit=unit, rule=rule)
    if log:
        _log_axis(fig, [v for df in num.values() for v in df[column].dropna()])
    label = plotly_text(column)
    return _finish(fig, runs, f"{label} per step", label + (" (log scale)" if log else ""), x)


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
