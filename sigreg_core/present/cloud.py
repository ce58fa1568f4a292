"""A look at the embedding cloud itself: 2-D projections with outlier rows highlighted.

TensorBoard's projector and W&B's 2-D projection show the points; this module does the
same for an embedding set Z (N x D), in the two views that matter for SIGReg
(LeJEPA, arXiv 2511.08544: the statistic scores 1-D projections x = Z u against N(0, 1)):

* ``"pca"`` — the centred rows on the top-2 principal axes (PCA of a seeded subsample
  of at most ``fit_rows`` rows), with the share of variance each axis carries;
* ``"slice"`` — the selected slice's projection x = Z u (uncentred: exactly the values the
  statistic sees) against the projection on the top principal axis made orthogonal to u
  (v = p - (p·u) u, normalised; the next axis when p is almost parallel to u), also
  uncentred.

**Outlier rule** (robust Mahalanobis distance on the principal axes; a *display* rule, on
purpose not the assessment's rule in :mod:`sigreg_core.assessment.rows`: this one highlights
about 0.1 % of N(0, I) rows per point drawn, at a per-row level, on the principal scores a
reader sees in the figure; the assessment's rule controls the whole set's false alarms at
1e-3 / N and asks whether a few far rows exist, to decide a verdict mode): with the scores
s_i = (z_i - mean) V_k on the top k = min(10, D) principal axes, the per-axis median
m_j and scale MAD_j x 1.4826 (the consistent MAD of a normal law),
d_i² = sum_j ((s_ij - m_j) / (1.4826 MAD_j))²; a row is an outlier when d_i² exceeds the
chi-square(k) quantile at ``level`` (default 0.999).  Under N(0, I) the scores are
independent normals, so about 0.1 % of rows are flagged; median and MAD are not pulled
by the outliers themselves (breakdown 50 %), unlike the mean and the covariance.

**Fixed scale** (issue 23): both axes span [-R0, R0] with R0 = 5, the range of an N(0, I)
cloud (each coordinate N(0, 1): among the 10,000 coordinates of 5000 drawn rows one passes 5
with probability 0.6 %), and widen (to 1.05 x the largest) only to fit points beyond it (``reference_range``); the circle of radius sqrt(chi2_2(0.95)) = 2.448 holds
95 % of an N(0, I_2) cloud.  So a healthy set fills the circle, and a collapse shows as what it
is, a point or a line, instead of being autoscaled back into a round blob.

**Subsample drawn**: at most ``max_points`` rows (default 5000, WebGL ``Scattergl``):
every outlier row up to a fifth of that, then a uniform random subset of the other rows
(seeded), stated in :attr:`CloudView.note`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sigreg_core.present.figures import _layout

__all__ = ["CloudView", "principal_axes", "robust_outliers", "cloud_view", "cloud_figure", "outlier_frame",
           "reference_range", "OUTLIER_RULE", "MAX_POINTS", "REFERENCE_HALF_RANGE", "REFERENCE_RADIUS_95"]

MAX_POINTS = 5000
#: half-range of both axes at least: an N(0, I) cloud's coordinates stay within it (P(|x| > 5) = 5.7e-7)
REFERENCE_HALF_RANGE = 5.0
#: radius of the circle holding 95 % of N(0, I_2): sqrt of the chi-square(2) 95 % quantile, sqrt(-2 log 0.05)
REFERENCE_RADIUS_95 = float(np.sqrt(-2.0 * np.log(0.05)))
FIT_ROWS = 20000
_CHUNK = 1 << 16
OUTLIER_RULE = ("outlier: robust Mahalanobis distance on the top k principal axes (per-axis median and "
                "1.4826 x MAD) above the chi-square(k) {level:.1%} quantile")


@dataclass
class CloudView:
    """The points drawn and what they are (rows of the drawn subsample only)."""

    kind: str                     # "pca" or "slice"
    x: np.ndarray
    y: np.ndarray
    rows: np.ndarray              # row index in Z of each drawn point
    outlier: np.ndarray           # bool per drawn point
    distance: np.ndarray          # robust distance d (not squared) per drawn point
    xlabel: str
    ylabel: str
    n_total: int
    outlier_rows: np.ndarray      # every outlier row of Z (sorted)
    outlier_distance: np.ndarray  # their robust distances
    threshold: float              # d threshold (sqrt of the chi-square quantile)
    k: int
    level: float
    note: str
    slice_index: Optional[int] = None
    explained: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def expected_outliers(self) -> float:
        """Base rate: rows an N(0, I) set of this size flags by the rule, n (1 - level) (2.0 of 2048 at 99.9 %)."""
        return self.n_total * (1.0 - self.level)

    @property
    def rule(self) -> str:
        return OUTLIER_RULE.format(level=self.level).replace("top k", f"top k = {self.k}")


def _rows(z, idx=None) -> np.ndarray:
    a = np.asarray(z) if idx is None else np.asarray(z)[idx]
    return np.asarray(a, dtype=np.float64)


def principal_axes(z, k: int = 10, *, fit_rows: int = FIT_ROWS, seed: int = 0) -> tuple:
    """(mean (D,), axes V (D, k), variance share of each axis (k,)) of a seeded subsample of ``fit_rows`` rows.

    The axes are the eigenvectors of the float64 scatter matrix X^T X of the centred subsample
    (D x D; cheaper than an SVD of the N x D rows and the same axes), decomposed by the one
    implementation of principal axes, :func:`sigreg_core.assessment.families.principal_eig`
    (largest first, the sign that makes each axis' largest entry positive).  Only the rows
    differ from the assessment's principal screen: a seeded subsample of ``fit_rows`` rows,
    enough to draw the cloud, where the assessment uses the streamed covariance of every row.
    """
    from sigreg_core.assessment.families import principal_eig

    n, d = np.shape(z)
    rng = np.random.default_rng([int(seed), 0x434C4F55])
    idx = None if n <= fit_rows else np.sort(rng.choice(n, size=int(fit_rows), replace=False))
    x = np.array(np.asarray(z) if idx is None else np.asarray(z)[idx], dtype=np.float64)  # a copy: centred in place
    mean = x.mean(0)
    x -= mean
    vec, w = principal_eig(x.T @ x)
    w = np.clip(w, 0.0, None)
    total = float(w.sum())
    k = int(max(1, min(k, d)))
    share = w[:k] / total if total > 0 else np.zeros(k)
    return mean, np.ascontiguousarray(vec[:, :k]), share


def _scores(z, mean, axes) -> np.ndarray:
    """(z - mean) @ axes for every row, in float32 blocks (drawing and outlier flags need no more)."""
    n = np.shape(z)[0]
    out = np.empty((n, axes.shape[1]))
    m32, a32 = mean.astype(np.float32), axes.astype(np.float32)
    for r0 in range(0, n, _CHUNK):
        out[r0:r0 + _CHUNK] = (np.asarray(z[r0:r0 + _CHUNK], dtype=np.float32) - m32) @ a32
    return out


def robust_outliers(scores: np.ndarray, level: float = 0.999) -> tuple[np.ndarray, float]:
    """(robust distance d per row, threshold): d² = sum_j ((s_j - median_j) / (1.4826 MAD_j))², cut at chi2_k(level)."""
    # chdtri(k, q) is the chi2_k quantile at 1 - q (scipy.stats.chi2.ppf); scipy.special is loaded already
    # for the figures, while importing scipy.stats costs ~0.5 s on a fresh server's first report
    from scipy.special import chdtri

    s = np.asarray(scores, dtype=np.float64)
    med = np.median(s, axis=0)
    mad = 1.4826 * np.median(np.abs(s - med), axis=0)
    floor = 1e-12 * (1.0 + float(np.abs(s).max()) if s.size else 1.0)
    dev = np.abs(s - med)
    scale = np.maximum(mad, floor)
    d2 = ((dev / scale) ** 2).sum(1)
    return np.sqrt(d2), float(np.sqrt(chdtri(s.shape[1], 1.0 - float(level))))


def _orthogonal_axis(u: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, int]:
    for j in range(axes.shape[1]):
        p = axes[:, j]
        v = p - (p @ u) * u
        nv = float(np.linalg.norm(v))
        if nv > 0.1:
            return v / nv, j
    # every principal axis (almost) parallel to u: any unit vector orthogonal to u
    e = np.zeros_like(u)
    e[int(np.argmin(np.abs(u)))] = 1.0
    v = e - (e @ u) * u
    return v / max(float(np.linalg.norm(v)), 1e-300), -1


def cloud_view(z, kind: str = "pca", *, direction=None, slice_index: Optional[int] = None,
               max_points: int = MAX_POINTS, k: int = 10, level: float = 0.999, seed: int = 0,
               fit_rows: int = FIT_ROWS) -> CloudView:
    """The 2-D view of ``z`` (N, D): ``"pca"`` or ``"slice"`` (needs ``direction``, a (D,) vector)."""
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"the cloud view needs embeddings of shape (N, D) with N >= 2, got {z.shape}")
    if kind not in ("pca", "slice"):
        raise ValueError(f"kind must be 'pca' or 'slice', got {kind!r}")
    n, d = z.shape
    mean, axes, share = principal_axes(z, k=max(k, 2), fit_rows=fit_rows, seed=seed)
    scores = _scores(z, mean, axes)
    kk = min(k, scores.shape[1])
    dist, thr = robust_outliers(scores[:, :kk], level)
    out_rows = np.flatnonzero(dist > thr)

    rng = np.random.default_rng([int(seed), 0x44524157])
    cap_out = max(0, int(max_points) // 5)
    keep_out = out_rows if out_rows.size <= cap_out else np.sort(rng.choice(out_rows, cap_out, replace=False))
    rest = np.setdiff1d(np.arange(n), keep_out, assume_unique=True)
    n_rest = max(0, min(rest.size, int(max_points) - keep_out.size))
    pick_rest = rest if n_rest == rest.size else np.sort(rng.choice(rest, n_rest, replace=False))
    rows = np.sort(np.concatenate([keep_out, pick_rest]))
    if rows.size == n:
        note = f"all {n:,} rows drawn"
    else:
        note = (f"{rows.size:,} of {n:,} rows drawn: {pick_rest.size:,} uniform at random (seed {seed}) "
                f"and {keep_out.size:,} of the {out_rows.size:,} outlier rows")
    if kind == "pca":
        x, y = scores[rows, 0], (scores[rows, 1] if scores.shape[1] > 1 else np.zeros(rows.size))
        xl = f"principal axis 1 ({100 * share[0]:.1f} % of variance, centred)"
        yl = (f"principal axis 2 ({100 * share[1]:.1f} % of variance, centred)" if share.size > 1
              else "(D = 1: no second axis)")
    else:
        if direction is None:
            raise ValueError("the slice view needs the slice's direction")
        u = np.asarray(direction, dtype=np.float64).ravel()
        if u.size != d:
            raise ValueError(f"direction has {u.size} entries, the embeddings have D = {d}")
        u = u / max(float(np.linalg.norm(u)), 1e-300)
        v, j = _orthogonal_axis(u, axes)
        zr = _rows(z[rows])
        x, y = zr @ u, zr @ v
        name = f"slice {slice_index}" if slice_index is not None else "the slice"
        xl = f"{name}: x = z·u (uncentred, what SIGReg scores)"
        yl = (f"principal axis {j + 1} made orthogonal to u (uncentred)" if j >= 0
              else "an axis orthogonal to u (uncentred)")
    return CloudView(kind=kind, x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64), rows=rows,
                     outlier=dist[rows] > thr, distance=dist[rows], xlabel=xl, ylabel=yl, n_total=n,
                     outlier_rows=out_rows, outlier_distance=dist[out_rows], threshold=thr, k=kk, level=float(level),
                     note=note, slice_index=slice_index, explained=share)


def reference_range(view: CloudView) -> float:
    """Half-range R of both axes: REFERENCE_HALF_RANGE, widened (5 % margin) only to fit every drawn point."""
    finite = np.concatenate([view.x[np.isfinite(view.x)], view.y[np.isfinite(view.y)]])
    top = float(np.abs(finite).max()) if finite.size else 0.0
    return REFERENCE_HALF_RANGE if top <= REFERENCE_HALF_RANGE else 1.05 * top


def cloud_figure(view: CloudView, title: Optional[str] = None, height: int = 480) -> go.Figure:
    """Scattergl of the drawn rows; outlier rows in a separate, highlighted trace (hover: row and distance)."""
    fig = go.Figure()
    for mask, name, style in (
        (~view.outlier, "rows", {"size": 4, "color": "#4C72B0", "opacity": 0.55}),
        (view.outlier, f"outlier rows ({view.outlier_rows.size:,} in all; N(0, I) has about "
                       f"{view.expected_outliers:.2g})",
         {"size": 8, "color": "#E31A1C", "symbol": "diamond", "line": {"color": "#000000", "width": 1}}),
    ):
        if not mask.any() and name != "rows":
            continue
        fig.add_trace(go.Scattergl(
            x=view.x[mask], y=view.y[mask], mode="markers", name=name, marker=style,
            customdata=np.stack([view.rows[mask], view.distance[mask]], -1),
            hovertemplate="row %{customdata[0]}<br>robust distance %{customdata[1]:.3g}"
                          "<br>(%{x:.3g}, %{y:.3g})<extra></extra>"))
    r95 = REFERENCE_RADIUS_95
    fig.add_shape(type="circle", xref="x", yref="y", x0=-r95, y0=-r95, x1=r95, y1=r95,
                  line={"color": "#2ca02c", "dash": "dash", "width": 1})
    fig.add_annotation(xref="x", yref="y", x=r95 * 0.7071, y=r95 * 0.7071, text="N(0, I) 95 %", showarrow=False,
                       xanchor="left", yanchor="bottom", font={"size": 10, "color": "#2ca02c"})
    if view.kind == "slice":
        for xv in (-1.96, 1.96):
            fig.add_vline(x=xv, line={"color": "#7f7f7f", "dash": "dot", "width": 1})
        fig.add_annotation(xref="x", x=1.96, yref="paper", y=1.0, text="N(0, 1) 95 %", showarrow=False,
                           xanchor="left", yanchor="top", font={"size": 10, "color": "#555555"})
    else:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    if title is None:
        title = ("Cloud on the top-2 principal axes" if view.kind == "pca"
                 else f"Slice {view.slice_index if view.slice_index is not None else ''} against an orthogonal "
                      "principal axis")
    fig = _layout(fig, title, view.xlabel, view.ylabel, height=height, legend="bottom")
    half = reference_range(view)  # fixed N(0, I) scale: a collapse stays a point or a line
    fig.update_xaxes(range=[-half, half], autorange=False)
    fig.update_yaxes(range=[-half, half], autorange=False)
    fig.add_annotation(xref="paper", yref="paper", x=0.0, y=1.0, yanchor="bottom", showarrow=False,
                       text=view.note, font={"size": 10, "color": "#555555"}, xanchor="left", yshift=2)
    return fig


def outlier_frame(view: CloudView) -> pd.DataFrame:
    """Every outlier row (not only the drawn ones) with its robust distance, farthest first."""
    order = np.argsort(-view.outlier_distance, kind="stable")
    return pd.DataFrame({"row": view.outlier_rows[order], "robust_distance": view.outlier_distance[order],
                         "threshold": view.threshold})


def step_cloud(z, num_slices: int, seed: int, preset: str, kind: str = "pca",
               slice_index: Optional[int] = None) -> tuple:
    """(CloudView, worst slice, M, statistic of the slice drawn) of one logged snapshot ``z``.

    The slices are the run's own directions (``sample_directions(D, M, seed)``); with ``kind="slice"``
    and no ``slice_index`` the worst slice (largest Epps–Pulley statistic) is drawn.
    """
    from sigreg_core.assessment.slices import score_slices
    from sigreg_core.core.directions import sample_directions

    a = sample_directions(z.shape[1], num_slices, seed).numpy()
    stat = np.asarray(score_slices(z, a, preset, device="cpu").statistic, dtype=np.float64)
    worst = int(np.argmax(stat))
    j = worst if slice_index is None else int(min(max(int(slice_index), 0), a.shape[1] - 1))
    view = cloud_view(z, kind, direction=a[:, j] if kind == "slice" else None, slice_index=j)
    return view, worst, a.shape[1], float(stat[j])
