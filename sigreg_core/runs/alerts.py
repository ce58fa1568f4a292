"""Alerts of a logged run: the steps where its verdict first reached each alert level.

A run's time series (:meth:`sigreg_core.runs.RunReader.timeseries`) carries one verdict
per scored step (the assessment of that step's embeddings: SIGReg, the mean over M
slices of the Epps–Pulley statistic, LeJEPA arXiv 2511.08544, with its p-value and the
collapse modes).  The levels are ranked by :func:`sigreg_core.assessment.severity.severity`
(one mapping for every page), so a level added by the assessment is handled here too.

* :func:`alert_events` — one event per alert level a run reached: the first step at that
  level (``first suspicious``, ``first collapsed``, ...), in step order;
* :func:`alert_row` / :func:`alert_table` — one compact row per run: first alert step,
  first collapsed step, how many steps were at an alert level, worst and latest verdict;
* :func:`run_alert` — the same as one sentence (never contradicting the verdict strip).
"""
from __future__ import annotations

from typing import Mapping, Optional

import pandas as pd

from sigreg_core.assessment.severity import is_collapse, severity

__all__ = ["alert_events", "alert_row", "alert_table", "run_alert", "alert_step", "ALERT_COLUMNS"]

ALERT_COLUMNS = ["run", "latest verdict", "latest step", "first alert step", "first alert", "first collapsed step",
                 "alert steps", "scored steps", "worst verdict"]


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or len(df) == 0 or "verdict" not in df:
        return pd.DataFrame(columns=["step", "verdict", "modes"])
    d = df[df["verdict"].notna() & (df["verdict"].astype(str) != "")].sort_values("step")
    return d


def _modes(row) -> str:
    m = row.get("modes", "") if hasattr(row, "get") else ""
    return m if isinstance(m, str) else ""


def alert_events(df: pd.DataFrame) -> list[dict]:
    """``[{"step", "verdict", "severity", "modes", "label"}]``: the first step at each alert level reached."""
    d = _scored(df)
    if len(d) == 0:
        return []
    first = d.drop_duplicates(subset="verdict", keep="first")  # vectorised: runs can log 10 000+ steps
    out = []
    for step, v, m in zip(first["step"], first["verdict"].astype(str),
                          first["modes"] if "modes" in first else [""] * len(first)):
        s = severity(v)
        if s > 0:
            out.append({"step": int(step), "verdict": v, "severity": s, "modes": m if isinstance(m, str) else "",
                        "label": f"first {v}"})
    return sorted(out, key=lambda e: (e["step"], e["severity"]))


def alert_row(name: str, df: pd.DataFrame) -> dict:
    """One row of the alert table for run ``name`` (None where a step does not exist)."""
    d = _scored(df)
    row = {c: None for c in ALERT_COLUMNS}
    row["run"] = name
    row["scored steps"] = int(len(d))
    if len(d) == 0:
        row["latest verdict"] = "no scored step yet"
        row["alert steps"] = 0
        return row
    verdicts = [str(v) for v in d["verdict"]]
    steps = [int(s) for s in d["step"]]
    ranks = {v: severity(v) for v in set(verdicts)}  # once per level, not once per step
    sev = [ranks[v] for v in verdicts]
    row["latest verdict"], row["latest step"] = verdicts[-1], steps[-1]
    alert = [i for i, s in enumerate(sev) if s > 0]
    row["alert steps"] = len(alert)
    if alert:
        row["first alert step"], row["first alert"] = steps[alert[0]], verdicts[alert[0]]
    collapse = {v: is_collapse(v) for v in ranks}
    coll = [i for i, v in enumerate(verdicts) if collapse[v]]
    if coll:
        row["first collapsed step"] = steps[coll[0]]
    row["worst verdict"] = verdicts[max(range(len(sev)), key=lambda i: (sev[i], -i))]
    return row


def alert_table(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run, worst first: latest verdict's severity, then the worst verdict's, then the name."""
    rows = [alert_row(n, df) for n, df in runs.items()]
    rows.sort(key=lambda r: (-severity(r["latest verdict"]), -severity(r["worst verdict"]), str(r["run"])))
    out = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    for c in ("latest step", "first alert step", "first collapsed step", "alert steps", "scored steps"):
        out[c] = out[c].astype("Int64")
    return out


def run_alert(df: pd.DataFrame) -> Optional[dict]:
    """The alert of one run as ``{"level", "step", "latest", "modes", "message"}``, or None (no scored step).

    ``level`` is the worst verdict the run reached, ``step`` the first step at an alert
    level (None when it never left the mildest level).  The message states the
    first step at each alert level, how many steps were at an alert level and the
    latest verdict with the step since which it holds, so it never contradicts the
    per-step verdicts.
    """
    d = _scored(df)
    if len(d) == 0:
        return None
    row = alert_row("", df)
    verdicts = [str(v) for v in d["verdict"]]
    steps = [int(s) for s in d["step"]]
    latest = verdicts[-1]
    j = len(verdicts) - 1
    while j > 0 and verdicts[j - 1] == latest:
        j -= 1
    events = alert_events(df)
    parts = [f"{e['verdict']} at step {e['step']}" + (f" ({e['modes']})" if e["modes"] else "") for e in events]
    modes = _modes(d.iloc[-1])
    if not events:
        msg = f"{latest} since step {steps[0]}: all {len(steps)} scored steps, latest step {steps[-1]}"
    else:
        msg = (f"first {', first '.join(parts)}; {row['alert steps']} of {len(steps)} scored steps at an alert level; "
               f"latest step {steps[-1]}: {latest} since step {steps[j]}")
    return {"level": row["worst verdict"], "step": row["first alert step"], "latest": latest,
            "modes": modes, "message": msg}


def alert_step(df: pd.DataFrame) -> Optional[int]:
    """The first step at an alert level (None if the run never left the mildest level)."""
    a = run_alert(df)
    return None if a is None else a["step"]
