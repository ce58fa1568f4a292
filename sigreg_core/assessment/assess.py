"""``assess``: is this embedding batch healthy, and if not, what is wrong?

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel,
arXiv 2603.19312) is the mean over slices of the Epps–Pulley statistic

    EP_m = s(N) sum_k c_k [ (Cbar_mk - phi_k)^2 + Sbar_mk^2 ],

which sits near sum_k c_k (1 - exp(-t_k^2)) (1.0525 for ``lejepa``) on a healthy
batch.  ``assess`` turns it into calibrated answers:

1. **Per-slice p-values** from the exact null law of one slice (a weighted sum of
   chi-square(1) variables, :mod:`sigreg_core.core.nulllaw`) for fixed directions
   (``random``, ``coordinate``).  ``principal`` slices are chosen from the data,
   so their raw statistics get a Monte Carlo null of the same principal index;
   ``worst`` (searched) slices get the exact-law value labelled *descriptive*;
   the ``modulus`` form and per-dimension-standardised presets get a pooled
   Monte Carlo null.

2. **The verdict's p-value** (``.p_value``) is a Cauchy combination (Liu & Xie
   2020) of exact per-slice p-values from three *screens*, each weighted 1/3:
   the seeded random slices (the SIGReg slices), the D coordinate axes, and the
   principal axes after per-slice standardisation (a shape test whose law is the
   standardised chi-square mixture; the covariance that picks the axes is
   asymptotically independent of the standardised ECF, so the selection does
   not bias it).  Random slices alone cannot see non-Gaussian structure that is
   independent across coordinates (they look Gaussian in high D); the axes and
   principal screens can.  Why Cauchy: the slices share the data, so their
   p-values are strongly dependent; the Cauchy combination stays valid under
   arbitrary dependence (its tail is exact as p -> 0), is close to nominal at
   alpha = 0.05 (tests/test_calibration.py measures it), and, unlike a Monte
   Carlo null of B draws (floor 1/(B+1)), it reaches p = 1e-6 and far below
   honestly.  Bonferroni over the same slices is reported beside it.

3. **A Monte Carlo null** of the family's SIGReg mean at the same (N, D, M, grid,
   family, seed), from ``null_draws`` N(0, I) batches scored by the same code,
   cached on disk (``$LATENT_HEALTH_CACHE``, default ``~/.cache/latent-health``),
   its size stated; also the Monte Carlo calibration of the verdict's Cauchy
   statistic.  N above 2048 is simulated at N = 2048: the N-scaled statistic's
   null law does not depend on N (accurate from N of about 32).

4. **Verdict** (thresholds also in docs/calibration.md):

   * ``collapsed``: ``full_collapse`` or ``dimensional_collapse`` detected and p < 1e-3;
   * ``suspicious``: otherwise, p < 1e-3 or any other mode detected;
   * ``healthy``: p >= 1e-3 and no mode detected.

   Modes come from :func:`sigreg_core.assessment.diagnosis.diagnose`; SIGReg is also shown
   as a multiple of its null mean (``sigreg_over_null``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch

from sigreg_core.util.cache import cache_root
from sigreg_core.core import nulllaw as nl
from sigreg_core.core.device import resolve_device
from sigreg_core.assessment.diagnosis import MODES, diagnose
from sigreg_core.assessment.families import FAMILIES, make_directions, principal_axes
from sigreg_core.assessment.budget import check_dense_dim, fit_null_draws
from sigreg_core.assessment.metrics import MomentSums, metrics_from_sums
from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.assessment.slices import SliceStats, score_slices
from sigreg_core.util.jsonsafe import to_jsonable

__all__ = ["assess", "Assessment", "VERDICTS", "SUSPICIOUS_P", "monte_carlo_null", "MonteCarloNull"]

VERDICTS = ("healthy", "suspicious", "collapsed")
#: p-value below which a batch is at least ``suspicious``
SUSPICIOUS_P = 1e-3
#: default Monte Carlo null size
DEFAULT_NULL_DRAWS = 200
#: rows of the simulated null batches at most (the scaled null law is N-free)
MC_MAX_ROWS = 2048
#: screens: at most this many coordinate axes and principal axes
MAX_AXES = 1024
MAX_PRINCIPAL = 256
_CACHE_VERSION = 1
_MAX_POOL = 4_000_000

ProgressFn = Optional[Callable[[float, str], None]]


# ----------------------------------------------------------------- input
def _validate(z):
    if isinstance(z, torch.Tensor):
        t = z.detach()
        if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32,
                                                                          torch.int64, torch.uint8)):
            raise ValueError(f"embeddings must be real numbers, got dtype {t.dtype}")
        if not t.is_floating_point():
            t = t.float()
        return t  # stays on its device: rows are streamed from there
    if isinstance(z, np.ndarray) or hasattr(z, "__array__"):
        a = np.asarray(z)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"embeddings must be real numbers, got dtype {a.dtype}")
        if not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
        return a
    raise ValueError(f"embeddings must be a torch tensor or a numpy array, got {type(z).__name__}")


def _check_finite_rows(t: torch.Tensor, r0: int) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        row = int(torch.nonzero(bad.any(1)).flatten()[0]) + r0
        raise ValueError(f"embeddings contain {int(bad.sum())} non-finite value(s) (NaN or Inf), first in row {row}")


def _moment_sums(z, distributed: bool, chunk: int = 65536) -> MomentSums:
    n, dim = int(z.shape[0]), int(z.shape[1])
    sums = MomentSums(dim)
    if distributed:
        from sigreg_core.core import distributed as _dist
        first = z[: min(n, chunk)]
        first = (first if isinstance(first, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(first)))
        shift = first.to(torch.float64).mean(0)
        (shift,) = _dist.all_reduce_sum(shift)
        sums.set_shift(shift / _dist.world_size())
    for r0 in range(0, n, chunk):
        part = z[r0 : r0 + chunk]
        t = part if isinstance(part, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(part))
        _check_finite_rows(t, r0)
        sums.update(t)
    if distributed:
        sums.all_reduce()
    return sums


# --------------------------------------------------------------- screens
def _centred_statistic(stats: SliceStats, preset: Preset) -> np.ndarray:
    """EP of each slice after subtracting its own mean: the ECF is rotated by e^{-i t mean}."""
    t = stats.nodes[None, :]
    m = stats.mean[:, None]
    c, s = stats.ecf_real, stats.ecf_imag
    cr = c * np.cos(t * m) + s * np.sin(t * m)
    sr = s * np.cos(t * m) - c * np.sin(t * m)
    err = preset.weights[None, :] * ((cr - preset.target[None, :]) ** 2 + sr**2)
    scale = float(stats.n) if preset.scale_by_n else 1.0
    return scale * err.sum(1)


def _screen_preset(preset: Preset) -> Preset:
    return preset if nl.has_exact_law(preset) else get_preset("lejepa")


def _axes_selection(dim: int, seed: int) -> Optional[np.ndarray]:
    if dim <= MAX_AXES:
        return None
    return np.sort(np.random.default_rng(seed).choice(dim, size=MAX_AXES, replace=False))


@dataclass
class _Evaluation:
    family_stats: SliceStats
    directions: torch.Tensor
    family_info: dict
    groups: dict  # name -> dict(stats=SliceStats, statistic=(M,), log_p=(M,), skew, kurt)
    verdict_log_p: float
    verdict_p: float
    bonferroni_p: float
    group_p: dict


def _evaluate(z, sums: MomentSums, *, family: str, num_slices: int, seed: int, preset: Preset,
              device, distributed: bool, progress: ProgressFn = None, lo: float = 0.0, hi: float = 1.0,
              metrics_cov: Optional[np.ndarray] = None) -> _Evaluation:
    """Score the family and the three screens of one batch (the same code runs on null draws)."""
    dim = sums.dim
    n = sums.n
    cov = metrics_cov if metrics_cov is not None else sums.covariance(ddof=1)
    span = hi - lo

    def prog(frac, msg):
        if progress is not None:
            progress(lo + span * min(max(frac, 0.0), 1.0), msg)

    prog(0.0, f"directions ({family})")
    a, info = make_directions(z, family, num_slices, seed, preset, cov=cov)

    def rows_cb(base, width, label):
        if progress is None:
            return None
        return lambda done, total: prog(base + width * done / max(total, 1), f"{label}: {done}/{total} rows")

    stats = score_slices(z, a, preset, device=device, distributed=distributed,
                         progress=rows_cb(0.0, 0.6, f"scoring {a.shape[1]} {family} slices"))
    sp = _screen_preset(preset)
    same = sp is preset or sp == preset
    groups: dict = {}

    # screen 1: the seeded random slices
    if family == "random" and same:
        rs = stats
    else:
        rs = score_slices(z, make_directions(z, "random", num_slices, seed)[0], sp, device=device, distributed=distributed,
                          progress=rows_cb(0.6, 0.15, "random screen"))
    groups["random"] = {"stats": rs, "statistic": rs.statistic, "standardized": False}

    # screen 2: coordinate axes
    if family == "coordinate" and same and dim <= MAX_AXES:
        ax = stats
    else:
        sel = _axes_selection(dim, seed)
        if sel is None:
            ax = score_slices(z, torch.eye(dim), sp, device=device, distributed=distributed,
                              progress=rows_cb(0.75, 0.1, "axes screen"))
        else:
            e = torch.zeros(dim, len(sel))
            e[torch.from_numpy(sel), torch.arange(len(sel))] = 1.0
            ax = score_slices(z, e, sp, device=device, distributed=distributed,
                              progress=rows_cb(0.75, 0.1, "axes screen"))
    groups["axes"] = {"stats": ax, "statistic": ax.statistic, "standardized": False}

    # screen 3: principal axes, each projection standardised (shape test)
    vecs, evals = principal_axes(cov, min(dim, MAX_PRINCIPAL))
    lam_pop = evals * (n - 1) / n
    keep = lam_pop > max(1e-10 * max(lam_pop[0], 0.0), 1e-24)
    keep[max(n - 1, 0):] = False  # beyond rank N - 1 the sample covariance has no directions
    if keep.any():
        b = vecs[:, torch.from_numpy(np.flatnonzero(keep))] / torch.from_numpy(
            np.sqrt(lam_pop[keep]).astype(np.float32))[None, :]
        sh = score_slices(z, b, sp, device=device, distributed=distributed,
                          progress=rows_cb(0.85, 0.15, "principal shape screen"))
        groups["principal"] = {"stats": sh, "statistic": _centred_statistic(sh, sp), "standardized": True}

    group_logp = {}
    all_logp = []
    for name, g in groups.items():
        _, lp = nl.slice_pvalues(g["statistic"], sp, n, standardized=g["standardized"])
        g["log_p"] = lp
        g["skew"], g["kurt"] = g["stats"].skew, g["stats"].kurtosis
        _, glp = nl.cauchy_combination(log_p=lp)
        group_logp[name] = glp
        all_logp.append(lp)
    weights = np.concatenate([np.full(len(g["log_p"]), 1.0 / len(g["log_p"])) for g in groups.values()])
    vp, vlp = nl.cauchy_combination(log_p=np.concatenate(all_logp), weights=weights)
    bp, _ = nl.bonferroni(log_p=np.concatenate(all_logp))
    prog(1.0, "scored")
    return _Evaluation(
        family_stats=stats, directions=a, family_info=info, groups=groups, verdict_log_p=vlp,
        verdict_p=max(vp, nl.P_FLOOR) if vlp > -math.inf else nl.P_FLOOR, bonferroni_p=bp,
        group_p={k: float(max(math.exp(v), nl.P_FLOOR)) for k, v in group_logp.items()},
    )


# ---------------------------------------------------------- Monte Carlo
@dataclass
class MonteCarloNull:
    """Monte Carlo null at one configuration (arrays in N-scaled units)."""

    config: dict
    sigreg: np.ndarray  # (B,) family SIGReg of each null batch
    verdict_log_p: np.ndarray  # (B,) log of the verdict's Cauchy p-value on each null batch
    per_slice: np.ndarray  # (B', M) family per-slice statistics (pooled / per index)
    source: str = "computed"  # or "cache"
    seconds: float = 0.0
    path: Optional[str] = None

    @property
    def size(self) -> int:
        return int(self.sigreg.shape[0])

    def pvalue(self, sigreg_scaled: float) -> float:
        return float(nl.empirical_pvalue(sigreg_scaled, self.sigreg))

    def verdict_pvalue(self, log_p: float) -> float:
        """Monte Carlo p-value of the Cauchy statistic (smaller log p is more extreme)."""
        return float((1 + np.sum(self.verdict_log_p <= log_p)) / (self.size + 1))


def _cache_dir(cache_dir) -> Optional[Path]:
    if cache_dir is False:
        return None
    if cache_dir is None:
        cache_dir = cache_root()
    return Path(cache_dir)


def monte_carlo_null(n: int, dim: int, *, family: str, num_slices: int, seed: int, preset: Preset,
                     draws: int, device="auto", cache_dir=None, progress: ProgressFn = None,
                     lo: float = 0.0, hi: float = 1.0) -> MonteCarloNull:
    """Null draws Z ~ N(0, I) (n, dim) scored by the same code as the data; cached on disk."""
    preset = get_preset(preset)
    config = {
        "version": _CACHE_VERSION, "n": int(n), "dim": int(dim), "family": family, "num_slices": int(num_slices),
        "seed": int(seed), "preset": preset.to_dict(), "draws": int(draws),
        "max_axes": MAX_AXES, "max_principal": MAX_PRINCIPAL,
    }
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
    root = _cache_dir(cache_dir)
    path = root / f"null-{key}.npz" if root is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                out = MonteCarloNull(config=config, sigreg=f["sigreg"], verdict_log_p=f["verdict_log_p"],
                                     per_slice=f["per_slice"], source="cache", seconds=0.0, path=str(path))
            if out.size == draws:
                return out
        except Exception:
            pass  # unreadable cache entry: recompute and overwrite
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(int(key[:12], 16) % (2**62))
    sig = np.empty(draws)
    vlp = np.empty(draws)
    rows_kept = max(1, min(draws, _MAX_POOL // max(num_slices, 1)))
    pool = []
    for b in range(draws):
        zb = torch.randn(n, dim, generator=g)
        sums = MomentSums(dim).update(zb)
        ev = _evaluate(zb, sums, family=family, num_slices=num_slices, seed=seed, preset=preset,
                       device=device, distributed=False)
        st = nl.to_scaled(ev.family_stats.statistic, preset, n)
        sig[b] = float(np.mean(st))
        vlp[b] = ev.verdict_log_p
        if b < rows_kept:
            pool.append(st.astype(np.float32))
        if progress is not None:
            progress(lo + (hi - lo) * (b + 1) / draws, f"Monte Carlo null: {b + 1}/{draws} draws")
    per = np.stack(pool) if pool else np.zeros((0, num_slices), np.float32)
    out = MonteCarloNull(config=config, sigreg=sig, verdict_log_p=vlp, per_slice=per, source="computed",
                         seconds=time.perf_counter() - t0)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, sigreg=sig, verdict_log_p=vlp, per_slice=per)
            os.replace(tmp, path)
            out.path = str(path)
        except OSError:
            out.path = None  # read-only cache location: keep the result in memory only
    return out


# ------------------------------------------------------------ the result
@dataclass
class Assessment:
    """Result of :func:`assess` (see the module docstring for what each number means)."""

    sigreg: float
    null_mean: float
    p_value: float
    verdict: str
    modes: list
    per_slice: pd.DataFrame
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

    def to_dict(self) -> dict:
        """JSON-safe summary (per-slice table as lists; no tensors, no NaN/Inf)."""
        return _jsonable({
            "sigreg": self.sigreg,
            "null_mean": self.null_mean,
            "sigreg_over_null": self.sigreg_over_null,
            "p_value": self.p_value,
            "log10_p_value": self.log10_p_value,
            "verdict": self.verdict,
            "modes": list(self.modes),
            "mode_evidence": self.mode_evidence,
            "p_values": self.p_values,
            "null_quantiles": {str(k): v for k, v in self.null_quantiles.items()},
            "metrics": self.metrics,
            "config": self.config,
            "seconds": self.seconds,
            "device": self.device,
            "per_slice": {c: self.per_slice[c].tolist() for c in self.per_slice.columns},
            "views": [v.to_dict() for v in self.views] if self.views else [],
        })


def _jsonable(x):
    return to_jsonable(x)


def _verdict(p: float, modes: list) -> str:
    collapse = any(m in ("full_collapse", "dimensional_collapse") for m in modes)
    if collapse and p < SUSPICIOUS_P:
        return "collapsed"
    if p < SUSPICIOUS_P or modes:
        return "suspicious"
    return "healthy"


def _assess_2d(z, *, num_slices, seed, preset, family, device, progress, distributed, null_draws,
               cache_dir) -> Assessment:
    t0 = time.perf_counter()
    dev = resolve_device(device)
    n_local, dim = int(z.shape[0]), int(z.shape[1])
    if dim < 1:
        raise ValueError(f"embeddings need at least 1 dimension, got shape {tuple(z.shape)}")
    if n_local < 2 and not distributed:
        raise ValueError(f"embeddings need at least 2 rows, got {n_local}")

    def prog(frac, msg):
        if progress is not None:
            progress(float(frac), msg)

    prog(0.0, "companion metrics")
    sums = _moment_sums(z, distributed)
    n = sums.n
    metrics = metrics_from_sums(sums)
    cov = sums.covariance(ddof=1)
    draws = DEFAULT_NULL_DRAWS if null_draws is None else int(null_draws)
    if family == "worst":
        draws = 0  # a Monte Carlo of the search is not run: its p-values are descriptive
    mc_frac = 0.45 if draws > 0 else 0.0
    ev = _evaluate(z, sums, family=family, num_slices=num_slices, seed=seed, preset=preset, device=dev,
                   distributed=distributed, progress=progress, lo=0.05, hi=1.0 - mc_frac, metrics_cov=cov)
    stats = ev.family_stats
    m = stats.num_slices
    scaled = nl.to_scaled(stats.statistic, preset, n)

    mc = None
    if draws > 0:
        n_mc = min(n, MC_MAX_ROWS)
        mc = monte_carlo_null(n_mc, dim, family=family, num_slices=num_slices, seed=seed, preset=preset,
                              draws=draws, device=dev, cache_dir=cache_dir, progress=progress,
                              lo=1.0 - mc_frac, hi=1.0)

    # per-slice p-values of the family
    exact = nl.has_exact_law(preset)
    if family == "principal" or not exact:
        if mc is None or mc.per_slice.shape[0] == 0:
            p_slice = np.full(m, np.nan)
            kind = "unavailable (no Monte Carlo null: null_draws=0)"
        elif family == "principal":
            ref = mc.per_slice[:, :m].astype(np.float64)
            p_slice = np.array([nl.empirical_pvalue(scaled[j], ref[:, j]) for j in range(m)], dtype=np.float64)
            kind = f"Monte Carlo per principal index ({ref.shape[0]} draws; floor {1 / (ref.shape[0] + 1):.2g})"
        else:
            ref = mc.per_slice.astype(np.float64).ravel()
            p_slice = nl.empirical_pvalue(scaled, ref).astype(np.float64)
            kind = f"Monte Carlo pooled over slices ({ref.size} values from {mc.per_slice.shape[0]} draws)"
        log_p_slice = np.log(p_slice)
    else:
        p_slice, log_p_slice = nl.slice_pvalues(stats.statistic, preset, n)
        kind = "exact law (weighted chi-square mixture)"
        if family == "worst":
            kind = "descriptive: exact law, not corrected for the search"

    # null reference values in the preset's units
    null_mean = preset.null_mean(n) if preset.form == "ecf" else float("nan")
    if exact:
        law = nl.slice_law(preset)
        qs = nl.from_scaled(law.ppf([0.95, 0.999]), preset, n)
        null_quantiles = {0.95: float(qs[0]), 0.999: float(qs[1]), "source": "exact law"}
    elif mc is not None and mc.per_slice.size:
        qs = nl.from_scaled(np.quantile(mc.per_slice.astype(np.float64), [0.95, 0.999]), preset, n)
        null_quantiles = {0.95: float(qs[0]), 0.999: float(qs[1]), "source": "Monte Carlo"}
        if not np.isfinite(null_mean):
            null_mean = float(nl.from_scaled(float(np.mean(mc.sigreg)), preset, n))
    else:
        null_quantiles = {0.95: float("nan"), 0.999: float("nan"), "source": "unavailable"}
    sig = float(stats.sigreg)
    over = sig / null_mean if null_mean and np.isfinite(null_mean) else float("nan")

    # diagnosis
    moments = [(name, g["skew"], g["kurt"]) for name, g in ev.groups.items()]
    p = ev.verdict_p
    found = diagnose(metrics, moments, significant=p < SUSPICIOUS_P)
    modes = [f["mode"] for f in found]
    evidence = {f["mode"]: f for f in found}
    verdict = _verdict(p, modes)

    pv = {
        "verdict": {"method": "Cauchy combination of exact per-slice p-values over the random, coordinate-axis and "
                              "standardised principal-axis screens (weight 1/3 each)",
                    "p_value": p, "log10_p_value": ev.verdict_log_p / math.log(10)},
        "screens": ev.group_p,
        "bonferroni": {"p_value": ev.bonferroni_p,
                       "slices": int(sum(len(g["log_p"]) for g in ev.groups.values()))},
        "per_slice": {"method": kind},
        "cauchy_family": {"p_value": max(nl.cauchy_combination(log_p=log_p_slice)[0], nl.P_FLOOR),
                          "note": "Cauchy combination of the family's per-slice p-values"},
        "bonferroni_family": {"p_value": max(nl.bonferroni(log_p=log_p_slice)[0], nl.P_FLOOR)},
    }
    if mc is not None:
        pv["monte_carlo"] = {
            "p_value": mc.pvalue(float(np.mean(scaled))),
            "statistic": "family SIGReg (mean over slices)",
            "draws": mc.size,
            "floor": nl.pvalue_floor(mc.size),
            "n_simulated": mc.config["n"],
            "source": mc.source,
            "seconds": mc.seconds,
            "cache_path": mc.path,
            "verdict_statistic_p_value": mc.verdict_pvalue(ev.verdict_log_p),
            "null_sigreg_mean": float(np.mean(nl.from_scaled(mc.sigreg, preset, n))),
            "null_sigreg_q95": float(nl.from_scaled(np.quantile(mc.sigreg, 0.95), preset, n)),
        }
    else:
        pv["monte_carlo"] = {"p_value": None, "draws": 0,
                             "note": "not run (worst family: descriptive)" if family == "worst" else "null_draws=0"}

    per_slice = pd.DataFrame({
        "slice": np.arange(m),
        "statistic": stats.statistic,
        "p_value": np.maximum(p_slice, nl.P_FLOOR) if np.isfinite(p_slice).any() else p_slice,
        "log10_p_value": log_p_slice / math.log(10),
        "mean": stats.mean,
        "std": stats.std,
        "skew": stats.skew,
        "kurtosis": stats.kurtosis,
    })
    seconds = time.perf_counter() - t0
    config = {
        "preset": preset.name,
        "preset_config": preset.to_dict(),
        "grid": {"nodes": [float(v) for v in preset.nodes], "weights": [float(v) for v in preset.weights]},
        "num_slices": int(m),
        "num_slices_requested": int(num_slices),
        "seed": int(seed),
        "family": family,
        "family_info": ev.family_info,
        "n": int(n),
        "d": int(dim),
        "device": str(dev),
        "distributed": bool(distributed),
        "null_draws": int(draws),
        "screen_preset": _screen_preset(preset).name,
        "thresholds": {"suspicious_p": SUSPICIOUS_P},
    }
    prog(1.0, "done")
    return Assessment(
        sigreg=sig, null_mean=float(null_mean), p_value=float(p), verdict=verdict, modes=modes,
        per_slice=per_slice, metrics=metrics, config=config, slices=stats, directions=ev.directions,
        mode_evidence=evidence, p_values=pv, sigreg_over_null=float(over), null_quantiles=null_quantiles,
        log10_p_value=ev.verdict_log_p / math.log(10), seconds=seconds, device=str(dev),
        screens={k: {"p_value": ev.group_p[k], "statistic": g["statistic"], "log_p": g["log_p"],
                     "kurtosis": g["kurt"], "skew": g["skew"]} for k, g in ev.groups.items()},
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
    screens' exact per-slice p-values), ``.verdict`` (healthy / suspicious /
    collapsed), ``.modes``, ``.per_slice``, ``.metrics``, ``.config``, ``.to_dict()``,
    and ``.slices``, ``.directions``, ``.mode_evidence``, ``.p_values`` (every
    p-value with its method; Monte Carlo with its size), ``.sigreg_over_null``,
    ``.null_quantiles``.  ``progress(fraction, message)`` is called as work proceeds.
    ``null_draws`` (default 200, 0 to skip) sets the Monte Carlo null size;
    ``cache_dir`` (default ``$LATENT_HEALTH_CACHE`` or ``~/.cache/latent-health``,
    ``False`` for none) holds it between runs.
    """
    p = get_preset(preset)
    if family not in FAMILIES:
        raise ValueError(f"unknown slice family {family!r}; choose one of {', '.join(FAMILIES)}")
    if int(num_slices) < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    if null_draws is not None and int(null_draws) < 0:
        raise ValueError(f"null_draws must be >= 0, got {null_draws}")
    if distributed and family == "worst":
        raise ValueError("the worst family searches on local rows and is not supported with distributed=True; "
                         "gather the batch or use random, coordinate or principal")
    zz = _validate(z)
    budget_note = None
    if zz.ndim in (2, 3):  # work budget before any D x D allocation (assessment/budget.py)
        check_dense_dim(int(zz.shape[-1]))
        views = int(zz.shape[0]) if zz.ndim == 3 else 1
        if family == "worst":  # no Monte Carlo for the search: only the views x D^3 check
            fit_null_draws(int(zz.shape[-1]), 0, DEFAULT_NULL_DRAWS, views)
        else:
            null_draws, budget_note = fit_null_draws(int(zz.shape[-1]), null_draws, DEFAULT_NULL_DRAWS, views)
    kw = dict(num_slices=int(num_slices), seed=int(seed), preset=p, family=family, device=device,
              distributed=bool(distributed), null_draws=null_draws, cache_dir=cache_dir)
    if zz.ndim == 2:
        return _with_budget_note(_assess_2d(zz, progress=progress, **kw), budget_note)
    if zz.ndim != 3:
        raise ValueError(f"embeddings must have shape (N, D) or (V, N, D), got {tuple(zz.shape)}")
    v = int(zz.shape[0])
    if v < 1:
        raise ValueError("embeddings have 0 views")
    views = []
    for i in range(v):
        sub = None if progress is None else (
            lambda f, msg, i=i: progress((i + f) / v, f"view {i + 1}/{v}: {msg}"))
        views.append(_assess_2d(zz[i], progress=sub, **kw))
    first = views[0]
    logp = np.array([a.log10_p_value * math.log(10) for a in views])
    pc, lpc = nl.cauchy_combination(log_p=logp)
    modes = [mm for mm in MODES if any(mm in a.modes for a in views)]
    evidence = {}
    for a in views:
        for k, e in a.mode_evidence.items():
            evidence.setdefault(k, e)
    verdict = max((a.verdict for a in views), key=VERDICTS.index)
    cols = ["statistic", "mean", "std", "skew", "kurtosis"]
    per = first.per_slice.copy()
    for c in cols:
        per[c] = np.mean([a.per_slice[c].to_numpy() for a in views], axis=0)
    lp_slices = np.stack([a.per_slice["log10_p_value"].to_numpy() * math.log(10) for a in views], axis=1)
    comb = [nl.cauchy_combination(log_p=row) for row in lp_slices]
    per["p_value"] = np.maximum([c[0] for c in comb], nl.P_FLOOR)
    per["log10_p_value"] = np.array([c[1] for c in comb]) / math.log(10)
    sig = float(np.mean([a.sigreg for a in views]))
    config = dict(first.config, views=v, view_combination="SIGReg averaged over views (as lejepa); p-values "
                                                          "Cauchy-combined over views")
    pv = dict(first.p_values, views={"method": "Cauchy combination of the views' verdict p-values",
                                     "p_values": [a.p_value for a in views]})
    return _with_budget_note(Assessment(
        sigreg=sig, null_mean=first.null_mean, p_value=max(pc, nl.P_FLOOR), verdict=verdict, modes=modes,
        per_slice=per, metrics=first.metrics, config=config, slices=first.slices, directions=first.directions,
        mode_evidence=evidence, p_values=pv, sigreg_over_null=sig / first.null_mean if first.null_mean else float("nan"),
        null_quantiles=first.null_quantiles, log10_p_value=lpc / math.log(10),
        seconds=float(sum(a.seconds for a in views)), device=first.device, views=views, screens=first.screens,
    ), budget_note)


def _with_budget_note(a: "Assessment", note) -> "Assessment":
    """Record in the result that the work budget changed the method (assessment/budget.py)."""
    if note:
        a.config = dict(a.config, work_budget=note)
    return a
