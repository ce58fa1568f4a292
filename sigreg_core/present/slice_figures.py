"""The four views of one slice, and the helpers they share (split from figures.py, issue 23).

A slice is the data projected on one unit direction, ``x_n = <z_n, a>``; under N(0, I) it is N(0, 1).
The views compare it with that law:

* :func:`histogram_figure` against the N(0, 1) density :func:`normal_pdf`;
* :func:`qq_figure` against N(0, 1) quantiles (:func:`qq_points`: Blom-free plotting positions
  ``(i + 0.5) / n``, ``ndtri`` of them);
* :func:`cf_figure`: the empirical characteristic function ``mean_n exp(i t x_n)`` on a fine grid
  (:func:`ecf_on_grid`) against ``exp(-t^2/2)``, quadrature nodes marked;
* :func:`weighted_error_figure`: ``c_k [(Cbar_k - phi_k)^2 + Sbar_k^2]`` per node, the terms the
  Epps–Pulley statistic sums (LeJEPA, arXiv 2511.08544);
* :func:`slice_views_figure`: the four as one 2 x 2 figure (one browser redraw on a slice change).

:mod:`sigreg_core.present.figures` re-exports every name here.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import plotly.graph_objects as go
from scipy.special import ndtri

from sigreg_core.present.figure_style import BLUE, GREY, ORANGE, PURPLE, RED, _layout

__all__ = ["normal_pdf", "ecf_on_grid", "qq_points", "histogram_figure", "qq_figure", "cf_figure",
           "weighted_error_figure", "slice_views_figure"]


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
