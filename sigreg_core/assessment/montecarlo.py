"""Monte Carlo null of an assessment, and p-values calibrated on it.

SIGReg (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) on N(0, I)
has an exact per-slice law, but the slices share the data, so any *combined*
p-value needs a null at the same (N, D, M, grid, family, seed).  ``null_draws``
N(0, I) batches are scored by exactly the code that scores the data
(:func:`sigreg_core.assessment.screens.evaluate`), cached on disk
(``$LATENT_HEALTH_CACHE``, default ``~/.cache/latent-health``), and give:

* the family SIGReg's Monte Carlo p-value (1 + #{null >= obs}) / (B + 1);
* the **calibration** of the Cauchy-combined p-values (overall and per screen).
  The Cauchy combination (Liu & Xie, JASA 2020) is accurate in the tail under
  dependence but not in the bulk (at 4096 x 64 the random screen rejected 8 % at
  alpha = 0.05), so each reported combined p-value is

      p = (1 + #{null log p <= obs}) / (B + 1)                 when >= K = 5 null draws are as extreme,
      p = exp(obs - q_K) (1 + K) / (B + 1)                      beyond (q_K: the K-th most extreme null value),

  i.e. the Monte Carlo p-value in the bulk, continued into the tail by the
  Cauchy p-value with the calibration ratio measured at the K-th null draw
  (monotone, continuous, and able to go far below 1 / (B + 1));
* the null band of sorted data-dependent slices (``principal``, ``worst``): per
  rank, the 95 % and 99.9 % quantiles of the sorted null statistics.

N above 2048 is simulated at N = 2048: the N-scaled statistic's null law does
not depend on N (accurate from N of about 32).  The ``worst`` family's search is
costly: its null uses at most ``WORST_DRAWS`` draws.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from sigreg_core.util.cache import atomic_write, cache_root
from sigreg_core.core import kernel_warmup
from sigreg_core.core import nulllaw as nl
from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.assessment.metrics import MomentSums
from sigreg_core.assessment.screens import MAX_AXES, MAX_PRINCIPAL, SCREENS, evaluate

__all__ = ["MonteCarloNull", "monte_carlo_null", "null_batches", "draw_seed", "sigreg_null_sample", "calibrated_pvalue", "family_pvalues", "null_band", "MC_MAX_ROWS", "DEFAULT_NULL_DRAWS",
           "WORST_DRAWS", "CALIBRATION_K"]

ProgressFn = Optional[Callable[[float, str], None]]
#: default Monte Carlo null size
DEFAULT_NULL_DRAWS = 200
#: the worst family's null size at most (each draw runs the search)
WORST_DRAWS = 40
#: rows of the simulated null batches at most (the scaled null law is N-free)
MC_MAX_ROWS = 2048
#: null draws at least as extreme before the Monte Carlo p-value is used as is
CALIBRATION_K = 5
_CACHE_VERSION = 3  # 3: the Cauchy–Bonferroni verdict combination
_MAX_POOL = 4_000_000


def calibrated_pvalue(log_p: float, null_log_p) -> tuple[float, float]:
    """Calibrate a Cauchy-combined log p-value on its Monte Carlo null (see the module docstring).

    Returns (p, log p).  With fewer than 2 K null draws the log p is returned unchanged.
    """
    null = np.sort(np.asarray(null_log_p, dtype=np.float64).ravel())
    null = null[~np.isnan(null)]
    b = null.size
    if np.isnan(log_p):
        return float("nan"), float("nan")
    if b < 2 * CALIBRATION_K:
        return float(max(math.exp(log_p), nl.P_FLOOR)), float(log_p)
    count = int(np.searchsorted(null, log_p, side="right"))
    if count >= CALIBRATION_K:
        p = (1.0 + count) / (b + 1.0)
        return float(p), float(math.log(p))
    qk = null[CALIBRATION_K - 1]
    if not np.isfinite(qk):
        return float(max(math.exp(log_p), nl.P_FLOOR)), float(log_p)
    lp = float(log_p - qk + math.log((1.0 + CALIBRATION_K) / (b + 1.0)))
    return float(max(math.exp(lp), nl.P_FLOOR)), lp


@dataclass
class MonteCarloNull:
    """Monte Carlo null at one configuration (arrays in N-scaled units)."""

    config: dict
    sigreg: np.ndarray  # (B,) family SIGReg of each null batch
    verdict_log_p: np.ndarray  # (B,) log of the verdict's Cauchy p-value on each null batch
    per_slice: np.ndarray  # (B', M) family per-slice statistics (pooled / per index)
    screen_log_p: np.ndarray = None  # (B, 3) log Cauchy p-value of each screen (random, axes, principal)
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

    def calibrated(self, log_p: float, screen: Optional[str] = None) -> tuple[float, float]:
        """The overall (``screen=None``) or one screen's Cauchy log p calibrated on this null."""
        if screen is None:
            return calibrated_pvalue(log_p, self.verdict_log_p)
        return calibrated_pvalue(log_p, self.screen_log_p[:, SCREENS.index(screen)])

    def sorted_band(self, m: int, quantiles=(0.95, 0.999)) -> np.ndarray:
        """Per-rank quantiles (len(quantiles), m) of the null's per-slice statistics sorted worst first."""
        ref = np.sort(self.per_slice[:, :m].astype(np.float64), axis=1)[:, ::-1]
        return np.quantile(ref, quantiles, axis=0)


# ----------------------------------------------------------------------------- the disk cache
# A cached null is served only when (1) its name carries the fingerprint of the code that made it
# (every module of sigreg_core.core and sigreg_core.assessment, the package, numpy and torch
# versions: a new release or an edited scorer never reads an old table), (2) the file holds the
# exact settings asked for and well-formed arrays of the expected shapes, and (3) its HMAC-SHA256
# over settings, fingerprint and array bytes, keyed by a per-user secret (``cache.key``, mode
# 0600, created once, refused unless owned by this user and private), matches.  A table altered
# in place but still well-formed (the audit turned "severe" into "healthy" with p = 1.0 this way)
# fails (3) and is recomputed and overwritten.  Arrays are read with ``allow_pickle=False``.
_FIELDS = ("sigreg", "verdict_log_p", "per_slice", "screen_log_p")
_KEY_FILE = "cache.key"


def code_fingerprint() -> str:
    """sha256 of the code that simulates and scores a null (hex); part of every cache file name."""
    global _CODE_FINGERPRINT
    if _CODE_FINGERPRINT is None:
        import sigreg_core

        pkg = Path(sigreg_core.__file__).resolve().parent
        h = hashlib.sha256(f"latent-health mc v{_CACHE_VERSION}|{getattr(sigreg_core, '__version__', '')}|"
                           f"numpy {np.__version__}|torch {torch.__version__}".encode())
        for sub in ("core", "assessment"):
            for f in sorted((pkg / sub).glob("*.py")):
                try:
                    data = f.read_bytes()
                except OSError:
                    data = b"unreadable"
                h.update(f"|{sub}/{f.name}|{len(data)}|".encode())
                h.update(data)
        _CODE_FINGERPRINT = h.hexdigest()
    return _CODE_FINGERPRINT


_CODE_FINGERPRINT: Optional[str] = None


def _cache_path(root: Optional[Path], key: str) -> Optional[Path]:
    return None if root is None else root / f"null-{key}-{code_fingerprint()[:12]}.npz"


def _secret(root: Path, create: bool) -> Optional[bytes]:
    """The per-user HMAC key of the cache folder, or None when it is missing or not private."""
    path = root / _KEY_FILE
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(str(path), flags)
    except FileNotFoundError:
        if not create:
            return None
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
        except FileExistsError:
            pass  # another process made it meanwhile
        except OSError:
            return None
        return _secret(root, create=False)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o077 or st.st_size != 32:
            return None  # planted by someone else, or readable by others: trust nothing signed with it
        key = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    return key if len(key) == 32 else None


def _digest(secret: bytes, config: dict, arrays: dict) -> str:
    import hmac

    h = hmac.new(secret, digestmod=hashlib.sha256)
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(code_fingerprint().encode())
    for name in _FIELDS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _well_formed(config: dict, arrays: dict) -> bool:
    draws, m = int(config["draws"]), int(config["num_slices"])
    sig, vlp, per, slp = (arrays[k] for k in _FIELDS)
    return (sig.dtype == np.float64 and sig.shape == (draws,) and vlp.dtype == np.float64 and vlp.shape == (draws,)
            and slp.dtype == np.float64 and slp.shape == (draws, len(SCREENS)) and per.dtype == np.float32
            and per.ndim == 2 and per.shape[0] <= draws and (per.shape[0] == 0 or per.shape[1] <= m)
            and bool(np.all(np.isfinite(sig))))


def _load_cached(path: Optional[Path], config: dict) -> Optional["MonteCarloNull"]:
    """The cached null at ``path`` if it was made by this code for ``config`` and is intact; else None."""
    if path is None or not path.is_file() or path.is_symlink():
        return None
    secret = _secret(path.parent, create=False)
    if secret is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if set(f.files) != {*_FIELDS, "config", "code", "digest"}:
                return None
            if bytes(f["code"].tobytes()).decode("ascii") != code_fingerprint():
                return None
            if json.loads(bytes(f["config"].tobytes()).decode("utf-8")) != json.loads(json.dumps(config)):
                return None
            arrays = {k: f[k] for k in _FIELDS}
            digest = bytes(f["digest"].tobytes()).decode("ascii")
    except Exception:  # unreadable or foreign entry: recompute and overwrite
        return None
    import hmac

    if not _well_formed(config, arrays) or not hmac.compare_digest(digest, _digest(secret, config, arrays)):
        return None
    return MonteCarloNull(config=config, sigreg=arrays["sigreg"], verdict_log_p=arrays["verdict_log_p"],
                          per_slice=arrays["per_slice"], screen_log_p=arrays["screen_log_p"], source="cache",
                          seconds=0.0, path=str(path))


def _save_cached(path: Optional[Path], out: "MonteCarloNull") -> Optional[str]:
    """Write ``out`` atomically with its settings, code fingerprint and digest; the path, or None."""
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = _secret(path.parent, create=True)
        if secret is None:
            return None  # no private key here: keep the result in memory only
        arrays = {"sigreg": np.asarray(out.sigreg, np.float64), "verdict_log_p": np.asarray(out.verdict_log_p, np.float64),
                  "per_slice": np.asarray(out.per_slice, np.float32), "screen_log_p": np.asarray(out.screen_log_p, np.float64)}
        as_bytes = lambda text: np.frombuffer(text.encode(), dtype=np.uint8)  # noqa: E731
        atomic_write(path, lambda fh: np.savez(
            fh, **arrays, config=as_bytes(json.dumps(out.config, sort_keys=True)),
            code=as_bytes(code_fingerprint()), digest=as_bytes(_digest(secret, out.config, arrays))), suffix=".npz")
        return str(path)
    except OSError:
        return None  # read-only cache location: keep the result in memory only


def _cache_dir(cache_dir) -> Optional[Path]:
    if cache_dir is False:
        return None
    if cache_dir is None:
        cache_dir = cache_root()
    return Path(cache_dir)


def null_batches(n: int, dim: int, draws: int, seed: int):
    """The N(0, I) batches (n, dim) float32 of every Monte Carlo null of the package, from one seeded stream."""
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(int(draws)):
        yield torch.randn(int(n), int(dim), generator=g)


def draw_seed(config: dict) -> int:
    """The seed of :func:`monte_carlo_null`'s batches: from the digest of its settings (``MonteCarloNull.config``)."""
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
    return int(key[:12], 16) % (2**62)


def sigreg_null_sample(n: int, dim: int, directions, preset, draws: int, seed: int, device="cpu") -> np.ndarray:
    """SIGReg on fixed ``directions`` of ``draws`` N(0, I) batches (n, dim), N-scaled (mean of the scaled slices).

    The one simulation of SIGReg's null on fixed directions: the same batches
    (:func:`null_batches`) and the same scoring (:func:`~sigreg_core.assessment.slices.score_slices`)
    as :func:`monte_carlo_null`'s family statistic, without the screens.  The Monitor's null band
    (:func:`sigreg_core.runs.summary.sigreg_null_draws`) is this at its run's settings.
    """
    from sigreg_core.assessment.slices import score_slices

    preset = get_preset(preset)
    a = torch.as_tensor(directions)
    return np.array([float(np.mean(nl.to_scaled(score_slices(zb, a, preset, device=device).statistic, preset, n)))
                     for zb in null_batches(n, dim, draws, seed)], dtype=np.float64)


def monte_carlo_null(n: int, dim: int, *, family: str, num_slices: int, seed: int, preset: Preset,
                     draws: int, device="auto", cache_dir=None, progress: ProgressFn = None,
                     lo: float = 0.0, hi: float = 1.0) -> MonteCarloNull:
    """Null draws Z ~ N(0, I) (n, dim) scored by the same code as the data; cached on disk."""
    preset = get_preset(preset)
    if family == "worst":
        draws = min(int(draws), WORST_DRAWS)
    config = {
        "version": _CACHE_VERSION, "n": int(n), "dim": int(dim), "family": family, "num_slices": int(num_slices),
        "seed": int(seed), "preset": preset.to_dict(), "draws": int(draws),
        "max_axes": MAX_AXES, "max_principal": MAX_PRINCIPAL,
    }
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]  # draw_seed: its first 12
    root = _cache_dir(cache_dir)
    path = _cache_path(root, key)
    cached = _load_cached(path, config)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    sig = np.empty(draws)
    vlp = np.empty(draws)
    slp = np.full((draws, len(SCREENS)), np.nan)
    rows_kept = max(1, min(draws, _MAX_POOL // max(num_slices, 1)))
    pool = []
    with kernel_warmup.bulk():  # the dashboard: draws wait for compiled kernels, never run on the torch path
        for b, zb in enumerate(null_batches(n, dim, draws, draw_seed(config))):
            sums = MomentSums(dim, expect_rows=n).update(zb)  # the same route as the batch (budget.route)
            ev = evaluate(zb, sums, family=family, num_slices=num_slices, seed=seed, preset=preset,
                          device=device, distributed=False)
            st = nl.to_scaled(ev.family_stats.statistic, preset, n)
            sig[b] = float(np.mean(st))
            vlp[b] = ev.verdict_log_p
            for j, name in enumerate(SCREENS):
                if name in ev.group_log_p:
                    slp[b, j] = ev.group_log_p[name]
            if b < rows_kept:
                pool.append(st.astype(np.float32))
            if progress is not None:
                progress(lo + (hi - lo) * (b + 1) / draws, f"Monte Carlo null: {b + 1}/{draws} draws")
    per = np.stack(pool) if pool else np.zeros((0, num_slices), np.float32)
    out = MonteCarloNull(config=config, sigreg=sig, verdict_log_p=vlp, per_slice=per, screen_log_p=slp,
                         source="computed", seconds=time.perf_counter() - t0)
    out.path = _save_cached(path, out)
    return out


def family_pvalues(family, preset, stats, scaled, mc, n):
    """Per-slice (p, log p, method) of a family: exact law for fixed directions, Monte Carlo per
    principal index / per rank of the searched directions, pooled Monte Carlo without an exact law."""
    m = stats.num_slices
    if family in ("principal", "worst") or not nl.has_exact_law(preset):
        if mc is None or mc.per_slice.shape[0] == 0:
            if not nl.has_exact_law(preset):
                return np.full(m, np.nan), np.full(m, np.nan), "unavailable (no Monte Carlo null: null_draws=0)"
        else:
            ref = mc.per_slice.astype(np.float64)
            if family in ("principal", "worst"):
                ref = ref[:, :m]
                if family == "worst":  # ranks: the null's searched statistics sorted like the data's
                    ref = np.sort(ref, axis=1)[:, ::-1]
                p = np.array([nl.empirical_pvalue(scaled[j], ref[:, j]) for j in range(m)], dtype=np.float64)
                what = "principal index" if family == "principal" else "rank of the searched directions"
                kind = f"Monte Carlo per {what} ({ref.shape[0]} draws; floor {1 / (ref.shape[0] + 1):.2g})"
            else:
                ref = ref.ravel()
                p = nl.empirical_pvalue(scaled, ref).astype(np.float64)
                kind = f"Monte Carlo pooled over slices ({ref.size} values from {mc.per_slice.shape[0]} draws)"
            return p, np.log(p), kind
    p, lp = nl.slice_pvalues(stats.statistic, preset, n)
    kind = "exact law (weighted chi-square mixture)"
    if family == "worst":
        kind = "descriptive: exact law, not corrected for the search (no Monte Carlo null: null_draws=0)"
    if family == "principal":
        kind = "exact law of a fixed direction (no Monte Carlo null: null_draws=0; the axes were chosen from the data)"
    return p, lp, kind


def null_band(family, preset, mc, n, m) -> dict:
    """The chart's null band: per rank from the family's own null (principal, worst), else the one-slice law."""
    exact = nl.has_exact_law(preset)
    if family in ("principal", "worst") and (mc is None or not mc.per_slice.size):
        # the one-slice law is not the law of the k-th principal or searched direction (on N(0, I) the
        # top principal axis sits at 8x the null mean, the searched ones at 50x): no band rather than a wrong one
        return {0.95: float("nan"), 0.999: float("nan"),
                "source": f"unavailable: the {family} family's band needs its Monte Carlo null (null draws > 0)"}
    if family in ("principal", "worst"):
        band = nl.from_scaled(mc.sorted_band(m), preset, n)
        return {0.95: float(np.max(band[0])), 0.999: float(np.max(band[1])),
                "per_rank": {"0.95": band[0].tolist(), "0.999": band[1].tolist()},
                "source": f"Monte Carlo of the {family} family, per rank of the sorted statistics ({mc.size} draws)"}
    if exact:
        qs = nl.from_scaled(nl.slice_law(preset).ppf([0.95, 0.999]), preset, n)
        return {0.95: float(qs[0]), 0.999: float(qs[1]), "source": "exact law"}
    if mc is not None and mc.per_slice.size:
        qs = nl.from_scaled(np.quantile(mc.per_slice.astype(np.float64), [0.95, 0.999]), preset, n)
        return {0.95: float(qs[0]), 0.999: float(qs[1]), "source": "Monte Carlo"}
    return {0.95: float("nan"), 0.999: float("nan"), "source": "unavailable"}
