"""Plotly figures of a comparison of embedding sets on the same slices.

Pure functions of numpy / pandas data (no streamlit, no torch): arrays in, a
``plotly.graph_objects.Figure`` out, so the Compare page, the standalone HTML
export and the tests draw the same pictures.  The statistic is SIGReg's
per-slice Epps–Pulley statistic

    EP_m = s(N) sum_k c_k [(mean_n cos(t_k x_n) - exp(-t_k^2/2))^2 + (mean_n sin(t_k x_n))^2]

(LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312), on the directions
every set shares:

* :func:`slice_scatter_figure` — set A against set B slice by slice (same slice
  indices), with the line y = x and the null 95 % band of one slice;
* :func:`sorted_curves_figure` — every set's per-slice statistics sorted, over the
  null band;
* :func:`overlay_histogram_figure`, :func:`overlay_cf_figure` — one slice's projected
  values and empirical characteristic function, every set overlaid;
* :func:`overlay_spectrum_figure` — covariance eigen-spectra on one log axis;
* :func:`deltas_figure` — the deltas against the reference with their bootstrap intervals
  (a log axis of |delta| when the deltas span more than 30×, the sign by colour and symbol);
* :func:`ranking_figure` — every set's SIGReg / null mean, best first, with its bootstrap
  interval, coloured by verdict (log axis when the values span more than 30×);
* :func:`pairwise_figure` — the matrix of pairwise significance (row set minus column set).

Set colours are the run palette of the Monitor page (disjoint from the verdict colours).
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sigreg_core.assessment.severity import VERDICT_COLOURS, verdict_colour
from sigreg_core.present.figures import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, _layout, ecf_on_grid, normal_pdf
from sigreg_core.present.monitor_figures import RUN_COLOURS
from sigreg_core.util.text import plotly_text as _pt  # set names are data: Plotly renders HTML in names/hover/ticks

__all__ = [
    "PALETTE",
    "slice_scatter_figure",
    "sorted_curves_figure",
    "overlay_histogram_figure",
    "overlay_cf_figure",
    "overlay_spectrum_figure",
    "deltas_figure",
    "ranking_figure",
    "pairwise_figure",
    "pick_slice",
    "slice_values",
    "comparison_figures",
    "view_rows",
]

#: one colour per set, cycled: the run palette, so no set is drawn in a verdict colour
PALETTE = list(RUN_COLOURS)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _tpl(name) -> str:
    """A set name inlined into a hovertemplate: escaped, and ``%`` as an entity so ``%{...}`` stays text."""
    return _pt(name).replace("%", "&#37;")


def _use_log(values: np.ndarray, q: float) -> bool:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return bool(v.size and np.all(v > 0) and float(v.max()) > 20 * q)


def slice_scatter_figure(
    stat_x,
    stat_y,
    name_x: str,
    name_y: str,
    *,
    q95: float,
    null_mean: Optional[float] = None,
    units: str = "",
    selected: Optional[int] = None,
) -> go.Figure:
    """Per-slice statistic of set ``name_y`` against set ``name_x`` on the same slice indices.

    Points below the y = x line are slices where ``name_y`` is closer to N(0, 1).
    The shaded square is the null 95 % band of one slice (both coordinates below
    the 95 % quantile).  Each point carries its slice index in ``customdata[0]``.
    Log axes when a statistic exceeds 20 times the 95 % quantile.
    """
    x = np.asarray(stat_x, dtype=np.float64).ravel()
    y = np.asarray(stat_y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"the scatter needs two sets of statistics on the same slices, got {x.shape} and {y.shape}")
    both = np.concatenate([x, y])
    log = _use_log(both, q95)
    lo = float(both.min()) if not log else float(both[both > 0].min()) / 1.5
    lo = min(lo, 0.0) if not log else min(lo, q95 / 10)
    hi = float(max(both.max(), q95)) * (1.5 if log else 1.05)
    fig = go.Figure()
    band_lo = lo if log else 0.0
    fig.add_shape(type="rect", x0=band_lo, y0=band_lo, x1=q95, y1=q95, fillcolor=GREEN, opacity=0.15,
                  line_width=0, layer="below")
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x (no change)",
                             line={"color": GREY, "dash": "dash"}, hoverinfo="skip"))
    idx = np.arange(x.size)
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="markers", name="slices", customdata=idx[:, None],
        marker={"size": 6 if x.size <= 2048 else 4, "color": BLUE, "opacity": 0.7},
        hovertemplate=f"slice %{{customdata[0]}}<br>{_tpl(name_x)}: %{{x:.4g}}<br>{_tpl(name_y)}: %{{y:.4g}}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=[band_lo, q95, q95], y=[q95, q95, band_lo], mode="lines",
                             name=f"null 95% band (q95 = {q95:.4g})", line={"color": GREEN, "width": 1}))
    if null_mean is not None and np.isfinite(null_mean):
        fig.add_trace(go.Scatter(x=[null_mean], y=[null_mean], mode="markers", name=f"null mean {null_mean:.4g}",
                                 marker={"symbol": "x", "size": 10, "color": GREEN}))
    if selected is not None and 0 <= int(selected) < x.size:
        s = int(selected)
        fig.add_trace(go.Scatter(x=[x[s]], y=[y[s]], mode="markers", name=f"selected: slice {s}",
                                 customdata=[[s]],
                                 marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": RED, "width": 3}}))
    u = f" ({units})" if units else ""
    below = int(np.sum(y < x))
    name_x, name_y = _pt(name_x), _pt(name_y)
    _layout(fig, f"Same slices: {name_y} against {name_x} ({below} of {x.size} slices lower for {name_y})",
            f"statistic of {name_x}{u}", f"statistic of {name_y}{u}", height=420)
    if log:
        fig.update_xaxes(type="log")
        fig.update_yaxes(type="log")
    else:
        fig.update_xaxes(range=[lo, hi])
        fig.update_yaxes(range=[lo, hi])
    fig.update_layout(clickmode="event+select")
    return fig


def sorted_curves_figure(
    statistics: Mapping[str, np.ndarray],
    *,
    q95: float,
    q999: float,
    null_mean: Optional[float] = None,
    units: str = "",
) -> go.Figure:
    """Each set's per-slice statistics sorted from worst to best, overlaid on the null band."""
    if not statistics:
        raise ValueError("no sets to draw")
    allv = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in statistics.values()])
    log = _use_log(allv, q999)
    m = max(np.asarray(v).size for v in statistics.values())
    fig = go.Figure()
    y0 = 0.0 if not log else float(min(allv[allv > 0].min(), null_mean or q95)) / 2
    fig.add_hrect(y0=y0, y1=q95, fillcolor=GREEN, opacity=0.12, line_width=0, layer="below")
    fig.add_hrect(y0=q95, y1=q999, fillcolor=ORANGE, opacity=0.12, line_width=0, layer="below")
    for i, (name, v) in enumerate(statistics.items()):
        v = np.sort(np.asarray(v, dtype=np.float64).ravel())[::-1]
        fig.add_trace(go.Scatter(x=np.arange(1, v.size + 1), y=v, mode="lines", name=f"{_pt(name)} (mean {v.mean():.4g})",
                                 line={"color": _color(i), "width": 2}))
    lines = [(q95, f"95% null quantile {q95:.4g}", "dash", GREEN), (q999, f"99.9% null quantile {q999:.4g}", "dash", RED)]
    if null_mean is not None and np.isfinite(null_mean):
        lines.insert(0, (null_mean, f"null mean {null_mean:.4g}", "dot", GREEN))
    for y, name, dash, color in lines:
        fig.add_trace(go.Scatter(x=[1, m], y=[y, y], mode="lines", name=name,
                                 line={"dash": dash, "color": color, "width": 1.5}, hoverinfo="skip"))
    u = f" ({units})" if units else ""
    _layout(fig, f"Per-slice statistics sorted (worst first), {len(statistics)} sets on the same {m} slices",
            "rank (1 = worst slice of each set)", f"Epps–Pulley statistic{u}", height=400)
    if log:
        fig.update_yaxes(type="log")
    return fig


def overlay_histogram_figure(values: Mapping[str, np.ndarray], *, slice_index: Optional[int] = None,
                             bins: int = 80) -> go.Figure:
    """Histograms (density) of one slice's projected values for every set, with the N(0, 1) density.

    All sets share one set of bin edges (over the union of their ranges and [-4, 4]).
    """
    if not values:
        raise ValueError("no sets to draw")
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in values.items()}
    lo = float(min(min(a.min() for a in arrays.values()), -4.0))
    hi = float(max(max(a.max() for a in arrays.values()), 4.0))
    edges = np.linspace(lo, hi, int(bins) + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    fig = go.Figure()
    for i, (name, a) in enumerate(arrays.items()):
        dens, _ = np.histogram(a, bins=edges, density=True)
        fig.add_trace(go.Bar(x=centres, y=dens, width=float(edges[1] - edges[0]), name=_pt(name),
                             marker_color=_color(i), opacity=0.5))
    grid = np.linspace(lo, hi, 400)
    fig.add_trace(go.Scatter(x=grid, y=normal_pdf(grid), mode="lines", name="N(0, 1) density",
                             line={"color": RED, "width": 2}))
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(fig, f"Projection histograms, {label} (same direction for every set)", "projected value  uᵀz",
            "density")
    fig.update_layout(barmode="overlay")
    return fig


def overlay_cf_figure(values: Mapping[str, np.ndarray], *, t_max: float = 4.0, slice_index: Optional[int] = None,
                      grid_points: int = 201, nodes: Optional[np.ndarray] = None) -> go.Figure:
    """Real and imaginary empirical CF of one slice for every set against exp(-t^2/2) and 0."""
    if not values:
        raise ValueError("no sets to draw")
    t = np.linspace(0.0, float(t_max), int(grid_points))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=np.exp(-t * t / 2), mode="lines", name="target exp(-t²/2)",
                             line={"color": RED, "width": 2, "dash": "dash"}))
    fig.add_trace(go.Scatter(x=t, y=np.zeros_like(t), mode="lines", name="target Im = 0",
                             line={"color": GREY, "width": 1, "dash": "dot"}, hoverinfo="skip"))
    for i, (name, v) in enumerate(values.items()):
        re, im = ecf_on_grid(np.asarray(v, dtype=np.float64), t)
        fig.add_trace(go.Scatter(x=t, y=re, mode="lines", name=f"{_pt(name)}: Re", line={"color": _color(i), "width": 2}))
        fig.add_trace(go.Scatter(x=t, y=im, mode="lines", name=f"{_pt(name)}: Im",
                                 line={"color": _color(i), "width": 1.5, "dash": "dot"}))
    if nodes is not None:
        nd = np.asarray(nodes, dtype=np.float64)
        nd = nd[(nd >= 0) & (nd <= t_max)]
        for x in nd:
            fig.add_vline(x=float(x), line={"color": GREY, "width": 0.5, "dash": "dot"})
    label = f"slice {slice_index}" if slice_index is not None else "slice"
    _layout(fig, f"Characteristic functions, {label}", "t", "ECF(t)", height=380)
    return fig


def overlay_spectrum_figure(eigenvalues: Mapping[str, np.ndarray]) -> go.Figure:
    """Covariance eigenvalues of every set, largest first, on one log axis (floored at 1e-12 of the top)."""
    if not eigenvalues:
        raise ValueError("no sets to draw")
    fig = go.Figure()
    top = max((float(np.max(e)) for e in eigenvalues.values() if np.size(e)), default=1.0)
    floor = max(top, 1e-300) * 1e-12
    d = 1
    for i, (name, e) in enumerate(eigenvalues.items()):
        ev = np.sort(np.asarray(e, dtype=np.float64).ravel())[::-1]
        d = max(d, ev.size)
        fig.add_trace(go.Scatter(x=np.arange(1, ev.size + 1), y=np.maximum(ev, floor), mode="lines+markers",
                                 name=_pt(name), line={"color": _color(i)}, marker={"size": 4}))
    fig.add_trace(go.Scatter(x=[1, d], y=[1, 1], mode="lines", name="N(0, I): all 1",
                             line={"dash": "dot", "color": GREEN}))
    _layout(fig, "Covariance eigen-spectra", "index (largest first)", "eigenvalue (log)", height=340)
    fig.update_yaxes(type="log")
    return fig


def _wide(values) -> bool:
    v = np.abs(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v) & (v > 0)]
    return bool(v.size >= 2 and v.max() / v.min() > 30)


def deltas_figure(deltas: pd.DataFrame, metric: str = "sigreg", *, label: Optional[str] = None,
                  log: Optional[bool] = None) -> go.Figure:
    """Deltas of one metric against the reference with their bootstrap intervals.

    When the |deltas| span more than 30× (``log=None``: decided from the data) the axis is
    log |delta|, with decreases drawn as down-triangles and increases as up-triangles, so a
    16-unit delta does not vanish at 0 next to a 1914-unit one.
    """
    df = deltas[deltas["metric"] == metric] if len(deltas) else deltas
    if df is None or not len(df):
        raise ValueError(f"no deltas of {metric!r} to draw")
    names = [_pt(s) for s in df["set"]]
    v = df["value"].to_numpy(dtype=np.float64)
    lo = df["ci_low"].to_numpy(dtype=np.float64)
    hi = df["ci_high"].to_numpy(dtype=np.float64)
    sig = df["significant"].to_numpy(dtype=bool)
    notes = [_pt(n) if isinstance(n, str) else "" for n in df.get("note", pd.Series([""] * len(df)))]
    log = _wide(v) if log is None else bool(log)
    fig = go.Figure()
    colour = [VERDICT_COLOURS[2] if s else GREY for s in sig]
    hover = [f"{n}: Δ = {x:.4g}" + (f" [{a:.4g}, {b:.4g}]" if np.isfinite(a) else f" ({t or 'no interval'})")
             for n, x, a, b, t in zip(names, v, lo, hi, notes)]
    if log:
        mag = np.abs(v)
        # the interval of |delta| (when it does not cross 0); otherwise no bar
        a, b = np.minimum(np.abs(lo), np.abs(hi)), np.maximum(np.abs(lo), np.abs(hi))
        ok = np.isfinite(lo) & (np.sign(lo) == np.sign(hi))
        fig.add_trace(go.Scatter(
            x=np.where(mag > 0, mag, np.nan), y=names, mode="markers", name="|Δ| with interval",
            marker={"size": 11, "color": colour, "symbol": ["triangle-down" if x < 0 else "triangle-up" for x in v]},
            error_x={"type": "data", "symmetric": False, "array": np.where(ok, b - mag, 0.0),
                     "arrayminus": np.where(ok, mag - a, 0.0)},
            text=hover, hovertemplate="%{text}<extra></extra>"))
        fig.update_xaxes(type="log", dtick=1, exponentformat="none")
        xt = f"|Δ {label or metric}| (log; ▲ increase, ▼ decrease)"
    else:
        fig.add_trace(go.Scatter(
            x=v, y=names, mode="markers", name="delta with interval",
            marker={"size": 10, "color": colour},
            error_x={"type": "data", "symmetric": False, "array": np.nan_to_num(hi - v),
                     "arrayminus": np.nan_to_num(v - lo)},
            text=hover, hovertemplate="%{text}<extra></extra>"))
        fig.add_vline(x=0.0, line={"color": GREY, "dash": "dash"})
        xt = f"Δ {label or metric}"
    ref = _pt(df["reference"].iloc[0])
    _layout(fig, f"Δ {label or metric} against {ref} (vermilion: interval excludes 0)", xt, "set",
            height=max(220, 70 + 40 * len(names)))
    return fig


def ranking_figure(ranking: pd.DataFrame, *, log: Optional[bool] = None) -> go.Figure:
    """SIGReg / null mean of every set, best on top, with its bootstrap interval, coloured by verdict."""
    df = ranking
    names = [f"{r}. {_pt(s)}" for r, s in zip(df["rank"], df["set"])]
    x = df["x_null"].to_numpy(dtype=np.float64)
    lo = df["x_null_low"].to_numpy(dtype=np.float64)
    hi = df["x_null_high"].to_numpy(dtype=np.float64)
    log = _wide(x) if log is None else bool(log)
    fig = go.Figure(go.Bar(
        x=x, y=names, orientation="h", marker={"color": [verdict_colour(v) for v in df["verdict"]]},
        error_x={"type": "data", "symmetric": False, "array": np.nan_to_num(hi - x), "arrayminus": np.nan_to_num(x - lo)},
        text=[f"{v:.3g}× · {_pt(vd)}" for v, vd in zip(x, df["verdict"])], textposition="auto",
        customdata=np.stack([[_pt(c) for c in df["verdict"].astype(str)], [_pt(c) for c in df["vs_above"].astype(str)]], -1),
        hovertemplate="%{y}: %{x:.4g} × null mean<br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        name="SIGReg / null mean"))
    fig.add_vline(x=1.0, line={"color": GREY, "dash": "dash"})
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    if log:
        fig.update_xaxes(type="log", dtick=1, exponentformat="none")
    _layout(fig, "Ranking: SIGReg as a multiple of its null mean (1 = healthy floor), best on top",
            "SIGReg / null mean" + (" (log)" if log else ""), "", height=max(220, 90 + 40 * len(names)))
    return fig


def pairwise_figure(code: pd.DataFrame, text: pd.DataFrame, *, metric_label: str = "SIGReg") -> go.Figure:
    """Heatmap of pairwise significance: cell (row a, column b) compares a − b.

    Green: a significantly healthier than b; vermilion: significantly less healthy; grey:
    not significantly different; blank: the diagonal or no interval.  The cell text is the
    delta (× null mean for SIGReg) with its interval.
    """
    z = code.to_numpy(dtype=np.float64)
    fig = go.Figure(go.Heatmap(
        z=z, x=[_pt(c) for c in code.columns], y=[_pt(c) for c in code.index],
        text=np.vectorize(lambda c: _pt(c, None), otypes=[object])(text.to_numpy()) if text.size else text.to_numpy(),
        texttemplate="%{text}",
        textfont={"size": 10}, zmin=-1, zmax=1, showscale=False, xgap=2, ygap=2,
        colorscale=[[0.0, VERDICT_COLOURS[0]], [0.5, "#DDDDDD"], [1.0, VERDICT_COLOURS[2]]],
        hovertemplate="%{y} − %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    n = len(code)
    _layout(fig, f"Every pair: {metric_label} of the row set minus the column set (green: row healthier, "
                 "vermilion: row less healthy, grey: no significant difference)", "compared with", "set",
            height=max(260, 120 + 60 * n))
    return fig


# ------------------------------------------------------------- from a Comparison
def pick_slice(cmp, how: str = "largest change", set_name: Optional[str] = None, index: Optional[int] = None) -> int:
    """A slice of a comparison: ``largest change`` (|EP(set) - EP(ref)| largest), ``worst``
    (largest statistic of ``set_name``), ``median`` (of ``set_name``) or ``index``."""
    m = int(cmp.directions.shape[1])
    if how == "index":
        if index is None or not 0 <= int(index) < m:
            raise ValueError(f"slice index must be in [0, {m - 1}], got {index}")
        return int(index)
    others = [n for n in cmp.names if n != cmp.reference]
    name = set_name or (others[0] if others else cmp.reference)
    stat = cmp.sets[name].statistic
    if how == "largest change":
        return int(np.argmax(np.abs(stat - cmp.sets[cmp.reference].statistic)))
    if how == "worst":
        return int(np.argmax(stat))
    if how == "median":
        return int(np.argsort(stat, kind="stable")[(m - 1) // 2])
    raise ValueError(f"unknown slice choice {how!r}; use largest change, worst, median or index")


def slice_values(cmp, index: int) -> dict:
    """Projected values of slice ``index`` for every set (rows scored), {name: (N,)} float64."""
    u = np.asarray(cmp.directions[:, int(index)], dtype=np.float64)
    return {n: np.asarray(cmp.arrays[n], dtype=np.float64) @ u for n in cmp.names}


def _units(cmp) -> str:
    return "× N" if cmp.preset.scale_by_n else "unscaled"


def comparison_figures(cmp, *, slice_index: Optional[int] = None, pair: Optional[tuple] = None) -> dict:
    """Every comparison figure, in page order: scatter (pair, default reference vs the first other set),
    sorted curves, deltas, histograms and CF of one slice, eigen-spectra."""
    others = [n for n in cmp.names if n != cmp.reference]
    a, b = pair if pair is not None else (cmp.reference, others[0] if others else cmp.reference)
    j = pick_slice(cmp, "largest change", b) if slice_index is None else int(slice_index)
    q95 = float(cmp.null_quantiles.get("0.95", np.nan))
    q999 = float(cmp.null_quantiles.get("0.999", np.nan))
    null_mean = cmp.sets[cmp.reference].null_mean
    vals = slice_values(cmp, j)
    t_max = float(np.max(np.abs(cmp.preset.nodes))) + 1.0
    figs = {
        "slice_scatter": slice_scatter_figure(cmp.sets[a].statistic, cmp.sets[b].statistic, a, b, q95=q95,
                                              null_mean=null_mean, units=_units(cmp), selected=j),
        "sorted_curves": sorted_curves_figure({n: cmp.sets[n].statistic for n in cmp.names}, q95=q95, q999=q999,
                                              null_mean=null_mean, units=_units(cmp)),
    }
    dfr = cmp.deltas_frame()
    if len(dfr) and (dfr["metric"] == "sigreg").any():
        figs["deltas"] = deltas_figure(dfr, "sigreg", label="SIGReg")
    from sigreg_core.compare.ranking import pairwise_matrix

    figs["ranking"] = ranking_figure(cmp.ranking_frame())
    figs["pairwise"] = pairwise_figure(*pairwise_matrix(cmp, "sigreg"))
    figs["histograms"] = overlay_histogram_figure(vals, slice_index=j)
    figs["cf"] = overlay_cf_figure(vals, t_max=t_max, slice_index=j, nodes=cmp.preset.nodes)
    figs["spectra"] = overlay_spectrum_figure({n: cmp.sets[n].eigenvalues for n in cmp.names})
    return figs


def view_rows(figs: dict, slice_index: int) -> tuple[list, list]:
    """The Compare page's views as laid out: (rows above the slice's line, rows below), each row a list of
    (figure key in ``figs``, download name).  Deltas beside the sorted curves when there are any (spectra
    then go last), else the spectra there; the slice's histograms and CF side by side, named by the slice."""
    side = ("deltas", "compare_deltas") if "deltas" in figs else ("spectra", "compare_spectra")
    above = [[("slice_scatter", "compare_slice_scatter")], [("sorted_curves", "compare_sorted_curves"), side]]
    below = [[("histograms", f"compare_histograms_slice_{slice_index}"), ("cf", f"compare_cf_slice_{slice_index}")]]
    if "deltas" in figs:
        below.append([("spectra", "compare_spectra")])
    return above, below
