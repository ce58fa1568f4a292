"""Monitoring a training run: the crash-safe writer a training loop calls.

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
import os
import sqlite3
import threading
import time
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import torch

from sigreg_core.util.cache import CACHE_ENV
from sigreg_core.runs.summary import SummaryConfig, _float, _jsonable, summarize
from sigreg_core.runs.runfiles import (  # noqa: F401 - the folder's layout and lock, re-exported where they were
    _SCHEMA, _TEXT_COLUMNS, _TMP_MARK, FORMAT_VERSION, INDEX_NAME, LOCK_NAME, SERIES_COLUMNS, SNAPSHOT_DIR,
    SNAPSHOT_KEY, RunLockedError, _acquire_lock, _atomic_write, _release_lock, _remove_orphans,
    _snapshot_name, rank_run_dir,
)

__all__ = ["RunWriter", "RunLockedError", "LOCK_NAME", "rank_run_dir", "INDEX_NAME", "SNAPSHOT_DIR", "SNAPSHOT_KEY", "SERIES_COLUMNS", "CACHE_DIR_ENV"]

CACHE_DIR_ENV = CACHE_ENV  # one cache directory for the whole package (sigreg_core.util.cache)


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
    config: the run's hyper-parameters and seed (``{"lr": 3e-3, "lambda": 0.09, "seed": 1}``), stored in
        the index (``run_config``): the Monitor page groups runs by any of its keys and tabulates them.
    sinks: objects that receive each summarised step as well (TensorBoard, W&B, alerts,
        a Lightning logger: :mod:`sigreg_core.integrations`): ``sink.log_step(record)``
        with a :class:`sigreg_core.integrations.base.StepRecord`, whether or not the
        snapshot could be written; a sink that raises is warned about once and skipped
        (training goes on).  ``close()`` closes them (``sink.close()`` when they have one).

    quality_rows: samples the per-step quality measures (LiDAR of views, the probes with
        ``log(..., labels=y)``) use at most (seeded subsample; None: all);
        see :mod:`sigreg_core.runs.step_quality` for their cost.
    rank: under DDP, this process's rank: rank 0 (or None) writes ``run_dir``, rank k > 0
        writes its own folder ``<run_dir>-rank<k>`` beside it (:func:`rank_run_dir`).

    One writer per run: the writer holds an OS-level lock (``flock`` on ``.writer.lock`` in
    the run folder) from construction to :meth:`close`; a second writer on the same folder,
    in this process or another, is refused with :class:`RunLockedError` (one line) instead
    of interleaving its rows and snapshots with the first one's.  The lock dies with its
    process, so a killed writer never blocks the next one.

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
        sinks: Optional[Sequence] = None,
        rank: Optional[int] = None,
        config: Optional[dict] = None,
        quality_rows: Optional[int] = 4096,
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
        self.run_dir = rank_run_dir(run_dir, rank)
        self.rank = None if rank is None else int(rank)
        self._lock_fd: Optional[int] = None
        self.every = int(every)
        self.max_rows = None if max_rows is None else int(max_rows)
        if quality_rows is not None and int(quality_rows) < 10:
            raise ValueError(f"quality_rows must be >= 10 or None, got {quality_rows}")
        self.quality_rows = None if quality_rows is None else int(quality_rows)
        self.keep_every = None if keep_every is None else int(keep_every)
        self.keep_last = None if keep_last is None else int(keep_last)
        self.config = SummaryConfig(preset=str(preset), num_slices=int(num_slices), seed=int(seed))
        self.summary = bool(summary)
        self.metadata = dict(metadata or {})
        if config is not None and not isinstance(config, dict):
            raise ValueError(f"config must be a dict of hyper-parameters, got {type(config).__name__}")
        self.run_config = {str(k): v for k, v in (config or {}).items()}
        self.sinks = list(sinks or [])
        self._sinks_closed = False
        self._con: Optional[sqlite3.Connection] = None
        self._warned: set = set()
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _acquire_lock(self.run_dir)
        except RunLockedError:
            self._sinks_closed = True  # refused: the caller's sinks are not ours to close (__del__ runs close())
            raise
        except OSError as exc:  # unwritable folder: the writer warns and retries at each log, as before
            self._warn("io", f"cannot lock the run folder ({type(exc).__name__}: {exc})")
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
            if self._lock_fd is None:  # never write without the lock (reopened after close or an I/O error)
                try:
                    self._lock_fd = _acquire_lock(self.run_dir)
                except RunLockedError as exc:
                    self._warn("locked", str(exc))
                    return False
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
                "run_config": _jsonable(self.run_config),
            }
            with con:
                con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (json.dumps(time.time()),))
                con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('config', ?)", (json.dumps(meta),))
            _remove_orphans(self.run_dir, con)
            self._con = con
            return True
        except (OSError, sqlite3.Error) as exc:
            self._con = None
            self._warn("io", f"cannot open the run index ({type(exc).__name__}: {exc})")
            return False

    def close(self) -> None:
        """Checkpoint the WAL and switch the index to a single self-contained file."""
        with self._lock:
            if self.sinks and not self._sinks_closed:
                from sigreg_core.integrations.base import close_sinks

                self._sinks_closed = True
                close_sinks(self.sinks)
            con, self._con = self._con, None
            lock_fd, self._lock_fd = self._lock_fd, None
            if con is None:
                _release_lock(lock_fd)
                return
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                con.execute("PRAGMA journal_mode=DELETE")  # fails harmlessly while a reader is attached
            except sqlite3.Error:
                pass
            finally:
                con.close()
                _release_lock(lock_fd)  # after the index is closed: the next writer finds it consistent

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

    def log(self, step: int, embeddings, labels=None, **scalars) -> bool:
        """Record ``embeddings`` at ``step`` with the user's ``scalars``; True when written.

        ``embeddings``: a tensor or array of shape (N, D), or (..., N, D) (leading axes are
        folded into rows).  Scalars may be Python numbers, 0-d tensors or strings.

        Quality measures (:mod:`sigreg_core.runs.step_quality`) are stored as scalars of the step
        too (the Monitor page draws them like any scalar): ``alpha_req`` always (from the
        summary), ``lidar`` when ``embeddings`` are views (V, N, D), and with ``labels`` (one
        class per sample, length N) ``knn_accuracy`` and ``linear_probe_accuracy`` on a held-out
        split — each on at most ``quality_rows`` samples, so a step's cost stays bounded.  A
        scalar of the same name given by the caller wins; bad labels warn once and are skipped.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if not self.should_log(step):
            return False
        z = _as_rows(embeddings)
        with self._lock:
            quality = self._quality(step, embeddings, labels)
            ok = self._log(step, z, scalars, quality)
        if ok:
            self.written += 1
        else:
            self.failed += 1
        return ok

    def _quality(self, step: int, embeddings, labels) -> dict:
        """LiDAR of views and the probes with labels (:func:`step_quality`); {} (one warning) when they fail."""
        if not self.summary:
            return {}
        t = embeddings if isinstance(embeddings, torch.Tensor) else None
        if labels is None and (t is None and np.ndim(embeddings) < 3 or t is not None and t.ndim < 3):
            return {}
        from sigreg_core.runs.step_quality import step_quality

        try:
            return step_quality(embeddings, labels, step=step, max_rows=self.quality_rows)
        except Exception as exc:  # bad labels or a degenerate batch must not stop training
            self._warn("quality", f"no quality measures at step {step} ({type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())})")
            return {}

    def _log(self, step: int, z: torch.Tensor, scalars: dict, quality: Optional[dict] = None) -> bool:
        z = _subsample(z, self.max_rows, step)
        summ: dict = {}
        error = None
        if self.summary:
            try:
                summ = summarize(z, self.config, per_slice=bool(self.sinks))
            except Exception as exc:  # a bad batch (NaN, 1 row) must not stop training
                error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                self._warn("summary", f"could not summarise step {step} ({error})")
        per_slice = summ.pop("per_slice_statistic", None)
        quality = dict(quality or {})
        if summ.get("alpha_req") is not None:
            quality["alpha_req"] = summ["alpha_req"]
        scalars = {**quality, **scalars}  # the caller's scalar of the same name wins
        if self.sinks and summ:
            from sigreg_core.integrations.base import StepRecord, dispatch

            dispatch(self.sinks, StepRecord(step, summ, per_slice, _scalars(scalars), str(self.run_dir)), self._warn)
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


