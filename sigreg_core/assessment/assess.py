"""``assess``: is this embedding batch healthy, and if not, what is wrong?

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312) is the mean over slices of the Epps–Pulley statistic

    EP_m = s(N) sum_k c_k [ (Cbar_mk - phi_k)^2 + Sbar_mk^2 ],

which sits near sum_k c_k (1 - exp(-t_k^2)) (1.0525 for ``lejepa``) on a healthy
batch.  ``assess`` turns it into three separate answers and one verdict
(:mod:`sigreg_core.assessment.verdict`: is it collapsing? how far from N(0, I)
and in which way, graded by effect size? which conventions does it follow?),
with p-values that are calibrated:

* per-slice p-values from the exact null law of one slice
  (:mod:`sigreg_core.core.nulllaw`) for fixed directions (``random``,
  ``coordinate``); per-rank Monte Carlo for the data-dependent ``principal``
  and ``worst`` families; a pooled Monte Carlo null for the ``modulus`` form;
* the overall p-value and each screen's (:mod:`sigreg_core.assessment.screens`):
  Cauchy combinations calibrated on a Monte Carlo null of the same
  configuration (:mod:`sigreg_core.assessment.montecarlo`); with
  ``null_draws=0`` they are the raw Cauchy values, valid in the tail only
  (said next to the number).

Rows pass first (:mod:`sigreg_core.assessment.rows`): non-finite values are
refused, float32 data too large for float32 arithmetic are scored in float64,
equal-norm rows are rescaled to norm sqrt(D) (the convention's rescale),
outlier rows are found.  Below ``MIN_ROWS`` rows the verdict is
``too few rows``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch

from sigreg_core.core import nulllaw as nl
from sigreg_core.core.device import resolve_device
from sigreg_core.assessment.budget import check_assessment, fit_null_draws
from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.assessment import verdict as V
from sigreg_core.assessment.diagnosis import diagnose, rank_loss
from sigreg_core.assessment.conventions import find_conventions, over as _over
from sigreg_core.assessment.distance import measure_distance
from sigreg_core.assessment.health import measure_health
from sigreg_core.assessment.families import FAMILIES
from sigreg_core.assessment.metrics import metrics_from_sums
from sigreg_core.assessment.lidar import views_metrics
from sigreg_core.assessment.montecarlo import (DEFAULT_NULL_DRAWS, MC_MAX_ROWS, MonteCarloNull,  # noqa: F401
                                               family_pvalues, monte_carlo_null, null_band)
from sigreg_core.assessment.rows import FLOAT32_SAFE, row_pass
from sigreg_core.assessment.screens import MAX_AXES, evaluate, screen_preset
from sigreg_core.assessment.slices import SliceStats
from sigreg_core.util.errors import InputError
from sigreg_core.util.jsonsafe import to_jsonable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["assess", "Assessment", "VERDICTS", "SUSPICIOUS_P", "monte_carlo_null", "MonteCarloNull"]

VERDICTS = V.VERDICTS
#: significance gate of the verdict (the name predates the graded levels)
SUSPICIOUS_P = V.GATE_P

ProgressFn = Optional[Callable[[float, str], None]]
_FLOAT_TORCH = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ----------------------------------------------------------------- input
def _validate(z):
    """Accept and refuse the dtypes ``sigreg`` does: float16, bfloat16, float32, float64 only."""
    if isinstance(z, torch.Tensor):
        t = z.detach()
        if t.dtype not in _FLOAT_TORCH:
            raise InputError(f"embeddings must be real numbers of a floating-point dtype: float16, bfloat16, float32 or float64 (as for sigreg), got "
                             f"{t.dtype}; cast it first")
        return t
    if isinstance(z, np.ndarray) or hasattr(z, "__array__"):
        a = np.asarray(z)
        if a.dtype.kind != "f":
            raise InputError(f"embeddings must be real numbers of a floating-point dtype (float16/32/64, as for sigreg), got "
                             f"dtype {a.dtype}; cast it first")
        return a
    raise InputError(f"embeddings must be a torch tensor or a numpy array, got {type(z).__name__}")


def _as_float64(z):
    return z.to(torch.float64) if isinstance(z, torch.Tensor) else np.asarray(z, dtype=np.float64)


# ------------------------------------------------------------ the result
@dataclass
class Assessment:
    """Result of :func:`assess` (see the module docstring for what each number means).

    ``answers``: ``{"collapse": ..., "distance": ..., "conventions": [...]}``, the three
    answers of :mod:`sigreg_core.assessment.verdict`; ``outliers``: the flagged rows.
    """

    sigreg: float
    null_mean: float
    p_value: float
    verdict: str
    modes: list
    per_slice_columns: dict  # column -> 1-D array; .per_slice is the pandas view (pandas only when asked)
    metrics: dict
    config: dict
    slices: SliceStats
    directions: torch.Tensor
    mode_evidence: dict
    p_values: dict
    sigreg_over_null: float
    null_quantiles: dict
    log10_p_value: float = float("nan")
    seconds: float = 0.0
    device: str = "cpu"
    views: list = field(default_factory=list)
    screens: dict = field(default_factory=dict)
    answers: dict = field(default_factory=dict)
    outliers: dict = field(default_factory=dict)

    @property
    def per_slice(self) -> "pd.DataFrame":
        """One row per slice: slice, statistic, p_value, log10_p_value, mean, std, skew, kurtosis."""
        df = self.__dict__.get("_per_slice_frame")
        if df is None:
            import pandas as pd  # lazily: `sigreg score` never needs it (about 0.3 s of import)

            df = self.__dict__["_per_slice_frame"] = pd.DataFrame(self.per_slice_columns)
        return df

    @property
    def level(self) -> str:
        """The graded distance level (``collapsed`` rows may still have one)."""
        return self.answers.get("distance", {}).get("level", self.verdict)

    @property
    def conventions(self) -> list:
        return list(self.answers.get("conventions", []))

    def to_dict(self) -> dict:
        """JSON-safe summary (per-slice table as lists; no tensors, no NaN/Inf)."""
        return to_jsonable({
            "sigreg": self.sigreg,
            "null_mean": self.null_mean,
            "sigreg_over_null": self.sigreg_over_null,
            "p_value": self.p_value,
            "log10_p_value": self.log10_p_value,
            "verdict": self.verdict,
            "answers": self.answers,
            "modes": list(self.modes),
            "mode_evidence": self.mode_evidence,
            "outliers": self.outliers,
            "p_values": self.p_values,
            "null_quantiles": {str(k): v for k, v in self.null_quantiles.items()},
            "metrics": self.metrics,
            "config": self.config,
            "seconds": self.seconds,
            "device": self.device,
            "per_slice": {c: np.asarray(v).tolist() for c, v in self.per_slice_columns.items()},
            "views": [v.to_dict() for v in self.views] if self.views else [],
        })


def _spread_of(sums) -> float:
    tr = float(np.sum(sums.variances(ddof=0)))
    msq = tr + float(np.sum(sums.mean**2))
    return math.sqrt(tr / msq) if msq > 0 else 0.0


def _screen_effects(ev, n: int) -> dict:
    """rho of each screen (:func:`sigreg_core.assessment.verdict.relative_distance`)."""
    out = {}
    sp = None
    for name, g in ev.groups.items():
        sp = g["stats"].preset
        law = nl.slice_law(sp, standardized=g["standardized"])
        mean_scaled = float(np.mean(nl.to_scaled(g["statistic"], sp, n)))
        ref = V.collapse_reference(sp.nodes, sp.weights)
        out[name] = V.relative_distance(mean_scaled, law.mean, n, ref)
    return out


def _assess_2d(z, *, num_slices, seed, preset, family, device, progress, distributed, null_draws,
               cache_dir, gate_p: float = V.GATE_P) -> Assessment:
    t0 = time.perf_counter()
    dev = resolve_device(device)
    n_local, dim = int(z.shape[0]), int(z.shape[1])
    if dim < 1:
        raise InputError(f"embeddings need at least 1 dimension, got shape {tuple(z.shape)}")
    if n_local < 2 and not distributed:
        raise InputError(f"embeddings need at least 2 rows, got {n_local}")

    def prog(frac, msg):
        if progress is not None:
            progress(float(frac), msg)

    prog(0.0, "rows: finiteness, norms, moments, outliers")
    facts = row_pass(z, distributed=distributed, seed=seed)
    n = facts.n
    promoted = False
    if getattr(z, "dtype", None) not in (torch.float64, np.float64) and facts.max_abs * math.sqrt(dim) > FLOAT32_SAFE:
        z, promoted = _as_float64(z), True  # finite float32 data float32 arithmetic would overflow or blur
    scale = 1.0
    if (facts.equal_norms and abs(math.log(math.sqrt(dim) / facts.norm_mean)) > 0.01
            and _spread_of(facts.sums) >= V.FULL_SPREAD):
        scale = math.sqrt(dim) / facts.norm_mean  # the L2-normalised-rows convention's rescale
    sums = facts.sums.scaled(scale) if scale != 1.0 else facts.sums
    try:
        metrics = metrics_from_sums(sums)
        robust_ev, bulk = None, metrics
        if facts.has_outliers and facts.clean_sums is not None:
            # the bulk without the outlier rows: its shift, scale and spectrum describe the rest of the set
            bulk = metrics_from_sums(facts.clean_sums.scaled(scale) if scale != 1.0 else facts.clean_sums)
            robust_ev = bulk["eigenvalues"]
    except np.linalg.LinAlgError as exc:
        raise InputError(f"the covariance of these embeddings could not be decomposed ({exc}); "
                         f"the values span too many orders of magnitude: rescale them") from None
    cov = sums  # its cached spectrum serves the principal family and screen (no second decomposition)
    too_few = n < V.MIN_ROWS
    draws = DEFAULT_NULL_DRAWS if null_draws is None else int(null_draws)
    if too_few:
        draws = 0
    mc_frac = 0.45 if draws > 0 else 0.0
    ev = evaluate(z, sums, family=family, num_slices=num_slices, seed=seed, preset=preset, device=dev,
                  distributed=distributed, progress=progress, lo=0.05, hi=1.0 - mc_frac, metrics_cov=cov,
                  scale=scale)
    stats = ev.family_stats
    m = stats.num_slices
    scaled = nl.to_scaled(stats.statistic, preset, n)

    mc = None
    if draws > 0:
        mc = monte_carlo_null(min(n, MC_MAX_ROWS), dim, family=family, num_slices=num_slices, seed=seed,
                              preset=preset, draws=draws, device=dev, cache_dir=cache_dir, progress=progress,
                              lo=1.0 - mc_frac, hi=1.0)

    p_slice, log_p_slice, kind = family_pvalues(family, preset, stats, scaled, mc, n)
    null_mean = preset.null_mean(n) if preset.form == "ecf" else float("nan")
    null_quantiles = null_band(family, preset, mc, n, m)
    if not np.isfinite(null_mean) and mc is not None:
        null_mean = float(nl.from_scaled(float(np.mean(mc.sigreg)), preset, n))
    sig = float(stats.sigreg)
    over = _over(sig, null_mean)

    # the overall and per-screen p-values, calibrated on the Monte Carlo null
    raw_p = ev.verdict_p
    if mc is not None:
        p, lp = mc.calibrated(ev.verdict_log_p)
        screen_p = {k: mc.calibrated(v, k)[0] for k, v in ev.group_log_p.items()}
        how = (f"Cauchy combination over the {', '.join(ev.groups)} screens, calibrated on {mc.size} Monte Carlo "
               f"null draws (Monte Carlo p in the bulk, calibrated Cauchy tail below {1 + 5}/{mc.size + 1})")
    else:
        # no Monte Carlo null: the Cauchy part cannot be calibrated in the bulk (8 % of N(0, I) draws fell
        # under 0.05), so the p-value reported is Bonferroni's, valid under any dependence (conservative)
        bonf = {k: nl.bonferroni(log_p=g["log_p"]) for k, g in ev.groups.items()}
        p, lp = max(ev.bonferroni_p, nl.P_FLOOR), nl.bonferroni(log_p=np.concatenate(
            [g["log_p"] for g in ev.groups.values()]))[1]
        screen_p = {k: max(v[0], nl.P_FLOOR) for k, v in bonf.items()}
        how = ("Bonferroni over every slice of the screens (no Monte Carlo null, null_draws=0): valid under any "
               "dependence, conservative (rejects at most alpha)")
    effects = _screen_effects(ev, n)  # on the rows as given (kept for the screens' table)
    significant = bool(p < gate_p) and not too_few
    moments = [(name, g["skew"], g["kurt"]) for name, g in ev.groups.items()]
    outl = facts.outliers_dict()
    found = [] if too_few else diagnose(bulk, moments, significant=significant, robust_eigenvalues=robust_ev,
                                        outliers=outl)
    modes = [f["mode"] for f in found]
    evidence = {f["mode"]: f for f in found}
    _, dead, k = rank_loss(bulk["eigenvalues"], int(bulk["n"]), dim)
    health = measure_health(z, seed=seed, distributed=distributed)
    collapse = V.collapse_answer(health, dead, k, "outlier rows set aside" if robust_ev is not None else "")
    shape = measure_distance(z, scale, bulk, num_slices, seed, preset, dev, distributed, n, dim)
    departure = [md for md in modes if md not in ("full_collapse", "dimensional_collapse")]
    if too_few:
        verdict, collapse["answer"], collapse["collapsing"] = V.TOO_FEW, "too few rows to judge", False
        level = dlevel = V.TOO_FEW
    else:
        largest = max([v for v in effects.values() if np.isfinite(v)], default=0.0)
        verdict = V.grade_verdict(collapse["collapsing"], significant, health["relative_effective_rank"],
                                  bool(departure), largest)
        level = V.health_level(health["relative_effective_rank"])
        dlevel = V.distance_level(shape["relative_distance"])
    conventions = [] if too_few else find_conventions(z, facts, scale, bulk, modes, ev, preset, null_mean, dev,
                                                                     distributed)
    answers = {
        "verdict": verdict,
        "health": dict(health, level=level, edges=list(V.HEALTH_EDGES),
                       description=V.describe_health(health, level)),
        "collapse": collapse,
        "distance": dict(
            shape, level=dlevel, edges=list(V.DISTANCE_EDGES), levels=list(V.DISTANCE_LEVELS),
            as_given_by_screen=effects, sigreg_over_null=over, significant=significant, p_value=p, gate_p=gate_p,
            p_calibration=(f"calibrated on {mc.size} Monte Carlo null draws" if mc is not None else
                           "Bonferroni bound (no Monte Carlo null): valid, conservative"),
            modes=[{k2: v for k2, v in f.items()} for f in found if f["mode"] in departure],
            rankme_fraction=metrics["rankme_fraction"],
            description=V.describe_distance(dlevel, shape),
        ),
        "conventions": conventions,
    }
    if too_few:
        answers["distance"]["note"] = f"{n} rows: at least {V.MIN_ROWS} are needed to judge"

    pv = {
        "verdict": {"method": how, "p_value": p, "log10_p_value": lp / math.log(10),
                    "uncalibrated_cauchy_p_value": raw_p},
        "screens": screen_p,
        "screens_note": "each screen's Cauchy–Bonferroni combination, calibrated like the overall p-value"
        if mc is not None else "each screen's Bonferroni bound (no Monte Carlo null): valid, conservative",
        "bonferroni": {"p_value": ev.bonferroni_p, "slices": int(sum(len(g["log_p"]) for g in ev.groups.values())),
                       "note": "a conservative bound (rejects at most alpha; fewer than alpha under dependence)"},
        "per_slice": {"method": kind},
    }
    if mc is not None:
        pv["monte_carlo"] = {
            "p_value": mc.pvalue(float(np.mean(scaled))), "statistic": "family SIGReg (mean over slices)",
            "draws": mc.size, "floor": nl.pvalue_floor(mc.size), "n_simulated": mc.config["n"],
            "source": mc.source, "seconds": mc.seconds, "cache_path": mc.path,
            "verdict_statistic_p_value": mc.verdict_pvalue(ev.verdict_log_p),
            "null_sigreg_mean": float(np.mean(nl.from_scaled(mc.sigreg, preset, n))),
            "null_sigreg_q95": float(nl.from_scaled(np.quantile(mc.sigreg, 0.95), preset, n)),
        }
    else:
        pv["monte_carlo"] = {"p_value": None, "draws": 0,
                             "note": f"too few rows ({n})" if too_few else "null_draws=0"}

    per_slice = {
        "slice": np.arange(m), "statistic": stats.statistic,
        "p_value": np.maximum(p_slice, nl.P_FLOOR) if np.isfinite(p_slice).any() else p_slice,
        "log10_p_value": log_p_slice / math.log(10),
        "mean": stats.mean, "std": stats.std, "skew": stats.skew, "kurtosis": stats.kurtosis,
    }
    config = {
        "preset": preset.name, "preset_config": preset.to_dict(),
        "grid": {"nodes": [float(v) for v in preset.nodes], "weights": [float(v) for v in preset.weights]},
        "num_slices": int(m), "num_slices_requested": int(num_slices), "seed": int(seed), "family": family,
        "family_info": ev.family_info, "n": int(n), "d": int(dim), "device": str(dev),
        "distributed": bool(distributed), "null_draws": int(mc.size if mc is not None else 0),
        "screen_preset": screen_preset(preset).name, "row_scale": float(scale), "float64": bool(promoted),
        "thresholds": {"gate_p": gate_p, "health_edges": list(V.HEALTH_EDGES), "distance_edges": list(V.DISTANCE_EDGES),
                       "collapse_directions": V.COLLAPSE_DIRECTIONS, "dead_fraction": V.DEAD_FRACTION,
                       "min_rows": V.MIN_ROWS},
    }
    prog(1.0, "done")
    return Assessment(
        sigreg=sig, null_mean=float(null_mean), p_value=float(p), verdict=verdict, modes=modes,
        per_slice_columns=per_slice, metrics=metrics, config=config, slices=stats, directions=ev.directions,
        mode_evidence=evidence, p_values=pv, sigreg_over_null=float(over), null_quantiles=null_quantiles,
        log10_p_value=lp / math.log(10), seconds=time.perf_counter() - t0, device=str(dev),
        screens={k2: {"p_value": screen_p.get(k2, g_p), "uncalibrated_p_value": g_p,
                      "statistic": ev.groups[k2]["statistic"], "log_p": ev.groups[k2]["log_p"],
                      "kurtosis": ev.groups[k2]["kurt"], "skew": ev.groups[k2]["skew"],
                      "relative_distance": effects.get(k2)} for k2, g_p in ev.group_p.items()},
        answers=answers, outliers=outl,
    )


def assess(
    z,
    num_slices: int = 1024,
    seed: int = 0,
    preset: "str | Preset" = "lejepa",
    family: str = "random",
    *,
    device="auto",
    progress: ProgressFn = None,
    distributed: bool = False,
    null_draws: Optional[int] = None,
    cache_dir=None,
) -> Assessment:
    """Assess embeddings ``z`` (N, D) — or (V, N, D) views, scored separately and averaged.

    Returns an :class:`Assessment`: ``.sigreg`` (family mean in the preset's units),
    ``.null_mean``, ``.p_value`` (the verdict's p-value: Cauchy combination of the
    screens' exact per-slice p-values, calibrated on the Monte Carlo null),
    ``.verdict`` (healthy / mild / marked / severe / collapsed, or "too few rows"),
    ``.answers`` (the three answers: collapse, distance, conventions), ``.modes``, ``.per_slice``, ``.metrics``, ``.config``, ``.to_dict()``,
    and ``.slices``, ``.directions``, ``.mode_evidence``, ``.p_values`` (every
    p-value with its method; Monte Carlo with its size), ``.sigreg_over_null``,
    ``.null_quantiles``.  ``progress(fraction, message)`` is called as work proceeds.
    ``null_draws`` (default 200, 0 to skip) sets the Monte Carlo null size;
    ``cache_dir`` (default ``$LATENT_HEALTH_CACHE`` or ``~/.cache/latent-health``,
    ``False`` for none) holds it between runs.
    """
    p = get_preset(preset)
    if family not in FAMILIES:
        raise InputError(f"unknown slice family {family!r}; choose one of {', '.join(FAMILIES)}")
    if int(num_slices) < 1:
        raise InputError(f"num_slices must be >= 1, got {num_slices}")
    if null_draws is not None and int(null_draws) < 0:
        raise InputError(f"null_draws must be >= 0, got {null_draws}")
    if distributed and family == "worst":
        raise InputError("the worst family searches on local rows and is not supported with distributed=True; "
                         "gather the batch or use random, coordinate or principal")
    zz = _validate(z)
    budget_note = None
    if zz.ndim in (2, 3):  # work budget before any D x D allocation (assessment/budget.py)
        views = int(zz.shape[0]) if zz.ndim == 3 else 1
        rows = int(zz.shape[-2])
        m = int(zz.shape[-1]) if family == "coordinate" else int(num_slices)
        # the family's directions stay alive while the largest screen (up to MAX_AXES axes) is scored
        m += max(m, min(int(zz.shape[-1]), MAX_AXES))
        check_assessment(rows, int(zz.shape[-1]), views, m)  # the route's bytes and work, before allocating
        if family != "worst":  # no Monte Carlo for the search
            null_draws, budget_note = fit_null_draws(int(zz.shape[-1]), null_draws, DEFAULT_NULL_DRAWS, views, rows=rows)
    kw = dict(num_slices=int(num_slices), seed=int(seed), preset=p, family=family, device=device,
              distributed=bool(distributed), null_draws=null_draws, cache_dir=cache_dir)
    if zz.ndim == 2:
        return _with_budget_note(_assess_2d(zz, progress=progress, **kw), budget_note)
    if zz.ndim != 3:
        raise InputError(f"embeddings must have shape (N, D) or (V, N, D), got {tuple(zz.shape)}")
    v = int(zz.shape[0])
    if v < 1:
        raise InputError("embeddings have 0 views")
    return _with_budget_note(_assess_views(zz, v, progress, kw), budget_note)


def _assess_views(zz, v: int, progress, kw) -> Assessment:
    """(V, N, D): every view assessed on its own, the verdict decided by the worst view.

    Multiplicity: V views are V tests, so each view's significance gate is Bonferroni's
    ``GATE_P / V`` (the family-wise error over the views stays at ``GATE_P``).  The
    result reports every view (``.views``) and, at the top level, the numbers of the view
    that decides (``answers["view"]``): its verdict, answers, modes, metrics, screens,
    outliers and per-slice table, so a card never mixes one view's SIGReg with another's
    verdict.  ``.sigreg`` is the mean over views (what lejepa's loss logs), with the
    deciding view's own value in ``answers["view_sigreg"]``; the p-value is the
    deciding view's, Bonferroni-corrected over the views.
    """
    gate = V.GATE_P / v
    views = []
    for i in range(v):
        sub = None if progress is None else (
            lambda f, msg, i=i: progress((i + f) / v, f"view {i + 1}/{v}: {msg}"))
        views.append(_assess_2d(zz[i], progress=sub, gate_p=gate, **kw))
    worst_i = max(range(v), key=lambda i: V.rank_key(views[i].answers))  # the headline's own ordering
    w = views[worst_i]
    sig = float(np.mean([a.sigreg for a in views]))
    p_dec = min(1.0, float(w.p_value) * v)
    lp_dec = min(0.0, float(w.log10_p_value) + math.log10(v))
    config = dict(w.config, views=v, decided_by_view=worst_i,
                  view_combination=(f"SIGReg averaged over the {v} views (as lejepa); the verdict is the worst view's, "
                                    f"each view gated at p < {V.GATE_P:g}/{v} (Bonferroni over views)"))
    pv = dict(w.p_values, views={"method": f"each view's calibrated p-value; the reported p-value is the deciding view's "
                                           f"times {v} (Bonferroni over the views)",
                                 "p_values": [a.p_value for a in views], "decided_by_view": worst_i})
    answers = dict(w.answers, view=worst_i, views=v, view_sigreg=float(w.sigreg),
                   view_verdicts=[a.verdict for a in views])
    return Assessment(
        sigreg=sig, null_mean=w.null_mean, p_value=max(p_dec, nl.P_FLOOR), verdict=w.verdict, modes=list(w.modes),
        per_slice_columns=dict(w.per_slice_columns), config=config, slices=w.slices,
        metrics=dict(w.metrics, **views_metrics(zz, kw["distributed"])),  # + LiDAR of the views (issue 22)
        directions=w.directions, mode_evidence=w.mode_evidence, p_values=pv,
        sigreg_over_null=sig / w.null_mean if w.null_mean else float("nan"), null_quantiles=w.null_quantiles,
        log10_p_value=lp_dec, seconds=float(sum(a.seconds for a in views)), device=w.device, views=views,
        screens=w.screens, answers=answers, outliers=w.outliers,
    )


def _with_budget_note(a: "Assessment", note) -> "Assessment":
    """Record in the result that the work budget changed the method (assessment/budget.py)."""
    if note:
        a.config = dict(a.config, work_budget=note)
    return a
