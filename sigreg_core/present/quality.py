"""The quality measures as shown: JSON keys, CLI lines and a table beside their N(0, I) references.

Label-free: alpha-ReQ (Agrawal et al., NeurIPS 2022; :mod:`sigreg_core.assessment.alpha_req`)
on every set and LiDAR (Thilak et al. 2023, arXiv 2312.04000; :mod:`sigreg_core.assessment.lidar`)
on (V, N, D) views.  With labels: k-NN and linear-probe accuracy on a held-out split with
95 % Wilson intervals (:mod:`sigreg_core.assessment.probes`).  Which of these tracks
downstream quality best on a sweep with a known truth: ``docs/quality.md``.
No Streamlit here: the pages and the CLI call these.
"""
from __future__ import annotations

import math
from typing import Optional

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["QUALITY_LABELS", "QUALITY_NOTES", "probe_rows", "quality_fields", "quality_lines", "quality_table", "compare_quality_lines",
           "compare_quality_frame"]

QUALITY_LABELS = {
    "alpha_req": "α-ReQ (eigenspectrum decay)",
    "lidar": "LiDAR (LDA effective rank of views)",
    "knn_accuracy": "k-NN accuracy (k = 20, held out)",
    "linear_probe_accuracy": "linear-probe accuracy (held out)",
}

QUALITY_NOTES = {
    "alpha_req": "λ_k ∝ k^−α; near 1 generalises best, ≪ 1 noisy, ≫ 1 collapsing",
    "lidar": "effective rank of Σ_w^−½ Σ_b Σ_w^−½; higher = more linearly separable samples",
    "knn_accuracy": "cosine, votes exp(s / 0.07); 95 % Wilson interval",
    "linear_probe_accuracy": "multinomial logistic regression; 95 % Wilson interval",
}


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def quality_fields(metrics: dict) -> dict:
    """Top-level JSON keys from an assessment's metrics: ``alpha_req``, ``alpha_req_fit_range`` ([k_lo, k_hi])
    and ``lidar`` (views only)."""
    out = {}
    if "alpha_req" in metrics:
        out["alpha_req"] = metrics.get("alpha_req")
        out["alpha_req_fit_range"] = [int(_num(metrics.get(k))) if math.isfinite(_num(metrics.get(k))) else None
                                      for k in ("alpha_req_k_lo", "alpha_req_k_hi")]
    if "lidar" in metrics:
        out["lidar"] = metrics.get("lidar")
    return out


def _fmt(v: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(v) else f"{v:.{digits}g}"


def quality_lines(rows: list) -> list:
    """One ``quality:`` line per scored file (CLI table footer); names made visible."""
    from sigreg_core.util.text import visible

    lines = []
    for r in rows:
        parts = []
        a = _num(r.get("alpha_req"))
        rng = r.get("alpha_req_fit_range") or [None, None]
        if "alpha_req" in r:
            parts.append(f"α-ReQ {_fmt(a)} (fit k = {rng[0]}..{rng[1]})")
        if "lidar" in r:
            parts.append(f"LiDAR {_fmt(_num(r.get('lidar')), 4)}")
        for key, name in (("knn_accuracy", "k-NN accuracy"), ("linear_probe_accuracy", "linear probe")):
            if key in r:
                lo, hi = (r.get(f"{key}_interval") or [float("nan")] * 2)
                parts.append(f"{name} {_num(r[key]):.3f} [{_num(lo):.3f}, {_num(hi):.3f}]")
        if parts:
            lines.append(f"quality: {visible(r.get('file', ''))}: " + "; ".join(parts))
    return lines


def quality_table(metrics: dict, n: int, d: int, views: int = 1, probes: Optional[dict] = None) -> "pd.DataFrame":
    """The quality measures of one set beside the N(0, I) reference of the same shape: measure, this set,
    N(0, I) reference, reads (with the interval of an accuracy in the ``this set`` column's note)."""
    from sigreg_core.assessment.alpha_req import alpha_req_reference
    from sigreg_core.assessment.lidar import lidar_reference

    rows = []
    if "alpha_req" in metrics:
        ref = alpha_req_reference(n, d)
        rng = f" (fit k = {metrics.get('alpha_req_k_lo')}..{metrics.get('alpha_req_k_hi')})"
        rows.append(("alpha_req", _num(metrics["alpha_req"]), ref["alpha"], QUALITY_NOTES["alpha_req"] + rng))
    if "lidar" in metrics and views >= 2:
        rows.append(("lidar", _num(metrics["lidar"]), lidar_reference(views, n, d), QUALITY_NOTES["lidar"]))
    for key in ("knn_accuracy", "linear_probe_accuracy"):
        if probes and key in probes:
            lo, hi = probes.get(f"{key}_interval") or [float("nan")] * 2
            rows.append((key, _num(probes[key]), float("nan"),
                         f"{QUALITY_NOTES[key]} [{_num(lo):.3f}, {_num(hi):.3f}]"))
    import pandas as pd  # lazily: `sigreg score` prints its quality lines without pandas

    return pd.DataFrame([{"metric": QUALITY_LABELS[k], "this set": v, "N(0, I) reference": r, "reads": note}
                         for k, v, r, note in rows], columns=["metric", "this set", "N(0, I) reference", "reads"])


def probe_rows(probes: dict) -> list:
    """The probes' rows of a companion-metrics table (metric, this set, N(0, I) reference = NaN, reads):
    accuracy, its 95 % Wilson interval, and the rows used when they were a subsample."""
    info = probes.get("probes") or {}
    rows_used, rows_of = info.get("rows"), info.get("rows_of")
    sub = (f"; on a seeded subsample of {int(rows_used):,} of {int(rows_of):,} rows"
           if rows_used and rows_of and int(rows_used) < int(rows_of) else "")
    out = []
    for key, detail in (("knn_accuracy", "knn"), ("linear_probe_accuracy", "linear")):
        if key in probes:
            lo, hi = probes.get(f"{key}_interval") or [float("nan")] * 2
            n_test = (info.get(detail) or {}).get("n_test")
            held = f", {int(n_test):,} held-out rows" if n_test else ""
            out.append({"metric": QUALITY_LABELS[key], "this set": _num(probes[key]), "N(0, I) reference": float("nan"),
                        "reads": f"{QUALITY_NOTES[key]} [{_num(lo):.3f}, {_num(hi):.3f}]{held}{sub}"})
    return out


#: the measure to rank by, best first, when several are present (labels beat label-free proxies)
RANK_BY = ("linear_probe_accuracy", "knn_accuracy")


def compare_quality_lines(quality: dict, metrics: Optional[dict] = None) -> list:
    """``sigreg compare`` footer: one ``quality:`` line per set, then the sets ranked by probe accuracy
    when labels were given, else (with every set's ``metrics``) by the best label-free predictor of
    the validity study (RankMe; docs/quality.md)."""
    from sigreg_core.util.text import visible

    lines = quality_lines([dict(q, file=name) for name, q in quality.items()])
    for key in RANK_BY:
        if quality and all(key in q for q in quality.values()):
            order = sorted(quality, key=lambda nm: -_num(quality[nm][key]))
            lines.append(f"ranked by {QUALITY_LABELS[key]}: " + " > ".join(
                f"{visible(nm)} ({_num(quality[nm][key]):.3f})" for nm in order))
            return lines
    from sigreg_core.compare.ranking import BEST_PREDICTOR as key, RANK_MEASURES  # one home of "the best"

    label = RANK_MEASURES[key][0]
    if metrics and all(key in m for m in metrics.values()):
        order = sorted(metrics, key=lambda nm: -_num(metrics[nm][key]))
        lines.append(f"ranked by {label} (no labels; the best label-free predictor of probe quality in "
                     f"docs/quality.md): " + " > ".join(f"{visible(nm)} ({_num(metrics[nm][key]):.4g})" for nm in order))
    return lines


def compare_quality_frame(cmp, probes: Optional[dict] = None, by: Optional[str] = None) -> "pd.DataFrame":
    """One row per set of a :class:`~sigreg_core.compare.model.Comparison`: its rank, verdict, RankMe, α-ReQ
    (with its fit range), LiDAR (views), SIGReg × null mean and, with ``probes`` ({set:
    :func:`~sigreg_core.assessment.probes.label_quality`}), the probe accuracies with their intervals.

    Sorted best first by ``by`` (a key of :data:`sigreg_core.compare.ranking.RANK_MEASURES`, ranked by
    :func:`sigreg_core.compare.ranking.rank_by`); None: by probe accuracy when given, else by RankMe (the best
    label-free predictor in docs/quality.md).  Every measure column is numeric, so a sortable table ranks by any."""
    from sigreg_core.compare.ranking import BEST_PREDICTOR, rank_by

    if by is None:
        by = next((k for k in RANK_BY if probes and all(k in (probes.get(n) or {}) for n in cmp.names)),
                  BEST_PREDICTOR)
    order = rank_by(cmp, by, probes)
    rows = []
    for i, name in enumerate(order):
        s = cmp.sets[name]
        m = s.metrics
        row = {"rank": i + 1, "set": name, "verdict": s.verdict, "RankMe": _num(m.get("rankme")),
               "α-ReQ": _num(m.get("alpha_req")),
               "α-ReQ fit k from": _num(m.get("alpha_req_k_lo")), "α-ReQ fit k to": _num(m.get("alpha_req_k_hi"))}
        if "lidar" in m:
            row["LiDAR"] = _num(m["lidar"])
        row["SIGReg × null mean"] = _num(s.sigreg / s.null_mean) if s.null_mean else float("nan")
        q = (probes or {}).get(name) or {}
        for key, col in (("linear_probe_accuracy", "linear-probe accuracy"), ("knn_accuracy", "k-NN accuracy")):
            if key in q:
                lo, hi = q.get(f"{key}_interval") or [float("nan")] * 2
                row[col], row[f"{col} low"], row[f"{col} high"] = _num(q[key]), _num(lo), _num(hi)
        rows.append(row)
    import pandas as pd

    df = pd.DataFrame(rows)
    df.attrs["ranked_by"] = by
    return df
