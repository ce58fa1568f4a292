"""The statistics of a comparison: same-N subsampling, the row bootstrap, deltas, the paired slice test.

See :mod:`sigreg_core.compare.comparison` for the method (bootstrap intervals over rows
centred on the observed delta; Wilcoxon and sign tests over slices with the variance
inflated by the design effect).  SIGReg: LeJEPA, arXiv 2511.08544; the resampled ECF
sums are exact (counts @ cos(t X), counts @ sin(t X)).
"""
from __future__ import annotations

import math
import zlib
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.compare.model import DELTA_METRICS, NO_SPREAD, CompareError, Delta, PairedTest

__all__ = ["same_n_indices", "bootstrap_counts", "centred_interval", "bootstrap_sigreg", "bootstrap_metrics",
           "rank_resamples", "one_blas_thread", "bootstrap_set", "design_effect", "paired_slice_test", "delta_between"]

#: rows x slices x nodes of one cos/sin block in the bootstrap
_BOOT_BLOCK = 1 << 22
#: elements of one block of the N x N kernel (d_i . d_j)^2 in the VICReg-covariance bootstrap
_KERNEL_BLOCK = 1 << 22
#: RankMe bootstrap work (in N D^2 + 4 min(N, D)^3 units) above which fewer resamples get a RankMe
RANKME_BOOT_WORK = 6e10
#: ... but never fewer than this many (unless n_boot is smaller)
RANKME_MIN_BOOT = 20


# ----------------------------------------------------------------------------- helpers
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
    float64: Optional[bool] = None,
) -> np.ndarray:
    """SIGReg of every resample given by row ``counts`` (B, N): (B,) float64 (or (B, M) with ``per_slice``).

    Exactly the SIGReg of ``z[np.repeat(arange(N), counts[b])]`` on ``directions``:
    for the ECF presets the resampled sums are counts @ cos(t_k X) and
    counts @ sin(t_k X) with X = z A computed once (no (B, N, D) copy); presets that
    standardise each dimension first re-score each resample with ``score_slices``.
    The projections are taken in float64 when ``z`` is float64 or ``float64=True`` (as
    ``score_slices`` and the assessment do), else in float32; the sums are float64.
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
    if float64 is None:
        float64 = getattr(z, "dtype", None) in (torch.float64, np.float64)
    wd = torch.float64 if float64 else torch.float32
    a = torch.as_tensor(directions).to(device=dev, dtype=wd)
    m = a.shape[1]
    t = torch.as_tensor(p.nodes, dtype=wd, device=dev)
    k = t.numel()
    w_all = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32)).to(device=dev, dtype=wd)
    sum_c = torch.zeros(b_total, m * k, dtype=torch.float64, device=dev)
    sum_s = torch.zeros(b_total, m * k, dtype=torch.float64, device=dev)
    rows = max(1, _BOOT_BLOCK // max(1, m * k))
    zz = z if isinstance(z, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(z)))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        x = zz[r0:r1].to(device=dev, dtype=wd) @ a  # (r, M)
        arg = (x[:, :, None] * t).reshape(r1 - r0, m * k)
        w = w_all[:, r0:r1]
        sum_c += (w @ torch.cos(arg)).double()
        sum_s += (w @ torch.sin(arg)).double()
        if progress is not None:
            progress(r1, n)
    stat, _, _, _ = statistic_from_sums(sum_c.reshape(b_total * m, k), sum_s.reshape(b_total * m, k), float(n), p)
    out = stat.reshape(b_total, m).cpu().numpy().astype(np.float64)
    return out if per_slice else out.mean(1)


def rank_resamples(n: int, dim: int, n_boot: int) -> int:
    """How many of the ``n_boot`` resamples get a RankMe (each needs its own eigen-decomposition).

    RankMe is the only companion metric without a cheaper exact route: every resample needs the
    spectrum of a min(N, D)-sized Gram matrix (forming it costs N D^2 or N^2, decomposing it
    ~4 min(N, D)^3).  All ``n_boot`` resamples while that work stays under
    :data:`RANKME_BOOT_WORK`, else as many as fit, but at least :data:`RANKME_MIN_BOOT`
    (2600 x 768: 20 of 200).  The delta's note says when fewer were used.
    """
    n, dim, n_boot = int(n), int(dim), int(n_boot)
    k = min(n, dim)
    per = 4.0 * k**3 + (float(n) * dim * dim if n >= dim else float(n) * n)
    fits = int(RANKME_BOOT_WORK // max(per, 1.0))
    return int(min(n_boot, max(RANKME_MIN_BOOT, fits)))


def _gram_frobenius(d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """||d^T diag(w_b) d||_F^2 for every row of weights ``w`` (B, N): (B,) float64.

    ||d^T W d||_F^2 = sum_ij w_i w_j (d_i . d_j)^2 = w^T K w with K = (d d^T)^2 (elementwise):
    N^2 D once plus N^2 per resample, instead of N D^2 per resample; K is built in row blocks
    (never all of it in memory).  When N > B D the per-resample Gram is cheaper and is used.
    """
    n, dim = d.shape
    b_total = w.shape[0]
    out = np.zeros(b_total)
    if float(n) * n * dim + float(b_total) * n * n <= float(b_total) * n * dim * dim:
        blk = max(1, min(n, _KERNEL_BLOCK // max(n, 1)))
        for i0 in range(0, n, blk):
            i1 = min(n, i0 + blk)
            k = d[i0:i1] @ d.T
            k *= k                                            # (blk, N): (d_i . d_j)^2
            out += np.einsum("bi,bi->b", w[:, i0:i1], w @ k.T)
        return out
    for b in range(b_total):
        g = (d.T * w[b]) @ d
        out[b] = float(np.sum(g * g))
    return out


def _eigvalsh(g: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric matrix with one BLAS thread (see :func:`one_blas_thread`)."""
    with one_blas_thread():
        return np.linalg.eigvalsh(g)


def one_blas_thread():
    """A context with numpy's BLAS/LAPACK on one thread (a no-op without ``threadpoolctl``).

    Measured on the 2-core project machine under load (about 12 runnable processes): eigh of a
    768 x 768 covariance 4.2 s on 2 OpenBLAS threads, 0.51 s on one; 128 x 128: 0.89 s against
    0.008 s (the threads wait for each other).  Eigen-decompositions of Compare and the
    assessments it runs use one thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn / scipy stacks
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def bootstrap_metrics(z, counts: np.ndarray, keys: Sequence[str] = tuple(k for k in DELTA_METRICS if k != "sigreg"),
                      progress: Optional[Callable[[int, int], None]] = None,
                      rank_boot: Optional[int] = None) -> dict:
    """Companion metrics of every resample given by row ``counts`` (B, N): {key: (B,)}.

    From weighted sums over the rows, with d = z - mean(z) and u = z / ||z||: n = sum w,
    s1 = w d, q = w d^2, u1 = w u, u2 = w u^2 (each O(N D) per resample), then (the
    definitions of :mod:`sigreg_core.assessment.metrics`)

    * variances C_jj = (q_j - s1_j^2 / n) / (n - 1); VICReg variance mean_j relu(1 - sqrt(C_jj + 1e-4));
    * VICReg covariance (||C||_F^2 - sum_j C_jj^2) / D with
      ||C||_F^2 (n - 1)^2 = ||A||_F^2 - 2 s1^T A s1 / n + ||s1||^4 / n^2, A = d^T diag(w) d,
      ||A||_F^2 = w^T K w (K = (d d^T)^2, :func:`_gram_frobenius`) and s1^T A s1 = sum_n w_n (d_n . s1)^2;
    * RankMe from the singular values of the resampled rows: eigenvalues of Z^T diag(w) Z (D x D)
      or of diag(sqrt w) Z Z^T diag(sqrt w) (N x N, when N < D); p = sigma / sum sigma + 1e-7,
      RankMe = exp(-sum p log p); only for the first ``rank_boot`` resamples (default all:
      :func:`rank_resamples` picks fewer for large D), so ``rankme`` has ``rank_boot`` values;
    * std of normalised rows mean_j sqrt((u2_j / n - (u1_j / n)^2) n / (n - 1)).

    Each value is exactly the metric of the resampled rows (checked against
    :func:`sigreg_core.assessment.metrics.companion_metrics` of ``z[rows]``), in float64.
    """
    from sigreg_core.assessment.metrics import RANKME_EPS, VICREG_EPS

    zz = np.ascontiguousarray(np.asarray(z, dtype=np.float64))
    n, dim = zz.shape
    w_all = np.ascontiguousarray(np.asarray(counts, dtype=np.float64))
    b_total = w_all.shape[0]
    keys = list(keys)
    for k in keys:
        if k not in ("vicreg_variance", "vicreg_covariance", "rankme", "rankme_fraction", "normalized_std"):
            raise ValueError(f"no bootstrap for companion metric {k!r}")
    out = {}
    nb = w_all.sum(1)
    den = np.maximum(nb - 1.0, 1.0)
    mean = zz.mean(0)
    d = zz - mean
    steps = 1 + int("vicreg_covariance" in keys) + int("rankme" in keys or "rankme_fraction" in keys)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps)

    if "vicreg_variance" in keys or "vicreg_covariance" in keys:
        s1 = w_all @ d                                   # (B, D)
        var = (w_all @ (d * d) - s1 * s1 / nb[:, None]) / den[:, None]
        if "vicreg_variance" in keys:
            out["vicreg_variance"] = np.maximum(0.0, 1.0 - np.sqrt(np.maximum(var, 0.0) + VICREG_EPS)).mean(1)
        if "vicreg_covariance" in keys:
            fro = _gram_frobenius(d, w_all)
            sas = np.sum(w_all.T * (d @ s1.T) ** 2, axis=0)
            ss = np.sum(s1 * s1, axis=1)
            fro_c = (fro - 2.0 * sas / nb + ss * ss / (nb * nb)) / (den * den)
            out["vicreg_covariance"] = np.maximum(fro_c - np.sum(var * var, axis=1), 0.0) / dim
            tick()
    if "normalized_std" in keys:
        u = zz / np.maximum(np.linalg.norm(zz, axis=1, keepdims=True), 1e-12)
        um = (w_all @ u) / nb[:, None]
        uv = ((w_all @ (u * u)) / nb[:, None] - um * um) * (nb / den)[:, None]
        out["normalized_std"] = np.sqrt(np.maximum(uv, 0.0)).mean(1)
    tick()
    if "rankme" in keys or "rankme_fraction" in keys:
        r_total = b_total if rank_boot is None else max(0, min(int(rank_boot), b_total))
        r = min(n, dim)
        rk = np.empty(r_total)
        k0 = zz @ zz.T if n < dim else None
        for b in range(r_total):
            w = w_all[b]
            if k0 is None:
                keep = w > 0                                     # about 63 % of the rows are drawn
                zk = zz[keep]
                g = (zk.T * w[keep]) @ zk                        # Z^T W Z (D x D)
            else:
                sw = np.sqrt(w)
                g = sw[:, None] * k0 * sw[None, :]              # W^1/2 Z Z^T W^1/2 (N x N)
            ev = np.sort(np.maximum(_eigvalsh(0.5 * (g + g.T)), 0.0))[::-1][:r]
            sing = np.sqrt(ev)
            tot = float(sing.sum())
            if tot > 0:
                pk = sing / tot + RANKME_EPS
                rk[b] = math.exp(-float(np.sum(pk * np.log(pk))))
            else:
                rk[b] = 1.0
        if "rankme" in keys:
            out["rankme"] = rk
        if "rankme_fraction" in keys:
            out["rankme_fraction"] = rk / r
        tick()
    return {k: out[k] for k in keys}


def bootstrap_set(views: Sequence, directions: Sequence, scales: Sequence[float], preset: "str | Preset",
                  counts: np.ndarray, *, keys: Sequence[str] = (), rank_boot: Optional[int] = None,
                  device="auto", float64: bool = False,
                  progress: Optional[Callable[[float, str], None]] = None) -> dict:
    """The bootstrap draws of one set: {"sigreg": (B,), "slices": (B, M), metric: (B,) ...}.

    ``views``: the set's V row arrays (N, D) as given (V = 1 for an (N, D) set);
    ``directions``: the directions the assessment scored each view on (the comparison's unit
    directions times that view's ``row_scale``); ``scales``: those row scales.  The rows of
    every view are resampled **jointly** (one row of counts (N,) per resample: row n of every
    view is drawn together), each view's per-slice statistics are taken on its own
    directions, and the set's per-slice statistic is their mean over views (SIGReg averaged
    over views, as the assessment does).  The companion metrics are those of the rows the
    assessment scored, ``row_scale * z``, averaged over views.  With all counts 1 the draws
    are the assessment's own values (tests check it).
    """
    v_total = len(views)
    slices = None
    for v, (z, a) in enumerate(zip(views, directions)):
        s = bootstrap_sigreg(z, a, preset, counts, device=device, per_slice=True, float64=float64,
                             progress=None if progress is None else (
                                 lambda d, t, _v=v: progress((_v + 0.7 * d / max(t, 1)) / v_total, "SIGReg")))
        slices = s if slices is None else slices + s
    slices = slices / v_total
    out = {"sigreg": slices.mean(1), "slices": slices}
    keys = list(keys)
    if keys:
        acc = None
        for v, (z, c) in enumerate(zip(views, scales)):
            rows = np.asarray(z, dtype=np.float64)
            if c != 1.0:
                rows = rows * float(c)
            got = bootstrap_metrics(rows, counts, keys, rank_boot=rank_boot,
                                    progress=None if progress is None else (
                                        lambda d, t, _v=v: progress((_v + 0.7 + 0.3 * d / max(t, 1)) / v_total,
                                                                    "companion metrics")))
            acc = got if acc is None else {k: acc[k] + got[k] for k in keys}
        out.update({k: acc[k] / v_total for k in keys})
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



#: a bootstrap spread below this fraction of the metric's size is float32 rounding, not sampling spread
_NUMERICAL_SPREAD = 1e-6


def _typical(key: str, res) -> float:
    """The natural size of a metric (so rounding noise of a near-zero value is not mistaken for spread)."""
    if key == "sigreg":
        return abs(float(res.null_mean)) if res.null_mean else 1.0
    if key == "normalized_std":
        return 1.0 / math.sqrt(max(int(res.dim), 1))
    return 1.0


def delta_between(cur, ref, draws_cur: Mapping, draws_ref: Mapping, *, n_boot: int, level: float) -> tuple:
    """(deltas of every metric, paired slice test) of set ``cur`` against set ``ref`` (two :class:`SetResult`).

    ``draws_*`` are the sets' bootstrap draws ({"sigreg": (B,), "slices": (B, M), metric: (B,)}),
    independent per set, so any pair of sets combines them: d*_b = theta*_b(cur) - theta*_b(ref).
    An interval of zero width (no bootstrap spread in either set beyond float rounding,
    ``se <= 1e-6 x`` the metric's size, e.g. two fully collapsed sets) is not an interval: its bounds are NaN, ``significant`` is False and ``note`` says
    :data:`~sigreg_core.compare.model.NO_SPREAD`.
    """
    deltas = []
    for key, (_label, better) in DELTA_METRICS.items():
        v_set = cur.sigreg if key == "sigreg" else cur.metrics.get(key)
        v_ref = ref.sigreg if key == "sigreg" else ref.metrics.get(key)
        if v_set is None or v_ref is None:
            continue
        est = float(v_set) - float(v_ref)
        note = ""
        if n_boot and key in draws_cur and key in draws_ref:
            b_cur, b_ref = np.asarray(draws_cur[key], dtype=np.float64), np.asarray(draws_ref[key], dtype=np.float64)
            used = min(b_cur.size, b_ref.size)
            dstar = b_cur[:used] - b_ref[:used]
            few = (f"interval from {used} of the {int(n_boot)} resamples (each needs an eigen-decomposition)"
                   if used < int(n_boot) else "")
            se = float(np.std(dstar, ddof=1)) if used > 1 else 0.0
            if not se > _NUMERICAL_SPREAD * max(abs(float(v_set)), abs(float(v_ref)), _typical(key, cur)):
                lo = hi = p_boot = float("nan")
                se = 0.0
                sig = False
                note = NO_SPREAD
            else:
                lo, hi = centred_interval(est, dstar, level)
                centred = np.abs(dstar - dstar.mean())
                p_boot = float((1 + np.sum(centred >= abs(est))) / (dstar.size + 1)) if est != 0 else 1.0
                sig = bool(lo > 0 or hi < 0)
                note = few
        else:
            lo = hi = se = p_boot = float("nan")
            sig = False
            note = "no bootstrap (resamples = 0)" if not n_boot else ""
        healthier = None
        if sig and better is not None:
            set_better = est < 0 if better == "lower" else est > 0
            healthier = cur.name if set_better else ref.name
        deltas.append(Delta(set=cur.name, reference=ref.name, metric=key, value=est, ci_low=lo, ci_high=hi,
                            se=se, p_boot=p_boot, significant=sig, healthier=healthier,
                            n_boot=int(n_boot), level=float(level), note=note))
    pt = paired_slice_test(cur.statistic, ref.statistic, set_name=cur.name, reference=ref.name, level=level,
                           boot_set=draws_cur.get("slices"), boot_ref=draws_ref.get("slices"))
    return deltas, pt
