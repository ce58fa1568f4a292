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
           "design_effect", "paired_slice_test", "delta_between"]

#: rows x slices x nodes of one cos/sin block in the bootstrap
_BOOT_BLOCK = 1 << 22


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
            dstar = np.asarray(draws_cur[key], dtype=np.float64) - np.asarray(draws_ref[key], dtype=np.float64)
            se = float(np.std(dstar, ddof=1))
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
