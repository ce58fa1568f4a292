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

import math
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
from sigreg_core.compare.ranking import headline_order
from sigreg_core.compare.statistics import (  # noqa: F401
    _name_seed, _scalar_metrics, bootstrap_counts, bootstrap_metrics, bootstrap_set, bootstrap_sigreg,
    centred_interval, delta_between, design_effect, one_blas_thread, paired_slice_test, rank_resamples,
    same_n_indices,
)

__all__ = [
    "CompareError", "SetResult", "Delta", "PairedTest", "Comparison", "compare_sets", "same_n_indices",
    "bootstrap_counts", "bootstrap_sigreg", "bootstrap_metrics", "centred_interval", "paired_slice_test",
    "design_effect", "comparison_csv", "comparison_json", "comparison_html", "DELTA_METRICS", "COMPARABLE_FAMILIES",
    "comparison_text", "add_compare_parser", "run_compare",
]


# ----------------------------------------------------------------------------- main
#: rows of the dry run that checks every set's directions before any Monte Carlo null or bootstrap
PROBE_ROWS = 64
#: directions must equal the comparison's times the row scale to this relative tolerance
DIRECTION_RTOL = 1e-6


def _first_bad_row(z: np.ndarray) -> tuple:
    """(view, row) of the first non-finite value of a (V, N, D) array."""
    bad = ~np.isfinite(z)
    v = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(1))[0])
    r = int(np.flatnonzero(bad[v].any(1))[0])
    return v, r


def _check_sets(sets: Mapping) -> dict:
    """name -> (V, N, D) float array (V = 1 for an (N, D) set); every set checked (finite values
    included) before anything is scored."""
    if not isinstance(sets, Mapping):
        raise CompareError("sets must be a mapping of name -> array (N, D) or (V, N, D)")
    if len(sets) < 2:
        raise CompareError(f"a comparison needs at least 2 embedding sets, got {len(sets)}")
    out = {}
    for name, z in sets.items():
        name = str(name)
        if not name.strip():
            raise CompareError("every set needs a non-empty name")
        if isinstance(z, torch.Tensor):
            z = z.detach().cpu()
            z = (z.float() if z.dtype in (torch.float16, torch.bfloat16) else z).numpy()
        z = np.asarray(z)
        if z.dtype.kind not in "fiu":
            raise CompareError(f"set {name!r}: expected numbers, got dtype {z.dtype}")
        if z.ndim not in (2, 3):
            raise CompareError(f"set {name!r} must have shape (N, D) or (V, N, D) views, got {z.shape}")
        if z.ndim == 2:
            z = z[None]
        if z.shape[0] < 1:
            raise CompareError(f"set {name!r} has 0 views")
        if z.shape[1] < 2:
            raise CompareError(f"set {name!r} has {z.shape[1]} row(s); every set needs at least 2 rows")
        if z.shape[2] < 1:
            raise CompareError(f"set {name!r} has no columns")
        if z.dtype.kind != "f" or z.dtype.itemsize < 4:
            z = z.astype(np.float32)
        if not np.isfinite(z).all():
            v, r = _first_bad_row(z)
            where = f"row {r}" + (f" of view {v}" if z.shape[0] > 1 else "")
            raise CompareError(f"set {name!r} contains non-finite values (NaN or Inf), first in {where}; "
                               f"drop or fix those rows")
        out[name] = z
    dims = {n: z.shape[2] for n, z in out.items()}
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


def _view_directions(a, unit: np.ndarray, name: str) -> tuple:
    """([row_scale per view], [directions per view]) the assessment ``a`` scored each view on.

    The assessment scores the rows ``row_scale * z`` (its convention rescale, e.g. sqrt(D) for
    L2-normalised rows) by multiplying the directions: each view's directions must equal the
    comparison's ``unit`` directions times that view's ``config["row_scale"]`` (relative
    tolerance :data:`DIRECTION_RTOL`), else RuntimeError (the slices would not be shared).
    """
    views = list(getattr(a, "views", None) or []) or [a]
    scales, dirs = [], []
    ref = np.asarray(unit, dtype=np.float64)
    top = float(np.max(np.abs(ref))) if ref.size else 0.0
    for i, v in enumerate(views):
        got_t = v.directions.detach().cpu() if hasattr(v.directions, "detach") else torch.as_tensor(v.directions)
        got = got_t.numpy().astype(np.float64)
        c = float((v.config or {}).get("row_scale", 1.0))
        bad = ""
        if not (math.isfinite(c) and c > 0):
            bad = f"row scale {c}"
        elif got.shape != ref.shape:
            bad = f"directions of shape {got.shape}, the comparison's {ref.shape}"
        else:
            err = float(np.max(np.abs(got - c * ref))) if ref.size else 0.0
            if err > DIRECTION_RTOL * c * top:
                bad = f"directions differ from the comparison's x {c:.6g} by up to {err:.3g}"
        if bad:
            view = f" (view {i})" if len(views) > 1 else ""
            raise RuntimeError(f"set {name!r}{view}: the assessment did not score the comparison's directions "
                               f"({bad})")
        scales.append(c)
        dirs.append(got_t)
    return scales, dirs


def _convention_note(scales: list, dim: int) -> str:
    """The convention rescale applied to a set, in words ('' when none)."""
    if all(c == 1.0 for c in scales):
        return ""
    root = math.sqrt(dim)
    parts = []
    for i, c in enumerate(scales):
        if c == 1.0:
            what = "not rescaled"
        else:
            what = f"rows scored x {c:.5g}" + (" = sqrt(D)" if abs(c - root) <= 1e-6 * root else
                                                f" = sqrt(D) / {root / c:.5g}")
        parts.append(what if len(scales) == 1 else f"view {i}: {what}")
    return ("equal-norm (L2-normalised) rows, rescaled to norm sqrt(D) as the assessment does: "
            + "; ".join(parts) + "; every number of this set is on the rescaled rows")


def _assess(z, p, num_slices, seed, family, device, progress, name, **extra):
    """The assessment of one (V, N, D) set (V = 1: an (N, D) array); its ValueErrors are bad input."""
    from sigreg_core.assessment.assess import assess

    try:
        with one_blas_thread():
            return assess(z[0] if z.shape[0] == 1 else z, preset=p, num_slices=num_slices, seed=seed,
                          family=family, device=device, progress=progress, **extra)
    except CompareError:
        raise
    except ValueError as exc:
        raise CompareError(f"set {name!r}: {exc}") from None


def _set_result(name, a, z, scales, sizes, idx) -> SetResult:
    """The comparison's view of one assessment: SIGReg, its per-slice statistic, verdict and answers as
    assessed; companion metrics and spectrum averaged over views for a (V, N, D) set."""
    views = list(getattr(a, "views", None) or []) or [a]
    if len(views) == 1:
        met = _scalar_metrics(a.metrics)
        ev = a.metrics.get("eigenvalues")
        ev = np.sort(np.asarray(ev, dtype=np.float64).ravel())[::-1] if ev is not None else np.array([])
    else:
        per = [_scalar_metrics(v.metrics) for v in views]
        met = {}
        for k in per[0]:
            vals = [m.get(k) for m in per]
            if all(isinstance(x, float) for x in vals):
                met[k] = float(np.mean(vals))
        spectra = [np.sort(np.asarray(v.metrics.get("eigenvalues"), dtype=np.float64).ravel())[::-1] for v in views
                   if v.metrics.get("eigenvalues") is not None]
        k = min((s.size for s in spectra), default=0)
        ev = np.mean([s[:k] for s in spectra], axis=0) if spectra and k else np.array([])
        if isinstance(a.metrics.get("lidar"), float):  # a measure of the views together (issue 22), not per view
            met["lidar"] = float(a.metrics["lidar"])
    cols = a.per_slice_columns
    # SIGReg is the mean over views, and so is the per-slice statistic the paired test compares (the
    # assessment's own per-slice table is the deciding view's)
    stat = (np.mean([np.asarray(v.per_slice_columns["statistic"], dtype=np.float64) for v in views], axis=0)
            if len(views) > 1 else np.asarray(cols["statistic"], dtype=np.float64))
    slice_p = (np.asarray(cols["p_value"], dtype=np.float64) if "p_value" in cols
               else np.full(stat.shape, np.nan))
    return SetResult(
        name=name, n=int(z.shape[1]), n_original=sizes[name], dim=int(z.shape[2]),
        sigreg=float(a.sigreg), null_mean=float(a.null_mean), sigreg_over_null=float(a.sigreg_over_null),
        p_value=float(a.p_value), verdict=str(a.verdict), modes=[str(m) for m in a.modes],
        metrics=met, eigenvalues=ev, slices=a.slices, slice_p_values=slice_p,
        row_indices=idx[name], assessment=_jsonable(a.to_dict()) if hasattr(a, "to_dict") else {},
        seconds=float(a.seconds), slice_statistic=stat, answers=_jsonable(dict(a.answers or {})),
        row_scale=[float(c) for c in scales], views=int(z.shape[0]),
        convention=_convention_note(scales, int(z.shape[2])),
    )


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

    ``sets``: name -> array (N_i, D) or (V_i, N_i, D) views, at least two, all with the same D.
    Every convention the assessment accepts is compared: equal-norm (L2-normalised) rows are
    scored as the assessment scores them (``row_scale * z``, recorded per set in
    :attr:`SetResult.convention`), an uncentred mean or a global scale are part of the rows;
    a (V, N, D) set has every view scored on the same directions, its SIGReg (and per-slice
    statistic, and companion metrics) averaged over views, and its rows resampled jointly
    across views in the bootstrap.
    ``reference``: the set the others are compared with (default: the first).
    ``same_n``: subsample every set without replacement to the smallest N (seeded
    by ``seed`` and the set's name); ``False`` keeps all rows (caveat recorded).
    ``n_boot``: bootstrap resamples per set for the delta intervals (0: no intervals).
    ``metrics``: also bootstrap the companion-metric deltas (RankMe, VICReg, ...).
    ``progress(fraction, message)`` is called as the work advances.
    ``null_draws`` and ``cache_dir`` are passed to :func:`sigreg_core.assessment.assess.assess`
    (its Monte Carlo null; sets of the same shape share one cached null, also with
    ``cache_dir=False``: then a temporary cache lives for this comparison only).
    Everything that can refuse (the sets themselves, and a dry run of every assessment on
    :data:`PROBE_ROWS` rows that checks its directions) runs before any Monte Carlo null or
    bootstrap.  Raises :class:`CompareError` (one line) for sets that cannot be compared.
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

    timings = {"inputs": time.perf_counter() - t0}

    # same N (rows: the second axis of every (V, N, D) set)
    sizes = {n: int(z.shape[1]) for n, z in data.items()}
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
    used = {n: (data[n] if idx[n] is None else data[n][:, idx[n]]) for n in names}
    n_views = {n: int(used[n].shape[0]) for n in names}
    if len(set(n_views.values())) > 1:
        caveats.append("The sets have different numbers of views (" + ", ".join(f"{n}: {v}" for n, v in n_views.items())
                       + "): each set's SIGReg and metrics are the mean over its own views.")

    t1 = time.perf_counter()
    directions_t, dir_info = make_directions(used[reference][0], family, num_slices, seed, p)
    timings["directions"] = time.perf_counter() - t1
    directions = directions_t.detach().cpu().numpy().astype(np.float32)
    if dir_info.get("data_dependent"):
        raise CompareError(f"slice family {family!r} is data-dependent; compare with random or coordinate slices")

    # progress: the dry run ~2 %, assessments ~1/3, bootstrap ~2/3
    n_sets = len(names)
    w_probe = 0.02
    w_assess = (1.0 - w_probe) if n_boot == 0 else 0.35

    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(min(1.0, max(0.0, frac)), msg)

    extra = {}
    if null_draws is not None:
        extra["null_draws"] = int(null_draws)

    # 1. the dry run: every set's assessment on its first PROBE_ROWS rows, no Monte Carlo null
    t1 = time.perf_counter()
    for i, name in enumerate(names):
        report(w_probe * i / n_sets, f"checking {name}")
        probe = used[name][:, :PROBE_ROWS]
        a = _assess(probe, p, num_slices, seed, family, device, None, name, null_draws=0, cache_dir=False)
        _view_directions(a, directions, name)
    timings["check"] = time.perf_counter() - t1

    # 2. the assessments (one Monte Carlo null per shape, shared through the cache)
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="latent-health-compare-") if cache_dir is False else None
    try:
        extra["cache_dir"] = tmp.name if tmp is not None else cache_dir
        results, scored = {}, {}
        for i, name in enumerate(names):
            z = used[name]
            base = w_probe + w_assess * i / n_sets

            def prog(frac, msg, _base=base, _name=name):
                report(_base + w_assess / n_sets * float(frac), f"scoring {_name}: {msg}")

            t1 = time.perf_counter()
            a = _assess(z, p, num_slices, seed, family, device, prog, name, **extra)
            scales, dirs = _view_directions(a, directions, name)
            timings[f"assess:{name}"] = time.perf_counter() - t1
            results[name] = _set_result(name, a, z, scales, sizes, idx)
            scored[name] = (scales, dirs, bool((a.config or {}).get("float64", False)))
            if name == reference:
                null_q = _null_quantiles(a)
    finally:
        if tmp is not None:
            tmp.cleanup()

    # 3. bootstrap draws, one stream per set (independent of the other sets and of their order)
    draws: dict = {}
    rank_boot = rank_resamples(max(int(z.shape[1]) for z in used.values()), int(directions.shape[0]), n_boot)
    if n_boot:
        keys = [k for k in DELTA_METRICS if k != "sigreg"] if metrics else []
        for i, name in enumerate(names):
            base = w_probe + w_assess + (1 - w_probe - w_assess) * i / n_sets
            span = (1 - w_probe - w_assess) / n_sets
            rng = np.random.default_rng([int(seed), _name_seed(name), 0x424F4F54])
            t1 = time.perf_counter()
            z = used[name]
            counts = bootstrap_counts(z.shape[1], n_boot, rng)
            report(base, f"bootstrap of {name}: {n_boot} resamples")
            scales, dirs, f64 = scored[name]
            with one_blas_thread():
                draws[name] = bootstrap_set(
                    list(z), dirs, scales, p, counts, keys=keys, rank_boot=rank_boot, device=device, float64=f64,
                    progress=lambda f, msg, _b=base, _s=span, _n=name: report(_b + _s * f, f"bootstrap of {_n}: {msg}"))
            timings[f"bootstrap:{name}"] = time.perf_counter() - t1

    # deltas and paired tests against the reference, in the ranking's order (any other pair: Comparison.pair)
    t1 = time.perf_counter()
    order = headline_order(names, {n: results[n].answers for n in names})
    deltas, paired = [], []
    for name in order:
        if name == reference:
            continue
        d, pt = delta_between(results[name], results[reference], draws.get(name, {}), draws.get(reference, {}),
                              n_boot=n_boot, level=level)
        deltas += d
        paired.append(pt)
    arrays = {}
    for name in names:
        scales = scored[name][0]
        rows = [used[name][v] if c == 1.0 else used[name][v] * np.asarray(c, dtype=used[name].dtype)
                for v, c in enumerate(scales)]
        arrays[name] = rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)
    timings["deltas"] = time.perf_counter() - t1
    report(1.0, "done")
    timings["total"] = time.perf_counter() - t0
    return Comparison(
        names=names, reference=reference, sets=results, deltas=deltas, paired=paired, directions=directions,
        preset=p, family=family, seed=int(seed), num_slices=int(num_slices), same_n=bool(same_n),
        n_boot=n_boot, level=float(level), row_note=row_note, caveats=caveats, null_quantiles=null_q,
        arrays=arrays, timings=timings, draws=draws, rank_resamples=int(rank_boot) if n_boot else 0,
    )



def __getattr__(name):  # the CLI lives in its own module (it imports this one); old imports keep working
    if name in ("add_compare_parser", "run_compare"):
        from sigreg_core.compare import cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
