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

import time
from typing import Callable, Mapping, Optional

import numpy as np
import torch

from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.compare.model import (  # noqa: F401  (re-exported: the names of the old single module)
    COMPARABLE_FAMILIES, DELTA_METRICS, NO_SPREAD, CompareError, Comparison, Delta, PairedTest, SetResult, _jsonable,
)
from sigreg_core.compare.exports import (  # noqa: F401
    comparison_csv, comparison_html, comparison_json, comparison_text,
)
from sigreg_core.compare.statistics import (  # noqa: F401
    _name_seed, _scalar_metrics, bootstrap_counts, bootstrap_metrics, bootstrap_sigreg, centred_interval, delta_between,
    design_effect, paired_slice_test, same_n_indices,
)

__all__ = [
    "CompareError", "SetResult", "Delta", "PairedTest", "Comparison", "compare_sets", "same_n_indices",
    "bootstrap_counts", "bootstrap_sigreg", "bootstrap_metrics", "centred_interval", "paired_slice_test",
    "design_effect", "comparison_csv", "comparison_json", "comparison_html", "DELTA_METRICS", "COMPARABLE_FAMILIES",
    "comparison_text", "add_compare_parser", "run_compare",
]


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

    # deltas and paired tests against the reference (any other pair: Comparison.pair, from the same draws)
    deltas, paired = [], []
    for name in names:
        if name == reference:
            continue
        d, pt = delta_between(results[name], results[reference], draws.get(name, {}), draws.get(reference, {}),
                              n_boot=n_boot, level=level)
        deltas += d
        paired.append(pt)
    report(1.0, "done")
    timings["total"] = time.perf_counter() - t0
    return Comparison(
        names=names, reference=reference, sets=results, deltas=deltas, paired=paired, directions=directions,
        preset=p, family=family, seed=int(seed), num_slices=int(num_slices), same_n=bool(same_n),
        n_boot=n_boot, level=float(level), row_note=row_note, caveats=caveats, null_quantiles=null_q,
        arrays=used, timings=timings, draws=draws,
    )



def __getattr__(name):  # the CLI lives in its own module (it imports this one); old imports keep working
    if name in ("add_compare_parser", "run_compare"):
        from sigreg_core.compare import cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
