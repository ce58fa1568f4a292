"""Collapse-mode diagnosis: which way an embedding batch departs from N(0, I), with evidence.

SIGReg (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) pushes every
slice towards N(0, 1).  When a batch is not healthy the user needs to know *how*.
The vocabulary is fixed; each detected mode names the number that triggered it
and its threshold.  Thresholds combine a practical effect size with the sampling
noise of a healthy batch of the same (N, D), so a N(0, I) batch triggers none:

=======================  ====================================================================
mode                     triggered when
=======================  ====================================================================
``full_collapse``        relative spread sqrt(tr Cov) / sqrt(mean ||z||^2) < 0.25: the rows
                         point one way (scale-invariant; 1 for a centred cloud)
``dimensional_collapse`` centred RankMe (entropy rank of the singular values of Z - mean)
                         < 0.2 min(N - 1, D), or >= 5 % of the first min(N - 1, D) covariance
                         eigenvalues < 1e-4 x their mean (< 1e-9 below N = 2D); on the covariance without
                         the outlier rows when the set has outliers
``outliers``             1 to 10 % of the rows far from the rest (robust distance, see
                         :mod:`sigreg_core.assessment.rows`); which rows is exported
``shift``                ||mean vector|| / RMS std > max(0.25, 3 sqrt(D / N))  (healthy: about
                         sqrt(D/N)); relative to the spread, so it does not change with the scale
``scale``                RMS per-dimension std outside [0.75, 1.33], or some dimension's std
                         outside [0.5, 2]
``anisotropy``           lambda_max / mean(lambda) > 1.5 (1 + sqrt(D/N))^2, or (N > 2D)
                         lambda_min / mean(lambda) < (1 - sqrt(D/N))^2 / 1.5 (Marchenko–Pastur
                         edges of a healthy batch, with a 1.5x margin)
``heavy_tails``          max excess kurtosis over the screened slices (coordinate axes,
                         principal axes, random slices) > max(1, 8 sqrt(24 / N))
``multimodal``           max bimodality coefficient (skew^2 + 1) / (excess kurtosis + 3)
                         over those slices > 0.75 (Gaussian 1/3, uniform 5/9, +-1 coin 1)
=======================  ====================================================================

``full_collapse`` supersedes ``dimensional_collapse``, ``shift``, ``scale`` and ``anisotropy``
(they follow from it).  The shape modes (``heavy_tails``, ``multimodal``) are
reported only when the batch departs significantly (verdict p-value < 1e-3):
sample kurtosis and skewness of small healthy batches have long tails.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from sigreg_core.assessment.metrics import rankme
from sigreg_core.assessment.verdict import DEAD_EIGEN, DEAD_FRACTION, FULL_SPREAD, NEAR_ZERO_EIGEN, RANK_FRACTION

__all__ = ["MODES", "diagnose", "centred_rankme", "relative_spread", "rank_loss"]

MODES = (
    "full_collapse",
    "dimensional_collapse",
    "outliers",
    "shift",
    "scale",
    "anisotropy",
    "heavy_tails",
    "multimodal",
)

SHIFT_MIN = 0.25
SCALE_RMS = (0.75, 1.33)
SCALE_DIM = (0.5, 2.0)
ANISO_MARGIN = 1.5
KURT_MIN = 1.0
KURT_SE = 8.0
BIMODALITY = 0.75


def centred_rankme(eigenvalues: np.ndarray, n: int) -> float:
    """RankMe of the centred batch: singular values of Z - mean are sqrt((N - 1) lambda)."""
    ev = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    ev = ev[: max(1, min(int(n) - 1, ev.size))]
    return rankme(np.sqrt(ev * max(int(n) - 1, 1)))


def _ev(mode: str, evidence: str, value: float, threshold, slice_ref: "tuple | None" = None) -> dict:
    """One mode with its evidence; ``slice_ref`` = (screen, index) of the slice that shows it (the page opens it)."""
    out = {"mode": mode, "evidence": evidence, "value": float(value), "threshold": threshold}
    if slice_ref is not None:
        out["slice"] = {"screen": str(slice_ref[0]), "index": int(slice_ref[1])}
    return out


def relative_spread(metrics: dict) -> float:
    """sqrt(tr Cov) / sqrt(mean ||z_n||^2) (population moments): 0 when all rows coincide, 1 when centred."""
    dim_std = np.asarray(metrics["dim_std"], dtype=np.float64)
    tr = float(np.sum(dim_std**2))
    msq = tr + float(metrics.get("mean_norm", 0.0)) ** 2
    return math.sqrt(tr / msq) if msq > 0 else 0.0


def rank_loss(eigenvalues, n: int, dim: int) -> tuple[float, int, int]:
    """(centred RankMe / k, dead eigenvalues, k = min(N - 1, D)) of a covariance spectrum."""
    ev = np.sort(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None))[::-1]
    k = max(1, min(int(n) - 1, int(dim)))
    top = ev[:k]
    mean_ev = float(top.mean()) if top.size else 0.0
    # below N = 2D the Marchenko–Pastur lower edge (1 - sqrt(D/N))^2 reaches 0 for healthy data:
    # only numerically zero eigenvalues count as dead there
    thr = DEAD_EIGEN if int(n) >= 2 * int(dim) else NEAR_ZERO_EIGEN
    dead = int(np.sum(top < thr * mean_ev)) if mean_ev > 0 else 0
    return centred_rankme(ev, n) / k, dead, k


def diagnose(metrics: dict, slice_moments: Iterable[tuple[str, np.ndarray, np.ndarray]] = (),
             significant: bool = True, *, robust_eigenvalues=None, outliers: "dict | None" = None) -> list[dict]:
    """Detected modes, most severe first, each ``{"mode", "evidence", "value", "threshold"}``.

    ``metrics``: from :func:`sigreg_core.assessment.metrics.metrics_from_sums` (needs n, dim,
    eigenvalues, dim_mean, dim_std, rms_std, mean_norm).  ``slice_moments``:
    ``(label, skew (M,), excess kurtosis (M,))`` for each screened slice group.
    ``significant``: whether the batch departs significantly from N(0, I) (the
    verdict's p-value is below its threshold); the shape modes ``heavy_tails`` and
    ``multimodal`` are only reported then, because sample kurtosis and skewness of
    small batches have long tails (at N = 128 the largest of 1500 healthy slices'
    excess kurtosis reaches 4.7).
    """
    n, dim = int(metrics["n"]), int(metrics["dim"])
    ev = np.sort(np.asarray(metrics["eigenvalues"], dtype=np.float64))[::-1]
    dim_std = np.asarray(metrics["dim_std"], dtype=np.float64)
    dim_mean = np.asarray(metrics["dim_mean"], dtype=np.float64)
    rms = float(metrics["rms_std"])
    ratio = math.sqrt(dim / n)
    found: list[dict] = []

    spread = relative_spread(metrics)
    full = spread < FULL_SPREAD
    if full:
        found.append(_ev("full_collapse",
                         f"relative spread sqrt(tr Cov) / RMS row norm = {spread:.3g} (threshold {FULL_SPREAD}): "
                         f"the rows point one way", spread, FULL_SPREAD))

    if not full:
        rob = ev if robust_eigenvalues is None else robust_eigenvalues
        frac, dead, k = rank_loss(rob, n, dim)  # robust eigenvalues come with metrics of the same rows
        crm = frac * k
        lim = RANK_FRACTION * k
        note = " (outlier rows set aside)" if robust_eigenvalues is not None else ""
        if crm < lim:
            found.append(_ev("dimensional_collapse",
                             f"centred RankMe = {crm:.2f} of {k} (threshold {lim:.1f}); {dead} near-zero "
                             f"eigenvalues{note}", crm, lim))
        elif dead >= max(1.0, DEAD_FRACTION * k):
            found.append(_ev("dimensional_collapse",
                             f"{dead} of {k} covariance eigenvalues below "
                             f"{DEAD_EIGEN if n >= 2 * dim else NEAR_ZERO_EIGEN:g} x their mean "
                             f"(centred RankMe {crm:.2f}){note}", dead, 0))

    if outliers and outliers.get("is_mode"):
        found.append(_ev("outliers", f"{outliers['count']} rows ({100 * outliers['fraction']:.2g} %) far from the "
                                     f"rest (robust distance > {outliers['threshold']:.3g} x the median)",
                         outliers["count"], outliers["threshold"]))

    mn = float(metrics.get("mean_norm", np.linalg.norm(dim_mean)))
    rel = mn / rms if rms > 0 else (0.0 if mn == 0 else float("inf"))
    thr = max(SHIFT_MIN, 3 * ratio)
    if rel > thr and not full:
        j = int(np.argmax(np.abs(dim_mean)))
        found.append(_ev("shift",
                         f"|mean vector| = {mn:.3g} = {rel:.3g} x the RMS std (threshold {thr:.3g}); "
                         f"max |dim mean| = {abs(dim_mean[j]):.3g} (dim {j})", rel, thr, ("axes", j)))

    if not full:
        lo, hi = SCALE_RMS
        out = (dim_std < SCALE_DIM[0]) | (dim_std > SCALE_DIM[1])
        if rms < lo or rms > hi:
            found.append(_ev("scale", f"RMS per-dimension std = {rms:.3g} (healthy range [{lo}, {hi}])",
                             rms, [lo, hi]))
        elif out.any():
            j = int(np.argmax(np.abs(np.log(np.maximum(dim_std, 1e-300)))))
            found.append(_ev("scale",
                             f"{int(out.sum())} of {dim} dims have std outside [{SCALE_DIM[0]}, {SCALE_DIM[1]}]; "
                             f"dim {j} std = {dim_std[j]:.3g}", float(dim_std[j]), list(SCALE_DIM), ("axes", j)))

        if ev.size and ev.mean() > 0:
            mean_ev = float(ev[: max(1, min(n - 1, dim))].mean())
            top_ratio = float(ev[0] / mean_ev)
            hi_edge = ANISO_MARGIN * (1 + ratio) ** 2
            if top_ratio > hi_edge:
                found.append(_ev("anisotropy",
                                 f"largest covariance eigenvalue = {top_ratio:.3g} x the mean (threshold {hi_edge:.3g})",
                                 top_ratio, hi_edge, ("principal", 0)))
            elif n > 2 * dim:
                low_ratio = float(ev[min(n - 1, dim) - 1] / mean_ev)
                lo_edge = (1 - ratio) ** 2 / ANISO_MARGIN
                if low_ratio < lo_edge:
                    found.append(_ev("anisotropy",
                                     f"smallest covariance eigenvalue = {low_ratio:.3g} x the mean "
                                     f"(threshold {lo_edge:.3g})", low_ratio, lo_edge))

    groups = [(lab, np.asarray(s, dtype=np.float64), np.asarray(k, dtype=np.float64)) for lab, s, k in slice_moments]
    if groups and n >= 20 and significant:
        kthr = max(KURT_MIN, KURT_SE * math.sqrt(24.0 / n))
        best = (-np.inf, "", -1)
        bc_best = (-np.inf, "", -1)
        for lab, sk, ku in groups:
            ok = np.isfinite(ku) & np.isfinite(sk)
            if not ok.any():
                continue
            kk = np.where(ok, ku, -np.inf)
            i = int(np.argmax(kk))
            if kk[i] > best[0]:
                best = (float(kk[i]), lab, i)
            bc = np.where(ok, (sk**2 + 1) / np.maximum(ku + 3, 1e-12), -np.inf)
            i = int(np.argmax(bc))
            if bc[i] > bc_best[0]:
                bc_best = (float(bc[i]), lab, i)
        if best[0] > kthr:
            found.append(_ev("heavy_tails",
                             f"max excess kurtosis = {best[0]:.3g} on {best[1]} slice {best[2]} (threshold {kthr:.3g})",
                             best[0], kthr, (best[1], best[2])))
        if bc_best[0] > BIMODALITY:
            found.append(_ev("multimodal",
                             f"bimodality coefficient = {bc_best[0]:.3g} on {bc_best[1]} slice {bc_best[2]} "
                             f"(threshold {BIMODALITY}; Gaussian 0.333)", bc_best[0], BIMODALITY, (bc_best[1], bc_best[2])))
    order = {m: i for i, m in enumerate(MODES)}
    found.sort(key=lambda e: order[e["mode"]])
    return found
