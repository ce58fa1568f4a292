"""Exact null law of one slice's Epps–Pulley statistic, and p-value combinations.

The statistic of one slice (LeJEPA, Balestriero & LeCun, arXiv 2511.08544;
LeWorldModel, arXiv 2603.19312), in N-scaled units, is

    Q = N * sum_k c_k [ (Cbar_k - phi_k)^2 + Sbar_k^2 ],   phi_k = exp(-t_k^2 / 2).

When the slice is exactly N(0, 1), sqrt(N) (Cbar - phi) and sqrt(N) Sbar are
asymptotically independent centred Gaussian vectors with covariances

    Sigma_cc[k, l] = 1/2 (phi(t_k - t_l) + phi(t_k + t_l)) - phi_k phi_l,
    Sigma_ss[k, l] = 1/2 (phi(t_k - t_l) - phi(t_k + t_l)),

so Q converges in law to a finite weighted sum of independent chi-square(1)
variables, Q = sum_j lambda_j chi2_1, whose weights are the eigenvalues of
diag(sqrt c) Sigma_cc diag(sqrt c) and of diag(sqrt c) Sigma_ss diag(sqrt c).
sum_j lambda_j equals the exact null mean sum_k c_k (1 - exp(-t_k^2)).  The law is
accurate from N of about 32 on.  Presets that are not scaled by N (``lejepa-legacy``,
``gist``) are multiplied by N before testing (:func:`to_scaled`).

*Per-slice standardisation.*  When each slice is centred and scaled by its own
sample mean and standard deviation (our ``principal`` shape test), the delta
method replaces cos(t x) - phi(t) by the influence function
``cos(t x) - phi(t) + t^2 phi(t) (x^2 - 1) / 2`` and sin(t x) by
``sin(t x) - t phi(t) x``; their covariances (computed by Gauss–Hermite
quadrature) give the law of the standardised statistic in the same way.

Survival probabilities: Imhof's (1961) inversion formula

    P(Q > q) = 1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du,
    theta(u) = 1/2 sum_j arctan(lambda_j u) - q u / 2,
    rho(u)   = prod_j (1 + lambda_j^2 u^2)^(1/4),

is integrated once per grid on a table of q (the body, down to P = 1e-7); beyond
it the Lugannani–Rice saddlepoint approximation (relative error of a few per cent,
joined continuously to the Imhof table) gives log P down to 1e-300 and below, and
past the table the exact asymptotic slope d log P / dq = -1 / (2 lambda_max) is used.
Per-slice p-values are then an interpolation of log P: thousands per millisecond.
Tables are cached per grid in memory and on disk (:mod:`sigreg_core.core.lawcache`).

The ``modulus`` form (and any standardised-per-dimension preset) has no such law
here: its per-slice p-values come from a pooled Monte Carlo null and are labelled
so (:mod:`sigreg_core.assessment.assess`).

The combinations of dependent per-slice p-values (Cauchy, Bonferroni, Monte Carlo) live in
:mod:`sigreg_core.core.combine` and are re-exported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from sigreg_core.core.combine import bonferroni, cauchy_bonferroni, cauchy_combination, empirical_pvalue, pvalue_floor
from sigreg_core.core.lawcache import load_law_table, save_law_table
from sigreg_core.core.presets import Preset, get_preset

__all__ = [
    "SliceLaw",
    "NoExactLaw",
    "has_exact_law",
    "law_eigenvalues",
    "slice_law",
    "slice_law_for_grid",
    "to_scaled",
    "slice_pvalues",
    "imhof_sf",
    "saddlepoint_logsf",
    "cauchy_combination",
    "cauchy_bonferroni",
    "bonferroni",
    "empirical_pvalue",
    "pvalue_floor",
]

#: Smallest p-value reported as a float (log p is always available beyond it).
P_FLOOR = 1e-300
_BODY_SF = 1e-7  # Imhof table down to this survival probability
_FAR_LOGSF = -745.0  # saddlepoint table down to this log survival (exp underflows below)


class NoExactLaw(ValueError):
    """The configuration's statistic has no chi-square-mixture null law."""


def has_exact_law(preset: "str | Preset") -> bool:
    """True for the ECF form without per-dimension standardisation."""
    p = get_preset(preset)
    return p.form == "ecf" and not p.standardize


def to_scaled(statistic, preset: "str | Preset", n: int) -> np.ndarray:
    """Convert a statistic in the preset's own units to N-scaled units (x N if unscaled)."""
    p = get_preset(preset)
    s = np.asarray(statistic, dtype=np.float64)
    return s if p.scale_by_n else s * float(n)


def from_scaled(statistic, preset: "str | Preset", n: int) -> np.ndarray:
    """Inverse of :func:`to_scaled`."""
    p = get_preset(preset)
    s = np.asarray(statistic, dtype=np.float64)
    return s if p.scale_by_n else s / float(n)


# --------------------------------------------------------------- covariances
def _phi(t):
    return np.exp(-np.asarray(t, dtype=np.float64) ** 2 / 2)


def _closed_form_blocks(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T, S = t[:, None], t[None, :]
    cc = 0.5 * (_phi(T - S) + _phi(T + S)) - _phi(T) * _phi(S)
    ss = 0.5 * (_phi(T - S) - _phi(T + S))
    return cc, ss


def influence_covariances(t: np.ndarray, standardized: bool, order: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Covariances of the ECF influence functions under N(0, 1) by Gauss–Hermite quadrature.

    Without standardisation this reproduces the closed-form Sigma_cc, Sigma_ss (a test
    oracle); with per-slice standardisation it gives the delta-method covariances.
    """
    x, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()  # expectation under N(0, 1)
    t = np.asarray(t, dtype=np.float64)
    ph = _phi(t)
    tx = np.outer(x, t)  # (G, K)
    psi_c = np.cos(tx) - ph
    psi_s = np.sin(tx)
    if standardized:
        psi_c = psi_c + (t**2 * ph)[None, :] * ((x**2 - 1) / 2)[:, None]
        psi_s = psi_s - (t * ph)[None, :] * x[:, None]
    cc = (psi_c * w[:, None]).T @ psi_c
    ss = (psi_s * w[:, None]).T @ psi_s
    return cc, ss


def law_eigenvalues(nodes, weights, standardized: bool = False) -> np.ndarray:
    """Weights lambda_j of the chi-square(1) mixture (descending, tiny ones dropped)."""
    t = np.asarray(nodes, dtype=np.float64)
    c = np.asarray(weights, dtype=np.float64)
    if t.shape != c.shape or t.ndim != 1:
        raise ValueError("nodes and weights must be 1-D arrays of the same length")
    if np.any(c < 0):
        raise ValueError("quadrature weights must be non-negative")
    if standardized:
        cc, ss = influence_covariances(t, standardized=True)
    else:
        cc, ss = _closed_form_blocks(t)
    sc = np.sqrt(c)
    lam = np.concatenate(
        [
            np.linalg.eigvalsh(sc[:, None] * cc * sc[None, :]),
            np.linalg.eigvalsh(sc[:, None] * ss * sc[None, :]),
        ]
    )
    lam = np.sort(lam)[::-1]
    lam = lam[lam > 1e-13 * lam[0]]
    return lam


# ------------------------------------------------------- survival functions
def _imhof_one(q: float, lam: np.ndarray) -> float:
    """Imhof's integral for one q.

    sin(theta(u)) = sin(A(u)) cos(q u / 2) - cos(A(u)) sin(q u / 2) with
    A(u) = 1/2 sum arctan(lambda_j u), so the integral over [0, inf) is two Fourier
    integrals, done by QUADPACK's QAWF (``quad(weight="cos"/"sin")``).
    """
    from scipy import integrate  # only when a table is built (the cache usually spares it)

    half_sum = 0.5 * float(np.sum(lam))
    w = 0.5 * q
    # eigenvalues below 1e-7 lambda_max only add a linear phase (lambda u << 1 where it matters)
    big = lam[lam >= 1e-7 * lam[0]]
    small_half = 0.5 * float(np.sum(lam[lam < 1e-7 * lam[0]]))
    lam_list = [float(v) for v in big]

    def amp(u):
        return math.exp(-0.25 * sum(math.log1p((v * u) ** 2) for v in lam_list))

    def big_a(u):
        return 0.5 * sum(math.atan(v * u) for v in lam_list) + small_half * u

    def g_sin(u):  # sin(A(u)) amp(u) / u, finite at 0
        return math.sin(big_a(u)) * amp(u) / u if u > 0 else half_sum

    def g_cos_near(u):  # cos(A) amp sin(w u) / u on [0, 1], finite at 0
        return math.cos(big_a(u)) * amp(u) * math.sin(w * u) / u if u > 0 else w

    def g_cos_far(u):
        return math.cos(big_a(u)) * amp(u) / u

    if w > 0:
        i1, _ = integrate.quad(g_sin, 0.0, np.inf, weight="cos", wvar=w, limlst=200)
        i2b, _ = integrate.quad(g_cos_far, 1.0, np.inf, weight="sin", wvar=w, limlst=200)
    else:
        i1, _ = integrate.quad(g_sin, 0.0, np.inf, limit=400)
        i2b = 0.0
    i2a, _ = integrate.quad(g_cos_near, 0.0, 1.0, limit=200, epsabs=1e-14, epsrel=1e-12)
    return 0.5 + (i1 - (i2a + i2b)) / math.pi


def imhof_sf(q, lam) -> np.ndarray:
    """P(sum_j lambda_j chi2_1 > q) by Imhof's formula (direct numerical integration).

    Absolute accuracy about 1e-11; slow (one adaptive integral per q).  Use
    :meth:`SliceLaw.sf` for many values.
    """
    lam = np.asarray(lam, dtype=np.float64)
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    out = np.array([1.0 if v <= 0 else _imhof_one(float(v), lam) for v in q])
    return np.clip(out, 0.0, 1.0)


def _saddle_s(q: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Solve K'(s) = q for the cumulant K(s) = -1/2 sum log(1 - 2 lambda s) (vectorised bisection).

    Parametrised by r = 1 - 2 lambda_max s in (0, inf): K' is decreasing in r, and r is
    bisected in log space so that the far tail (r ~ lambda_max / q) keeps full precision.
    """
    q = np.asarray(q, dtype=np.float64)
    lr = lam / lam[0]

    def kprime(log_r):
        r = np.exp(log_r)[:, None]
        # 1 - 2 lambda_j s = 1 - lr_j (1 - r)
        return np.sum(lam[None, :] / ((1 - lr[None, :]) + lr[None, :] * r), axis=1)

    lo = np.full(q.shape, -700.0)  # tiny r: K' huge
    hi = np.full(q.shape, 50.0)  # huge r (s very negative): K' tiny
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        big = kprime(mid) > q
        lo = np.where(big, mid, lo)
        hi = np.where(big, hi, mid)
        if np.all(hi - lo < 1e-14):
            break
    return np.exp(0.5 * (lo + hi))


def saddlepoint_logsf(q, lam) -> np.ndarray:
    """log P(sum lambda_j chi2_1 > q) by the Lugannani–Rice saddlepoint formula.

    Valid for q above the mean (the far tail, where it is used); relative error of
    the probability a few per cent, so log P is accurate to about 0.03.
    """
    lam = np.asarray(lam, dtype=np.float64)
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    r = _saddle_s(q, lam)
    s = (1 - r) / (2 * lam[0])
    one = (1 - lam / lam[0])[None, :] + (lam / lam[0])[None, :] * r[:, None]
    K = -0.5 * np.sum(np.log(one), axis=1)
    K2 = np.sum(2 * lam[None, :] ** 2 / one**2, axis=1)
    w = np.sign(s) * np.sqrt(np.maximum(2 * (s * q - K), 0.0))
    v = s * np.sqrt(K2)
    log_tail = special.log_ndtr(-w)
    # ratio phi(w) / Phi_bar(w)
    log_phi = -0.5 * w**2 - 0.5 * math.log(2 * math.pi)
    corr = np.exp(log_phi - log_tail) * (1.0 / v - 1.0 / w)
    return log_tail + np.log1p(np.maximum(corr, -0.999999))


# --------------------------------------------------------------- the law
@dataclass(frozen=True, eq=False)
class SliceLaw:
    """Null law of one slice's N-scaled statistic: sum_j lambda_j chi2_1.

    ``q_table``/``logsf_table`` are the tabulated log survival function (Imhof body,
    saddlepoint tail).  ``logsf``/``sf``/``ppf`` interpolate it.
    """

    eigenvalues: np.ndarray
    q_table: np.ndarray
    logsf_table: np.ndarray
    standardized: bool = False
    method: str = "Imhof (body) + Lugannani-Rice saddlepoint (tail), weighted chi-square(1) mixture"

    @property
    def mean(self) -> float:
        return float(np.sum(self.eigenvalues))

    @property
    def var(self) -> float:
        return float(2 * np.sum(self.eigenvalues**2))

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[0])

    def logsf(self, q) -> np.ndarray:
        """Natural log of P(Q > q), vectorised; exact slope past the table."""
        q = np.asarray(q, dtype=np.float64)
        out = np.zeros(q.shape)
        qt, lt = self.q_table, self.logsf_table
        inside = (q > 0) & (q <= qt[-1])
        if np.any(inside):
            out[inside] = self._interp(q[inside])
        far = q > qt[-1]
        if np.any(far):
            qf = q[far]
            out[far] = lt[-1] - (qf - qt[-1]) / (2 * self.lambda_max) - 0.5 * np.log(qf / qt[-1])
        out[np.isnan(q)] = np.nan
        return out

    @property
    def _interp(self):
        f = self.__dict__.get("_pchip")
        if f is None:
            from scipy.interpolate import PchipInterpolator

            f = PchipInterpolator(self.q_table, self.logsf_table, extrapolate=False)
            object.__setattr__(self, "_pchip", f)
        return f

    def sf(self, q) -> np.ndarray:
        """P(Q > q) (underflows to 0 below about 1e-308; use :meth:`logsf`)."""
        return np.exp(self.logsf(q))

    def cdf(self, q) -> np.ndarray:
        return -np.expm1(self.logsf(q))

    def ppf(self, prob) -> np.ndarray:
        """Quantile: the q with P(Q <= q) = prob."""
        prob = np.asarray(prob, dtype=np.float64)
        target = np.log1p(-prob)
        # logsf_table is decreasing in q: invert by interpolation on the table
        lt = self.logsf_table[::-1]
        qt = self.q_table[::-1]
        out = np.interp(target, lt, qt)
        # refine with a few Newton-free bisection steps on the interpolant
        lo = np.zeros_like(out)
        hi = np.full_like(out, self.q_table[-1])
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = self.logsf(mid) > target
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        out = 0.5 * (lo + hi)
        return out

    def to_dict(self) -> dict:
        return {
            "eigenvalues": [float(v) for v in self.eigenvalues],
            "mean": self.mean,
            "var": self.var,
            "standardized": self.standardized,
            "method": self.method,
        }


def _build_law(lam: np.ndarray, standardized: bool) -> SliceLaw:
    lam_max = lam[0]
    mean = float(np.sum(lam))
    # body: Imhof on a grid until P < _BODY_SF
    q_body_hi = mean
    while True:
        q_body_hi = q_body_hi * 1.5 + lam_max
        if _imhof_one(q_body_hi, lam) < _BODY_SF:
            break
    # denser near 0 where the density has its shape; quadratic spacing
    u = np.linspace(0.0, 1.0, 65)[1:]
    q_body = q_body_hi * u**1.5
    sf_body = np.array([_imhof_one(float(v), lam) for v in q_body])
    keep = sf_body > 10 * _BODY_SF
    q_body, sf_body = q_body[keep], np.clip(sf_body[keep], 1e-300, 1.0)
    log_body = np.log(sf_body)
    # tail: saddlepoint from the last body point to log P = _FAR_LOGSF
    q0 = q_body[-1]
    q_far = q0 + 2 * lam_max * (log_body[-1] - _FAR_LOGSF) + 10 * mean
    q_tail = np.linspace(q0, q_far, 400)
    log_tail = saddlepoint_logsf(q_tail, lam)
    log_tail = log_tail + (log_body[-1] - log_tail[0])  # continuous join
    q = np.concatenate([[0.0], q_body, q_tail[1:]])
    ls = np.concatenate([[0.0], log_body, log_tail[1:]])
    # enforce strict monotone decrease (numerical noise in the flat body)
    ls = np.minimum.accumulate(ls)
    for i in range(1, len(ls)):
        if ls[i] >= ls[i - 1]:
            ls[i] = ls[i - 1] - 1e-15
    return SliceLaw(eigenvalues=lam, q_table=q, logsf_table=ls, standardized=standardized)


def _code_parts(code) -> list:
    out = [code.co_code, repr(code.co_names).encode()]
    for c in code.co_consts:  # nested functions recursively; no file names or line numbers
        out += _code_parts(c) if hasattr(c, "co_code") else [repr(c).encode()]
    return out


@lru_cache(maxsize=1)
def law_recipe() -> bytes:
    """A fingerprint of the code and constants that build a table: part of the disk-cache key."""
    fns = (_build_law, _imhof_one, saddlepoint_logsf, _saddle_s, law_eigenvalues, _closed_form_blocks,
           influence_covariances, _phi)
    parts = [repr((_BODY_SF, _FAR_LOGSF)).encode()] + [p for f in fns for p in _code_parts(f.__code__)]
    return b"\0".join(parts)


@lru_cache(maxsize=64)
def _cached_law(nodes: tuple, weights: tuple, standardized: bool) -> SliceLaw:
    hit = load_law_table(nodes, weights, standardized, recipe=law_recipe())  # bit-identical to a fresh build
    if hit is not None:
        return SliceLaw(eigenvalues=hit[0], q_table=hit[1], logsf_table=hit[2], standardized=standardized)
    law = _build_law(law_eigenvalues(np.array(nodes), np.array(weights), standardized=standardized), standardized)
    save_law_table(nodes, weights, standardized, law.eigenvalues, law.q_table, law.logsf_table, recipe=law_recipe())
    return law


def slice_law_for_grid(nodes, weights, standardized: bool = False) -> SliceLaw:
    """The null law for an arbitrary grid (nodes t_k, weights c_k), cached."""
    key_n = tuple(float(v) for v in np.asarray(nodes, dtype=np.float64))
    key_w = tuple(float(v) for v in np.asarray(weights, dtype=np.float64))
    return _cached_law(key_n, key_w, bool(standardized))


def slice_law(preset: "str | Preset" = "lejepa", standardized: bool = False) -> SliceLaw:
    """The per-slice null law of a preset's N-scaled statistic.

    Raises :class:`NoExactLaw` for the modulus form and per-dimension standardised
    presets (their per-slice p-values come from a Monte Carlo null instead).
    """
    p = get_preset(preset)
    if not has_exact_law(p):
        raise NoExactLaw(
            f"preset {p.name!r} ({p.form} form, standardize={p.standardize}) has no chi-square-mixture "
            "null law; use a Monte Carlo null"
        )
    return slice_law_for_grid(p.nodes, p.weights, standardized=standardized)


def slice_pvalues(statistic, preset: "str | Preset", n: int, standardized: bool = False):
    """Per-slice p-values from the exact law.  Returns (p, log_p), float64 arrays.

    ``statistic`` is in the preset's own units; unscaled presets are multiplied by n.
    p is floored at 1e-300 (log_p is not).  NaN statistics give NaN.
    """
    law = slice_law(preset, standardized=standardized)
    q = to_scaled(statistic, preset, n)
    log_p = law.logsf(q)
    p = np.maximum(np.exp(log_p), P_FLOOR)
    p = np.where(np.isnan(log_p), np.nan, p)
    return p, log_p
