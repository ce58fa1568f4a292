"""A latent-health report: the data behind the Inspect page and its exports.

A report is the assessment of one embedding set Z (N x D) under one set of
:class:`Settings` (preset, slices M, seed, slice family, device, row limit):
SIGReg — the mean over M unit directions u_m of the Epps–Pulley statistic

    EP(Z u) = s(N) sum_k c_k [ (mean_n cos(t_k x_n) - exp(-t_k^2/2))^2 + (mean_n sin(t_k x_n))^2 ]

(LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) — with per-slice
p-values from the exact null law, the verdict and collapse modes, and the
companion metrics.  The numbers come from :func:`sigreg_core.assessment.assess.assess`;
this module only arranges them for display and export, all as numpy / pandas
(never torch tensors), so a report can be cached and reused for every slice
selection without recomputing the statistic.

* :func:`build_report` — Z and settings → :class:`Report` (calls ``assess`` once).
* :func:`slice_view` — the data of one slice (projected values, moments, ECF on a
  fine grid and at the nodes, weighted error per node) → :class:`SliceView`.
* :func:`pick_slice` — worst / median / best / by index.
* :func:`report_figures` — every figure of the report (from :mod:`sigreg_core.present.figures`).
* exports live in :mod:`sigreg_core.present.exports` (CSV, JSON, HTML); the
  HTML report is standalone (plotly.js inlined once), so it opens offline.
* the bounded LRU of reports is :class:`sigreg_core.present.report_cache.ReportCache`.
* :func:`selected_slice_figures` — one slice's view and figures, cached on the report.
* Re-exported from :mod:`sigreg_core.present.reading`: :func:`verdict_tone`, :func:`format_p`,
  :func:`healthy_references`, :func:`metrics_table`, :func:`min_p_note`.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from sigreg_core.present import figures as F
from sigreg_core.present.reading import (  # noqa: F401 - re-exported: the page and the exports read them here
    METRIC_LABELS,
    METRIC_NOTES,
    TONE_COLOURS,
    format_p,
    healthy_references,
    metrics_table,
    min_p_note,
    verdict_tone,
)
from sigreg_core.util.jsonsafe import to_jsonable
from sigreg_core.core.presets import get_preset

__all__ = [
    "Settings",
    "DEFAULTS",
    "SLICE_FAMILIES",
    "METRIC_LABELS",
    "AUTO_NULL_DRAWS",
    "available_families",
    "Report",
    "SliceView",
    "build_report",
    "slice_view",
    "pick_slice",
    "report_figures",
    "TONE_COLOURS",
    "METRIC_NOTES",
    "verdict_tone",
    "format_p",
    "healthy_references",
    "metrics_table",
    "min_p_note",
    "selected_slice_figures",
    "slice_rank",
]

#: Monte Carlo null draws run by ``auto`` where no exact law exists (cached on disk by ``assess``).
AUTO_NULL_DRAWS = 100

#: Slice families and their labels (the numbers come from ``sigreg_core.assessment.families``).
SLICE_FAMILIES = {
    "random": "random (LeJEPA)",
    "coordinate": "coordinate axes",
    "principal": "principal axes",
    "worst": "worst direction (searched)",
}


def available_families() -> list[str]:
    """The slice families this install can score (``random`` always)."""
    try:
        from sigreg_core.assessment import families as fam
    except ImportError:
        return ["random"]
    names = getattr(fam, "FAMILIES", None)
    if names is None:
        return ["random"]
    names = list(names)
    ordered = [f for f in SLICE_FAMILIES if f in names] + [f for f in names if f not in SLICE_FAMILIES]
    return ordered or ["random"]


@dataclass(frozen=True)
class Settings:
    """What the sidebar sets; part of every cache key."""

    preset: str = "lejepa"
    num_slices: int = 1024
    seed: int = 0
    family: str = "random"
    device: str = "auto"
    max_rows: int = 65536
    null_draws: Optional[int] = None  # None: auto (0 when the exact law applies, else AUTO_NULL_DRAWS)

    def key(self) -> tuple:
        return dataclasses.astuple(self)

    def resolved_null_draws(self) -> int:
        """Monte Carlo null draws passed to ``assess``.

        The random and coordinate families under an ECF preset have exact per-slice
        p-values and an exact verdict without any simulation, so ``auto`` runs none
        (interactive speed); the principal family and the modulus form need a
        simulated null for their p-values, so ``auto`` runs :data:`AUTO_NULL_DRAWS`.
        """
        if self.null_draws is not None:
            return int(self.null_draws)
        from sigreg_core.core.nulllaw import has_exact_law

        needs_mc = self.family == "principal" or not has_exact_law(self.preset)
        return AUTO_NULL_DRAWS if needs_mc and self.family != "worst" else 0


DEFAULTS = Settings()


@dataclass
class Report:
    """Everything the Inspect page draws, as numpy / pandas."""

    settings: Settings
    summary: dict                  # verdict card: sigreg, null_mean, ratio, p_value, verdict, modes, ...
    per_slice: pd.DataFrame        # one row per slice: slice, statistic, p_value, mean, std, skew, kurtosis
    nodes: np.ndarray              # (K,)
    ecf_real: np.ndarray           # (M, K)
    ecf_imag: np.ndarray           # (M, K)
    weighted_error: np.ndarray     # (M, K)
    directions: np.ndarray         # (D, M) float32
    null_mean: float
    q95: float
    q999: float
    metrics: dict                  # companion metrics (scalars)
    eigenvalues: np.ndarray        # covariance eigenvalues, largest first
    dim_mean: np.ndarray           # (D,)
    dim_std: np.ndarray            # (D,)
    assessment: dict               # the assessment's own JSON-safe dict
    timings: dict = field(default_factory=dict)
    view_rows: list = field(default_factory=list)  # (V, N, D) input: one summary dict per view
    _figures: dict = field(default_factory=dict, repr=False)  # selection-independent figures, built once
    _slices: "OrderedDict" = field(default_factory=OrderedDict, repr=False)  # slice -> (view, figures), LRU

    @property
    def num_slices(self) -> int:
        return int(self.per_slice.shape[0])

    @property
    def statistic(self) -> np.ndarray:
        return self.per_slice["statistic"].to_numpy()

    @property
    def p_values(self) -> np.ndarray:
        return self.per_slice["p_value"].to_numpy()


@dataclass
class SliceView:
    """One slice, ready to draw."""

    index: int
    values: np.ndarray             # projected values (N,)
    statistic: float
    p_value: float
    moments: dict                  # mean, std, skew, kurtosis (excess)
    t_grid: np.ndarray
    ecf_real_grid: np.ndarray
    ecf_imag_grid: np.ndarray
    nodes: np.ndarray
    ecf_real_nodes: np.ndarray
    ecf_imag_nodes: np.ndarray
    weighted_error: np.ndarray


# ------------------------------------------------------------------ build
def _jsonable(x: Any) -> Any:
    return to_jsonable(x)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def build_report(
    z: np.ndarray,
    settings: Settings = DEFAULTS,
    *,
    progress: Optional[Callable[[float, str], None]] = None,
) -> Report:
    """Assess ``z`` — (N, D), or (V, N, D) views — under ``settings`` and arrange the result.

    ``progress(fraction, message)`` is passed on to ``assess``.  For (V, N, D) input the
    summary is the views' combination (SIGReg averaged as lejepa does, p-values
    Cauchy-combined) and ``view_rows`` lists each view's numbers.
    """
    from sigreg_core.assessment.assess import assess

    z = np.asarray(z)
    if z.ndim not in (2, 3):
        raise ValueError(f"expected an array of shape (N, D) or (V, N, D), got shape {tuple(z.shape)}")
    t0 = time.perf_counter()
    draws, budget_note = settings.resolved_null_draws(), None
    if settings.null_draws is None and draws > 0:  # "auto" is fitted to the work budget (assessment/budget.py)
        from sigreg_core.assessment.budget import fit_null_draws

        draws, budget_note = fit_null_draws(int(z.shape[-1]), None, draws, int(z.shape[0]) if z.ndim == 3 else 1,
                                            rows=int(z.shape[-2]))  # priced on the route taken (N x N or D x D)
    a = assess(
        z,
        num_slices=settings.num_slices,
        seed=settings.seed,
        preset=settings.preset,
        family=settings.family,
        device=settings.device,
        progress=progress,
        null_draws=draws,
    )
    t_assess = time.perf_counter() - t0
    preset = get_preset(settings.preset)
    sl = a.slices
    per = a.per_slice.copy()
    if "slice" not in per.columns:
        per.insert(0, "slice", np.arange(len(per)))
    n, d = int(z.shape[-2]), int(z.shape[-1])
    nq = dict(a.null_quantiles)
    q95 = float(nq.get(0.95, float("nan")))
    q999 = float(nq.get(0.999, float("nan")))
    met = dict(a.metrics)
    metrics = {k: v for k, v in met.items() if np.ndim(v) == 0 and k not in ("n", "dim")}
    summary = {
        "sigreg": float(a.sigreg),
        "null_mean": float(a.null_mean),
        "sigreg_over_null": float(a.sigreg_over_null),
        "p_value": float(a.p_value),
        "verdict": str(a.verdict),
        "answers": _jsonable(dict(getattr(a, "answers", {}) or {})),
        "outliers": _jsonable(dict(getattr(a, "outliers", {}) or {})),
        "modes": list(a.modes),
        "mode_evidence": _jsonable(dict(a.mode_evidence)),
        "n": n,
        "d": d,
        "m": int(len(per)),
        "views": int(z.shape[0]) if z.ndim == 3 else 1,
        "preset": preset.name,
        "seed": int(settings.seed),
        "family": settings.family,
        "null_draws": draws,
        "work_budget": budget_note or (a.config or {}).get("work_budget"),
        "null_quantiles_source": str(nq.get("source", "")),
        "null_band_per_rank": _jsonable(nq.get("per_rank")) if nq.get("per_rank") else None,
        "device": str(getattr(a, "device", settings.device)),
        "seconds": t_assess,
    }
    view_rows = [
        {"view": i, "SIGReg": float(v.sigreg), "× null mean": float(v.sigreg_over_null),
         "p-value": float(v.p_value), "verdict": str(v.verdict), "modes": ", ".join(v.modes) or "none"}
        for i, v in enumerate(getattr(a, "views", None) or [])
    ]
    return Report(
        settings=settings,
        summary=summary,
        per_slice=per,
        nodes=np.asarray(sl.nodes, dtype=np.float64),
        ecf_real=np.asarray(sl.ecf_real, dtype=np.float64),
        ecf_imag=np.asarray(sl.ecf_imag, dtype=np.float64),
        weighted_error=np.asarray(sl.weighted_error, dtype=np.float64),
        directions=_np(a.directions).astype(np.float32, copy=False),
        null_mean=float(a.null_mean),
        q95=q95,
        q999=q999,
        metrics=_jsonable(metrics),
        eigenvalues=np.asarray(met["eigenvalues"], dtype=np.float64),
        dim_mean=np.asarray(met["dim_mean"], dtype=np.float64),
        dim_std=np.asarray(met["dim_std"], dtype=np.float64),
        assessment=_jsonable(a.to_dict()),
        timings={"assess_s": t_assess, "total_s": time.perf_counter() - t0},
        view_rows=view_rows,
    )


# ---------------------------------------------------------------- slices
def pick_slice(report: Report, how: str, index: Optional[int] = None) -> int:
    """Slice index for ``how`` in {"worst", "median", "best", "index"}."""
    stat = report.statistic
    order = np.argsort(stat, kind="stable")
    if how == "worst":
        return int(order[-1])
    if how == "best":
        return int(order[0])
    if how == "median":
        return int(order[(len(order) - 1) // 2])
    if how == "index":
        if index is None or not 0 <= int(index) < len(stat):
            raise ValueError(f"slice index must be in [0, {len(stat) - 1}], got {index}")
        return int(index)
    raise ValueError(f"unknown slice choice {how!r}; use worst, median, best or index")


def _moments(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    m = float(x.mean())
    c = x - m
    var = float(np.mean(c * c))
    sd = math.sqrt(var)
    if var > 0:
        skew = float(np.mean(c**3) / var**1.5)
        kurt = float(np.mean(c**4) / var**2 - 3.0)
    else:
        skew, kurt = float("nan"), float("nan")
    return {"mean": m, "std": sd, "skew": skew, "kurtosis": kurt}


def slice_view(z: np.ndarray, report: Report, index: int, *, grid_points: int = 241) -> SliceView:
    """Project ``z`` on slice ``index`` of ``report`` and gather what the slice views draw.

    Moments and node values come from the report (the statistic's own float64
    sums); the fine ECF grid (to t = max node + 1) is computed here for drawing.
    """
    m = report.num_slices
    if not 0 <= int(index) < m:
        raise ValueError(f"slice index must be in [0, {m - 1}], got {index}")
    j = int(index)
    u = report.directions[:, j]
    zz = np.asarray(z)
    if zz.dtype != np.float32:
        zz = zz.astype(np.float32)
    values = (zz @ u).astype(np.float64)  # float32 GEMV (the loader's dtype): ~1e-6 relative, for drawing
    row = report.per_slice.iloc[j]
    moments = {k: float(row[k]) if k in row.index else float("nan") for k in ("mean", "std", "skew", "kurtosis")}
    if not all(np.isfinite(v) for v in moments.values()):
        moments = _moments(values)
    nodes = report.nodes
    t_hi = float(max(abs(nodes.min()), abs(nodes.max()))) + 1.0
    t_lo = 0.0 if nodes.min() >= 0 else -t_hi
    t = np.linspace(t_lo, t_hi, grid_points)
    re, im = F.ecf_on_grid(values, t)
    return SliceView(
        index=j,
        values=values,
        statistic=float(row["statistic"]),
        p_value=float(row["p_value"]) if "p_value" in row.index else float("nan"),
        moments=moments,
        t_grid=t,
        ecf_real_grid=re,
        ecf_imag_grid=im,
        nodes=nodes,
        ecf_real_nodes=report.ecf_real[j],
        ecf_imag_nodes=report.ecf_imag[j],
        weighted_error=report.weighted_error[j],
    )


def _units(report: Report) -> str:
    return "× N" if get_preset(report.settings.preset).scale_by_n else "unscaled"


def overview_figures(report: Report, selected: Optional[int] = None) -> dict:
    """Figures that do not depend on a projected slice.

    With ``selected``, the sorted-statistics chart rings that slice (the HTML report); without it
    (the Inspect page) every figure, the sorted chart included, is built once per report and reused.
    """
    fixed = report._figures
    if not fixed:
        fixed.update({
            "p_values": F.pvalue_figure(report.p_values),
            "ecf_band": F.ecf_band_figure(report.nodes, report.ecf_real, report.ecf_imag),
            "spectrum": F.spectrum_figure(report.eigenvalues, n=int(report.summary["n"])),
            "per_dimension": F.per_dim_figure(report.dim_mean, report.dim_std),
        })
    if selected is None:  # the page's sorted chart: built once per report, the same bytes on every run
        if "slice_statistics" not in fixed:
            fixed["slice_statistics"] = _sorted_chart(report, None)
        return dict(fixed)
    return {**fixed, "slice_statistics": _sorted_chart(report, selected)}


def _sorted_chart(report: Report, selected: Optional[int]):
    return F.slice_statistics_figure(
        report.statistic, q95=report.q95, q999=report.q999, null_mean=report.null_mean,
        band_per_rank=report.summary.get("null_band_per_rank"),
        p_values=report.p_values, selected=selected, units=_units(report))


def slice_figures(report: Report, view: SliceView) -> dict:
    """Figures of the selected slice."""
    return {
        "histogram": F.histogram_figure(view.values, slice_index=view.index),
        "qq": F.qq_figure(view.values, slice_index=view.index),
        "cf": F.cf_figure(view.t_grid, view.ecf_real_grid, view.ecf_imag_grid, view.nodes,
                          view.ecf_real_nodes, view.ecf_imag_nodes, slice_index=view.index),
        "weighted_error": F.weighted_error_figure(view.nodes, view.weighted_error, slice_index=view.index,
                                                  units=_units(report)),
    }


def slice_rank(report: Report, index: int) -> int:
    """Rank of slice ``index`` in the sorted chart (1 = worst): its x position there (ties keep index order)."""
    order = np.argsort(-np.asarray(report.statistic, dtype=np.float64), kind="stable")
    return int(np.nonzero(order == int(index))[0][0]) + 1


def selected_slice_figures(report: Report, z: np.ndarray, index: int, *, keep: int = 16) -> tuple:
    """(SliceView, figures of that slice + the sorted chart), cached on the report.

    The figures: ``slice_statistics``, the sorted chart, deliberately *without* a ring on the
    selected slice: its bytes are the same for every slice, so the browser does not redraw its M
    points on a slice change (that redraw was most of a slice change's time in Chromium, issue 12;
    the page names the selected slice's rank in its heading instead); the four views
    (``histogram``, ``qq``, ``cf``, ``weighted_error``) and ``slice_views``, those four as one
    2 × 2 figure (what the Inspect page draws: one chart to redraw per slice change).

    ``z`` must be the array the report was built from.  Going back to a slice seen
    before (worst ↔ median, a click back) costs a dictionary lookup; the last
    ``keep`` slices are kept.
    """
    j = int(index)
    with _SLICE_LOCK:
        hit = report._slices.get(j)
        if hit is not None:
            report._slices.move_to_end(j)
            return hit
    view = slice_view(z, report, j)
    views = slice_figures(report, view)
    figs = {"slice_statistics": overview_figures(report)["slice_statistics"], **views,
            "slice_views": F.slice_views_figure(views["histogram"], views["qq"], views["cf"],
                                                views["weighted_error"], slice_index=j)}
    with _SLICE_LOCK:
        report._slices[j] = (view, figs)
        while len(report._slices) > keep:
            report._slices.popitem(last=False)
    return view, figs


_SLICE_LOCK = threading.Lock()


def report_figures(report: Report, view: SliceView) -> dict:
    """Every figure of the report, in page order."""
    ov = overview_figures(report, selected=view.index)
    sv = slice_figures(report, view)
    order = ["slice_statistics", "p_values", "histogram", "qq", "cf", "weighted_error", "ecf_band",
             "spectrum", "per_dimension"]
    both = {**ov, **sv}
    return {k: both[k] for k in order}
