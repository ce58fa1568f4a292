"""The screens behind the verdict's p-value: one batch scored on its family and three screens.

SIGReg (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) averages the
Epps–Pulley statistic EP_m = N sum_k c_k [(Cbar_mk - phi_k)^2 + Sbar_mk^2] over
random slices.  Random slices cannot see non-Gaussian structure that is
independent across coordinates (they look Gaussian in high D, SIGREG.md §2), so
the verdict's p-value combines three screens, each with exact per-slice
p-values from :mod:`sigreg_core.core.nulllaw`:

* ``random``: the seeded random slices (the SIGReg slices);
* ``axes``: the D coordinate axes (at most 1024, a seeded choice beyond);
* ``principal``: the principal axes, each projection centred and scaled by its
  own mean and std (a shape test with the standardised chi-square-mixture law;
  the covariance that picks the axes is asymptotically independent of the
  standardised ECF).

Per-screen and overall p-values are Cauchy combinations (Liu & Xie, JASA 2020)
of the per-slice p-values (screens weighted 1/3 each); they are *calibrated*
against a Monte Carlo null by :mod:`sigreg_core.assessment.montecarlo`.
``scale`` multiplies every direction (the rows are scored as ``scale * z``:
the equal-norm-rows convention's rescale, see :mod:`sigreg_core.assessment.verdict`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from sigreg_core.core import nulllaw as nl
from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.assessment.families import MAX_SEARCH_ROWS, _rows_tensor, make_directions, principal_axes
from sigreg_core.assessment.metrics import MomentSums
from sigreg_core.assessment.slices import SliceStats, score_slices

__all__ = ["MAX_AXES", "MAX_PRINCIPAL", "SCREENS", "Evaluation", "evaluate", "centred_statistic", "screen_preset"]

ProgressFn = Optional[Callable[[float, str], None]]
#: screens: at most this many coordinate axes and principal axes
MAX_AXES = 1024
MAX_PRINCIPAL = 256
SCREENS = ("random", "axes", "principal")


def centred_statistic(stats: SliceStats, preset: Preset) -> np.ndarray:
    """EP of each slice after subtracting its own mean: the ECF is rotated by e^{-i t mean}."""
    t = stats.nodes[None, :]
    m = stats.mean[:, None]
    c, s = stats.ecf_real, stats.ecf_imag
    cr = c * np.cos(t * m) + s * np.sin(t * m)
    sr = s * np.cos(t * m) - c * np.sin(t * m)
    err = preset.weights[None, :] * ((cr - preset.target[None, :]) ** 2 + sr**2)
    scale = float(stats.n) if preset.scale_by_n else 1.0
    return scale * err.sum(1)


def screen_preset(preset: Preset) -> Preset:
    return preset if nl.has_exact_law(preset) else get_preset("lejepa")


def _axes_selection(dim: int, seed: int) -> Optional[np.ndarray]:
    if dim <= MAX_AXES:
        return None
    return np.sort(np.random.default_rng(seed).choice(dim, size=MAX_AXES, replace=False))


@dataclass
class Evaluation:
    family_stats: SliceStats
    directions: torch.Tensor
    family_info: dict
    groups: dict  # name -> dict(stats=SliceStats, statistic=(M,), log_p=(M,), skew, kurt)
    verdict_log_p: float
    verdict_p: float
    bonferroni_p: float
    group_p: dict
    group_log_p: dict


def evaluate(z, sums: MomentSums, *, family: str, num_slices: int, seed: int, preset: Preset,
             device, distributed: bool, progress: ProgressFn = None, lo: float = 0.0, hi: float = 1.0,
             metrics_cov: Optional[np.ndarray] = None, scale: float = 1.0) -> "Evaluation":
    """Score the family and the three screens of one batch (the same code runs on null draws)."""
    dim = sums.dim
    n = sums.n
    cov = metrics_cov if metrics_cov is not None else sums  # the sums' cached spectrum (D x D or N x N route)
    span = hi - lo

    def prog(frac, msg):
        if progress is not None:
            progress(lo + span * min(max(frac, 0.0), 1.0), msg)

    prog(0.0, f"directions ({family})")
    c = float(scale)
    if family == "worst" and c != 1.0:  # search on the rescaled rows
        a, info = make_directions(_rows_tensor(z, MAX_SEARCH_ROWS, seed) * c, family, num_slices, seed, preset, cov=cov)
    else:
        a, info = make_directions(z, family, num_slices, seed, preset, cov=cov)
    if c != 1.0:
        a = a * c

    def rows_cb(base, width, label):
        if progress is None:
            return None
        return lambda done, total: prog(base + width * done / max(total, 1), f"{label}: {done}/{total} rows")

    stats = score_slices(z, a, preset, device=device, distributed=distributed,
                         progress=rows_cb(0.0, 0.6, f"scoring {a.shape[1]} {family} slices"))
    sp = screen_preset(preset)
    same = sp is preset or sp == preset
    groups: dict = {}

    # screen 1: the seeded random slices
    if family == "random" and same:
        rs = stats
    else:
        rs = score_slices(z, make_directions(z, "random", num_slices, seed)[0] * c, sp, device=device, distributed=distributed,
                          progress=rows_cb(0.6, 0.15, "random screen"))
    groups["random"] = {"stats": rs, "statistic": rs.statistic, "standardized": False}

    # screen 2: coordinate axes
    if family == "coordinate" and same and dim <= MAX_AXES:
        ax = stats
    else:
        sel = _axes_selection(dim, seed)
        if sel is None:
            ax = score_slices(z, torch.eye(dim) * c if c != 1.0 else torch.eye(dim), sp, device=device, distributed=distributed,
                              progress=rows_cb(0.75, 0.1, "axes screen"))
        else:
            e = torch.zeros(dim, len(sel))
            e[torch.from_numpy(sel), torch.arange(len(sel))] = 1.0
            ax = score_slices(z, e * c, sp, device=device, distributed=distributed,
                              progress=rows_cb(0.75, 0.1, "axes screen"))
    groups["axes"] = {"stats": ax, "statistic": ax.statistic, "standardized": False}

    # screen 3: principal axes, each projection standardised (shape test)
    vecs, evals = principal_axes(cov, min(dim, MAX_PRINCIPAL))
    lam_pop = evals * (n - 1) / n
    keep = lam_pop > max(1e-10 * max(lam_pop[0], 0.0), 1e-24)
    keep[max(n - 1, 0):] = False  # beyond rank N - 1 the sample covariance has no directions
    if keep.any():
        b = vecs[:, torch.from_numpy(np.flatnonzero(keep))].double() / torch.from_numpy(
            np.sqrt(lam_pop[keep]))[None, :]  # float64: eigenvalues of data near 1e30 overflow float32
        b = b * c
        sh = score_slices(z, b, sp, device=device, distributed=distributed,
                          progress=rows_cb(0.85, 0.15, "principal shape screen"))
        groups["principal"] = {"stats": sh, "statistic": centred_statistic(sh, sp), "standardized": True}

    group_logp = {}
    all_logp = []
    for name, g in groups.items():
        _, lp = nl.slice_pvalues(g["statistic"], sp, n, standardized=g["standardized"])
        g["log_p"] = lp
        g["skew"], g["kurt"] = g["stats"].skew, g["stats"].kurtosis
        _, glp = nl.cauchy_bonferroni(log_p=lp)
        group_logp[name] = glp
        all_logp.append(lp)
    weights = np.concatenate([np.full(len(g["log_p"]), 1.0 / len(g["log_p"])) for g in groups.values()])
    vp, vlp = nl.cauchy_bonferroni(log_p=np.concatenate(all_logp), weights=weights)
    bp, _ = nl.bonferroni(log_p=np.concatenate(all_logp))
    prog(1.0, "scored")
    return Evaluation(
        family_stats=stats, directions=a, family_info=info, groups=groups, verdict_log_p=vlp,
        verdict_p=max(vp, nl.P_FLOOR) if vlp > -math.inf else nl.P_FLOOR, bonferroni_p=bp,
        group_p={k: float(max(math.exp(v), nl.P_FLOOR)) for k, v in group_logp.items()},
        group_log_p={k: float(v) for k, v in group_logp.items()},
    )


