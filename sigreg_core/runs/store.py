"""Monitoring a training run: a two-line writer for the training loop and a reader for the dashboard.

While a JEPA / world model trains, SIGReg — the mean over M unit directions u_m of the
Epps–Pulley statistic of the projected embeddings x = Z u_m,

    EP(x) = N * sum_k c_k [ (mean_n cos(t_k x_n) - exp(-t_k^2/2))^2 + (mean_n sin(t_k x_n))^2 ]

(LeJEPA, Balestriero & LeCun, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312) —
is logged per step next to the loss, so collapse shows the moment it starts.

Writing (inside the training loop)::

    writer = RunWriter("runs/my-run", every=50, max_rows=2048)
    ...
    writer.log(step, emb, loss=loss.item(), lam=0.09)    # emb: (N, D) or (..., N, D)

Each logged step

1. subsamples the embeddings to ``max_rows`` rows (seeded by the step) where they live,
2. computes the summary there (on the training GPU when there is one): SIGReg, its
   multiple of the exact null mean, the overall p-value, the verdict and collapse modes,
   RankMe, and the per-slice quantiles (median, 95 %, max) — see :func:`summarize`,
3. writes the snapshot atomically: ``safetensors.torch.save`` to bytes, a temporary
   file in the same directory, flush + ``os.fsync``, ``os.replace``, fsync of the
   directory,
4. and only then commits one row to the run's index, a SQLite database in WAL mode
   (``index.sqlite``; one row per step with real columns for the time series and JSON
   for the full summary and the user's scalars).

Retention keeps every k-th snapshot (``keep_every``) and/or the last K (``keep_last``);
index rows are always kept (a dropped snapshot's ``snapshot`` column becomes NULL
before its file is deleted).  Writing never crashes training: an ``OSError`` or
``sqlite3.Error`` (full disk, permissions, a vanished directory), or a failing summary,
issues one ``RuntimeWarning`` per kind and the loop goes on; the next call tries again.

Reading: :class:`RunReader` opens a run directory (the index is read, never the
snapshot files, so a 10 000-step time series loads in well under a second) or a plain
folder of snapshot files whose names carry a step number (``step_000100.npy``,
``emb-1200.pt``, ...), written by any tool; those are loaded with
:func:`sigreg_core.inputs.loading.load_embeddings` and scored here, with the summaries cached
in a SQLite file keyed by (path, mtime, size, settings).
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import sqlite3
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import pandas as pd
import torch

from sigreg_core.util.cache import CACHE_ENV, cache_root
from sigreg_core.util.jsonsafe import to_jsonable

__all__ = [
    "RunWriter",
    "RunReader",
    "SummaryConfig",
    "summarize",
    "sigreg_null_band",
    "sigreg_null_draws",
    "is_run_dir",
    "find_runs",
    "resolve_run_dir",
    "run_version",
    "step_from_name",
    "INDEX_NAME",
    "SNAPSHOT_DIR",
    "SNAPSHOT_KEY",
    "SERIES_COLUMNS",
    "default_cache_dir",
    "CACHE_DIR_ENV",
]

INDEX_NAME = "index.sqlite"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_KEY = "embeddings"
FORMAT_VERSION = 1
CACHE_DIR_ENV = CACHE_ENV  # one cache directory for the whole package (sigreg_core.util.cache)
_TMP_MARK = ".tmp-"

#: real columns of the index, in order (the time series; ``summary`` and ``scalars`` are JSON)
SERIES_COLUMNS = (
    "n", "d", "m", "sigreg", "null_mean", "sigreg_over_null",
    "p_value", "log10_p", "rankme", "q50", "q95", "qmax", "slice_null_q95", "summary_seconds",
)
_TEXT_COLUMNS = ("verdict", "modes", "error")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    step INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    snapshot TEXT,
    {", ".join(f"{c} REAL" for c in SERIES_COLUMNS)},
    verdict TEXT,
    modes TEXT,
    error TEXT,
    summary TEXT,
    scalars TEXT
);
"""


# ----------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class SummaryConfig:
    """How each logged step is summarised (stored in the run's metadata).

    ``num_slices`` is modest on purpose (the summary runs inside training): with
    fixed directions (``seed``) the curves of different steps are comparable, and past
    M of about 2 D more slices do not tighten the null (SIGREG.md).  The overall
    p-value combines the exact per-slice p-values (no Monte Carlo in the loop).
    """

    preset: str = "lejepa"
    num_slices: int = 256
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _assess():
    from sigreg_core.assessment.assess import assess  # the calibration module (verdict, p-value, modes, RankMe)

    return assess


def _float(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else (f if f in (math.inf, -math.inf) else None)


def _jsonable(x: Any) -> Any:
    # index rows stay small: arrays over 64 values are dropped; non-finite floats kept as "inf"/"nan"
    return to_jsonable(x, nonfinite=str, max_array=64)


def summarize(z, config: SummaryConfig = SummaryConfig(), *, device=None) -> dict:
    """The per-step summary of embeddings ``z`` (N, D), computed where ``z`` lives.

    Uses :func:`sigreg_core.assessment.assess.assess` with the random (LeJEPA) slice family and the
    run's fixed directions.  Returns a JSON-safe dict with the time-series fields
    (``sigreg``, ``null_mean``, ``sigreg_over_null``, ``p_value``, ``log10_p``, ``verdict``, ``modes``, ``rankme``,
    ``q50``/``q95``/``qmax`` (per-slice statistic quantiles), ``slice_null_q95``) and
    the assessment's own dict under ``assessment``.
    """
    assess = _assess()
    t0 = time.perf_counter()
    if isinstance(z, torch.Tensor):
        zz = z.detach()
        dev = zz.device if device is None else device
    else:
        zz = np.asarray(z)
        dev = "auto" if device is None else device
    a = assess(zz, preset=config.preset, num_slices=config.num_slices, seed=config.seed,
               family="random", device=dev, **_ASSESS_CHEAP)
    stat = np.asarray(a.slices.statistic, dtype=np.float64)
    n, d = int(zz.shape[0]), int(zz.shape[1])
    metrics = dict(a.metrics)
    p = _float(a.p_value)
    log10_p = _float(getattr(a, "log10_p_value", None))
    if log10_p is None and p is not None:
        log10_p = math.log10(p) if p > 0 else None
    out = {
        "n": n,
        "d": d,
        "m": int(stat.size),
        "sigreg": float(stat.mean()),
        "null_mean": _float(a.null_mean),
        "sigreg_over_null": _float(a.sigreg_over_null),
        "p_value": p,
        "log10_p": log10_p,
        "verdict": str(a.verdict),
        "modes": [str(m) for m in a.modes],
        "rankme": _float(metrics.get("rankme")),
        "q50": float(np.quantile(stat, 0.5)),
        "q95": float(np.quantile(stat, 0.95)),
        "qmax": float(stat.max()),
        "slice_null_q95": _slice_null_q95(a),
        "summary_seconds": time.perf_counter() - t0,
        "assessment": _jsonable(_small_dict(a)),
    }
    return out


#: keep ``assess`` cheap inside a training loop: no Monte Carlo null (the verdict's p-value is
#: the Cauchy combination of exact per-slice p-values and needs none); the null band of SIGReg
#: is a Monte Carlo computed once per run configuration by the reader (:meth:`RunReader.null_band`)
_ASSESS_CHEAP: dict = {"null_draws": 0}


def _prune(x: Any, limit: int = 64) -> Any:
    if isinstance(x, dict):
        return {k: _prune(v, limit) for k, v in x.items()
                if not (isinstance(v, (list, tuple)) and len(v) > limit)}
    if isinstance(x, (list, tuple)):
        return [_prune(v, limit) for v in x]
    return x


def _small_dict(a) -> dict:
    """The assessment's dict without the per-slice arrays (they can be recomputed from the snapshot)."""
    try:
        d = a.to_dict()
    except Exception:  # pragma: no cover - a to_dict failure must not lose the row
        return {}
    d.pop("per_slice", None)
    return _prune(d)


def _slice_null_q95(a) -> Optional[float]:
    nq = getattr(a, "null_quantiles", None)
    if isinstance(nq, dict):
        for k in (0.95, "0.95", "q95"):
            if k in nq:
                return _float(nq[k])
    return None


# ----------------------------------------------------------------------------- null band
NULL_BAND_DRAWS = 200
NULL_BAND_MAX_ROWS = 4096


def sigreg_null_draws(n: int, dim: int, config: SummaryConfig = SummaryConfig(), *,
                      draws: int = NULL_BAND_DRAWS, seed: int = 12345) -> np.ndarray:
    """SIGReg of ``draws`` batches Z ~ N(0, I) (n, dim) on the run's fixed directions (Monte Carlo).

    The slices share the data, so the law of their mean has no closed form here
    (its variance is about Var_1 / M + 2 kappa_1^2 / D, SIGREG.md); it is simulated with
    the same code and directions as the run.  The N-scaled statistic's null law does not
    depend on N (from N of about 32), so N above 4096 is simulated at 4096 and rescaled.
    Returned in the preset's own units at ``n`` rows.
    """
    from sigreg_core.core.directions import sample_directions
    from sigreg_core.core.nulllaw import from_scaled, to_scaled
    from sigreg_core.assessment.slices import score_slices

    n, dim, draws = int(n), int(dim), int(draws)
    if n < 2 or dim < 1 or draws < 1:
        raise ValueError(f"null band needs n >= 2, dim >= 1 and draws >= 1 (got {n}, {dim}, {draws})")
    n_sim = min(n, NULL_BAND_MAX_ROWS)
    a = sample_directions(dim, config.num_slices, config.seed)
    g = torch.Generator().manual_seed(int(seed))
    out = np.empty(draws)
    for b in range(draws):
        z = torch.randn(n_sim, dim, generator=g)
        st = score_slices(z, a, config.preset, device="cpu")
        out[b] = float(np.mean(to_scaled(st.statistic, config.preset, n_sim)))
    return np.asarray(from_scaled(out, config.preset, n), dtype=np.float64)


def sigreg_null_band(n: int, dim: int, config: SummaryConfig = SummaryConfig(), *, level: float = 0.95,
                     draws: int = NULL_BAND_DRAWS) -> tuple[float, float]:
    """Central ``level`` interval of SIGReg under the null (Monte Carlo, :func:`sigreg_null_draws`)."""
    null = sigreg_null_draws(n, dim, config, draws=draws)
    q = (1 - level) / 2
    lo, hi = np.quantile(null, [q, 1 - q])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- helpers
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _snapshot_name(step: int) -> str:
    return f"step_{step:09d}.safetensors"


def _subsample(z: torch.Tensor, max_rows: Optional[int], step: int) -> torch.Tensor:
    n = z.shape[0]
    if max_rows is None or n <= max_rows:
        return z
    g = torch.Generator().manual_seed(int(step) & 0x7FFFFFFF)
    idx = torch.randperm(n, generator=g)[:max_rows].sort().values
    return z.index_select(0, idx.to(z.device))


def _as_rows(embeddings) -> torch.Tensor:
    """(N, D) view of the embeddings: leading axes (views, time) are folded into rows."""
    t = embeddings if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
    t = t.detach()
    if t.ndim < 2:
        raise ValueError(f"embeddings must have shape (..., N, D), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {t.dtype}")
    return t.reshape(-1, t.shape[-1])


def _connect(path: Path, *, readonly: bool, timeout: float = 10.0) -> sqlite3.Connection:
    if readonly:
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                                  check_same_thread=False)
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return con
        except sqlite3.Error:
            pass  # e.g. a WAL database whose -shm cannot be created read-only: open normally
    con = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    return con


# ----------------------------------------------------------------------------- writer
class RunWriter:
    """Log embedding snapshots and their latent-health summary from a training loop.

    Parameters
    ----------
    run_dir: the run's directory (created; an existing run is appended to).
    every: log only steps that are multiples of ``every`` (``log`` returns False for others).
    max_rows: rows kept per snapshot (uniform random subset seeded by the step); the
        summary is computed on the same rows.
    keep_every, keep_last: retention — keep the snapshot of every ``keep_every``-th
        logged step (steps that are multiples of ``every * keep_every``) and/or of the
        last ``keep_last`` logged steps (both None: keep all).
    num_slices, preset, seed: the summary's settings (:class:`SummaryConfig`); the
        directions are fixed for the whole run.
    summary: False to store snapshots and scalars only (the reader scores them later).
    metadata: free JSON-safe dict stored with the run (model name, lambda, ...).

    ``log`` never raises for I/O or scoring problems: it warns once per kind and
    returns False.  Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        run_dir: Union[str, os.PathLike],
        every: int = 1,
        max_rows: Optional[int] = 4096,
        *,
        keep_every: Optional[int] = None,
        keep_last: Optional[int] = None,
        num_slices: int = 256,
        preset: str = "lejepa",
        seed: int = 0,
        summary: bool = True,
        metadata: Optional[dict] = None,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if max_rows is not None and int(max_rows) < 2:
            raise ValueError(f"max_rows must be >= 2 (the statistic needs 2 rows), got {max_rows}")
        for name, v in (("keep_every", keep_every), ("keep_last", keep_last)):
            if v is not None and int(v) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {v}")
        from sigreg_core.core.presets import get_preset

        get_preset(preset)  # refuse an unknown preset now, not inside the loop
        self.run_dir = Path(run_dir)
        self.every = int(every)
        self.max_rows = None if max_rows is None else int(max_rows)
        self.keep_every = None if keep_every is None else int(keep_every)
        self.keep_last = None if keep_last is None else int(keep_last)
        self.config = SummaryConfig(preset=str(preset), num_slices=int(num_slices), seed=int(seed))
        self.summary = bool(summary)
        self.metadata = dict(metadata or {})
        self._con: Optional[sqlite3.Connection] = None
        self._warned: set = set()
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self._open()

    # -- lifecycle
    def _warn(self, kind: str, msg: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(f"latent-health RunWriter ({self.run_dir}): {msg}; training goes on "
                          "(this warning is shown once)", RuntimeWarning, stacklevel=3)

    def _open(self) -> bool:
        if self._con is not None:
            return True
        try:
            (self.run_dir / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
            for p in (self.run_dir / SNAPSHOT_DIR).iterdir():  # temp files of a killed writer
                if _TMP_MARK in p.name and p.name.startswith("."):
                    try:
                        p.unlink()
                    except OSError:
                        pass
            con = sqlite3.connect(str(self.run_dir / INDEX_NAME), timeout=30.0, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(_SCHEMA)
            meta = {
                "format": FORMAT_VERSION,
                "summary": self.config.to_dict(),
                "max_rows": self.max_rows,
                "every": self.every,
                "keep_every": self.keep_every,
                "keep_last": self.keep_last,
                "metadata": _jsonable(self.metadata),
            }
            with con:
                con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (json.dumps(time.time()),))
                con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('config', ?)", (json.dumps(meta),))
            self._con = con
            return True
        except (OSError, sqlite3.Error) as exc:
            self._con = None
            self._warn("io", f"cannot open the run index ({type(exc).__name__}: {exc})")
            return False

    def close(self) -> None:
        """Checkpoint the WAL and switch the index to a single self-contained file."""
        with self._lock:
            con, self._con = self._con, None
            if con is None:
                return
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                con.execute("PRAGMA journal_mode=DELETE")  # fails harmlessly while a reader is attached
            except sqlite3.Error:
                pass
            finally:
                con.close()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- logging
    def should_log(self, step: int) -> bool:
        return int(step) % self.every == 0

    def log(self, step: int, embeddings, **scalars) -> bool:
        """Record ``embeddings`` at ``step`` with the user's ``scalars``; True when written.

        ``embeddings``: a tensor or array of shape (N, D), or (..., N, D) (leading axes are
        folded into rows).  Scalars may be Python numbers, 0-d tensors or strings.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if not self.should_log(step):
            return False
        z = _as_rows(embeddings)
        with self._lock:
            ok = self._log(step, z, scalars)
        if ok:
            self.written += 1
        else:
            self.failed += 1
        return ok

    def _log(self, step: int, z: torch.Tensor, scalars: dict) -> bool:
        z = _subsample(z, self.max_rows, step)
        summ: dict = {}
        error = None
        if self.summary:
            try:
                summ = summarize(z, self.config)
            except Exception as exc:  # a bad batch (NaN, 1 row) must not stop training
                error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                self._warn("summary", f"could not summarise step {step} ({error})")
        if not self._open():
            return False
        try:
            from safetensors.torch import save

            snap = self.run_dir / SNAPSHOT_DIR / _snapshot_name(step)
            cpu = z.to(device="cpu", dtype=torch.float32).contiguous()
            data = save({SNAPSHOT_KEY: cpu}, metadata={"step": str(step), "format": str(FORMAT_VERSION)})
            _atomic_write(snap, data)
            row = {c: _float(summ.get(c)) for c in SERIES_COLUMNS}
            row["n"], row["d"] = float(cpu.shape[0]), float(cpu.shape[1])
            vals = (
                [step, time.time(), f"{SNAPSHOT_DIR}/{snap.name}"]
                + [row[c] for c in SERIES_COLUMNS]
                + [summ.get("verdict"), json.dumps(summ.get("modes", [])) if summ else None, error,
                   json.dumps(_jsonable(summ)) if summ else None, json.dumps(_jsonable(_scalars(scalars)))]
            )
            cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "summary", "scalars"]
            with self._con:
                self._con.execute(
                    f"INSERT OR REPLACE INTO steps({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals
                )
            self._retain()
            return True
        except (OSError, sqlite3.Error) as exc:
            kind = "disk full" if getattr(exc, "errno", None) == errno.ENOSPC else "io"
            self._warn(kind, f"could not write step {step} ({type(exc).__name__}: {exc})")
            if isinstance(exc, sqlite3.Error):
                try:
                    self._con.close()
                except Exception:
                    pass
                self._con = None  # reopen on the next call
            return False

    def _retain(self) -> None:
        if self.keep_every is None and self.keep_last is None:
            return
        con = self._con
        held = con.execute("SELECT step, snapshot FROM steps WHERE snapshot IS NOT NULL ORDER BY step").fetchall()
        last = set()
        if self.keep_last is not None:
            last = {s for (s,) in con.execute("SELECT step FROM steps ORDER BY step DESC LIMIT ?",
                                              (self.keep_last,)).fetchall()}
        drop = []
        for step, snap in held:
            keep = (self.keep_every is not None and (step // self.every) % self.keep_every == 0) or step in last
            if not keep:
                drop.append((step, snap))
        if not drop:
            return
        with con:  # the index forgets the file first, then the file goes
            con.executemany("UPDATE steps SET snapshot = NULL WHERE step = ?", [(s,) for s, _ in drop])
        for _, snap in drop:
            try:
                (self.run_dir / snap).unlink()
            except FileNotFoundError:
                pass


def _scalars(scalars: dict) -> dict:
    out = {}
    for k, v in scalars.items():
        if isinstance(v, torch.Tensor):
            v = v.detach()
            v = v.item() if v.numel() == 1 else None
        elif isinstance(v, np.ndarray):
            v = v.item() if v.size == 1 else None
        elif isinstance(v, (np.floating, np.integer, np.bool_)):
            v = v.item()
        if v is None or isinstance(v, (bool, int, float, str)):
            out[str(k)] = v
        else:
            out[str(k)] = str(v)
    return out


# ----------------------------------------------------------------------------- reader
_STEP_RE = re.compile(r"(\d+)(?!.*\d)")


def step_from_name(name: str) -> Optional[int]:
    """The step number a file name carries: the last run of digits in its stem (``emb-1200.pt`` → 1200)."""
    stem = name.split(".", 1)[0] if not name.startswith(".") else ""
    m = _STEP_RE.search(stem)
    return int(m.group(1)) if m else None


def is_run_dir(path: Union[str, os.PathLike]) -> bool:
    """A directory written by :class:`RunWriter` (holds ``index.sqlite``)."""
    return (Path(path) / INDEX_NAME).is_file()


def _snapshot_files(folder: Path) -> dict:
    from sigreg_core.inputs.loading import SUPPORTED_EXTENSIONS

    files = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return {}
    for p in entries:
        if p.name.startswith(".") or not p.is_file():
            continue
        ext = "".join(p.suffixes[-1:]).lower()
        if ext not in SUPPORTED_EXTENSIONS:
            continue
        step = step_from_name(p.name)
        if step is None or step in files:
            continue
        files[step] = p
    return files


def find_runs(roots: Iterable[Union[str, os.PathLike]], max_depth: int = 3) -> list[Path]:
    """Run directories (and folders of step-numbered snapshot files) below ``roots``."""
    out: list[Path] = []
    seen = set()

    def visit(p: Path, depth: int) -> None:
        try:
            rp = p.resolve()
        except OSError:
            return
        if rp in seen or not rp.is_dir():
            return
        seen.add(rp)
        if is_run_dir(rp):
            out.append(rp)
            return
        if len(_snapshot_files(rp)) >= 2:
            out.append(rp)
        if depth >= max_depth:
            return
        try:
            children = sorted(c for c in rp.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            return
        for c in children:
            visit(c, depth + 1)

    for r in roots:
        visit(Path(r), 0)
    return out


def resolve_run_dir(path: Union[str, os.PathLike], roots: Optional[Iterable] = None) -> Path:
    """A run directory typed by a dashboard user, confined to the allowed roots.

    Same rules as :func:`sigreg_core.inputs.loading.resolve_server_path` (no ``..``, no NUL,
    symlinks resolved and checked, relative paths looked up below each root), for a
    directory: a :class:`RunWriter` run or a folder of step-numbered snapshot files.
    Raises :class:`sigreg_core.inputs.loading.EmbeddingLoadError` with one line.
    """
    from sigreg_core.inputs.loading import ALLOWED_ROOTS_ENV, EmbeddingLoadError, allowed_roots

    root_list = allowed_roots(roots)
    text = (os.fspath(path) if not isinstance(path, str) else path).strip()
    if not text:
        raise EmbeddingLoadError("empty run directory; type a directory below an allowed root")
    if "\x00" in text:
        raise EmbeddingLoadError("run directory contains a NUL byte; type a plain path")
    if not root_list:
        raise EmbeddingLoadError(f"no allowed directories are configured; set {ALLOWED_ROOTS_ENV}")
    shown = ", ".join(str(r) for r in root_list)
    p = Path(text)
    if any(part == ".." for part in p.parts):
        raise EmbeddingLoadError(f"run directory {text!r} contains '..'; give a path below {shown}")
    for cand in ([p] if p.is_absolute() else [r / p for r in root_list]):
        try:
            resolved = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not any(resolved == r or resolved.is_relative_to(r) for r in root_list):
            raise EmbeddingLoadError(f"run directory {text!r} resolves to {resolved}, outside the allowed "
                                     f"directories ({shown}); add it to {ALLOWED_ROOTS_ENV}")
        if not resolved.is_dir():
            raise EmbeddingLoadError(f"{text!r} is not a directory; give a run directory")
        if not is_run_dir(resolved) and not _snapshot_files(resolved):
            raise EmbeddingLoadError(f"{text!r} is neither a run directory ({INDEX_NAME}) nor a folder of "
                                     "snapshot files whose names carry a step number (step_000100.npy, ...)")
        return resolved
    raise EmbeddingLoadError(f"run directory {text!r} not found below the allowed directories ({shown})")


def run_version(path: Union[str, os.PathLike]) -> tuple:
    """A cheap signature that changes whenever the run gains or changes steps (for caches)."""
    p = Path(path)
    out = []
    if is_run_dir(p):
        names = [INDEX_NAME, INDEX_NAME + "-wal"]
        for n in names:
            try:
                st_ = (p / n).stat()
                out.append((n, st_.st_mtime_ns, st_.st_size))
            except OSError:
                out.append((n, None, None))
        return tuple(out)
    for step, f in sorted(_snapshot_files(p).items()):
        try:
            st_ = f.stat()
            out.append((f.name, st_.st_mtime_ns, st_.st_size))
        except OSError:
            continue
    return tuple(out)


def default_cache_dir() -> Path:
    """The package's cache directory (:func:`sigreg_core.util.cache.cache_root`)."""
    return cache_root()


class RunReader:
    """Read a run written by :class:`RunWriter`, or a folder of step-numbered snapshot files.

    ``timeseries()`` returns one row per step (a pandas DataFrame) with the columns
    ``step, time, snapshot, n, d, m, sigreg, null_mean, sigreg_over_null, p_value, log10_p, rankme, q50, q95, qmax, slice_null_q95, verdict, modes,
    error`` and one column per user scalar.  For a plain folder the summaries are
    computed here with ``config`` (cached by path, mtime, size and settings).
    """

    def __init__(
        self,
        run_dir: Union[str, os.PathLike],
        *,
        config: Optional[SummaryConfig] = None,
        max_rows: Optional[int] = 4096,
        cache_dir: Union[str, os.PathLike, None] = None,
        key: Optional[str] = None,
    ) -> None:
        self.path = Path(run_dir)
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: not a directory")
        self.kind = "run" if is_run_dir(self.path) else "folder"
        self.max_rows = max_rows
        self.key = key
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._config = config
        if self.kind == "folder" and not _snapshot_files(self.path):
            raise FileNotFoundError(
                f"{self.path}: neither a run directory ({INDEX_NAME}) nor a folder of snapshot files "
                "whose names carry a step number (step_000100.npy, emb-1200.pt, ...)")

    @property
    def name(self) -> str:
        return self.path.name

    # -- metadata
    def _con(self) -> sqlite3.Connection:
        return _connect(self.path / INDEX_NAME, readonly=True)

    def meta(self) -> dict:
        """The run's stored configuration (summary settings, retention, user metadata)."""
        if self.kind != "run":
            cfg = self.config
            return {"format": None, "summary": cfg.to_dict(), "max_rows": self.max_rows, "metadata": {},
                    "source": "folder"}
        con = self._con()
        try:
            rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
        out = json.loads(rows.get("config", "{}"))
        if "created" in rows:
            out["created"] = json.loads(rows["created"])
        return out

    @property
    def config(self) -> SummaryConfig:
        if self._config is not None:
            return self._config
        if self.kind == "run":
            s = self.meta().get("summary", {})
            return SummaryConfig(**{k: s[k] for k in ("preset", "num_slices", "seed") if k in s})
        return SummaryConfig()

    # -- the time series
    def timeseries(self, *, progress: Optional[Callable[[int, int], None]] = None) -> pd.DataFrame:
        """One row per logged step, sorted by step (from the index only, never the snapshots)."""
        if self.kind == "run":
            return self._run_series()
        return self._folder_series(progress)

    steps = timeseries

    def _run_series(self) -> pd.DataFrame:
        con = self._con()
        try:
            cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "scalars"]
            cur = con.execute(f"SELECT {', '.join(cols)} FROM steps ORDER BY step")
            rows = cur.fetchall()
        finally:
            con.close()
        df = pd.DataFrame.from_records(rows, columns=cols)
        return _finish_frame(df)

    def _folder_series(self, progress) -> pd.DataFrame:
        files = _snapshot_files(self.path)
        cache = _SummaryCache(self._cache_dir or default_cache_dir())
        settings = json.dumps({**self.config.to_dict(), "max_rows": self.max_rows, "key": self.key}, sort_keys=True)
        records = []
        total = len(files)
        for i, (step, p) in enumerate(sorted(files.items())):
            try:
                st_ = p.stat()
            except OSError:
                continue
            ident = (str(p.resolve()), st_.st_mtime_ns, st_.st_size, settings)
            summ = cache.get(ident)
            if summ is None:
                summ = self._score_file(p)
                cache.put(ident, summ)
            rec = {"step": step, "time": st_.st_mtime, "snapshot": str(p)}
            rec.update({c: summ.get(c) for c in SERIES_COLUMNS})
            rec["verdict"] = summ.get("verdict")
            rec["modes"] = json.dumps(summ.get("modes", [])) if "modes" in summ else None
            rec["error"] = summ.get("error")
            rec["scalars"] = None
            records.append(rec)
            if progress is not None:
                progress(i + 1, total)
        cache.close()
        cols = ["step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS, "scalars"]
        df = pd.DataFrame.from_records(records, columns=cols)
        return _finish_frame(df)

    def _score_file(self, p: Path) -> dict:
        from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

        try:
            emb = load_embeddings(p, key=self.key, max_rows=self.max_rows)
            z = emb.array
            z = z.reshape(-1, z.shape[-1])
            return summarize(z, self.config)
        except (EmbeddingLoadError, ValueError, RuntimeError) as exc:
            return {"error": " ".join(str(exc).split())}

    # -- the null band of SIGReg
    def null_band(self, n: int, d: int, *, level: float = 0.95, draws: int = NULL_BAND_DRAWS) -> tuple[float, float]:
        """Central ``level`` null interval of this run's SIGReg at (n rows, d dims) (Monte Carlo, cached on disk)."""
        cfg = self.config
        cache = _SummaryCache(self._cache_dir or default_cache_dir())
        ident = ("null-band", int(n), int(d), json.dumps({**cfg.to_dict(), "level": level, "draws": draws},
                                                          sort_keys=True))
        try:
            hit = cache.get(ident)
            if hit is not None:
                return float(hit["lo"]), float(hit["hi"])
            lo, hi = sigreg_null_band(int(n), int(d), cfg, level=level, draws=draws)
            cache.put(ident, {"lo": lo, "hi": hi})
            return lo, hi
        finally:
            cache.close()

    # -- snapshots
    def snapshot_path(self, step: int) -> Optional[Path]:
        """The snapshot file of ``step``, or None when retention dropped it (or the step is unknown)."""
        step = int(step)
        if self.kind == "folder":
            return _snapshot_files(self.path).get(step)
        con = self._con()
        try:
            row = con.execute("SELECT snapshot FROM steps WHERE step = ?", (step,)).fetchone()
        finally:
            con.close()
        if row is None or row[0] is None:
            return None
        p = self.path / row[0]
        return p if p.is_file() else None

    def snapshot(self, step: int) -> np.ndarray:
        """The embeddings stored at ``step`` as float32 (N, D); KeyError when there is none."""
        p = self.snapshot_path(step)
        if p is None:
            raise KeyError(f"{self.name}: no snapshot for step {step} (not logged, or dropped by retention)")
        if self.kind == "run":
            from safetensors.numpy import load_file

            try:
                return np.asarray(load_file(str(p))[SNAPSHOT_KEY], dtype=np.float32)
            except FileNotFoundError:  # retention removed it after the index was read
                raise KeyError(f"{self.name}: the snapshot of step {step} was just dropped by retention") from None
        from sigreg_core.inputs.loading import load_embeddings

        arr = load_embeddings(p, key=self.key).array
        return arr.reshape(-1, arr.shape[-1])

    def summary(self, step: int) -> dict:
        """The full stored summary of ``step`` (the assessment's dict included)."""
        if self.kind == "folder":
            row = self.timeseries()
            row = row[row["step"] == int(step)]
            if row.empty:
                raise KeyError(f"{self.name}: no step {step}")
            return row.iloc[0].to_dict()
        con = self._con()
        try:
            row = con.execute("SELECT summary, scalars, error FROM steps WHERE step = ?", (int(step),)).fetchone()
        finally:
            con.close()
        if row is None:
            raise KeyError(f"{self.name}: no step {step}")
        out = json.loads(row[0]) if row[0] else {}
        out["scalars"] = json.loads(row[1]) if row[1] else {}
        out["error"] = row[2]
        return out


def _finish_frame(df: pd.DataFrame) -> pd.DataFrame:
    for c in SERIES_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["step"] = df["step"].astype("int64")
    for c in ("n", "d", "m"):
        df[c] = df[c].astype("Int64") if df[c].isna().any() else df[c].astype("int64")
    df["snapshot"] = df["snapshot"].astype(object).where(df["snapshot"].notna(), None)
    df["modes"] = [", ".join(json.loads(m)) if isinstance(m, str) and m else "" for m in df["modes"]]
    scal = df.pop("scalars")
    parsed = [json.loads(s) if isinstance(s, str) and s else {} for s in scal]
    if any(parsed):
        sf = pd.DataFrame.from_records(parsed, index=df.index)
        sf.columns = [c if c not in df.columns else f"user_{c}" for c in sf.columns]
        df = pd.concat([df, sf], axis=1)
    df.attrs["scalar_columns"] = [c for c in df.columns if c not in
                                  ("step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS)]
    return df


class _SummaryCache:
    """SQLite cache of folder-snapshot summaries keyed by (path, mtime_ns, size, settings)."""

    def __init__(self, cache_dir: Path) -> None:
        self.con: Optional[sqlite3.Connection] = None
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(str(cache_dir / "folder-summaries.sqlite"), timeout=10.0)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS summaries (path TEXT, mtime INTEGER, size INTEGER, "
                        "settings TEXT, summary TEXT NOT NULL, PRIMARY KEY (path, mtime, size, settings))")
            self.con = con
        except (OSError, sqlite3.Error):
            self.con = None  # no cache: score every time

    def get(self, ident: tuple) -> Optional[dict]:
        if self.con is None:
            return None
        try:
            row = self.con.execute("SELECT summary FROM summaries WHERE path=? AND mtime=? AND size=? AND settings=?",
                                   ident).fetchone()
        except sqlite3.Error:
            return None
        return json.loads(row[0]) if row else None

    def put(self, ident: tuple, summ: dict) -> None:
        if self.con is None:
            return
        try:
            with self.con:
                self.con.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?)",
                                 (*ident, json.dumps(_jsonable(summ))))
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
