"""Plotly figures of a latent-health report, built from plain numpy / pandas data.

Every function here is pure: arrays in, a ``plotly.graph_objects.Figure`` out (no
streamlit, no torch), so the app, the standalone HTML report and the tests draw
the same pictures.

What is drawn (SIGReg = mean over slices of the Epps–Pulley statistic
``EP(x) = s(N) sum_k c_k [(Cbar_k - phi(t_k))^2 + Sbar_k^2]``, ``phi(t) = exp(-t^2/2)``;
LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312):

* :func:`slice_statistics_figure` — the per-slice statistics sorted (worst first)
  against the null band (the 95 % and 99.9 % quantiles of one slice under N(0, 1));
* :func:`pvalue_figure` — the per-slice p-values (uniform on [0, 1] when healthy);
* :func:`histogram_figure`, :func:`qq_figure` — one slice's projected values
  against the N(0, 1) density and quantiles;
* :func:`cf_figure` — that slice's empirical characteristic function (real and
  imaginary parts) on a fine grid against ``exp(-t^2/2)``, quadrature nodes marked;
* :func:`weighted_error_figure` — ``c_k [(Cbar_k - phi_k)^2 + Sbar_k^2]`` per node,
  the terms the statistic sums;
* :func:`slice_views_figure` — those four views of one slice as one 2 × 2 figure (one
  chart for the browser to redraw on a slice change instead of four);
* :func:`ecf_band_figure` — the spread of the ECF over all slices at every node;
* :func:`spectrum_figure`, :func:`per_dim_figure` — companion views: the
  covariance eigen-spectrum (log scale) and per-dimension mean / std.

The one-slice views live in :mod:`sigreg_core.present.slice_figures` and the house style (colours,
layout, log axes) in :mod:`sigreg_core.present.figure_style`; both are re-exported here, so callers
import every figure from this module.

PNG export is plotly's own "download plot as png" button (client side, in the
browser); :data:`PLOTLY_CONFIG` sets its format and scale.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go

from sigreg_core.present.figure_style import (  # noqa: F401  (re-exported: one place to import figures from)
    BLUE, GREEN, GREY, ORANGE, PLOTLY_CONFIG, PURPLE, RED, _LEGEND, _MARGIN, _layout, log_axis, plotly_config,
)
from sigreg_core.present.slice_figures import (  # noqa: F401  (re-exported)
    cf_figure, ecf_on_grid, histogram_figure, normal_pdf, qq_figure, qq_points, slice_views_figure,
    weighted_error_figure,
)

__all__ = [
    "PLOTLY_CONFIG",
    "plotly_config",
    "normal_pdf",
    "ecf_on_grid",
    "qq_points",
    "slice_statistics_figure",
    "pvalue_figure",
    "histogram_figure",
    "qq_figure",
    "cf_figure",
    "weighted_error_figure",
    "slice_views_figure",
    "ecf_band_figure",
    "spectrum_figure",
    "log_axis",
    "per_dim_figure",
    "figure_titles",
]


def slice_statistics_figure(
    statistic: np.ndarray,
    *,
    q95: float,
    q999: float,
    null_mean: float,
    p_values: Optional[np.ndarray] = None,
    selected: Optional[int] = None,
    units: str = "",
    log_y: Optional[bool] = None,
    band_per_rank: Optional[dict] = None,
) -> go.Figure:
    """Per-slice statistics sorted from worst to best, over the null band.

    ``band_per_rank`` (``{"0.95": (M,), "0.999": (M,)}``, data-dependent families:
    principal, worst) draws the null band rank by rank, from the null's own sorted
    statistics, instead of the one-slice law's flat band.

    Each point carries its slice index in ``customdata[0]`` (what a click
    selection returns).  The shaded band runs from 0 to the 95 % quantile, the
    lighter one up to the 99.9 % quantile; the dotted line is the exact null mean.
    ``log_y`` defaults to a log axis when the worst slice is beyond 20 times the
    99.9 % quantile (collapse), so the band stays readable.
    """
    stat = np.asarray(statistic, dtype=np.float64).ravel()
    m = stat.size
    if m == 0:
        raise ValueError("no slices to draw")
    order = np.argsort(-stat, kind="stable")
    rank = np.arange(1, m + 1)
    pv = np.full(m, np.nan) if p_values is None else np.asarray(p_values, dtype=np.float64).ravel()
    custom = np.stack([order, pv[order]], axis=1)
    positive = stat[stat > 0]
    if log_y is None:
        ref = q999 if math.isfinite(q999) else float(np.median(stat))
        log_y = positive.size == m and float(stat.max()) > 20 * ref
    fig = go.Figure()
    band = math.isfinite(q95) and math.isfinite(q999)
    if band:
        floor = min(float(stat.min()), null_mean if math.isfinite(null_mean) else q95) / 2
        fig.add_hrect(y0=0 if not log_y else floor, y1=q95,
                      fillcolor=GREEN, opacity=0.12, line_width=0, layer="below")
        fig.add_hrect(y0=q95, y1=q999, fillcolor=ORANGE, opacity=0.12, line_width=0, layer="below")
    fig.add_trace(go.Scatter(
        x=rank, y=stat[order], mode="markers", name="slice statistic",
        marker={"size": 6 if m <= 2048 else 4, "color": BLUE},
        customdata=custom,
        hovertemplate="slice %{customdata[0]:.0f}<br>statistic %{y:.4g}<br>p-value %{customdata[1]:.3g}<extra></extra>",
    ))
    per_rank = None
    if band_per_rank:
        lo_r = np.asarray(band_per_rank.get("0.95", []), dtype=np.float64)
        hi_r = np.asarray(band_per_rank.get("0.999", []), dtype=np.float64)
        if lo_r.size == m and hi_r.size == m:
            per_rank = (lo_r, hi_r)
    if per_rank is not None:  # the rank-wise band replaces the flat one
        fig.layout.shapes = ()
        for y, name, color in ((per_rank[1], "99.9% null quantile per rank", RED),
                               (per_rank[0], "95% null quantile per rank", GREEN)):
            fig.add_trace(go.Scatter(x=rank, y=y, mode="lines", name=name, hoverinfo="skip",
                                     line={"dash": "dash", "color": color, "width": 1.5}))
        q95 = q999 = float("nan")  # no flat quantile lines
    for y, name, dash, color in ((null_mean, f"null mean {null_mean:.4g}", "dot", GREEN),
                                 (q95, f"95% null quantile {q95:.4g}", "dash", GREEN),
                                 (q999, f"99.9% null quantile {q999:.4g}", "dash", RED)):
        if not math.isfinite(y):
            continue  # no null law for this configuration (e.g. no Monte Carlo draws)
        fig.add_trace(go.Scatter(x=[1, m], y=[y, y], mode="lines", name=name,
                                 line={"dash": dash, "color": color, "width": 1.5}, hoverinfo="skip"))
    if selected is not None and 0 <= int(selected) < m:
        s = int(selected)
        r = int(np.nonzero(order == s)[0][0]) + 1
        fig.add_trace(go.Scatter(
            x=[r], y=[stat[s]], mode="markers", name=f"selected: slice {s}",
            marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": RED, "width": 3}},
            customdata=[[s, pv[s]]],
            hovertemplate="slice %{customdata[0]:.0f} (selected)<br>statistic %{y:.4g}<extra></extra>",
        ))
    _layout(fig, f"Per-slice statistic, {m} slices sorted", "rank (1 = worst slice)",
            f"Epps–Pulley statistic{(' (' + units + ')') if units else ''}", height=440,
            subtitle="worst first; click a point to select its slice"
                     + ("; drag to zoom in, double-click to zoom out" if m > 256 else ""))
    if log_y:
        log_axis(fig, np.concatenate([stat, [q95, q999, null_mean]]))
    # Dense dots (1024 slices: 0.8-1.1 px apart) cannot be told apart by a click: a drag zooms the rank
    # axis until they are far apart, and ``uirevision`` keeps that zoom across the reruns a click causes
    # (the figure is the same for every slice), so each click after it selects exactly the dot under it.
    fig.update_layout(clickmode="event+select", dragmode="zoom", hovermode="closest", hoverdistance=12,
                      uirevision="slice-statistics")
    return fig


def pvalue_figure(p_values: np.ndarray, bins: int = 20) -> go.Figure:
    """Histogram of per-slice p-values; flat at height 1 (the dotted line) when healthy."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=p, xbins={"start": 0.0, "end": 1.0, "size": 1.0 / bins},
                               histnorm="probability density", marker_color=BLUE, name="slices"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 1], mode="lines", name="uniform (healthy)",
                             line={"dash": "dot", "color": GREEN}))
    _layout(fig, "p-values of the slices", "p-value", "density", height=320,
            subtitle="flat at the dotted line when healthy")
    fig.update_xaxes(range=[0, 1])
    return fig


# ----------------------------------------------------------- one slice views
def ecf_band_figure(nodes: np.ndarray, ecf_real: np.ndarray, ecf_imag: np.ndarray) -> go.Figure:
    """Spread of the ECF over all slices at every node (min–max and 5–95 % bands, median).

    Real and imaginary parts are drawn in two panels side by side (overlaid, their
    bands blend into an unreadable colour), each against its target: exp(-t²/2) and 0.
    """
    from plotly.subplots import make_subplots

    nodes = np.asarray(nodes, dtype=np.float64)
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, horizontal_spacing=0.1,
                        subplot_titles=("Re ECF (mean cos tx)", "Im ECF (mean sin tx)"))
    t_fine = np.linspace(min(0.0, float(nodes.min())), float(nodes.max()), 200)
    for col, (arr, name, color, rgba, target) in enumerate(
            ((np.asarray(ecf_real), "Re", BLUE, "0,114,178", np.exp(-t_fine**2 / 2)),
             (np.asarray(ecf_imag), "Im", ORANGE, "230,159,0", np.zeros_like(t_fine))), start=1):
        q = np.quantile(arr, [0.0, 0.05, 0.5, 0.95, 1.0], axis=0)
        for lo, hi, alpha, label in ((q[0], q[4], 0.18, "min–max"), (q[1], q[3], 0.4, "5–95%")):
            fig.add_trace(go.Scatter(x=np.concatenate([nodes, nodes[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                     fill="toself", fillcolor=f"rgba({rgba},{alpha})", line={"width": 0},
                                     name=f"{name} ECF over slices, {label}", hoverinfo="skip"), row=1, col=col)
        fig.add_trace(go.Scatter(x=nodes, y=q[2], mode="lines+markers", name=f"{name} ECF median",
                                 line={"color": color}, marker={"size": 5}), row=1, col=col)
        fig.add_trace(go.Scatter(x=t_fine, y=target, mode="lines", showlegend=col == 1,
                                 name="target (exp(-t²/2) and 0)", legendgroup="target",
                                 line={"color": RED, "dash": "dash"}), row=1, col=col)
        fig.update_xaxes(title_text="node t_k", row=1, col=col)
    _layout(fig, f"ECF of all {np.asarray(ecf_real).shape[0]} slices at the nodes", "node t_k", "ECF", height=480)
    fig.update_layout(margin={"t": 72, "b": 128})  # t: the panel titles under the figure title; b: 2-row legend
    fig.update_xaxes(title_text="node t_k")
    fig.update_yaxes(title_text="ECF", row=1, col=1)
    return fig


# -------------------------------------------------------------- companions
def spectrum_figure(eigenvalues: np.ndarray, *, title: str = "Covariance eigen-spectrum",
                    n: Optional[int] = None) -> go.Figure:
    """Eigenvalues of the embedding covariance, largest first, log scale (floored at 1e-12 of the top).

    With ``n`` (rows), the reference is what an N(0, I) set of this shape shows: the
    Marchenko–Pastur quantiles (:mod:`sigreg_core.present.marchenko_pastur`; 0.69-1.40 at
    2048 x 64), not a flat line at 1.
    """
    ev = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())[::-1]
    top = float(ev[0]) if ev.size and ev[0] > 0 else 1.0
    floor = top * 1e-12
    shown = np.maximum(ev, floor)
    fig = go.Figure(go.Scatter(x=np.arange(1, ev.size + 1), y=shown, mode="lines+markers", name="eigenvalue",
                               marker={"size": 4, "color": BLUE},
                               hovertemplate="#%{x}<br>eigenvalue %{y:.3g}<extra></extra>"))
    ref = None
    if n is not None and int(n) >= 2 and ev.size:
        from sigreg_core.present.marchenko_pastur import mp_quantiles

        ref = np.maximum(mp_quantiles(int(n), ev.size), floor)
        fig.add_trace(go.Scatter(x=np.arange(1, ev.size + 1), y=ref, mode="lines",
                                 name="N(0, I), Marchenko–Pastur",  # short: the legend of a half-width chart
                                 line={"dash": "dot", "color": GREEN},
                                 hovertemplate=f"#%{{x}}<br>N(0, I) of {int(n):,} × {ev.size} (Marchenko–Pastur): "
                                               "%{y:.3g}<extra></extra>"))
    else:
        fig.add_trace(go.Scatter(x=[1, max(ev.size, 1)], y=[1, 1], mode="lines", name="N(0, I) population: all 1",
                                 line={"dash": "dot", "color": GREEN}))
    _layout(fig, title, "index (largest first)", "eigenvalue (log)", height=360)
    log_axis(fig, np.concatenate([shown, ref if ref is not None else [1.0]]))
    return fig


def per_dim_figure(mean: np.ndarray, std: np.ndarray) -> go.Figure:
    """Per-dimension mean and std of the embeddings (0 and 1 for N(0, I))."""
    mean = np.asarray(mean, dtype=np.float64).ravel()
    std = np.asarray(std, dtype=np.float64).ravel()
    d = np.arange(mean.size)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d, y=mean, mode="markers", name="mean", marker={"color": BLUE, "size": 5}))
    fig.add_trace(go.Scatter(x=d, y=std, mode="markers", name="std", marker={"color": ORANGE, "size": 5}))
    fig.add_trace(go.Scatter(x=[0, max(mean.size - 1, 0)], y=[1, 1], mode="lines", name="std of N(0, 1)",
                             line={"dash": "dot", "color": GREEN}, hoverinfo="skip"))
    _layout(fig, "Per-dimension mean and std", "dimension", "value", height=360)
    return fig


def figure_titles(figs: Sequence[go.Figure]) -> list[str]:
    """Titles of figures (used by the HTML report's table of contents)."""
    return [str(f.layout.title.text or "") for f in figs]
