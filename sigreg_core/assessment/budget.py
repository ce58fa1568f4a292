"""The work budget of an assessment: refuse, before allocating, what cannot finish in seconds.

SIGReg itself (LeJEPA, arXiv 2511.08544) streams over rows and costs O(N M (D + K)).
The companion metrics and the principal screen beside it do not: RankMe (Garrido et
al., ICML 2023), the covariance eigen-spectrum and the principal axes need the D x D
covariance C = (Z - mu)^T (Z - mu) / (N - 1) in float64 and its eigen-decomposition,

    memory ~ DENSE_COPIES * 8 D^2 bytes,    work ~ (1 + null draws) * D^3 flops,

whatever N is.  A 64 KB file of 2 rows x 8 000 dims asks for a 512 MB matrix per
copy and minutes of ``eigh``; 2 x 60 000 asks for 28.8 GB.  :func:`check_dense_dim`
refuses such a D up front with one line naming the limit and how to raise it
(``LATENT_HEALTH_MAX_DIM``), before any D x D allocation; the CLI exits 2 and the app
shows one ``st.error`` line.

The Monte Carlo null (``null_draws``, default 200 in :func:`~sigreg_core.assessment.assess`)
repeats that dense work once per draw.  When the caller left ``null_draws`` at its
default, :func:`fit_null_draws` lowers it so that (1 + draws) * D^3 stays within
``LATENT_HEALTH_MAX_WORK`` (default 50 * 1024^3), down to 0 (exact per-slice law only)
below 10 draws, and says so in the result (``config["work_budget"]``); an explicit
``null_draws`` is honoured as asked.
"""
from __future__ import annotations

import os

__all__ = ["WorkBudgetError", "MAX_DIM_ENV", "DEFAULT_MAX_DIM", "DENSE_COPIES", "max_dim", "dense_bytes", "check_dense_dim",
           "MAX_WORK_ENV", "DEFAULT_MAX_WORK", "max_work", "fit_null_draws"]

MAX_DIM_ENV = "LATENT_HEALTH_MAX_DIM"
#: widest batch whose D x D covariance is formed and decomposed by default (see docs/loading.md)
DEFAULT_MAX_DIM = 2048
#: float64 D x D matrices alive at once at the peak (sums, covariance, Gram, eigh workspace, off-diagonal)
DENSE_COPIES = 5
MAX_WORK_ENV = "LATENT_HEALTH_MAX_WORK"
#: dense work units (D^3 per evaluation) allowed by default: 50 evaluations at D = 1024 (~30 s on 2 cores);
#: 200 draws up to D = 640, none from D = 1800 on
DEFAULT_MAX_WORK = 50 * 1024**3
#: fewer Monte Carlo draws than this are not worth running: use none
MIN_USEFUL_DRAWS = 10


class WorkBudgetError(ValueError):
    """A batch whose assessment would exceed the work budget; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def _human(nbytes: float) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def max_dim() -> int:
    """The dimension limit: ``$LATENT_HEALTH_MAX_DIM`` if set (a positive whole number), else 2048."""
    env = os.environ.get(MAX_DIM_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_DIM
    try:
        value = int(env.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise WorkBudgetError(f"environment variable {MAX_DIM_ENV}={env[:40]!r} is not a positive whole number; write it like 8192")
    return value


def dense_bytes(dim: int) -> int:
    """Peak bytes of the dense D x D work of the companion metrics and the principal screen."""
    return DENSE_COPIES * 8 * int(dim) ** 2


def check_dense_dim(dim: int, what: str = "the companion metrics and the principal screen") -> None:
    """Raise :class:`WorkBudgetError` when ``dim`` is over :func:`max_dim` (nothing is allocated)."""
    limit = max_dim()
    dim = int(dim)
    if dim > limit:
        raise WorkBudgetError(
            f"{dim:,} dimensions is over the work budget of {limit:,} (the {dim:,} x {dim:,} covariance and its "
            f"eigen-decomposition for {what} need about {_human(dense_bytes(dim))} and ~{float(dim) ** 3:.1e} flops "
            f"per draw); reduce the dimension first (e.g. PCA or a random projection to <= {limit:,} dims) or raise "
            f"the limit with {MAX_DIM_ENV}={dim}"
        )


def max_work() -> float:
    """The dense-work limit in D^3 units: ``$LATENT_HEALTH_MAX_WORK`` (e.g. ``2e11``) if set, else 50 * 1024^3."""
    env = os.environ.get(MAX_WORK_ENV, "").strip()
    if not env:
        return float(DEFAULT_MAX_WORK)
    try:
        value = float(env.replace("_", ""))
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise WorkBudgetError(f"environment variable {MAX_WORK_ENV}={env[:40]!r} is not a positive number; write it like 2e11")
    return value


def fit_null_draws(dim: int, requested: "int | None", default: int, views: int = 1) -> tuple:
    """``(draws, note)``: the Monte Carlo draws to run at dimension ``dim`` for each of ``views`` batches.

    Each view of a (V, N, D) array is assessed on its own, so the unavoidable dense work is
    V * D^3: over :func:`max_work` it is refused (a 16 MB file of 1000 views x 2 x 2048 would
    otherwise decompose a thousand 2048 x 2048 covariances).  ``requested`` given (an explicit
    choice) is then returned as is; ``None`` means ``default`` lowered to fit (``note`` says so).
    """
    views = max(int(views), 1)
    per_eval = float(views) * float(dim) ** 3
    if views > 1 and per_eval > max_work():  # one view: LATENT_HEALTH_MAX_DIM alone decides
        raise WorkBudgetError(
            f"{views:,} views of {int(dim):,} dimensions are over the work budget ({views:,} x {int(dim):,}^3 = "
            f"{per_eval:.1e} of dense work, limit {max_work():.1e}); score fewer views (CLI --view, view=) or raise "
            f"{MAX_WORK_ENV}"
        )
    if requested is not None:
        return int(requested), None
    fits = int(max_work() // per_eval) - 1 if per_eval > 0 else default
    if fits >= default:
        return int(default), None
    draws = fits if fits >= MIN_USEFUL_DRAWS else 0
    note = (f"Monte Carlo null lowered from {default} to {draws} draws: at {int(dim):,} dimensions each draw "
            f"eigen-decomposes a {int(dim):,} x {int(dim):,} covariance, and {default} draws are over the work budget "
            f"({MAX_WORK_ENV}); pass null_draws (CLI --null-draws) to choose")
    return draws, note
