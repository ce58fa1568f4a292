"""The comparison's data model: per-set results, deltas, paired tests, and the comparison itself.

A :class:`Comparison` holds every set's assessment on the shared directions (SIGReg,
the mean over M slices of the Epps–Pulley statistic, LeJEPA arXiv 2511.08544), the
deltas against the reference with their bootstrap intervals, the slice-paired tests,
and the bootstrap draws, so that any two sets can be compared afterwards
(:meth:`Comparison.pair`, :meth:`Comparison.pairwise_frame`) and every set ranked
(:meth:`Comparison.ranking_frame`) without scoring anything again.  The statistics
themselves are in :mod:`.statistics`; the ranking and pairwise tables in :mod:`.ranking`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from sigreg_core.core.presets import Preset
from sigreg_core.util.jsonsafe import to_jsonable

__all__ = ["CompareError", "SetResult", "Delta", "PairedTest", "Comparison", "DELTA_METRICS", "COMPARABLE_FAMILIES",
           "NO_SPREAD"]

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

#: what an interval of zero width means (both sets' bootstrap values constant: e.g. two fully collapsed sets)
NO_SPREAD = "no spread: interval not defined"


def _jsonable(x):
    return to_jsonable(x)


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
    slice_statistic: Optional[np.ndarray] = None  # (M,) per-slice statistic as assessed (mean over views)
    answers: dict = field(default_factory=dict)   # the assessment's answers (the headline: verdict, distance)
    row_scale: list = field(default_factory=lambda: [1.0])  # the convention rescale of each view (1: none)
    views: int = 1
    convention: str = ""         # the convention rescale applied, in words ("" when none)

    @property
    def statistic(self) -> np.ndarray:
        if self.slice_statistic is not None:
            return np.asarray(self.slice_statistic, dtype=np.float64)
        return np.asarray(self.slices.statistic, dtype=np.float64)

    @property
    def distance(self) -> float:
        """The headline's distance (``answers["distance"]["relative_distance"]``), NaN when absent."""
        try:
            return float((self.answers.get("distance") or {}).get("relative_distance", float("nan")))
        except (TypeError, ValueError, AttributeError):
            return float("nan")

    def row(self) -> dict:
        out = {
            "set": self.name,
            "rows": self.n,
            "rows_given": self.n_original,
            "dim": self.dim,
            "views": self.views,
            "sigreg": self.sigreg,
            "null_mean": self.null_mean,
            "sigreg_over_null": self.sigreg_over_null,
            "p_value": self.p_value,
            "verdict": self.verdict,
            "distance": self.distance,
            "modes": ", ".join(self.modes) if self.modes else "none",
            "row_scale": (self.row_scale[0] if len(set(self.row_scale)) == 1
                          else " ".join(f"{c:.6g}" for c in self.row_scale)),
            "convention": self.convention or "none",
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
    note: str = ""               # why there is no interval ("no spread: interval not defined", ...), else ""

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
    draws: dict = field(default_factory=dict, repr=False)   # name -> bootstrap draws (for any pair of sets)
    rank_resamples: int = 0      # resamples that got a RankMe (fewer than n_boot at large D)

    # -- tables
    def order(self) -> list:
        """Set names best first: the headline's ordering (:func:`sigreg_core.compare.ranking.rank_order`)."""
        from sigreg_core.compare.ranking import rank_order

        return rank_order(self)

    def conventions(self) -> dict:
        """name -> the convention rescale applied to that set, for the sets that had one."""
        return {n: self.sets[n].convention for n in self.names if self.sets[n].convention}

    def summary_frame(self) -> pd.DataFrame:
        """One row per set, best first (the headline's ordering), with its rank."""
        return pd.DataFrame([{"rank": i + 1, **self.sets[n].row()} for i, n in enumerate(self.order())])

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

    def pair(self, set_name: str, reference: str) -> tuple:
        """(deltas, paired test) of ``set_name`` against ``reference``: any two sets, from the stored draws."""
        from sigreg_core.compare.statistics import delta_between

        for n in (set_name, reference):
            if n not in self.sets:
                raise KeyError(f"no set {n!r} in this comparison ({', '.join(self.names)})")
        if set_name == self.reference or reference != self.reference:
            return delta_between(self.sets[set_name], self.sets[reference], self.draws.get(set_name, {}),
                                 self.draws.get(reference, {}), n_boot=self.n_boot, level=self.level)
        return ([d for d in self.deltas if d.set == set_name], self.paired_test(set_name))

    def ranking_frame(self) -> pd.DataFrame:
        """Every set ranked best to worst (:func:`sigreg_core.compare.ranking.ranking_frame`)."""
        from sigreg_core.compare.ranking import ranking_frame

        return ranking_frame(self)

    def pairwise_frame(self, metric: str = "sigreg") -> pd.DataFrame:
        """Every ordered pair of sets (:func:`sigreg_core.compare.ranking.pairwise_frame`)."""
        from sigreg_core.compare.ranking import pairwise_frame

        return pairwise_frame(self, metric)

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
            "rankme_resamples": self.rank_resamples,
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
            "ranking": self.order(),
            "ranking_rule": "sigreg_core.assessment.verdict.rank_key of each set's answers (verdict, then distance)",
            "conventions": self.conventions(),
            "sets": {n: {**self.sets[n].row(), "modes": list(self.sets[n].modes), "row_scale": self.sets[n].row_scale,
                         "metrics": self.sets[n].metrics, "seconds": self.sets[n].seconds}
                     for n in self.order()},
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

