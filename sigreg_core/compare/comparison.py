"""Comparing embedding sets (checkpoints, runs, models) on the same slices, with significance.

SIGReg (LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312)
is the mean over M unit directions u_m of the Epps–Pulley statistic of x = Z u_m,

    EP_m = s(N) * sum_k c_k [ (mean_n cos(t_k x_n) - exp(-t_k^2/2))^2 + (mean_n sin(t_k x_n))^2 ].

Two values of it only compare when they are taken on the **same directions** and
the **same N** (for non-Gaussian data EP grows about linearly in N).
:func:`compare_sets` arranges both: one direction draw (``make_directions`` with the
given family and seed) scores every set, and every set is subsampled without
replacement to the smallest N (seeded by ``seed`` and the set's name, rows kept in
their original order; stated in :attr:`Comparison.row_note`).  With
``same_n=False`` all rows are kept and the caveat is recorded.

Each set gets the full assessment (:func:`sigreg_core.assessment.assess.assess`: SIGReg, its
multiple of the null mean, p-value, verdict, collapse modes, companion metrics).
Against a reference set every other set gets:

* **Bootstrap deltas** (the primary evidence).  For SIGReg and the main companion
  metrics (RankMe, std of L2-normalised rows, VICReg variance and covariance):
  delta = value(set) - value(reference), with a bootstrap interval over rows: the rows
  of each set are resampled independently (``n_boot`` times, same directions), giving
  d*_b = theta*_b(set) - theta*_b(ref), and the interval is the observed delta plus the
  bootstrap deviations, ``[d - (q_{1-a/2}(d*) - mean d*), d - (q_{a/2}(d*) - mean d*)]``.
  It is centred on the observed delta on purpose: a resample repeats rows, which
  shifts the bootstrap values (it adds exactly sum_k c_k (1 - |ECF(t_k)|^2) to E*[EP],
  about the null mean for a healthy set and 0 for a collapsed one, and lowers RankMe);
  that shift is an artefact of resampling, while EP itself is unbiased for its
  expectation at this N, which is what the delta compares.  A delta is *significant*
  when its interval excludes 0; ``p_boot`` = (1 + #{|d*_b - mean d*| >= |d|}) / (B + 1)
  is the matching two-sided bootstrap p-value (1 when d = 0).
  Resampling is done with multinomial row counts W (B x N): the ECF sums of every
  resample are W @ cos(t_k X) and W @ sin(t_k X) on the projections X = Z A,
  computed once (chunked over rows, float32 blocks summed in float64), and the metrics
  come from weighted moment sums (:func:`bootstrap_metrics`); both are exactly the
  values of the resampled rows (tests check it).
* **A paired test over slices**: the per-slice statistics of the two sets on the
  same slice indices, d_m = EP_m(set) - EP_m(ref), tested with the Wilcoxon
  signed-rank test and the sign test.  The slices share the data (their statistics
  are correlated, SIGREG.md §2: Var(mean) ~ Var_1 / M + 2 kappa_1^2 / D), so the
  plain p-values, which treat M correlated values as independent, overstate the
  evidence when M >> D.  The adjusted p-values inflate the tests' variance by the
  design effect estimated from the bootstrap (:func:`design_effect`); they are
  approximate.  The bootstrap interval is the evidence; the paired test says how
  consistently the slices move.

Calibration (measured, scripts in tests/test_compare.py, slow): for two independent
N(0, I) sets the 95 % interval excluded 0 in 0 of 200 repetitions (N = 256, D = 8,
M = 32) and 0 of 100 (N = 512, D = 16, M = 256): it is conservative near the healthy
level, because EP is a degenerate V-statistic there and the plain bootstrap
overstates its spread (Arcones & Giné 1992); away from it (a non-Gaussian set) the
bootstrap is consistent.  The plain slice-paired Wilcoxon test called 31-39 % of those
pairs different at the 5 % level, the adjusted one 1-4 % (table in docs/compare.md).

Healthier means lower SIGReg, higher RankMe, higher std of normalised rows (up to
1/sqrt(D)) and a lower VICReg variance term.  The VICReg covariance term depends on
the scale (a collapsed set has almost none), so its delta is shown without a
"healthier" label.

Exports: :meth:`Comparison.summary_frame`, :meth:`Comparison.deltas_frame`,
:meth:`Comparison.paired_frame`, :func:`comparison_csv`, :meth:`Comparison.to_dict`
(JSON-safe) and :func:`comparison_html` (standalone, plotly.js inlined once).
"""
from __future__ import annotations

import html
import json
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from sigreg_core.util.jsonsafe import to_jsonable
from sigreg_core.core.presets import Preset, get_preset

__all__ = [
    "CompareError",
    "SetResult",
    "Delta",
    "PairedTest",
    "Comparison",
    "compare_sets",
    "same_n_indices",
    "bootstrap_counts",
    "bootstrap_sigreg",
    "bootstrap_metrics",
    "centred_interval",
    "paired_slice_test",
    "design_effect",
    "comparison_csv",
    "comparison_json",
    "comparison_html",
    "DELTA_METRICS",
    "COMPARABLE_FAMILIES",
    "comparison_text",
    "add_compare_parser",
    "run_compare",
]

#: metric key -> (label, which way is healthier)
DELTA_METRICS = {
    "sigreg": ("SIGReg", "lower"),
    "rankme": ("RankMe", "higher"),
    "normalized_std": ("std of L2-normalised rows", "higher"),
    "vicreg_variance": ("VICReg variance", "lower"),
    "vicreg_covariance": ("VICReg covariance", None),  # scale-dependent: no healthier direction
}
#: slice families whose directions do not depend on the data (so every set shares them)
COMPARABLE_FAMILIES = ("random", "coordinate")
#: rows x slices x nodes of one cos/sin block in the bootstrap
_BOOT_BLOCK = 1 << 22


class CompareError(ValueError):
    """Sets that cannot be compared (different D, too few rows, bad names); one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


# ----------------------------------------------------------------------------- results
@dataclass
class SetResult:
    """One set's assessment inside a comparison (numpy / plain Python only)."""

    name: str
    n: int                       # rows scored
    n_original: int              # rows given
    dim: int
    sigreg: float
    null_mean: float
    sigreg_over_null: float
    p_value: float
    verdict: str
    modes: list
    metrics: dict                # scalar companion metrics
    eigenvalues: np.ndarray      # covariance eigenvalues, largest first
    slices: object               # SliceStats (statistic, moments, ECF per slice)
    slice_p_values: np.ndarray   # (M,)
    row_indices: Optional[np.ndarray] = None  # rows kept (None: all, in order)
    assessment: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def statistic(self) -> np.ndarray:
        return np.asarray(self.slices.statistic, dtype=np.float64)

    def row(self) -> dict:
        out = {
            "set": self.name,
            "rows": self.n,
            "rows_given": self.n_original,
            "dim": self.dim,
            "sigreg": self.sigreg,
            "null_mean": self.null_mean,
            "sigreg_over_null": self.sigreg_over_null,
            "p_value": self.p_value,
            "verdict": self.verdict,
            "modes": ", ".join(self.modes) if self.modes else "none",
        }
        for k in ("rankme", "normalized_std", "vicreg_variance", "vicreg_covariance", "spectrum_slope",
                  "top_eigen_fraction"):
            if k in self.metrics:
                out[k] = self.metrics[k]
        return out


@dataclass
class Delta:
    """value(set) - value(reference) for one metric, with its bootstrap interval."""

    set: str
    reference: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    se: float
    p_boot: float
    significant: bool
    healthier: Optional[str]     # the healthier of the two when significant (and the metric has a direction)
    n_boot: int
    level: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class PairedTest:
    """Slice-paired comparison of per-slice statistics (approximate: slices share data)."""

    set: str
    reference: str
    num_slices: int
    median_difference: float
    mean_difference: float
    fraction_lower: float        # fraction of slices where the set scores lower (healthier)
    wilcoxon_statistic: float
    wilcoxon_p: float            # exact / scipy, as if the slices were independent (overstates)
    sign_p: float                # exact binomial, as if the slices were independent (overstates)
    design_effect: float         # Var(mean of slice differences) / (Var of one slice / M), from the bootstrap
    wilcoxon_p_adjusted: float   # normal approximation with the variance inflated by the design effect
    sign_p_adjusted: float
    healthier: Optional[str]     # by the adjusted Wilcoxon test at the comparison's level, else None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Comparison:
    """The comparison of several embedding sets on the same slices."""

    names: list
    reference: str
    sets: dict                   # name -> SetResult
    deltas: list                 # Delta, for every non-reference set and metric
    paired: list                 # PairedTest, for every non-reference set
    directions: np.ndarray       # (D, M) float32, shared by every set
    preset: Preset
    family: str
    seed: int
    num_slices: int
    same_n: bool
    n_boot: int
    level: float
    row_note: str
    caveats: list
    null_quantiles: dict         # {"0.95": q, "0.999": q} of one slice, preset units at the compared N
    arrays: dict = field(default_factory=dict, repr=False)  # name -> rows scored (for slice views)
    timings: dict = field(default_factory=dict)

    # -- tables
    def summary_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.sets[n].row() for n in self.names])

    def deltas_frame(self) -> pd.DataFrame:
        cols = list(Delta.__dataclass_fields__)
        return pd.DataFrame([d.to_dict() for d in self.deltas], columns=cols)

    def paired_frame(self) -> pd.DataFrame:
        cols = list(PairedTest.__dataclass_fields__)
        return pd.DataFrame([p.to_dict() for p in self.paired], columns=cols)

    def per_slice_frame(self) -> pd.DataFrame:
        """One row per slice, one statistic column per set (same slice indices)."""
        df = pd.DataFrame({"slice": np.arange(self.num_slices_scored)})
        for n in self.names:
            df[n] = self.sets[n].statistic
        return df

    @property
    def num_slices_scored(self) -> int:
        return int(self.directions.shape[1])

    def delta(self, set_name: str, metric: str = "sigreg") -> Delta:
        for d in self.deltas:
            if d.set == set_name and d.metric == metric:
                return d
        raise KeyError(f"no delta for set {set_name!r} and metric {metric!r}")

    def paired_test(self, set_name: str) -> PairedTest:
        for p in self.paired:
            if p.set == set_name:
                return p
        raise KeyError(f"no paired test for set {set_name!r}")

    def config(self) -> dict:
        return {
            "preset": self.preset.name,
            "preset_config": self.preset.to_dict(),
            "family": self.family,
            "seed": self.seed,
            "num_slices": self.num_slices_scored,
            "dim": int(self.directions.shape[0]),
            "same_n": self.same_n,
            "n_boot": self.n_boot,
            "level": self.level,
            "reference": self.reference,
        }

    def to_dict(self) -> dict:
        """JSON-safe dict: config, per-set summaries, deltas, paired tests, per-slice statistics."""
        return _jsonable({
            "tool": "latent-health",
            "kind": "comparison",
            "config": self.config(),
            "row_note": self.row_note,
            "caveats": list(self.caveats),
            "null_quantiles": self.null_quantiles,
            "sets": {n: {**self.sets[n].row(), "modes": list(self.sets[n].modes),
                         "metrics": self.sets[n].metrics, "seconds": self.sets[n].seconds}
                     for n in self.names},
            "deltas": [d.to_dict() for d in self.deltas],
            "paired_tests": [p.to_dict() for p in self.paired],
            "per_slice_statistic": {n: self.sets[n].statistic for n in self.names},
            "timings": self.timings,
            "method": {
                "deltas": "bootstrap interval over rows centred on the observed delta (each set resampled "
                          "independently, same directions); significant when the interval excludes 0",
                "paired_test": "Wilcoxon signed-rank and sign test over slices; plain p-values treat the slices as "
                               "independent (they are not), adjusted p-values inflate the variance by the design "
                               "effect estimated from the bootstrap; approximate",
            },
        })


# ----------------------------------------------------------------------------- helpers
def _jsonable(x):
    return to_jsonable(x)


def _scalar_metrics(metrics: Mapping) -> dict:
    out = {}
    for k, v in dict(metrics).items():
        if np.ndim(v) == 0:
            try:
                out[k] = float(v) if not isinstance(v, (bool, np.bool_)) else bool(v)
            except (TypeError, ValueError):
                continue
    return out


def _name_seed(name: str) -> int:
    return zlib.crc32(str(name).encode("utf-8")) & 0xFFFFFFFF


def same_n_indices(n: int, n_keep: int, seed: int, name: str) -> Optional[np.ndarray]:
    """Rows kept when a set of ``n`` rows is cut to ``n_keep``: uniform without replacement, sorted.

    Seeded by (seed, crc32(name)) so a set's subsample does not depend on the
    order or on the other sets.  ``None`` when nothing is cut.
    """
    n, n_keep = int(n), int(n_keep)
    if n_keep >= n:
        return None
    rng = np.random.default_rng([int(seed), _name_seed(name), 0x53414D45])
    return np.sort(rng.choice(n, size=n_keep, replace=False))


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial row counts (n_boot, n) of ``n_boot`` resamples of n rows with replacement."""
    out = np.empty((int(n_boot), int(n)), dtype=np.float32)
    for b in range(int(n_boot)):
        out[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    return out


def centred_interval(estimate: float, draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval centred on the estimate: [e - (q_hi - mean), e - (q_lo - mean)] of the draws.

    The draws give the spread (their deviations from their own mean, reflected);
    their shift from the estimate (a resampling artefact, see the module docstring)
    is removed.
    """
    draws = np.asarray(draws, dtype=np.float64)
    a = (1.0 - float(level)) / 2.0
    q_lo, q_hi = np.quantile(draws, [a, 1.0 - a])
    mu = float(draws.mean())
    return float(estimate - (q_hi - mu)), float(estimate - (q_lo - mu))


def bootstrap_sigreg(
    z,
    directions,
    preset: "str | Preset",
    counts: np.ndarray,
    *,
    device="auto",
    progress: Optional[Callable[[int, int], None]] = None,
    per_slice: bool = False,
) -> np.ndarray:
    """SIGReg of every resample given by row ``counts`` (B, N): (B,) float64 (or (B, M) with ``per_slice``).

    Exactly the SIGReg of ``z[np.repeat(arange(N), counts[b])]`` on ``directions``:
    for the ECF presets the resampled sums are counts @ cos(t_k X) and
    counts @ sin(t_k X) with X = z A computed once (no (B, N, D) copy); presets that
    standardise each dimension first re-score each resample with ``score_slices``.
    """
    from sigreg_core.core.device import resolve_device
    from sigreg_core.assessment.slices import score_slices
    from sigreg_core.core.statistic import statistic_from_sums

    p = get_preset(preset)
    counts = np.asarray(counts)
    b_total, n = counts.shape
    if p.standardize:
        rows = []
        base = np.arange(n)
        for b in range(b_total):
            idx = np.repeat(base, counts[b].astype(np.int64))
            rows.append(score_slices(np.asarray(z)[idx], directions, p, device=device).statistic)
            if progress is not None:
                progress(b + 1, b_total)
        out = np.stack(rows).astype(np.float64)
        return out if per_slice else out.mean(1)
    dev = resolve_device(device)
    a = torch.as_tensor(directions, dtype=torch.float32).to(dev)
    m = a.shape[1]
    t = torch.as_tensor(p.nodes, dtype=torch.float32, device=dev)
    k = t.numel()
    w_all = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32)).to(dev)
    sum_c = torch.zeros(b_total, m * k, dtype=torch.float64, device=dev)
    sum_s = torch.zeros(b_total, m * k, dtype=torch.float64, device=dev)
    rows = max(1, _BOOT_BLOCK // max(1, m * k))
    zz = z if isinstance(z, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(z, dtype=np.float32)))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        x = zz[r0:r1].to(device=dev, dtype=torch.float32) @ a  # (r, M)
        arg = (x[:, :, None] * t).reshape(r1 - r0, m * k)
        w = w_all[:, r0:r1]
        sum_c += (w @ torch.cos(arg)).double()
        sum_s += (w @ torch.sin(arg)).double()
        if progress is not None:
            progress(r1, n)
    stat, _, _, _ = statistic_from_sums(sum_c.reshape(b_total * m, k), sum_s.reshape(b_total * m, k), float(n), p)
    out = stat.reshape(b_total, m).cpu().numpy().astype(np.float64)
    return out if per_slice else out.mean(1)


def bootstrap_metrics(z, counts: np.ndarray, keys: Sequence[str] = tuple(k for k in DELTA_METRICS if k != "sigreg"),
                      progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Companion metrics of every resample given by row ``counts`` (B, N): {key: (B,)}.

    Computed in batches from the weighted moment sums, with d = z - mean(z) and
    u = z / ||z||: n = sum w, s1 = w d, S2 = d^T diag(w) d, u1 = w u, u2 = w u^2, then
    (the definitions of :mod:`sigreg_core.assessment.metrics`)

    * covariance C = (S2 - s1 s1^T / n) / (n - 1); VICReg variance mean_j relu(1 - sqrt(C_jj + 1e-4)),
      VICReg covariance sum_{i != j} C_ij^2 / D;
    * Gram Z^T diag(w) Z = S2 + m s1^T + s1 m^T + n m m^T (m = mean(z)); its eigenvalues are the
      squared singular values of the resampled rows; RankMe = exp(-sum p log p), p = sigma / sum sigma + 1e-7;
    * std of normalised rows mean_j sqrt((u2_j / n - (u1_j / n)^2) n / (n - 1)).

    Each value is exactly the metric of the resampled rows (checked against
    :func:`sigreg_core.assessment.metrics.companion_metrics` of ``z[rows]``).  Eigenvalues are
    taken in batches (``torch.linalg.eigvalsh``), not one LAPACK call per resample.
    """
    from sigreg_core.assessment.metrics import RANKME_EPS, VICREG_EPS

    zz = torch.from_numpy(np.ascontiguousarray(np.asarray(z, dtype=np.float64)))
    n, dim = zz.shape
    mean = zz.mean(0)
    d = zz - mean
    u = zz / zz.norm(dim=1, keepdim=True).clamp_min(1e-12)
    uu = u * u
    w_all = torch.from_numpy(np.ascontiguousarray(np.asarray(counts, dtype=np.float64)))
    b_total = w_all.shape[0]
    keys = list(keys)
    out = {k: np.empty(b_total) for k in keys}
    chunk = int(max(1, min(b_total, (1 << 24) // max(1, n * dim))))
    r = min(n, dim)
    for b0 in range(0, b_total, chunk):
        w = w_all[b0:b0 + chunk]                      # (b, N)
        nb = w.sum(1)                                 # (b,)
        s1 = w @ d                                    # (b, D)
        s2 = torch.einsum("bn,nd,ne->bde", w, d, d)   # (b, D, D)
        dm = s1 / nb[:, None]
        cov = (s2 - nb[:, None, None] * dm[:, :, None] * dm[:, None, :]) / (nb[:, None, None] - 1).clamp_min(1)
        cov = 0.5 * (cov + cov.transpose(1, 2))
        res = {}
        if "vicreg_variance" in keys or "vicreg_covariance" in keys:
            var = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0.0)
            res["vicreg_variance"] = torch.relu(1.0 - torch.sqrt(var + VICREG_EPS)).mean(1)
            off = cov - torch.diag_embed(torch.diagonal(cov, dim1=1, dim2=2))
            res["vicreg_covariance"] = (off * off).sum((1, 2)) / dim
        if "rankme" in keys or "rankme_fraction" in keys:
            gram = (s2 + mean[None, :, None] * s1[:, None, :] + s1[:, :, None] * mean[None, None, :]
                    + nb[:, None, None] * mean[None, :, None] * mean[None, None, :])
            gram = 0.5 * (gram + gram.transpose(1, 2))
            ev = torch.linalg.eigvalsh(gram).clamp_min(0.0).flip(1)[:, :r]
            sing = torch.sqrt(ev)
            tot = sing.sum(1, keepdim=True)
            pk = sing / tot.clamp_min(1e-300) + RANKME_EPS
            rk = torch.exp(-(pk * torch.log(pk)).sum(1))
            res["rankme"] = torch.where(tot[:, 0] > 0, rk, torch.ones_like(rk))
            res["rankme_fraction"] = res["rankme"] / r
        if "normalized_std" in keys:
            um = (w @ u) / nb[:, None]
            uv = ((w @ uu) / nb[:, None] - um * um) * (nb / (nb - 1).clamp_min(1))[:, None]
            res["normalized_std"] = torch.sqrt(uv.clamp_min(0.0)).mean(1)
        for k in keys:
            if k not in res:
                raise ValueError(f"no bootstrap for companion metric {k!r}")
            out[k][b0:b0 + w.shape[0]] = res[k].numpy()
        if progress is not None:
            progress(min(b_total, b0 + chunk), b_total)
    return out


def design_effect(boot_set, boot_ref) -> float:
    """How much the slices' dependence inflates the variance of a mean over slices.

    From bootstrap per-slice statistics (B, M) of the two sets on the same
    directions: d*_bm = EP*_bm(set) - EP*_bm(ref), deff = Var_b(mean_m d*_bm) /
    (mean_m Var_b(d*_bm) / M), clipped to [1, M] (1: independent slices; M: identical).
    """
    d = np.asarray(boot_set, dtype=np.float64) - np.asarray(boot_ref, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2:
        return float("nan")
    m = d.shape[1]
    per = float(np.mean(np.var(d, axis=0, ddof=1)))
    if not per > 0:
        return float("nan")
    return float(np.clip(np.var(d.mean(1), ddof=1) / (per / m), 1.0, m))


def paired_slice_test(stat_set, stat_ref, *, set_name: str = "set", reference: str = "reference",
                      level: float = 0.95, boot_set=None, boot_ref=None) -> PairedTest:
    """Wilcoxon signed-rank and sign tests of d_m = stat_set[m] - stat_ref[m] over slices.

    The slices share the data, so the M differences are correlated: the plain
    p-values (``wilcoxon_p``, ``sign_p``) treat them as independent and overstate the
    evidence when M >> D (measured: 30-40 % of two independent healthy sets "differ"
    at the 5 % level).  With bootstrap per-slice statistics of both sets
    (``boot_set``, ``boot_ref``, (B, M)) the normal approximations of both tests get
    their variance inflated by the :func:`design_effect` deff,
    p_adj = 2 Phi(-|z| / sqrt(deff)) — measured conservative at the null (about 1 %
    at the 5 % level) — and ``healthier`` follows the adjusted Wilcoxon test.
    All-zero differences (a set against itself) give p = 1.
    """
    from scipy import stats

    a = np.asarray(stat_set, dtype=np.float64)
    r = np.asarray(stat_ref, dtype=np.float64)
    if a.shape != r.shape:
        raise CompareError(f"paired test needs the same slices: {a.shape} vs {r.shape}")
    d = a - r
    m = int(d.size)
    nz = d[d != 0]
    k = int(nz.size)
    lower = int(np.sum(d < 0))
    deff = design_effect(boot_set, boot_ref) if boot_set is not None and boot_ref is not None else float("nan")
    if k == 0:
        w_stat, w_p, s_p, w_adj, s_adj = 0.0, 1.0, 1.0, 1.0, 1.0
    else:
        res = stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided")
        w_stat, w_p = float(res.statistic), float(res.pvalue)
        s_p = float(stats.binomtest(int(np.sum(nz < 0)), k, 0.5).pvalue)
        ranks = stats.rankdata(np.abs(nz))
        _, tie_counts = np.unique(ranks, return_counts=True)
        var_w = k * (k + 1) * (2 * k + 1) / 24.0 - float(np.sum(tie_counts**3 - tie_counts)) / 48.0
        z_w = (float(ranks[nz > 0].sum()) - k * (k + 1) / 4.0) / math.sqrt(max(var_w, 1e-300))
        z_s = (float(np.sum(nz > 0)) - k / 2.0) / (math.sqrt(k) / 2.0)
        if math.isfinite(deff):
            w_adj = float(2 * stats.norm.sf(abs(z_w) / math.sqrt(deff)))
            s_adj = float(2 * stats.norm.sf(abs(z_s) / math.sqrt(deff)))
        else:
            w_adj = s_adj = float("nan")
    healthier = None
    if k and math.isfinite(w_adj) and w_adj < 1.0 - level:
        healthier = set_name if np.median(d) < 0 else reference
    return PairedTest(
        set=set_name, reference=reference, num_slices=m,
        median_difference=float(np.median(d)), mean_difference=float(np.mean(d)),
        fraction_lower=lower / m if m else float("nan"),
        wilcoxon_statistic=w_stat, wilcoxon_p=w_p, sign_p=s_p, design_effect=deff,
        wilcoxon_p_adjusted=w_adj, sign_p_adjusted=s_adj, healthier=healthier,
    )


# ----------------------------------------------------------------------------- main
def _check_sets(sets: Mapping) -> dict:
    if not isinstance(sets, Mapping):
        raise CompareError("sets must be a mapping of name -> array (N, D)")
    if len(sets) < 2:
        raise CompareError(f"a comparison needs at least 2 embedding sets, got {len(sets)}")
    out = {}
    for name, z in sets.items():
        name = str(name)
        if not name.strip():
            raise CompareError("every set needs a non-empty name")
        if isinstance(z, torch.Tensor):
            z = z.detach().cpu().numpy()
        z = np.asarray(z)
        if z.dtype.kind not in "fiu":
            raise CompareError(f"set {name!r}: expected numbers, got dtype {z.dtype}")
        if z.ndim == 3:
            raise CompareError(f"set {name!r} has shape {z.shape} (V views of N x D); pick one view to compare")
        if z.ndim != 2:
            raise CompareError(f"set {name!r} must have shape (N, D), got {z.shape}")
        if z.shape[0] < 2:
            raise CompareError(f"set {name!r} has {z.shape[0]} row(s); every set needs at least 2 rows")
        if z.shape[1] < 1:
            raise CompareError(f"set {name!r} has no columns")
        if z.dtype.kind != "f" or z.dtype.itemsize < 4:
            z = z.astype(np.float32)
        out[name] = z
    dims = {n: z.shape[1] for n, z in out.items()}
    if len(set(dims.values())) > 1:
        listing = ", ".join(f"{n} has D = {d}" for n, d in dims.items())
        raise CompareError(f"sets differ in dimension ({listing}); the same slices need the same D")
    return out


def _null_quantiles(a) -> dict:
    """{"0.95": q, "0.999": q, "source": ...} of one slice in the preset's units (from the assessment)."""
    out = {}
    for k, v in dict(getattr(a, "null_quantiles", {}) or {}).items():
        if str(k) == "source":
            out["source"] = str(v)
            continue
        try:
            out[str(float(k))] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _assess_set(z, directions, preset, num_slices, seed, family, device, progress, **extra):
    """The assessment of one set, on exactly the comparison's directions."""
    from sigreg_core.assessment.assess import assess

    a = assess(z, preset=preset, num_slices=num_slices, seed=seed, family=family, device=device,
               progress=progress, **extra)
    got = np.asarray(a.directions.detach().cpu().numpy() if hasattr(a.directions, "detach") else a.directions)
    if got.shape != directions.shape or not np.array_equal(got.astype(np.float32), directions):
        raise RuntimeError("the assessment did not use the comparison's directions (family/seed mismatch)")
    return a


def compare_sets(
    sets: Mapping[str, "np.ndarray | torch.Tensor"],
    *,
    reference: Optional[str] = None,
    num_slices: int = 1024,
    seed: int = 0,
    preset: "str | Preset" = "lejepa",
    family: str = "random",
    same_n: bool = True,
    n_boot: int = 200,
    level: float = 0.95,
    metrics: bool = True,
    device="auto",
    progress: Optional[Callable[[float, str], None]] = None,
    null_draws: Optional[int] = None,
    cache_dir=None,
) -> Comparison:
    """Score every set on the same directions (and by default the same N) and compare with ``reference``.

    ``sets``: name -> array (N_i, D), at least two, all with the same D.
    ``reference``: the set the others are compared with (default: the first).
    ``same_n``: subsample every set without replacement to the smallest N (seeded
    by ``seed`` and the set's name); ``False`` keeps all rows (caveat recorded).
    ``n_boot``: bootstrap resamples per set for the delta intervals (0: no intervals).
    ``metrics``: also bootstrap the companion-metric deltas (RankMe, VICReg, ...).
    ``progress(fraction, message)`` is called as the work advances.
    ``null_draws`` and ``cache_dir`` are passed to :func:`sigreg_core.assessment.assess.assess`
    (its Monte Carlo null; sets at the same N share one cached null).
    Raises :class:`CompareError` (one line) for sets that cannot be compared.
    """
    t0 = time.perf_counter()
    from sigreg_core.assessment.families import make_directions

    p = get_preset(preset)
    data = _check_sets(sets)
    names = list(data)
    if reference is None:
        reference = names[0]
    reference = str(reference)
    if reference not in data:
        raise CompareError(f"reference {reference!r} is not one of the sets ({', '.join(names)})")
    if family not in COMPARABLE_FAMILIES:
        raise CompareError(
            f"slice family {family!r} picks its directions from each set's own data, so the sets would not "
            f"share slices; compare with {' or '.join(COMPARABLE_FAMILIES)}")
    n_boot = int(n_boot)
    if n_boot < 0:
        raise CompareError(f"n_boot must be >= 0, got {n_boot}")
    if n_boot and n_boot < 20:
        raise CompareError(f"n_boot = {n_boot} is too few for a 95% interval; use 0 (none) or at least 20")
    if not 0.5 < float(level) < 1.0:
        raise CompareError(f"level must be in (0.5, 1), got {level}")

    # same N
    sizes = {n: int(z.shape[0]) for n, z in data.items()}
    n_min = min(sizes.values())
    idx = {}
    caveats = []
    if same_n:
        for name in names:
            idx[name] = same_n_indices(sizes[name], n_min, seed, name)
        cut = [n for n in names if idx[n] is not None]
        if cut:
            row_note = (f"Same N: every set scored on {n_min:,} rows; "
                        + ", ".join(f"{n} subsampled from {sizes[n]:,}" for n in cut)
                        + f" (uniform without replacement, seed {seed}).")
        else:
            row_note = f"Same N: every set has {n_min:,} rows; nothing subsampled."
    else:
        for name in names:
            idx[name] = None
        row_note = "All rows kept: " + ", ".join(f"{n} {sizes[n]:,}" for n in names) + "."
        if len(set(sizes.values())) > 1:
            caveats.append(
                "The sets have different N and all rows were kept: for non-Gaussian data SIGReg grows about "
                "linearly in N, so part of each delta is the change of N, not of the embedding.")
    used = {n: (data[n] if idx[n] is None else data[n][idx[n]]) for n in names}

    directions_t, dir_info = make_directions(used[reference], family, num_slices, seed, p)
    directions = directions_t.detach().cpu().numpy().astype(np.float32)
    if dir_info.get("data_dependent"):
        raise CompareError(f"slice family {family!r} is data-dependent; compare with random or coordinate slices")

    # progress: assessments take ~1/3, bootstrap ~2/3
    n_sets = len(names)
    w_assess = 1.0 if n_boot == 0 else 0.35

    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(min(1.0, max(0.0, frac)), msg)

    extra = {}
    if null_draws is not None:
        extra["null_draws"] = int(null_draws)
    if cache_dir is not None:
        extra["cache_dir"] = cache_dir
    results = {}
    timings = {}
    for i, name in enumerate(names):
        z = used[name]
        base = w_assess * i / n_sets

        def prog(frac, msg, _base=base, _name=name):
            report(_base + w_assess / n_sets * float(frac), f"scoring {_name}: {msg}")

        t1 = time.perf_counter()
        try:
            a = _assess_set(z, directions, p, num_slices, seed, family, device, prog, **extra)
        except CompareError:
            raise
        except ValueError as exc:
            raise CompareError(f"set {name!r}: {exc}") from None
        sec = time.perf_counter() - t1
        timings[f"assess:{name}"] = sec
        met = dict(a.metrics)
        ev = met.get("eigenvalues")
        ev = np.sort(np.asarray(ev, dtype=np.float64).ravel())[::-1] if ev is not None else np.array([])
        per = a.per_slice
        slice_p = per["p_value"].to_numpy(dtype=np.float64) if "p_value" in per else np.full(directions.shape[1], np.nan)
        results[name] = SetResult(
            name=name, n=int(z.shape[0]), n_original=sizes[name], dim=int(z.shape[1]),
            sigreg=float(a.sigreg), null_mean=float(a.null_mean), sigreg_over_null=float(a.sigreg_over_null),
            p_value=float(a.p_value), verdict=str(a.verdict), modes=[str(m) for m in a.modes],
            metrics=_scalar_metrics(met), eigenvalues=ev, slices=a.slices, slice_p_values=slice_p,
            row_indices=idx[name], assessment=_jsonable(a.to_dict()) if hasattr(a, "to_dict") else {},
            seconds=sec,
        )
        if name == reference:
            null_q = _null_quantiles(a)

    # bootstrap draws, one stream per set (independent of the other sets and of their order)
    draws: dict = {}
    if n_boot:
        keys = [k for k in DELTA_METRICS if k != "sigreg"] if metrics else []
        for i, name in enumerate(names):
            base = w_assess + (1 - w_assess) * i / n_sets
            span = (1 - w_assess) / n_sets
            rng = np.random.default_rng([int(seed), _name_seed(name), 0x424F4F54])
            t1 = time.perf_counter()
            counts = bootstrap_counts(used[name].shape[0], n_boot, rng)
            report(base, f"bootstrap of {name}: {n_boot} resamples")
            sig = bootstrap_sigreg(
                used[name], directions, p, counts, device=device, per_slice=True,
                progress=lambda d, t, _b=base, _s=span, _n=name: report(
                    _b + _s * (0.7 if keys else 1.0) * d / max(t, 1), f"bootstrap of {_n}: SIGReg"))
            draws[name] = {"sigreg": sig.mean(1), "slices": sig}
            if keys:
                draws[name].update(bootstrap_metrics(
                    used[name], counts, keys,
                    progress=lambda d, t, _b=base, _s=span, _n=name: report(
                        _b + _s * (0.7 + 0.3 * d / max(t, 1)), f"bootstrap of {_n}: companion metrics")))
            timings[f"bootstrap:{name}"] = time.perf_counter() - t1

    # deltas and paired tests against the reference
    deltas, paired = [], []
    ref = results[reference]
    for name in names:
        if name == reference:
            continue
        cur = results[name]
        for key, (_label, better) in DELTA_METRICS.items():
            v_set = cur.sigreg if key == "sigreg" else cur.metrics.get(key)
            v_ref = ref.sigreg if key == "sigreg" else ref.metrics.get(key)
            if v_set is None or v_ref is None:
                continue
            est = float(v_set) - float(v_ref)
            if n_boot and key in draws.get(name, {}) and key in draws.get(reference, {}):
                dstar = draws[name][key] - draws[reference][key]
                lo, hi = centred_interval(est, dstar, level)
                se = float(np.std(dstar, ddof=1))
                centred = np.abs(dstar - dstar.mean())
                p_boot = float((1 + np.sum(centred >= abs(est))) / (dstar.size + 1)) if est != 0 else 1.0
                sig = bool(lo > 0 or hi < 0)
            else:
                lo = hi = se = p_boot = float("nan")
                sig = False
            healthier = None
            if sig and better is not None:
                set_better = est < 0 if better == "lower" else est > 0
                healthier = name if set_better else reference
            deltas.append(Delta(set=name, reference=reference, metric=key, value=est, ci_low=lo, ci_high=hi,
                                se=se, p_boot=p_boot, significant=sig, healthier=healthier,
                                n_boot=n_boot, level=float(level)))
        paired.append(paired_slice_test(cur.statistic, ref.statistic, set_name=name, reference=reference,
                                        level=level, boot_set=draws.get(name, {}).get("slices"),
                                        boot_ref=draws.get(reference, {}).get("slices")))
    report(1.0, "done")
    timings["total"] = time.perf_counter() - t0
    return Comparison(
        names=names, reference=reference, sets=results, deltas=deltas, paired=paired, directions=directions,
        preset=p, family=family, seed=int(seed), num_slices=int(num_slices), same_n=bool(same_n),
        n_boot=n_boot, level=float(level), row_note=row_note, caveats=caveats, null_quantiles=null_q,
        arrays=used, timings=timings,
    )


# ----------------------------------------------------------------------------- exports
def comparison_csv(cmp: Comparison) -> bytes:
    """Summary table (one row per set) with the deltas against the reference as extra columns."""
    df = cmp.summary_frame()
    for d in cmp.deltas:
        for col, val in ((f"delta_{d.metric}", d.value), (f"delta_{d.metric}_ci_low", d.ci_low),
                         (f"delta_{d.metric}_ci_high", d.ci_high), (f"delta_{d.metric}_significant", d.significant)):
            if col not in df.columns:
                df[col] = None
            df.loc[df["set"] == d.set, col] = val
    for pt in cmp.paired:
        for col, val in (("paired_wilcoxon_p_adjusted", pt.wilcoxon_p_adjusted), ("paired_sign_p_adjusted", pt.sign_p_adjusted),
                         ("paired_design_effect", pt.design_effect), ("paired_wilcoxon_p", pt.wilcoxon_p),
                         ("paired_sign_p", pt.sign_p), ("paired_fraction_lower", pt.fraction_lower)):
            if col not in df.columns:
                df[col] = None
            df.loc[df["set"] == pt.set, col] = val
    df.insert(1, "reference", df["set"] == cmp.reference)
    return df.to_csv(index=False, float_format="%.10g").encode("utf-8")


def comparison_json(cmp: Comparison) -> bytes:
    return (json.dumps(cmp.to_dict(), indent=2, allow_nan=False) + "\n").encode("utf-8")


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def comparison_html(cmp: Comparison, *, title: str = "latent-health comparison", slice_index: Optional[int] = None,
                    source: Optional[dict] = None) -> str:
    """Standalone HTML page: settings, summary, deltas, paired tests and every comparison figure."""
    from sigreg_core.present import compare_figures as CF
    from sigreg_core.present.figures import plotly_config

    figs = CF.comparison_figures(cmp, slice_index=slice_index)
    parts = []
    for i, (name, fig) in enumerate(figs.items()):
        parts.append(f'<section id="{html.escape(name)}">' + fig.to_html(
            full_html=False, include_plotlyjs=(i == 0), config=plotly_config(name), default_width="100%")
            + "</section>")
    cfg = cmp.config()
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                       for k, v in cfg.items() if k != "preset_config")
    caveats = "".join(f"<p class='caveat'>{html.escape(c)}</p>" for c in cmp.caveats)
    src = html.escape(json.dumps(_jsonable(source or {})))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:0.9em}}th,td{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
th{{background:#f5f5f5}}.caveat{{color:#a15c00}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Sets: {html.escape(", ".join(cmp.names))}; reference: <b>{html.escape(cmp.reference)}</b>.</p>
<p>{html.escape(cmp.row_note)}</p>{caveats}
<p>Source: <code>{src}</code></p>
<h2>Settings</h2><table>{settings}</table>
<h2>Summary</h2>{_table_html(cmp.summary_frame())}
<h2>Deltas against {html.escape(cmp.reference)} ({int(round(cmp.level * 100))}% bootstrap intervals over rows, {cmp.n_boot} resamples per set)</h2>
{_table_html(cmp.deltas_frame())}
<h2>Paired test over slices (approximate: slices share the data; adjusted p-values use the design effect)</h2>
{_table_html(cmp.paired_frame())}
<h2>Figures</h2>
{''.join(parts)}
<p>SIGReg: sliced Epps–Pulley statistic (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312).
Generated by latent-health; this page needs no network.</p>
</body></html>
"""


# ----------------------------------------------------------------------------- CLI
def add_compare_parser(subparsers):
    """Add ``compare`` to an argparse subparsers object; returns the new parser."""
    from sigreg_core.core.presets import PRESETS

    c = subparsers.add_parser(
        "compare",
        help="compare embedding files on the same slices and the same N, with bootstrap intervals of the deltas",
        description="Score two or more embedding files on the same directions (same seed and family) and the same "
                    "N (subsampled to the smallest unless --keep-all-rows), and compare each with the reference: "
                    "deltas of SIGReg and the companion metrics with bootstrap intervals over rows, and a paired "
                    "test over slices. Exit 0 on success, 2 on bad input (different D, too few rows).",
    )
    c.add_argument("files", nargs="+", metavar="FILE", help="two or more embedding files (.npy .npz .pt .safetensors .csv .parquet ...)")
    c.add_argument("--reference", default=None, help="the set the others are compared with: a FILE as given, its name, or its position (1 = first; default the first)")
    c.add_argument("--key", default=None, help="array inside each container (.npz member, safetensors tensor, ...)")
    c.add_argument("--view", type=int, default=None, help="for (V, N, D) files, compare this view")
    c.add_argument("--preset", default="lejepa", choices=sorted(PRESETS), help="Epps-Pulley variant (default lejepa)")
    c.add_argument("--slices", type=int, default=1024, help="number of random directions M (default 1024)")
    c.add_argument("--seed", type=int, default=0, help="seed of the directions, of the subsampling and of the bootstrap (default 0)")
    c.add_argument("--family", default="random", choices=list(COMPARABLE_FAMILIES), help="slice family shared by every set (default random)")
    c.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples per set (default 200; 0 for no intervals)")
    c.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    c.add_argument("--keep-all-rows", action="store_true", help="do not subsample to the smallest N (deltas then mix in the change of N)")
    c.add_argument("--max-rows", type=int, default=None, help="read at most R random rows of each file")
    c.add_argument("--max-bytes", default=None, help="byte limit of the loader, e.g. 2GiB")
    c.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    c.add_argument("--null-draws", type=int, default=None, help="Monte Carlo null size of each assessment (default: assess's, 200; 0 to skip; cached on disk)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.add_argument("--csv", metavar="OUT.csv", default=None, help="also write the summary table with deltas as CSV")
    c.add_argument("--html", metavar="OUT.html", default=None, help="also write a standalone HTML report")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return c


def _labels(paths: Sequence[str]) -> list:
    """Set names: the file's base name, the path as given when base names clash, #k for repeats."""
    from pathlib import Path

    base = [Path(p).name for p in paths]
    distinct = {}
    for b, p in zip(base, paths):
        distinct.setdefault(b, set()).add(str(p))
    names = [b if len(distinct[b]) == 1 else p for b, p in zip(base, paths)]
    out, seen = [], {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _resolve_reference(ref: Optional[str], paths: Sequence[str], labels: Sequence[str]) -> str:
    if ref is None:
        return labels[0]
    if ref in labels:
        return ref
    if ref in paths:
        return labels[list(paths).index(ref)]
    if ref.isdigit() and 1 <= int(ref) <= len(labels):
        return labels[int(ref) - 1]
    raise CompareError(f"--reference {ref!r} is none of the files ({', '.join(labels)}) nor a position 1..{len(labels)}")


def _cell(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return "-"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:.{digits}g}"
    return str(v)


def _text_table(headers: list, rows: list, right: set) -> list:
    cells = [[_cell(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    for r in [headers] + cells:
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def comparison_text(cmp: Comparison) -> str:
    """The comparison as plain-text tables (what ``sigreg compare`` prints)."""
    lines = []
    rows = []
    for n in cmp.names:
        s = cmp.sets[n]
        rows.append([n + (" (ref)" if n == cmp.reference else ""), s.n, s.sigreg, s.sigreg_over_null, s.p_value,
                     s.verdict, ", ".join(s.modes) or "none", s.metrics.get("rankme")])
    lines += _text_table(["set", "rows", "SIGReg", "x null", "p-value", "verdict", "modes", "RankMe"], rows, {1, 2, 3, 4, 7})
    if cmp.deltas:
        lines.append("")
        pct = int(round(cmp.level * 100))
        lines.append(f"Deltas against {cmp.reference} ({pct}% bootstrap intervals over rows, {cmp.n_boot} resamples per set):")
        rows = []
        for d in cmp.deltas:
            ci = "-" if not math.isfinite(d.ci_low) else f"[{_cell(d.ci_low)}, {_cell(d.ci_high)}]"
            rows.append([d.set, DELTA_METRICS[d.metric][0], d.value, ci, d.p_boot,
                         "yes" if d.significant else "no", d.healthier or "-"])
        lines += _text_table(["set", "metric", "delta", "interval", "p (boot)", "significant", "healthier"], rows, {2, 4})
    if cmp.paired:
        lines.append("")
        lines.append("Paired test over slices (approximate: the slices share the data; p adjusted by the design effect "
                     "deff; the intervals above are the evidence):")
        rows = [[p.set, p.num_slices, p.fraction_lower, p.median_difference, p.design_effect, p.wilcoxon_p_adjusted,
                 p.sign_p_adjusted, p.wilcoxon_p, p.healthier or "-"] for p in cmp.paired]
        lines += _text_table(["set", "slices", "frac. lower", "median diff", "deff", "Wilcoxon p adj.", "sign p adj.",
                              "Wilcoxon p indep.", "healthier"], rows, {1, 2, 3, 4, 5, 6, 7})
    lines.append("")
    lines.append(cmp.row_note)
    lines += [f"caveat: {c}" for c in cmp.caveats]
    lines.append(f"preset {cmp.preset.name}, {cmp.num_slices_scored} {cmp.family} slices, seed {cmp.seed}, "
                 f"D = {cmp.directions.shape[0]}, reference {cmp.reference}")
    return "\n".join(lines)


def run_compare(args) -> int:
    """Run ``sigreg compare``; 0 on success, 2 with one line on stderr for bad input or incompatible sets."""
    import sys

    from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

    bar = None

    def err(line: str) -> int:
        sys.stderr.write(" ".join(str(line).split()) + "\n")
        sys.stderr.flush()
        return 2

    try:
        if len(args.files) < 2:
            raise CompareError(f"give at least 2 files to compare, got {len(args.files)}")
        if args.slices < 1:
            raise CompareError(f"--slices must be at least 1, got {args.slices}")
        if args.seed < 0:
            raise CompareError(f"--seed must be 0 or more, got {args.seed}")
        if args.max_rows is not None and args.max_rows < 2:
            raise CompareError(f"--max-rows must be at least 2, got {args.max_rows}")
        if args.null_draws is not None and args.null_draws < 0:
            raise CompareError(f"--null-draws must be 0 or more, got {args.null_draws}")
        labels = _labels(args.files)
        reference = _resolve_reference(args.reference, args.files, labels)
        sets, notes = {}, []
        for path, label in zip(args.files, labels):
            emb = load_embeddings(path, key=args.key, max_rows=args.max_rows, view=args.view,
                                  max_bytes=args.max_bytes, seed=args.seed)
            sets[label] = emb.array
            notes += [f"{label}: {n}" for n in emb.notices]

        def progress(frac, msg):
            nonlocal bar
            if args.quiet or not sys.stderr.isatty():
                return
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=1000, desc="compare", leave=False, file=sys.stderr, bar_format="{l_bar}{bar}| {postfix}")
            bar.n = int(1000 * frac)
            bar.set_postfix_str(msg[:60], refresh=True)

        import os
        import warnings

        with warnings.catch_warnings():
            if os.environ.get("SIGREG_DEBUG", "") in ("", "0"):
                warnings.simplefilter("ignore")  # stderr carries only the progress bar and errors
            cmp = compare_sets(sets, reference=reference, num_slices=args.slices, seed=args.seed,
                               preset=args.preset, family=args.family, same_n=not args.keep_all_rows,
                               n_boot=args.n_boot, level=args.level, device=args.device, progress=progress,
                               null_draws=args.null_draws)
    except (CompareError, EmbeddingLoadError) as exc:
        return err(f"sigreg compare: error: {exc}")
    except ValueError as exc:
        return err(f"sigreg compare: error: {exc}")
    except MemoryError:
        return err("sigreg compare: error: out of memory; use --max-rows, fewer --slices or a smaller --n-boot")
    finally:
        if bar is not None:
            bar.close()
    try:
        if args.csv:
            with open(args.csv, "wb") as f:
                f.write(comparison_csv(cmp))
        if args.html:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(comparison_html(cmp, source={"files": list(args.files)}))
    except OSError as exc:
        return err(f"sigreg compare: error: cannot write {exc.filename}: {exc.strerror}")
    if args.json:
        doc = cmp.to_dict()
        doc["files"] = dict(zip(labels, args.files))
        doc["notices"] = notes
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(comparison_text(cmp) + "\n")
        for n in notes:
            sys.stdout.write(f"note: {n}\n")
    sys.stdout.flush()
    return 0
