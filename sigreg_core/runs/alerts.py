"""The alert rule of a run: one definition for the Monitor page, its toast and every alert sink.

A run's time series (:meth:`sigreg_core.runs.RunReader.timeseries`) carries one verdict
per scored step (the assessment of that step's embeddings: SIGReg, the mean over M
slices of the Epps–Pulley statistic
``EP(x) = N sum_k c_k [(mean cos(t_k x) - exp(-t_k^2/2))^2 + (mean sin(t_k x))^2]``,
LeJEPA arXiv 2511.08544, with its overall p-value and the collapse modes).  The levels
are ranked by :func:`sigreg_core.assessment.severity.severity` (0 = the mildest level,
higher = worse; no level name is written here).

Why a rule and not "any level above healthy": an untrained encoder is far from
N(0, I), so *every* run starts at a severe level; an alert on that fires on every run and
teaches people to ignore it.  An alert is a **deterioration**:

* steps before ``warmup`` (a training step; default 0) are ignored;
* the run's **best** level so far (lowest severity since the warm-up) is the reference;
* a step alerts when its level is at least ``margin`` levels worse than that best
  (default 2: a one-level flicker of the p-value across its threshold is not an alert),
  or when it is a **collapse** (:func:`sigreg_core.assessment.severity.is_collapse`),
  whatever came before;
* it must hold for ``patience`` consecutive scored steps (default 1);
* each alert must be worse than the last alert sent (a run that stays collapsed alerts
  once); with ``repeat=True`` the rule re-arms when the run is back at its best level;
* ``levels`` (optional) restricts which verdict names may alert.

:class:`AlertTracker` applies the rule one step at a time (the sinks: webhook,
command, TensorBoard, W&B); :func:`alert_events` runs the same tracker over a logged
series (the page's table, markers and toast), so both always agree.

* :func:`alert_row` / :func:`alert_table` — one row per run: best level and its step, first
  alert (step and level), first collapsed step, number of alerts, latest and worst verdict;
* :func:`run_alert` — the same as one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pandas as pd

from sigreg_core.assessment.severity import is_collapse, severity

__all__ = ["AlertRule", "AlertTracker", "DEFAULT_RULE", "alert_events", "alert_row", "alert_table", "run_alert",
           "alert_step", "ALERT_COLUMNS"]

ALERT_COLUMNS = ["run", "latest verdict", "latest step", "best verdict", "best step", "first alert step",
                 "first alert", "first collapsed step", "alerts", "scored steps", "worst verdict"]


@dataclass(frozen=True)
class AlertRule:
    """When a run's verdict becomes an alert (see the module docstring)."""

    warmup: int = 0
    margin: float = 2
    patience: int = 1
    repeat: bool = False
    levels: Optional[frozenset] = None

    def __post_init__(self):
        if int(self.warmup) < 0 or float(self.margin) <= 0 or int(self.patience) < 1:
            raise ValueError(f"alert rule needs warmup >= 0, margin > 0 and patience >= 1, got "
                             f"warmup={self.warmup}, margin={self.margin}, patience={self.patience}")
        if self.levels is not None:
            object.__setattr__(self, "levels", frozenset(str(v) for v in self.levels))

    def describe(self) -> str:
        """The rule in words (captions, docs)."""
        parts = [f"an alert is a level {self.margin:g}+ worse than the run's best so far, or a collapse"]
        if self.warmup:
            parts.append(f"steps before {self.warmup} ignored")
        if self.patience > 1:
            parts.append(f"held for {self.patience} scored steps")
        parts.append("again after a recovery to the best level" if self.repeat else "once per level")
        return "; ".join(parts)


DEFAULT_RULE = AlertRule()


class AlertTracker:
    """The rule applied one logged step at a time; :meth:`update` returns an event dict or None.

    An event: ``{"step", "verdict", "severity", "previous" (the verdict of the scored step before,
    None at the first), "best" (the best verdict so far), "best_step", "kind" ("collapse" or
    "deterioration"), "label"}``.
    """

    def __init__(self, rule: Optional[AlertRule] = None) -> None:
        self.rule = rule or DEFAULT_RULE
        self.best: Optional[float] = None
        self.best_verdict: Optional[str] = None
        self.best_step: Optional[int] = None
        self.previous: Optional[str] = None
        self.alerted: Optional[float] = None   # severity of the last alert (None: armed)
        self._streak = 0
        self._ranks: dict = {}

    def _rank(self, verdict: str) -> tuple:
        r = self._ranks.get(verdict)
        if r is None:
            r = self._ranks[verdict] = (severity(verdict), is_collapse(verdict))
        return r

    def update(self, step: int, verdict) -> Optional[dict]:
        if verdict is None or (isinstance(verdict, float) and verdict != verdict):
            return None
        verdict = str(verdict)
        sev, collapse = self._rank(verdict)
        if sev is None or sev < 0 or int(step) < int(self.rule.warmup):
            return None
        previous, self.previous = self.previous, verdict
        if self.best is None or sev < self.best:
            self.best, self.best_verdict, self.best_step = sev, verdict, int(step)
        if self.rule.repeat and sev <= self.best:
            self.alerted = None
        bad = collapse or sev >= self.best + float(self.rule.margin)
        if self.rule.levels is not None and verdict not in self.rule.levels:
            bad = False
        self._streak = self._streak + 1 if bad else 0
        if not bad or self._streak < int(self.rule.patience) or (self.alerted is not None and sev <= self.alerted):
            return None
        self.alerted = sev
        kind = "collapse" if collapse else "deterioration"
        return {"step": int(step), "verdict": verdict, "severity": sev, "previous": previous,
                "best": self.best_verdict, "best_step": self.best_step, "kind": kind,
                "label": f"{verdict} (best so far: {self.best_verdict} at step {self.best_step})"}


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or len(df) == 0 or "verdict" not in df:
        return pd.DataFrame(columns=["step", "verdict", "modes"])
    return df[df["verdict"].notna() & (df["verdict"].astype(str) != "")].sort_values("step", kind="stable")


def alert_events(df: pd.DataFrame, rule: Optional[AlertRule] = None) -> list[dict]:
    """The alerts of a logged run under ``rule``, in step order (each event also carries ``modes``)."""
    d = _scored(df)
    tracker = AlertTracker(rule)
    modes = d["modes"] if "modes" in d else pd.Series([""] * len(d), index=d.index)
    out = []
    for step, v, m in zip(d["step"].to_numpy(), d["verdict"].astype(str).to_numpy(), modes.to_numpy()):
        e = tracker.update(int(step), v)
        if e is not None:
            e["modes"] = m if isinstance(m, str) else ""
            out.append(e)
    return out


def alert_row(name: str, df: pd.DataFrame, rule: Optional[AlertRule] = None) -> dict:
    """One row of the alert table for run ``name`` (None where a step does not exist)."""
    d = _scored(df)
    row = {c: None for c in ALERT_COLUMNS}
    row["run"] = name
    row["scored steps"] = int(len(d))
    row["alerts"] = 0
    if len(d) == 0:
        row["latest verdict"] = "no scored step yet"
        return row
    verdicts = [str(v) for v in d["verdict"]]
    steps = [int(s) for s in d["step"]]
    ranks = {v: severity(v) for v in set(verdicts)}  # once per level, not once per step
    row["latest verdict"], row["latest step"] = verdicts[-1], steps[-1]
    warm = [i for i, s in enumerate(steps) if s >= (rule or DEFAULT_RULE).warmup]
    if warm:
        b = min(warm, key=lambda i: (ranks[verdicts[i]], i))
        row["best verdict"], row["best step"] = verdicts[b], steps[b]
    events = alert_events(d, rule)
    row["alerts"] = len(events)
    if events:
        row["first alert step"], row["first alert"] = events[0]["step"], events[0]["verdict"]
    collapse = {v: is_collapse(v) for v in ranks}
    coll = [i for i, v in enumerate(verdicts) if collapse[v]]
    if coll:
        row["first collapsed step"] = steps[coll[0]]
    row["worst verdict"] = verdicts[max(range(len(verdicts)), key=lambda i: (ranks[verdicts[i]], -i))]
    return row


def alert_table(runs: Mapping[str, pd.DataFrame], rule: Optional[AlertRule] = None) -> pd.DataFrame:
    """One row per run: alerting runs first, then by latest verdict's severity, then by name."""
    rows = [alert_row(n, df, rule) for n, df in runs.items()]
    rows.sort(key=lambda r: (r["first alert step"] is None, -severity(r["latest verdict"]),
                             -severity(r["worst verdict"]), str(r["run"])))
    out = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    for c in ("latest step", "best step", "first alert step", "first collapsed step", "alerts", "scored steps"):
        out[c] = out[c].astype("Int64")
    return out


def run_alert(df: pd.DataFrame, rule: Optional[AlertRule] = None) -> Optional[dict]:
    """The alert state of one run as ``{"level", "step", "latest", "modes", "message"}``, or None (no scored step).

    ``level`` is the verdict of the last alert (None without one), ``step`` the first alert's
    step; the message names each alert, the best level reached and the latest verdict with the
    step since which it holds, so it never contradicts the per-step verdicts.
    """
    d = _scored(df)
    if len(d) == 0:
        return None
    row = alert_row("", d, rule)
    verdicts = [str(v) for v in d["verdict"]]
    steps = [int(s) for s in d["step"]]
    latest = verdicts[-1]
    j = len(verdicts) - 1
    while j > 0 and verdicts[j - 1] == latest:
        j -= 1
    events = alert_events(d, rule)
    tail = f"latest step {steps[-1]}: {latest} since step {steps[j]}"
    best = (f"best {row['best verdict']} at step {row['best step']}" if row["best verdict"] is not None
            else "no scored step after the warm-up")
    if not events:
        msg = f"no alert ({best}); {tail}"
    else:
        parts = [f"{e['verdict']} at step {e['step']}" + (f" ({e['modes']})" if e["modes"] else "") for e in events]
        msg = f"alert: {'; then '.join(parts)} ({best}); {tail}"
    return {"level": events[-1]["verdict"] if events else None, "step": row["first alert step"], "latest": latest,
            "modes": d.iloc[-1]["modes"] if "modes" in d and isinstance(d.iloc[-1]["modes"], str) else "",
            "message": msg}


def alert_step(df: pd.DataFrame, rule: Optional[AlertRule] = None) -> Optional[int]:
    """The step of the run's first alert under ``rule`` (None when it never alerted)."""
    ev = alert_events(df, rule)
    return ev[0]["step"] if ev else None
