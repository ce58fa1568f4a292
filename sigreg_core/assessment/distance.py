"""How far from the SIGReg target N(0, I), once the conventions are set aside?

SIGReg (LeJEPA, arXiv 2511.08544) scores each slice x = Z u against N(0, 1) by the weighted
squared distance of characteristic functions; the N-free estimate of that distance per slice is

    d_m = EP_m / N - E0 / N,        E[d_m] = sum_k c_k |ECF_m(t_k) - phi(t_k)|^2,

(``E0`` the exact null mean, so d_m is unbiased for the population distance).  On raw rows
most of it is the overall size and offset of the cloud (a raw output x 10 scored 0.15 where
the same rows scored 0.96): conventions, not shape.  The distance reported here is taken
after the conventions the verdict names are undone, every one of them:

* **centring**: each slice's own mean is removed (the ECF is rotated by e^{-i t mean});
* **one global scale**: the rows are divided by their RMS per-dimension standard deviation;
* **equal-norm rows** need nothing more (a global scale covers the sqrt(D) rescale).

So it measures anisotropy and shape only (variance unevenly spread over directions, tails,
clusters), and it is stated as a fraction of a fixed reference: a set that lives on **one
line** (rank 1, Gaussian along it), standardised the same way.  Its slices are N(0, sigma^2)
with sigma^2 = D b, b ~ Beta(1/2, (D - 1)/2) (the squared cosine between a random direction and
the line), so its distance is ``E_b sum_k c_k (exp(-t_k^2 sigma^2 / 2) - phi_k)^2``, integrated
here on 512 quantiles of b.  ``rho = 0`` is N(0, I); ``rho = 1`` is as far as a one-dimensional
collapse; larger values are clipped to 1 and said so (``relative_distance_raw`` keeps them), so
"further than a collapse" cannot be read off this scale.
"""
from __future__ import annotations

from functools import lru_cache

import math

import numpy as np
from scipy import special

from sigreg_core.core import nulllaw as nl
from sigreg_core.assessment.families import make_directions
from sigreg_core.assessment.screens import centred_statistic, screen_preset
from sigreg_core.assessment.slices import score_slices

__all__ = ["rank1_reference", "shape_distance", "measure_distance"]


@lru_cache(maxsize=256)
def rank1_reference(dim: int, nodes: tuple, weights: tuple) -> float:
    """E over random slices of sum_k c_k (phi(t sigma) - phi(t))^2 for a standardised rank-1 Gaussian set."""
    t = np.asarray(nodes, dtype=np.float64)
    c = np.asarray(weights, dtype=np.float64)
    d = max(int(dim), 1)
    if d == 1:
        return 0.0  # a line in one dimension is N(0, 1) after standardisation
    qs = (np.arange(512) + 0.5) / 512
    b = special.betaincinv(0.5, (d - 1) / 2.0, qs)
    sig2 = d * b
    phi = np.exp(-t**2 / 2)
    per = np.sum(c[None, :] * (np.exp(-np.outer(sig2, t**2) / 2) - phi[None, :]) ** 2, axis=1)
    return float(per.mean())


def shape_distance(centred_stats: np.ndarray, null_mean_scaled: float, n: int, dim: int, preset) -> dict:
    """rho and its pieces from the per-slice EP of the centred, globally standardised rows.

    ``centred_stats``: EP_m (the preset's N-scaled units) of each random slice of the rows
    divided by their RMS std, each slice centred; ``null_mean_scaled``: E0 in the same units.
    """
    ref = rank1_reference(int(dim), tuple(float(v) for v in preset.nodes), tuple(float(v) for v in preset.weights))
    d = float(np.mean(np.asarray(centred_stats, dtype=np.float64)) - null_mean_scaled) / max(int(n), 1)
    raw = max(d, 0.0) / ref if ref > 0 else float("nan")
    return {
        "relative_distance": float(min(raw, 1.0)) if np.isfinite(raw) else float("nan"),
        "relative_distance_raw": float(raw),
        "clipped": bool(np.isfinite(raw) and raw > 1.0),
        "rank1_reference": ref,
        "per_row_distance": float(max(d, 0.0)),
    }


def measure_distance(z, scale, bulk, num_slices, seed, preset, dev, distributed, n, dim) -> dict:
    """The convention-free distance of rows ``z`` on the random screen's slices (the rows as scored are
    ``scale * z``; ``bulk``: their metrics, whose RMS std standardises them)."""
    sp = screen_preset(preset)
    rms = float(bulk.get("rms_std", 0.0))
    if not (rms > 0 and math.isfinite(rms)):
        return {"relative_distance": float("nan"), "relative_distance_raw": float("nan"), "clipped": False,
                "rank1_reference": float("nan"), "per_row_distance": float("nan"),
                "note": "no spread to standardise (every row equal)"}
    c = float(scale)
    a = make_directions(z, "random", num_slices, seed)[0].double() * (c / rms)
    st = score_slices(z, a, sp, device=dev, distributed=distributed)
    law = nl.slice_law(sp, standardized=False)
    return shape_distance(nl.to_scaled(centred_statistic(st, sp), sp, n), law.mean, n, dim, sp)
