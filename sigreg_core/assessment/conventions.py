"""The conventions an embedding set follows, each named with its score after the matching rescale.

SIGReg (LeJEPA, arXiv 2511.08544) scores rows against N(0, I); many encoders follow conventions
that move them away from it without saying anything about collapse (SIGREG.md §7):

* **equal-norm rows** (L2-normalised, as sentence encoders ship them): scored after the x sqrt(D) / r
  rescale (``applied``), so normalising the rows of a set does not change its verdict;
* **an uncentred mean** (the ``shift`` mode): the score after centring each slice (its ECF rotated
  by e^{-i t mean}, exact);
* **a global scale** (RMS per-dimension std outside [0.75, 1.33], the ``scale`` mode): the score
  after centring and dividing by that std.

Each entry says what was detected, the rescale and SIGReg as a multiple of its null mean after it
(:func:`find_conventions`); the verdict's health and distance do not depend on any of them.
"""
from __future__ import annotations

import numpy as np

from sigreg_core.assessment.screens import centred_statistic
from sigreg_core.assessment.slices import score_slices

__all__ = ["find_conventions", "over"]


def over(sig: float, null_mean: float) -> float:
    """SIGReg as a multiple of its null mean (NaN without one)."""
    return sig / null_mean if null_mean and np.isfinite(null_mean) else float("nan")


def find_conventions(z, facts, scale, metrics, modes, ev, preset, null_mean, device, distributed=False) -> list:
    """The third answer: equal-norm rows, an uncentred mean, a global scale, each with the score after.

    ``distributed``: the rescored slices are those of every rank's rows (the branches taken depend
    only on global numbers, so every rank joins the same collectives)."""
    out = []
    stats = ev.family_stats
    sig = float(stats.sigreg)
    if facts.equal_norms and scale != 1.0:
        raw = score_slices(z, ev.directions.double() / scale, preset, device=device, distributed=distributed)
        unit = abs(facts.norm_mean - 1.0) < 1e-3
        out.append({
            "name": "l2_normalised_rows" if unit else "equal_norm_rows",
            "evidence": f"every row has norm {facts.norm_mean:.4g} (coefficient of variation {facts.norm_cv:.2g})",
            "rescale": "x sqrt(D)" if unit else f"x sqrt(D) / {facts.norm_mean:.4g}",
            "factor": float(scale), "applied": True,
            "sigreg_as_given": float(raw.sigreg), "sigreg_over_null_as_given": over(float(raw.sigreg), null_mean),
            "sigreg_after": sig, "sigreg_over_null_after": over(sig, null_mean),
            "note": "scored after the rescale: normalising the rows does not change the verdict",
        })
    shifted = "shift" in modes
    if shifted and preset.form == "ecf":
        after = float(np.mean(centred_statistic(stats, preset)))
        out.append({
            "name": "uncentred_mean",
            "evidence": f"|mean vector| = {metrics['mean_norm']:.3g} against an RMS std of {metrics['rms_std']:.3g}",
            "rescale": "centring (subtract the mean vector)", "applied": False,
            "sigreg_after": after, "sigreg_over_null_after": over(after, null_mean),
            "note": "named, not a collapse; the verdict grades the data as given",
        })
    rms = float(metrics["rms_std"])  # of the bulk (without outlier rows) when there are outliers
    lo, hi = 0.75, 1.33
    if rms > 0 and not lo <= rms <= hi and "scale" in modes:
        st = score_slices(z, ev.directions.double() / rms, preset, device=device, distributed=distributed)
        after = float(np.mean(centred_statistic(st, preset))) if preset.form == "ecf" else float(st.sigreg)
        out.append({
            "name": "global_scale",
            "evidence": f"RMS per-dimension std = {rms:.3g} (target 1)",
            "rescale": f"global standardisation (centre, divide by {rms:.3g})", "applied": False,
            "sigreg_after": after, "sigreg_over_null_after": over(after, null_mean),
            "note": "named, not a collapse; the verdict grades the data as given",
        })
    return out
