"""Runs grouped by a config key: mean ± spread per group, and the runs × config × outcome table.

A run records its hyper-parameters and seed with ``RunWriter(..., config={...})``
(:func:`sigreg_core.runs.discovery.run_config` reads them back).  Grouping the runs by one
key (``lambda``, ``lr``, ...) and reducing over the rest (typically the seed) is what
TensorBoard's / W&B's run grouping shows:

* :func:`group_of` — the group label of each run (``"lambda=0.09"``; ``"lambda=(none)"`` for a run
  without that key, so runs without config still appear);
* :func:`group_stats` — per group and logged step: mean, standard deviation (``ddof=1``; 0 for a
  single run), min, max and the number of runs that logged the step (steps are aligned by
  value: a run that did not log a step does not enter its mean);
* :func:`config_table` — one row per run: its config values, then its final and best SIGReg,
  final and best verdict and the step of its first alert (the one rule of
  :mod:`sigreg_core.runs.alerts`).

SIGReg is the mean over M slices of the Epps–Pulley statistic (LeJEPA, arXiv 2511.08544).
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import pandas as pd

from sigreg_core.assessment.severity import severity
from sigreg_core.runs.alerts import AlertRule, alert_events

__all__ = ["group_of", "group_stats", "config_table", "config_keys", "NO_VALUE"]

NO_VALUE = "(none)"


def _fmt(v) -> str:
    if v is None:
        return NO_VALUE
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def config_keys(configs: Mapping[str, dict]) -> list:
    """Keys present in any run's config, in first-seen order."""
    out: list = []
    for cfg in configs.values():
        for k in cfg:
            if k not in out:
                out.append(k)
    return out


def group_of(configs: Mapping[str, dict], key: str) -> dict:
    """{run: "key=value"} (``key=(none)`` for a run that did not record ``key``)."""
    return {run: f"{key}={_fmt((cfg or {}).get(key))}" for run, cfg in configs.items()}


def group_stats(series: Mapping[str, pd.DataFrame], groups: Mapping[str, str], column: str = "sigreg") -> dict:
    """{group: DataFrame(step, mean, std, min, max, runs)} of ``column`` over the runs of each group."""
    parts: dict = {}
    for run, df in series.items():
        g = groups.get(run)
        if g is None or df is None or not len(df) or column not in df:
            continue
        v = pd.to_numeric(df[column], errors="coerce")
        ok = np.isfinite(v.to_numpy(dtype=np.float64))
        parts.setdefault(g, []).append(pd.DataFrame({"step": df["step"].to_numpy()[ok], "value": v.to_numpy()[ok],
                                                     "run": run}))
    out = {}
    for g, frames in parts.items():
        d = pd.concat(frames, ignore_index=True)
        agg = d.groupby("step")["value"].agg(["mean", "std", "min", "max", "count"]).reset_index()
        agg["std"] = agg["std"].fillna(0.0)
        out[g] = agg.rename(columns={"count": "runs"})
    return dict(sorted(out.items()))


def config_table(series: Mapping[str, pd.DataFrame], configs: Mapping[str, dict],
                 rule: Optional[AlertRule] = None) -> pd.DataFrame:
    """One row per run: ``run``, each config key, ``final SIGReg``, ``best SIGReg``, ``final verdict``,
    ``best verdict``, ``first alert step`` (empty when the run never alerted)."""
    keys = config_keys(configs)
    rows = []
    for run, df in series.items():
        cfg = configs.get(run) or {}
        row = {"run": run}
        for k in keys:
            v = cfg.get(k)
            row[k] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
        d = df[df["verdict"].notna()] if len(df) and "verdict" in df else df.iloc[0:0]
        sig = pd.to_numeric(df["sigreg"], errors="coerce") if "sigreg" in df else pd.Series(dtype=float)
        row["final SIGReg"] = float(sig.iloc[-1]) if len(sig) and pd.notna(sig.iloc[-1]) else None
        row["best SIGReg"] = float(sig.min()) if sig.notna().any() else None
        row["final verdict"] = str(d["verdict"].iloc[-1]) if len(d) else None
        if len(d):
            vs = [str(v) for v in d["verdict"]]
            row["best verdict"] = min(vs, key=severity)
        else:
            row["best verdict"] = None
        ev = alert_events(df, rule)
        row["first alert step"] = ev[0]["step"] if ev else None
        rows.append(row)
    out = pd.DataFrame(rows, columns=["run", *keys, "final SIGReg", "best SIGReg", "final verdict", "best verdict",
                                      "first alert step"])
    out["first alert step"] = out["first alert step"].astype("Int64")
    return out
