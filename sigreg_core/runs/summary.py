"""The per-step summary a run logs: SIGReg, its null multiple, p-value, verdict, RankMe, quantiles.

For each logged step the embeddings Z (N x D) are scored on the run's fixed directions
with :func:`sigreg_core.assessment.assess.assess` (LeJEPA's SIGReg: the mean over M slices
of EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2],
arXiv 2511.08544), and the null band of SIGReg for the run's (N, D, M) is simulated
once by Monte Carlo (the slices share the data, so it has no closed form).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
import torch

from sigreg_core.util.jsonsafe import to_jsonable

__all__ = ["SummaryConfig", "summarize", "sigreg_null_draws", "sigreg_null_band"]


# ----------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class SummaryConfig:
    """How each logged step is summarised (stored in the run's metadata).

    ``num_slices`` is modest on purpose (the summary runs inside training): with
    fixed directions (``seed``) the curves of different steps are comparable, and past
    M of about 2 D more slices do not tighten the null (SIGREG.md).  The overall
    p-value combines the exact per-slice p-values (no Monte Carlo in the loop).
    """

    preset: str = "lejepa"
    num_slices: int = 256
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _assess():
    from sigreg_core.assessment.assess import assess  # the calibration module (verdict, p-value, modes, RankMe)

    return assess


def _float(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else (f if f in (math.inf, -math.inf) else None)


def _jsonable(x: Any) -> Any:
    # index rows stay small: arrays over 64 values are dropped; non-finite floats kept as "inf"/"nan"
    return to_jsonable(x, nonfinite=str, max_array=64)


def summarize(z, config: SummaryConfig = SummaryConfig(), *, device=None, per_slice: bool = False) -> dict:
    """The per-step summary of embeddings ``z`` (N, D), computed where ``z`` lives.

    Uses :func:`sigreg_core.assessment.assess.assess` with the random (LeJEPA) slice family and the
    run's fixed directions.  Returns a JSON-safe dict with the time-series fields
    (``sigreg``, ``null_mean``, ``sigreg_over_null``, ``p_value``, ``log10_p``, ``verdict``, ``modes``, ``rankme``,
    ``q50``/``q95``/``qmax`` (per-slice statistic quantiles), ``slice_null_q95``,
    ``normalized_std``: the std of L2-normalised rows, about 1/sqrt(D) when healthy; ``alpha_req``: the
    eigenspectrum's decay exponent, Agrawal et al. 2022) and
    the assessment's own dict under ``assessment``.  With ``per_slice=True`` the M
    per-slice statistics are added as a float64 array under ``per_slice_statistic``
    (not JSON-safe; the integrations draw their histogram from it).
    """
    assess = _assess()
    t0 = time.perf_counter()
    if isinstance(z, torch.Tensor):
        zz = z.detach()
        dev = zz.device if device is None else device
    else:
        zz = np.asarray(z)
        dev = "auto" if device is None else device
    a = assess(zz, preset=config.preset, num_slices=config.num_slices, seed=config.seed,
               family="random", device=dev, **_ASSESS_CHEAP)
    stat = np.asarray(a.slices.statistic, dtype=np.float64)
    n, d = int(zz.shape[0]), int(zz.shape[1])
    metrics = dict(a.metrics)
    p = _float(a.p_value)
    log10_p = _float(getattr(a, "log10_p_value", None))
    if log10_p is None and p is not None:
        log10_p = math.log10(p) if p > 0 else None
    out = {
        "n": n,
        "d": d,
        "m": int(stat.size),
        "sigreg": float(stat.mean()),
        "null_mean": _float(a.null_mean),
        "sigreg_over_null": _float(a.sigreg_over_null),
        "p_value": p,
        "log10_p": log10_p,
        "verdict": str(a.verdict),
        "modes": [str(m) for m in a.modes],
        "rankme": _float(metrics.get("rankme")),
        "normalized_std": _float(metrics.get("normalized_std")),
        "alpha_req": _float(metrics.get("alpha_req")),
        "q50": float(np.quantile(stat, 0.5)),
        "q95": float(np.quantile(stat, 0.95)),
        "qmax": float(stat.max()),
        "slice_null_q95": _slice_null_q95(a),
        "summary_seconds": time.perf_counter() - t0,
        "assessment": _jsonable(_small_dict(a)),
    }
    if per_slice:
        out["per_slice_statistic"] = stat
    return out


#: keep ``assess`` cheap inside a training loop: no Monte Carlo null (the verdict's p-value is
#: the Cauchy combination of exact per-slice p-values and needs none); the null band of SIGReg
#: is a Monte Carlo computed once per run configuration by the reader (:meth:`RunReader.null_band`)
_ASSESS_CHEAP: dict = {"null_draws": 0}


def _prune(x: Any, limit: int = 64) -> Any:
    if isinstance(x, dict):
        return {k: _prune(v, limit) for k, v in x.items()
                if not (isinstance(v, (list, tuple)) and len(v) > limit)}
    if isinstance(x, (list, tuple)):
        return [_prune(v, limit) for v in x]
    return x


def _small_dict(a) -> dict:
    """The assessment's dict without the per-slice arrays (they can be recomputed from the snapshot)."""
    try:
        d = a.to_dict()
    except Exception:  # pragma: no cover - a to_dict failure must not lose the row
        return {}
    d.pop("per_slice", None)
    return _prune(d)


def _slice_null_q95(a) -> Optional[float]:
    nq = getattr(a, "null_quantiles", None)
    if isinstance(nq, dict):
        for k in (0.95, "0.95", "q95"):
            if k in nq:
                return _float(nq[k])
    return None


# ----------------------------------------------------------------------------- null band
NULL_BAND_DRAWS = 200
NULL_BAND_MAX_ROWS = 4096


def sigreg_null_draws(n: int, dim: int, config: SummaryConfig = SummaryConfig(), *,
                      draws: int = NULL_BAND_DRAWS, seed: int = 12345) -> np.ndarray:
    """SIGReg of ``draws`` batches Z ~ N(0, I) (n, dim) on the run's fixed directions (Monte Carlo).

    The slices share the data, so the law of their mean has no closed form here
    (its variance is about Var_1 / M + 2 kappa_1^2 / D, SIGREG.md); it is simulated with
    the same code and directions as the run.  The N-scaled statistic's null law does not
    depend on N (from N of about 32), so N above 4096 is simulated at 4096 and rescaled.
    Returned in the preset's own units at ``n`` rows.
    """
    from sigreg_core.assessment.montecarlo import sigreg_null_sample
    from sigreg_core.core.directions import sample_directions
    from sigreg_core.core.nulllaw import from_scaled

    n, dim, draws = int(n), int(dim), int(draws)
    if n < 2 or dim < 1 or draws < 1:
        raise ValueError(f"null band needs n >= 2, dim >= 1 and draws >= 1 (got {n}, {dim}, {draws})")
    n_sim = min(n, NULL_BAND_MAX_ROWS)
    a = sample_directions(dim, config.num_slices, config.seed)
    # the assessment's one simulation (its Monte Carlo null's family statistic), at the run's settings
    out = sigreg_null_sample(n_sim, dim, a, config.preset, draws, seed)
    return np.asarray(from_scaled(out, config.preset, n), dtype=np.float64)


def sigreg_null_band(n: int, dim: int, config: SummaryConfig = SummaryConfig(), *, level: float = 0.95,
                     draws: int = NULL_BAND_DRAWS) -> tuple[float, float]:
    """Central ``level`` interval of SIGReg under the null (Monte Carlo, :func:`sigreg_null_draws`)."""
    null = sigreg_null_draws(n, dim, config, draws=draws)
    q = (1 - level) / 2
    lo, hi = np.quantile(null, [q, 1 - q])
    return float(lo), float(hi)


