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

PNG export is plotly's own "download plot as png" button (client side, in the
browser); :data:`PLOTLY_CONFIG` sets its format and scale.
"""
from __future__ import annotations

import re

import math
from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from scipy.special import ndtri

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


# ------------------------------------------------------------------ helpers
def normal_pdf(x: np.ndarray) -> np.ndarray:
    """Density of N(0, 1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def ecf_on_grid(values: np.ndarray, t: np.ndarray, chunk: int = 1 << 14,
                precise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CF of 1-D ``values`` at every ``t``: (mean cos(t x), mean sin(t x)), float64.

    For drawing only (the statistic's own sums come from ``sigreg_core.assessment.slices``).
    On an equispaced grid ``t_j = t_0 + j h`` the complex recurrence
    ``e^{i t_(j+1) x} = e^{i t_j x} e^{i h x}`` is used, in complex128 (one exp per
    value and a multiply per node; error ~1e-13 over a few hundred nodes).  Other
    grids take cos/sin of every product, in float32 (``precise=False``, error about
    1e-7, far below a pixel) or float64; sums are always float64.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    t = np.asarray(t, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("ecf_on_grid needs at least one value")
    if t.size >= 3:
        h = (t[-1] - t[0]) / (t.size - 1)
        if h != 0 and np.allclose(np.diff(t), h, rtol=1e-9, atol=1e-12):
            cur = np.exp(1j * t[0] * x)
            step = np.exp(1j * h * x)
            out = np.empty(t.size, dtype=np.complex128)
            for j in range(t.size):
                out[j] = cur.sum()
                cur *= step
            out /= x.size
            return out.real.copy(), out.imag.copy()
    dt = np.float64 if precise else np.float32
    xs, ts = x.astype(dt), t.astype(dt)
    re = np.zeros(t.size)
    im = np.zeros(t.size)
    for start in range(0, x.size, chunk):
        arg = np.outer(xs[start:start + chunk], ts)
        re += np.cos(arg).sum(0, dtype=np.float64)
        im += np.sin(arg).sum(0, dtype=np.float64)
    return re / x.size, im / x.size


def qq_points(values: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(theoretical N(0, 1) quantiles, sample quantiles) at plotting positions (i - 0.5) / n.

    Above ``max_points`` values, evenly spaced order statistics are kept (always
    including the minimum and the maximum) so the picture stays light.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    if n == 0:
        raise ValueError("qq_points needs at least one value")
    if n > max_points:
        idx = np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))
    else:
        idx = np.arange(n)
    theo = ndtri((idx + 0.5) / n)
    return theo, x[idx]


# ------------------------------------------------------- per-slice statistics
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
            subtitle="worst first; click a point to select its slice")
    if log_y:
        log_axis(fig, np.concatenate([stat, [q95, q999, null_mean]]))
    fig.update_layout(clickmode="event+select", dragmode="zoom")
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
def histogram_figure(values: np.ndarray, *, slice_index: Optional[int] = None, bins: int = 80) -> go.Figure:
    """Histogram (density) of one slice's projected values with the N(0, 1) density.

    Binned here (numpy) and drawn as bars, so a slice of a million rows costs the
    browser ``bins`` bars, not a million values.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-9 * max(1.0, abs(lo)):  # (nearly) constant slice: one narrow bin around it
        lo, hi = lo - 0.05, hi + 0.05
    density, edges = np.histogram(x, bins=bins, range=(lo, hi), density=True)
    centers = 0.5 * (edges[:-1] + edges[1:])
    grid = np.linspace(min(lo, -4.0), max(hi, 4.0), 400)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centers, y=density, width=np.diff(edges), name="projected values",
                         marker={"color": BLUE, "line": {"width": 0}}, opacity=0.75,
                         hovertemplate="[%{customdata[0]:.3g}, %{customdata[1]:.3g})<br>density %{y:.3g}<extra></extra>",
                         customdata=np.stack([edges[:-1], edges[1:]], axis=1)))
    fig.add_trace(go.Scatter(x=grid, y=normal_pdf(grid), mode="lines", name="N(0, 1) density",
                             line={"color": RED, "width": 2}))
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(fig, f"Projection histogram, {label}", "projected value  uᵀz", "density")
    fig.update_layout(bargap=0)
    return fig


def qq_figure(values: np.ndarray, *, slice_index: Optional[int] = None, max_points: int = 300) -> go.Figure:
    """Q-Q plot of one slice against N(0, 1); on the diagonal when the slice is N(0, 1).

    At most ``max_points`` evenly spaced order statistics (always the minimum and maximum): about one
    per 2 pixels of a half-width panel (4 px markers overlap there anyway), and a light SVG for the
    browser to redraw on every slice change (each marker is one SVG node).
    """
    theo, samp = qq_points(values, max_points=max_points)
    lo = float(min(theo.min(), samp.min()))
    hi = float(max(theo.max(), samp.max()))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x (N(0, 1))",
                             line={"color": RED, "dash": "dash"}))
    fig.add_trace(go.Scatter(x=theo, y=samp, mode="markers", name="sample quantiles",
                             marker={"size": 4, "color": BLUE}))
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(fig, f"Q-Q plot, {label}", "N(0, 1) quantile", "sample quantile", subtitle="against N(0, 1)")
    return fig


def cf_figure(
    t_grid: np.ndarray,
    ecf_real_grid: np.ndarray,
    ecf_imag_grid: np.ndarray,
    nodes: np.ndarray,
    ecf_real_nodes: np.ndarray,
    ecf_imag_nodes: np.ndarray,
    *,
    slice_index: Optional[int] = None,
) -> go.Figure:
    """Real and imaginary ECF of one slice against exp(-t^2/2) (real) and 0 (imaginary).

    The curves are evaluated on a fine grid for drawing; the markers are the
    statistic's own values at the quadrature nodes.
    """
    t = np.asarray(t_grid, dtype=np.float64)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=np.exp(-t * t / 2), mode="lines", name="target exp(-t²/2)",
                             line={"color": RED, "width": 2, "dash": "dash"}))
    fig.add_trace(go.Scatter(x=t, y=np.zeros_like(t), mode="lines", name="target imaginary part 0",
                             line={"color": GREY, "width": 1, "dash": "dot"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=t, y=ecf_real_grid, mode="lines", name="Re ECF (mean cos tx)",
                             line={"color": BLUE, "width": 2}))
    fig.add_trace(go.Scatter(x=t, y=ecf_imag_grid, mode="lines", name="Im ECF (mean sin tx)",
                             line={"color": ORANGE, "width": 2}))
    fig.add_trace(go.Scatter(x=nodes, y=ecf_real_nodes, mode="markers", name="Re at quadrature nodes",
                             marker={"color": BLUE, "size": 8, "symbol": "circle-open", "line": {"width": 2}}))
    fig.add_trace(go.Scatter(x=nodes, y=ecf_imag_nodes, mode="markers", name="Im at quadrature nodes",
                             marker={"color": ORANGE, "size": 8, "symbol": "diamond-open", "line": {"width": 2}}))
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(fig, f"Characteristic function, {label}", "t", "ECF(t)", height=500,
            subtitle="Re follows exp(-t²/2), Im stays at 0")
    return fig


def weighted_error_figure(nodes: np.ndarray, weighted_error: np.ndarray, *, slice_index: Optional[int] = None,
                          units: str = "") -> go.Figure:
    """Bar per node of c_k [(Cbar_k - phi_k)^2 + Sbar_k^2] (times N when the preset scales): they sum to EP."""
    nodes = np.asarray(nodes, dtype=np.float64)
    err = np.asarray(weighted_error, dtype=np.float64)
    width = float(np.min(np.diff(nodes))) * 0.8 if nodes.size > 1 else 0.1
    fig = go.Figure(go.Bar(x=nodes, y=err, width=width, marker_color=PURPLE, name="weighted error",
                           hovertemplate="t = %{x:.3g}<br>term %{y:.4g}<extra></extra>"))
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(fig, f"Weighted error, {label}", "node t_k",
            f"term of the statistic{(' (' + units + ')') if units else ''}", height=340,
            subtitle=f"the bars sum to the statistic: {err.sum():.4g}")
    fig.update_layout(showlegend=False)
    return fig


def slice_views_figure(histogram: go.Figure, qq: go.Figure, cf: go.Figure, weighted_error: go.Figure, *,
                       slice_index: Optional[int] = None) -> go.Figure:
    """The four views of one slice (histogram, Q-Q, characteristic function, weighted error) in one 2 × 2 figure.

    Same traces, axis titles and axis types as the four separate figures (copied from them, so
    the two can never disagree); each panel's legend entries are grouped under the panel's name.
    Why one figure: the browser lays out and draws one plotly chart instead of four on every
    slice change (issue 12), and one PNG download holds all four views.
    """
    from plotly.subplots import make_subplots

    panels = [("Histogram", histogram), ("Q-Q", qq), ("Characteristic function", cf),
              ("Weighted error", weighted_error)]
    err_sum = float(np.sum(weighted_error.data[0].y)) if weighted_error.data else float("nan")
    titles = ["Histogram vs N(0, 1) density", "Q-Q against N(0, 1)", "ECF vs exp(-t²/2) and 0",
              f"Weighted error per node (sum {err_sum:.4g})"]
    out = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.09, vertical_spacing=0.14)
    # Built with direct references (the panel's axes, one add_traces call): plotly.py's per-call
    # row/col look-ups made this figure take 50 ms to build, paid on the first visit to each slice.
    traces, rows, cols = [], [], []
    for k, (name, fig) in enumerate(panels):
        row, col = divmod(k, 2)
        shown = fig.layout.showlegend is not False
        for tr in fig.data:
            tr = type(tr)(tr)  # a copy: the separate figure stays as it was
            tr.update(legendgroup=name, legendgrouptitle_text=name if shown else None,
                      showlegend=shown and tr.showlegend is not False)
            traces.append(tr)
            rows.append(row + 1)
            cols.append(col + 1)
        axes = out.get_subplot(row + 1, col + 1)
        xa, ya = fig.layout.xaxis, fig.layout.yaxis
        axes.xaxis.update(title_text=xa.title.text, title_font_size=11)
        axes.yaxis.update(title_text=ya.title.text, title_font_size=11, **({"type": ya.type} if ya.type else {}))
    out.add_traces(traces, rows=rows, cols=cols)
    for ann in out.layout.annotations:  # the panel titles: small, so they fit a half-width panel at 1000 px
        ann.font = {"size": 12}
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(out, f"Views of {label}", "", "", height=900,
            subtitle="histogram, Q-Q, characteristic function and the statistic's terms, against N(0, 1)")
    out.update_layout(xaxis_title={"text": histogram.layout.xaxis.title.text, "font": {"size": 11}},
                      yaxis_title={"text": histogram.layout.yaxis.title.text, "font": {"size": 11}},
                      bargap=0, legend={"groupclick": "toggleitem"},
                      # t: room for the title, its subtitle and the first row's panel titles.  l and b: what
                      # the tick labels and the grouped legend (6 rows, 144 px) push the margins to anyway,
                      # given up front: when plotly's auto-margin has to grow a margin after the first draw
                      # it draws the whole figure a second time (half of this figure's draw time in Chromium,
                      # paid on every slice change, issue 12).  autoexpand stays on: a narrow window whose
                      # legend wraps to more rows still gets a larger margin.
                      margin={"t": 100, "l": 72, "b": 216})
    return out


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
