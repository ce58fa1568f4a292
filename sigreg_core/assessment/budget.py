"""The work budget of an assessment: estimate the cost of the route taken, refuse what cannot finish.

SIGReg itself (LeJEPA, arXiv 2511.08544) streams over rows and costs O(N M (D + K)).
The companion metrics and the principal screen beside it need the spectrum of the
sample covariance C = Zc^T Zc / (N - 1) (Zc the centred rows) and of Z^T Z: RankMe
(Garrido et al., ICML 2023), the eigen-spectrum, the principal axes.  Two exact routes:

* **dense** (D x D): accumulate the float64 Gram Z^T Z over rows (N D^2, float32 GEMMs)
  and eigen-decompose D x D matrices (D^3 each); memory ~ DENSE_COPIES * 8 D^2 bytes.
* **Gram** (N x N, N <= D): keep the N centred rows (8 N D bytes, at most
  GRAM_ROWS_BYTES) and decompose the N x N Gram Zc Zc^T instead: its non-zero
  eigenvalues are those of Zc^T Zc, and the principal axes are u_i = Zc^T v_i / sigma_i
  (the SVD Zc = V Sigma U^T read from either side).  Work N^2 D + N^3, memory 8 N D + 8 N^2.

:func:`route` picks the route from (N, D); :func:`route_cost` estimates its bytes and
its work in "eigh units" (one unit ~ one flop of a dense ``eigh``; a float32 GEMM flop
counts 1 / GEMM_SPEEDUP, measured ~60x cheaper on 2 cores).  :func:`check_assessment`
refuses, before any allocation, a batch whose matrices exceed ``LATENT_HEALTH_MAX_MEMORY``
(default 1 GiB) or whose unavoidable work (one evaluation per view) exceeds
``LATENT_HEALTH_MAX_EVAL_WORK`` (default 2e11: 65 536 x 4 096 fits, ~10 s of dense
eigen work on 2 quiet cores), with one line naming the limit and how to raise it
(the CLI exits 2, the app shows one ``st.error`` line).  ``LATENT_HEALTH_MAX_DIM``, when
set, additionally caps D on the dense route (the limit before the Gram route existed).

The Monte Carlo null (``null_draws``, default 200 in :func:`~sigreg_core.assessment.assess`)
repeats one evaluation per draw.  When the caller left ``null_draws`` at its default,
:func:`fit_null_draws` lowers it so that (1 + draws) x the route's work stays within
``LATENT_HEALTH_MAX_WORK`` (default 50 * 1024^3), down to 0 (exact per-slice law only)
below 10 draws, and says so in the result (``config["work_budget"]``); an explicit
``null_draws`` is honoured as asked.
"""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["WorkBudgetError", "MAX_DIM_ENV", "DENSE_COPIES", "max_dim", "dense_bytes", "check_dense_dim",
           "MAX_WORK_ENV", "DEFAULT_MAX_WORK", "max_work", "fit_null_draws", "MAX_MEMORY_ENV", "DEFAULT_MAX_MEMORY",
           "max_memory", "MAX_EVAL_WORK_ENV", "DEFAULT_MAX_EVAL_WORK", "max_eval_work", "GRAM_MIN_DIM",
           "GRAM_ROWS_BYTES", "route", "route_cost", "check_assessment", "max_views", "SCORE_WORK_ENV",
           "DEFAULT_SCORE_WORK", "MIN_SCORE_ROWS", "score_work", "score_rows"]

MAX_DIM_ENV = "LATENT_HEALTH_MAX_DIM"
#: float64 D x D matrices alive at once at the peak (sums, covariance, Gram, eigh workspace, off-diagonal)
DENSE_COPIES = 5
MAX_MEMORY_ENV = "LATENT_HEALTH_MAX_MEMORY"
#: bytes of the spectral matrices formed (dense: 5 x 8 D^2, 1 GiB at D ~ 5 200; Gram: rows + N x N)
DEFAULT_MAX_MEMORY = 1024**3
MAX_EVAL_WORK_ENV = "LATENT_HEALTH_MAX_EVAL_WORK"
#: eigh units of one evaluation per view (refusal): 65 536 x 4 096 costs ~9e10
DEFAULT_MAX_EVAL_WORK = 2e11
MAX_WORK_ENV = "LATENT_HEALTH_MAX_WORK"
#: eigh units for (1 + Monte Carlo draws) evaluations: 50 evaluations at D = 1024;
#: 200 draws up to D = 640, none from D = 1800 on (dense route)
DEFAULT_MAX_WORK = 50 * 1024**3
#: fewer Monte Carlo draws than this are not worth running: use none
MIN_USEFUL_DRAWS = 10
#: below this D the dense route is always cheap and is kept (identical results either way)
GRAM_MIN_DIM = 512
#: the float64 rows the Gram route keeps (N x D x 8 bytes) at most
GRAM_ROWS_BYTES = 256 * 1024**2
#: principal axes formed at most at once on the Gram route (the principal screen's 1024 + slack)
GRAM_AXES = 1024
#: float32 copies of a (D, M) direction matrix at the peak of scoring it (measured: +880 MB for
#: the 245 MB of 1024 coordinate axes at D = 60 000)
SLICE_COPIES = 4
#: a float32 GEMM flop against an eigh flop (measured ~60x under load on 2 cores)
GEMM_SPEEDUP = 64.0


class WorkBudgetError(ValueError):
    """A batch whose assessment would exceed the work budget; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def _human(nbytes: float) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def _env_number(name: str, default: float, example: str) -> float:
    env = os.environ.get(name, "").strip()
    if not env:
        return float(default)
    try:
        value = float(env.replace("_", "").replace(",", ""))
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise WorkBudgetError(f"environment variable {name}={env[:40]!r} is not a positive number; write it like {example}")
    return value


def max_dim() -> Optional[int]:
    """``$LATENT_HEALTH_MAX_DIM`` if set (a positive whole number): a cap on D for the dense route; else None."""
    env = os.environ.get(MAX_DIM_ENV, "").strip()
    if not env:
        return None
    try:
        value = int(env.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise WorkBudgetError(f"environment variable {MAX_DIM_ENV}={env[:40]!r} is not a positive whole number; write it like 8192")
    return value


def max_memory() -> float:
    """Bytes of spectral matrices allowed: ``$LATENT_HEALTH_MAX_MEMORY`` (e.g. ``4e9`` or ``2GiB``) if set, else 1 GiB.

    The same budget bounds the rows the loader keeps (:func:`sigreg_core.inputs.limits.row_limit`)."""
    try:
        return _env_number(MAX_MEMORY_ENV, DEFAULT_MAX_MEMORY, "4e9")
    except WorkBudgetError:
        from sigreg_core.inputs.limits import parse_byte_size  # "2GiB", "512MiB"

        try:
            return float(parse_byte_size(os.environ.get(MAX_MEMORY_ENV, "")))
        except ValueError:
            raise WorkBudgetError(f"environment variable {MAX_MEMORY_ENV} is not a byte size; write it like 4e9 or 2GiB") from None


def max_views() -> int:
    """Views of a (V, N, D) batch assessed at most (``$LATENT_HEALTH_MAX_VIEWS``, default 256): each view is one
    whole assessment, so 50 000 views of 2 x 4 (a 1.6 MB file) would be 50 000 of them."""
    from sigreg_core.inputs.limits import max_views as _views

    try:
        return _views()
    except ValueError as exc:  # EmbeddingLoadError is a ValueError: same one line, the budget's type
        raise WorkBudgetError(str(exc)) from None


def max_eval_work() -> float:
    """Eigh units of one evaluation per view allowed: ``$LATENT_HEALTH_MAX_EVAL_WORK`` if set, else 2e11."""
    return _env_number(MAX_EVAL_WORK_ENV, DEFAULT_MAX_EVAL_WORK, "1e12")


def max_work() -> float:
    """The Monte Carlo work limit in eigh units: ``$LATENT_HEALTH_MAX_WORK`` (e.g. ``2e11``) if set, else 50 * 1024^3."""
    return _env_number(MAX_WORK_ENV, DEFAULT_MAX_WORK, "2e11")


def route(n: int, dim: int) -> str:
    """``"gram"`` (N x N, exact) when N <= D, D > GRAM_MIN_DIM and the rows fit GRAM_ROWS_BYTES; else ``"dense"``."""
    n, dim = int(n), int(dim)
    if dim > GRAM_MIN_DIM and n <= dim and 8 * n * dim <= GRAM_ROWS_BYTES:
        return "gram"
    return "dense"


def dense_bytes(dim: int) -> int:
    """Peak bytes of the dense D x D work of the companion metrics and the principal screen."""
    return DENSE_COPIES * 8 * int(dim) ** 2


def route_cost(n: int, dim: int) -> tuple:
    """``(route, bytes, work)`` of one evaluation (metrics + principal axes) of an (n, dim) batch."""
    n, dim = max(int(n), 1), int(dim)
    r = route(n, dim)
    if r == "gram":
        # rows, the N x N Gram (centred, uncentred, eigenvectors, workspace), the axes Zc^T V (float64 + float32)
        nbytes = 8 * n * dim + 4 * 8 * n * n + 12 * dim * min(n, GRAM_AXES)
        work = float(n) ** 3 + 2.0 * float(n) ** 2 * dim / GEMM_SPEEDUP
    else:
        nbytes = dense_bytes(dim)
        work = float(dim) ** 3 + float(n) * float(dim) ** 2 / GEMM_SPEEDUP
    return r, int(nbytes), float(work)


def check_dense_dim(dim: int, what: str = "the companion metrics and the principal screen") -> None:
    """Raise :class:`WorkBudgetError` before a dense D x D allocation over the memory (or D) limit."""
    dim = int(dim)
    cap = max_dim()
    need = dense_bytes(dim)
    if need > max_memory() or (cap is not None and dim > cap):
        raise WorkBudgetError(
            f"{dim:,} dimensions on the dense route are over the work budget (the {dim:,} x {dim:,} covariance and "
            f"its eigen-decomposition for {what} need about {_human(need)} and ~{float(dim) ** 3:.1e} flops); "
            f"reduce the dimension first (PCA or a random projection) or raise {MAX_MEMORY_ENV} (now "
            f"{_human(max_memory())})" + (f" and {MAX_DIM_ENV}" if cap is not None and dim > cap else "")
        )


SCORE_WORK_ENV = "LATENT_HEALTH_SCORE_WORK"
#: rows x distinct slices that ``sigreg score`` scores by default: 131 072 rows at 1024 slices
#: (~1.5 s of ECF per pass on 2 quiet cores), every row of a 1-D set up to the row limit 2^20
DEFAULT_SCORE_WORK = 1 << 27
#: ``sigreg score`` keeps at least this many rows by default whatever the slices
MIN_SCORE_ROWS = 1 << 16


def score_work() -> float:
    """Rows x distinct slices scored by default (``$LATENT_HEALTH_SCORE_WORK``, else 2^27)."""
    return _env_number(SCORE_WORK_ENV, float(DEFAULT_SCORE_WORK), "134217728")


def score_rows(dim: int, num_slices: int) -> tuple:
    """``(rows, why)``: the rows per view ``sigreg score`` keeps when ``--max-rows`` is not given.

    SIGReg costs O(N M (D + K)) per pass (four passes: the family, the random, axes and principal
    screens, the distance), so the default N is ``$LATENT_HEALTH_SCORE_WORK`` / M' with M' the
    distinct slices: M random directions, but one in one dimension (every direction is +-1 and
    :func:`~sigreg_core.assessment.slices.score_slices` scores it once).  Never below
    :data:`MIN_SCORE_ROWS` (65 536); the loader's row limit (2^20) caps it, and ``--max-rows``
    up to that limit scores more: N >= 10^6 stays possible on a CPU.  The N-scaled statistic's
    null law does not depend on N, the health is measured on 8 192 rows, and the distance's
    sampling error at 131 072 rows is ~ 0.003: a larger sample does not change a verdict.
    """
    distinct = 1 if int(dim) <= 1 else max(int(num_slices), 1)
    rows = max(MIN_SCORE_ROWS, int(score_work() // distinct))
    why = (f"to keep scoring fast: sigreg score's default for {int(num_slices):,} slices in {int(dim):,} "
           f"dimension(s), {SCORE_WORK_ENV}; --max-rows up to the row limit scores more")
    return rows, why


def check_assessment(n: int, dim: int, views: int = 1, slices: int = 0) -> tuple:
    """Refuse (one line) a batch whose chosen route exceeds the budget; else its ``(route, bytes, work)``.

    ``slices``: the directions scored at once (num_slices; D for the coordinate family), whose
    (D, M) float32 matrices and their copies in the scorer (SLICE_COPIES) count against the
    same memory limit: at D = 60 000 the 1024 axes of the axes screen alone reach ~0.9 GB.
    """
    views = max(int(views), 1)
    r, nbytes, work = route_cost(n, dim)
    shape = f"{int(n):,} x {int(dim):,}" + (f" ({views:,} views)" if views > 1 else "")
    if views > max_views():
        raise WorkBudgetError(
            f"{views:,} views of {int(n):,} x {int(dim):,} are over the work budget: each view is one whole "
            f"assessment, at most {max_views():,} are scored; score one view (CLI --view, view=) or raise "
            f"LATENT_HEALTH_MAX_VIEWS")
    how = "reduce the dimension (PCA or a random projection) or the rows (CLI --max-rows)"
    slice_bytes = SLICE_COPIES * 4 * int(dim) * int(slices)
    if slice_bytes > max_memory():
        raise WorkBudgetError(
            f"{shape} is over the work budget: {int(slices):,} slice directions of {int(dim):,} dimensions need "
            f"about {_human(slice_bytes)} (limit {_human(max_memory())}); score fewer slices (CLI --slices), "
            f"reduce the dimension, or raise {MAX_MEMORY_ENV}")
    if r == "dense":
        check_dense_dim(dim)
    elif nbytes > max_memory():
        raise WorkBudgetError(f"{shape} is over the work budget: the N x N route keeps {_human(nbytes)} of rows and "
                              f"Gram matrices (limit {_human(max_memory())}); {how}, or raise {MAX_MEMORY_ENV}")
    total = views * work
    if total > max_eval_work():
        raise WorkBudgetError(
            f"{shape} is over the work budget: {'the views need ' if views > 1 else ''}~{total:.1e} eigh units of "
            f"{'N x N' if r == 'gram' else 'D x D'} spectral work (limit {max_eval_work():.1e}); {how}"
            f"{', score fewer views (CLI --view, view=)' if views > 1 else ''}, or raise {MAX_EVAL_WORK_ENV}"
        )
    return r, nbytes, work


def fit_null_draws(dim: int, requested: "int | None", default: int, views: int = 1,
                   rows: "int | None" = None) -> tuple:
    """``(draws, note)``: the Monte Carlo draws to run for each of ``views`` (rows x dim) batches.

    Each view of a (V, N, D) array is assessed on its own, so the unavoidable work is V
    evaluations: over :func:`max_eval_work` it is refused.  ``rows`` unknown (None) costs an
    evaluation as D^3 (the dense route).  ``requested`` given (an explicit choice) is then
    returned as is; ``None`` means ``default`` lowered to fit :func:`max_work` (``note`` says so).
    """
    views = max(int(views), 1)
    if rows is None:
        r, work = "dense", float(dim) ** 3
    else:
        r, _b, work = route_cost(rows, dim)
    per_eval = float(views) * work
    if views > 1 and per_eval > max_eval_work():
        raise WorkBudgetError(
            f"{views:,} views of {int(dim):,} dimensions are over the work budget ({views:,} evaluations of "
            f"~{work:.1e} eigh units = {per_eval:.1e}, limit {max_eval_work():.1e}); score fewer views (CLI --view, "
            f"view=) or raise {MAX_EVAL_WORK_ENV}"
        )
    if requested is not None:
        return int(requested), None
    fits = int(max_work() // per_eval) - 1 if per_eval > 0 else default
    if fits >= default:
        return int(default), None
    draws = fits if fits >= MIN_USEFUL_DRAWS else 0
    what = (f"eigen-decomposes a {int(dim):,} x {int(dim):,} covariance" if r == "dense"
            else f"decomposes a {int(rows):,} x {int(rows):,} Gram matrix")
    note = (f"Monte Carlo null lowered from {default} to {draws} draws: at {int(dim):,} dimensions each draw "
            f"{what}, and {default} draws are over the work budget ({MAX_WORK_ENV}); pass null_draws "
            f"(CLI --null-draws) to choose")
    return draws, note
