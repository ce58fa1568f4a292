"""Ranking every set of a comparison, and every pair of sets against each other.

* :func:`ranking_frame` — the sets best to worst by the headline:
  :func:`sigreg_core.assessment.verdict.rank_key` of each set's assessment answers (the
  one ordering of assessed sets, kept by the assessment: the verdict, then the distance),
  never an ordering of Compare's own.  Beside it, SIGReg's multiple of its exact null mean
  (SIGReg / E_null[SIGReg]; LeJEPA, arXiv 2511.08544: E_null = sum_k c_k (1 - exp(-t_k^2))
  per slice).  Relative columns are in units of the null mean, so a 16-unit and a 1914-unit difference read as 15× and
  1800× the healthy floor.  Each set's bootstrap interval of that multiple and the
  comparison with the set ranked just above it (bootstrap interval of the delta) come along.
* :func:`rank_by` — the sets best to worst by one measure instead (the "rank by" of the Compare page and
  ``sigreg compare --rank-by``): the verdict (the headline, default), RankMe (higher; the best label-free
  predictor of probe quality on our sweep, Spearman +0.969: docs/quality.md), alpha-ReQ (closest to 1:
  Agrawal et al. 2022, lambda_k ∝ k^-alpha, alpha near 1 generalises best), LiDAR of views (higher;
  Thilak et al. 2023), SIGReg × null mean (lower), and with labels k-NN / linear-probe accuracy (higher).
  Sets without a value of the measure go last, in the headline's order.
* :func:`pairwise_frame` — every ordered pair (a, b), a ≠ b: delta a − b of one metric
  with its bootstrap interval (for SIGReg also ``relative``: ÷ the null mean of b), significance, which is healthier, and the slice-paired
  Wilcoxon p-value (adjusted for the slices' dependence); a matrix of these is
  :func:`pairwise_matrix`.

The bootstrap draws of each set are independent, so any pair combines them without
scoring again (:func:`sigreg_core.compare.statistics.delta_between`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sigreg_core.assessment import verdict as _verdict
from sigreg_core.compare.model import DELTA_METRICS, NO_SPREAD, Comparison
from sigreg_core.compare.statistics import centred_interval, delta_between

__all__ = ["RANK_MEASURES", "BEST_PREDICTOR", "rank_by", "measure_values", "available_measures", "ranking_frame", "pairwise_frame", "pairwise_matrix", "rank_order", "headline_order", "interval_text", "RANKING_COLUMNS"]

RANKING_COLUMNS = ["rank", "set", "verdict", "distance", "sigreg", "x_null", "x_null_low", "x_null_high", "excess_over_best",
                   "p_value", "rankme", "modes", "vs_above", "interval_note"]


#: what a comparison can be ranked by: key -> (label, which way is better: "higher", "lower", "near 1"; None: the verdict)
RANK_MEASURES = {
    "verdict": ("verdict (the headline)", None),
    "rankme": ("RankMe", "higher"),
    "alpha_req": ("α-ReQ (closest to 1)", "near 1"),
    "lidar": ("LiDAR (views)", "higher"),
    "x_null": ("SIGReg × null mean", "lower"),
    "knn_accuracy": ("k-NN accuracy (labels)", "higher"),
    "linear_probe_accuracy": ("linear-probe accuracy (labels)", "higher"),
}
#: the label-free measure that tracked downstream quality best in the validity study (docs/quality.md)
BEST_PREDICTOR = "rankme"


def measure_values(cmp: Comparison, probes=None) -> dict:
    """{measure: {set: value}} of every measure in :data:`RANK_MEASURES` but the verdict (NaN where a set
    has none); ``probes``: {set: :func:`sigreg_core.assessment.probes.label_quality`} for the accuracies."""
    out = {k: {} for k in RANK_MEASURES if k != "verdict"}
    for name in cmp.names:
        s = cmp.sets[name]
        q = (probes or {}).get(name) or {}
        nm = s.null_mean if s.null_mean else float("nan")
        vals = {"rankme": s.metrics.get("rankme"), "alpha_req": s.metrics.get("alpha_req"),
                "lidar": s.metrics.get("lidar"), "x_null": s.sigreg / nm,
                "knn_accuracy": q.get("knn_accuracy"), "linear_probe_accuracy": q.get("linear_probe_accuracy")}
        for k, v in vals.items():
            try:
                out[k][name] = float(v)
            except (TypeError, ValueError):
                out[k][name] = float("nan")
    return out


def available_measures(cmp: Comparison, probes=None) -> list:
    """The measures of :data:`RANK_MEASURES` with a finite value for at least one set (the verdict always)."""
    vals = measure_values(cmp, probes)
    return [k for k in RANK_MEASURES if k == "verdict" or any(math.isfinite(v) for v in vals[k].values())]


def rank_by(cmp: Comparison, measure: str = "verdict", probes=None) -> list:
    """Set names best to worst by ``measure`` (a key of :data:`RANK_MEASURES`); ties and sets without a
    value keep the headline's order, the latter last.  A measure no set has is a one-line ``ValueError``."""
    if measure not in RANK_MEASURES:
        raise ValueError(f"cannot rank by {measure!r}; one of {', '.join(RANK_MEASURES)}")
    head = rank_order(cmp)
    if measure == "verdict":
        return head
    if measure not in available_measures(cmp, probes):
        need = ("labels (--labels, or a labels file on the Compare page)" if "accuracy" in measure
                else "views (V, N, D)" if measure == "lidar" else "a value")
        raise ValueError(f"cannot rank by {measure}: no set has it; it needs {need}")
    vals = measure_values(cmp, probes)[measure]
    how = RANK_MEASURES[measure][1]

    def key(name):
        v = vals[name]
        if not math.isfinite(v):
            return (1, 0.0, head.index(name))
        score = -v if how == "higher" else v if how == "lower" else abs(v - 1.0)
        return (0, score, head.index(name))

    return sorted(cmp.names, key=key)


def headline_order(names, answers) -> list:
    """``names`` best to worst by :func:`sigreg_core.assessment.verdict.rank_key` of ``answers[name]``
    (each set's assessment answers): the headline's one ordering; ties keep the given order."""
    return sorted(names, key=lambda n: _verdict.rank_key(answers[n]))


def rank_order(cmp: Comparison) -> list:
    """Set names best to worst by the headline (:func:`headline_order` of each set's answers)."""
    return headline_order(cmp.names, {n: cmp.sets[n].answers for n in cmp.names})


def _pair_text(d, above: str) -> str:
    if d.note:
        return d.note
    if not d.significant:
        return f"not significantly different from {above}"
    return f"{'less' if d.healthier == above else 'more'} healthy than {above} (significant)"


def ranking_frame(cmp: Comparison) -> pd.DataFrame:
    """One row per set, best first (see the module docstring); NaN where a value does not exist."""
    order = rank_order(cmp)
    best = cmp.sets[order[0]]
    rows = []
    for i, name in enumerate(order):
        s = cmp.sets[name]
        nm = s.null_mean if s.null_mean else float("nan")
        lo = hi = float("nan")
        note = ""
        boot = cmp.draws.get(name, {}).get("sigreg")
        if boot is not None and len(boot) > 1:
            if float(np.std(boot, ddof=1)) > 1e-6 * max(abs(s.sigreg), abs(s.null_mean or 1.0)):
                a, b = centred_interval(s.sigreg, boot, cmp.level)
                lo, hi = a / nm, b / nm
            else:
                note = NO_SPREAD
        elif not cmp.n_boot:
            note = "no bootstrap (resamples = 0)"
        vs_above = ""
        if i > 0:
            above = order[i - 1]
            ds, _ = delta_between(s, cmp.sets[above], cmp.draws.get(name, {}), cmp.draws.get(above, {}),
                                  n_boot=cmp.n_boot, level=cmp.level)
            d = next((x for x in ds if x.metric == "sigreg"), None)
            vs_above = _pair_text(d, above) if d is not None and cmp.n_boot else "no bootstrap (resamples = 0)"
        rows.append({
            "rank": i + 1, "set": name, "verdict": s.verdict, "distance": s.distance, "sigreg": s.sigreg, "x_null": s.sigreg / nm,
            "x_null_low": lo, "x_null_high": hi, "excess_over_best": (s.sigreg - best.sigreg) / nm,
            "p_value": s.p_value, "rankme": s.metrics.get("rankme", float("nan")),
            "modes": ", ".join(s.modes) if s.modes else "none", "vs_above": vs_above, "interval_note": note,
        })
    return pd.DataFrame(rows, columns=RANKING_COLUMNS)


def pairwise_frame(cmp: Comparison, metric: str = "sigreg") -> pd.DataFrame:
    """Every ordered pair (set, reference): delta set − reference of ``metric`` with interval and tests."""
    if metric not in DELTA_METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(DELTA_METRICS)}")
    rows = []
    for a in cmp.names:
        for b in cmp.names:
            if a == b:
                continue
            ds, pt = delta_between(cmp.sets[a], cmp.sets[b], cmp.draws.get(a, {}), cmp.draws.get(b, {}),
                                   n_boot=cmp.n_boot, level=cmp.level)
            d = next((x for x in ds if x.metric == metric), None)
            if d is None:
                continue
            nm = cmp.sets[b].null_mean if metric == "sigreg" and cmp.sets[b].null_mean else float("nan")
            rows.append({
                "set": a, "reference": b, "metric": metric, "value": d.value, "relative": d.value / nm,
                "relative_low": d.ci_low / nm, "relative_high": d.ci_high / nm,
                "ci_low": d.ci_low, "ci_high": d.ci_high, "p_boot": d.p_boot, "significant": d.significant,
                "healthier": d.healthier, "note": d.note,
                "wilcoxon_p_adjusted": pt.wilcoxon_p_adjusted, "fraction_lower": pt.fraction_lower,
            })
    return pd.DataFrame(rows, columns=["set", "reference", "metric", "value", "relative", "relative_low",
                                       "relative_high", "ci_low", "ci_high",
                                       "p_boot", "significant", "healthier", "note", "wilcoxon_p_adjusted",
                                       "fraction_lower"])


def pairwise_matrix(cmp: Comparison, metric: str = "sigreg", order=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(code, text) square frames, rows = set, columns = reference, in ``order`` (default: the ranking).

    ``code``: -1 the row set is significantly healthier than the column set, +1 significantly
    less healthy, 0 not significantly different, NaN on the diagonal or where no interval
    exists.  ``text``: the delta (× null mean for SIGReg) and its interval, or the reason
    there is none.
    """
    names = list(order or rank_order(cmp))
    pf = pairwise_frame(cmp, metric)
    code = pd.DataFrame(np.nan, index=names, columns=names)
    text = pd.DataFrame("–", index=names, columns=names)
    rel = metric == "sigreg"
    for r in pf.itertuples(index=False):
        v, lo, hi = (r.relative, r.relative_low, r.relative_high) if rel else (r.value, r.ci_low, r.ci_high)
        unit = "× null" if rel else ""
        if r.note:
            text.loc[r.set, r.reference] = f"{_g(v)} {unit} ({r.note})".replace("  ", " ")
            continue
        if not math.isfinite(r.ci_low):
            text.loc[r.set, r.reference] = f"{_g(v)} {unit}".strip()
            continue
        text.loc[r.set, r.reference] = f"{_g(v)} {interval_text(lo, hi, signed=True)} {unit}".strip()
        if r.significant and r.healthier is not None:
            code.loc[r.set, r.reference] = -1.0 if r.healthier == r.set else 1.0
        else:
            code.loc[r.set, r.reference] = 0.0
    return code, text


def _g(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{v:+.4g}" if math.isfinite(v) else "–"


def interval_text(lo: float, hi: float, *, signed: bool = False, digits: int = 4) -> str:
    """``[lo, hi]`` with as many significant digits as it takes for the two bounds to differ (up to 9).

    A narrow interval around a large value (e.g. [1913.9, 1914.1]) must not print as
    [1914, 1914], which reads like a zero-width interval.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "–"
    sign = "+" if signed else ""
    for d in range(digits, 10):
        a, b = f"{lo:{sign}.{d}g}", f"{hi:{sign}.{d}g}"
        if a != b or lo == hi:
            return f"[{a}, {b}]"
    return f"[{a}, {b}]"
