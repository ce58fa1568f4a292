"""The Monitor page's state as plain data: which runs to show, the view in the URL, a clicked step.

Everything here is pure Python (no streamlit), so the page stays widgets + calls and the rules
are tested without a browser:

* :func:`pick_runs` — the runs shown: the newest ``limit`` matching the filter by default, the
  URL's runs when a link is opened, the user's own pick otherwise, plus any run that appeared
  while the page was open (newest first);
* :func:`view_from_query` / :func:`query_from_view` — the view (runs, smoothing, x axis, grouping,
  hover, opened step) to and from the URL query (``?run=a&run=b&smooth=0.6&x=wall&group=lambda&
  step=a@300``); malformed values are ignored, values at their default are left out;
* :func:`clicked_step` — the (run, step) of a point clicked on a curve (its ``customdata``: step,
  verdict, modes, the run's name as drawn);
* :func:`load_runs` — each run's time series and null band, one error line per broken run;
* :func:`scalar_columns`, :func:`band_notes` — the logged scalars to offer as curves (any numeric
  column of the index, so new ones need no code), and why a run above its band can be healthy.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence

import pandas as pd

from sigreg_core.assessment.severity import severity
from sigreg_core.runs.discovery import newest
from sigreg_core.util.text import md, plotly_text

__all__ = ["X_CHOICES", "HOVER_CHOICES", "pick_runs", "view_from_query", "query_from_view", "clicked_step",
           "load_runs", "scalar_columns", "band_notes", "latest_steps"]

X_CHOICES = ("step", "wall", "relative")
HOVER_CHOICES = ("run", "step")


def pick_runs(infos: Sequence, names: Mapping[str, str], *, current: Optional[list], known: Optional[list],
              url_runs: Optional[list], repick: bool, pattern: str, limit: int,
              pending: Optional[str] = None) -> list[str]:
    """The paths of the runs to show (``infos``: discovered runs, newest first; ``names``: {path: name})."""
    by_path = {i.path for i in infos}
    default = [i.path for i in newest(infos, pattern, limit)]
    if url_runs is not None:
        out = [p for p in names if names[p] in url_runs and p in by_path] or default
    elif current is None or repick:
        out = default
    else:
        out = list(current)
        if known is not None:
            new = [i.path for i in newest(infos, pattern) if i.path not in set(known)]  # appeared meanwhile
            out = list(dict.fromkeys(new + out))
    if pending and pending in by_path:
        out = list(dict.fromkeys(out + [pending]))
    return [p for p in out if p in by_path]


def view_from_query(get_all: Callable[[str], list]) -> dict:
    """The view stored in a URL query (``get_all(key)``: every value of ``key``); only valid entries."""
    first = lambda k: (get_all(k) or [""])[-1]  # noqa: E731
    out: dict = {}
    runs = [r for r in get_all("run") if r]
    if runs:
        out["runs"] = runs
    try:
        sm = float(first("smooth"))
        if 0.0 <= sm <= 0.99:
            out["smoothing"] = round(sm, 2)
    except ValueError:
        pass
    if first("x") in X_CHOICES:
        out["x"] = first("x")
    if first("hover") in HOVER_CHOICES:
        out["hover"] = first("hover")
    if first("group"):
        out["group"] = first("group")
    name, at, num = first("step").rpartition("@")
    if at and name:
        try:
            out["step"] = (name, int(num))
        except ValueError:
            pass
    return out


def query_from_view(view: Mapping) -> dict:
    """{key: list of values, or None to remove the key} of ``view`` (a value at its default is None)."""
    step = view.get("step")
    return {"run": list(view.get("runs") or []) or None,
            "smooth": [f"{view['smoothing']:g}"] if view.get("smoothing") else None,
            "x": [view["x"]] if view.get("x", "step") != "step" else None,
            "hover": [view["hover"]] if view.get("hover", "run") != "run" else None,
            "group": [view["group"]] if view.get("group") else None,
            "step": [f"{step[0]}@{step[1]}"] if step else None}


def clicked_step(event, runs: Iterable[str]) -> Optional[tuple[str, int]]:
    """(run, step) of the first point of a Plotly selection event, or None (no point, not a curve's point)."""
    try:
        pts = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not pts:
        return None
    cd = pts[0].get("customdata")
    if not isinstance(cd, (list, tuple)) or len(cd) < 4:
        return None
    run = {plotly_text(n): n for n in runs}.get(cd[3])
    try:
        step = int(cd[0])
    except (TypeError, ValueError):
        return None
    return None if run is None else (run, step)


def load_runs(runs: Mapping[str, str], read_series: Callable[[str], pd.DataFrame],
              read_band: Callable[[str, int, int], tuple]) -> tuple[dict, dict, dict]:
    """(series by run, null band by run, error line by run): a broken run never stops the others."""
    series, bands, errors = {}, {}, {}
    for name, path in runs.items():
        try:
            df = read_series(path)
        except Exception as exc:  # a corrupt index (sqlite3.DatabaseError), a vanished folder, ...
            msg = " ".join(str(exc).split())
            known = isinstance(exc, (OSError, ValueError, RuntimeError)) or type(exc).__name__ == "EmbeddingLoadError"
            errors[name] = msg if known else f"{type(exc).__name__}: {msg}"
            continue
        series[name] = df
        ok = df.dropna(subset=["n", "d"]) if len(df) else df
        if len(ok):
            try:
                bands[name] = read_band(path, int(ok["n"].iloc[-1]), int(ok["d"].iloc[-1]))
            except (OSError, ValueError, RuntimeError):
                pass
    return series, bands, errors


def latest_steps(series: Mapping[str, pd.DataFrame]) -> dict:
    return {n: int(df["step"].max()) for n, df in series.items() if len(df)}


def scalar_columns(series: Mapping[str, pd.DataFrame]) -> list:
    """Every scalar column the runs logged with at least one number (the index's own list, in order)."""
    cols: list = []
    for df in series.values():
        for c in df.attrs.get("scalar_columns", []):
            if c not in cols and c in df and pd.to_numeric(df[c], errors="coerce").notna().any():
                cols.append(c)
    return cols


def band_notes(series: Mapping[str, pd.DataFrame], bands: Mapping[str, tuple]) -> list[str]:
    """Why a run can end above its 95 % null band and still be healthy, with its own numbers (markdown)."""
    out = []
    for name, df in series.items():
        band = bands.get(name)
        d = df[df["verdict"].notna()] if len(df) and "verdict" in df else df.iloc[0:0]
        if band is None or not len(d):
            continue
        last = d.iloc[-1]
        if severity(last["verdict"]) == 0 and float(last["sigreg"]) > band[1]:
            out.append(f"**{md(name, None)}** ends above its band (step {int(last['step'])}: SIGReg "
                       f"{last['sigreg']:.4g} > {band[1]:.4g}) yet healthy: its p-value {last['p_value']:.2g} "
                       "is above 1e-3.")
    return out


def open_reader(path: str, folder_cfg: tuple):
    """A :class:`RunReader` of ``path``: a RunWriter run with its own stored settings, a folder of snapshots
    scored with ``folder_cfg`` = (preset, num_slices, seed, max_rows) (the app's sidebar settings)."""
    from sigreg_core.runs.reader import RunReader
    from sigreg_core.runs.summary import SummaryConfig

    preset, num_slices, seed, max_rows = folder_cfg
    reader = RunReader(path, config=SummaryConfig(preset=preset, num_slices=num_slices, seed=seed), max_rows=max_rows)
    return RunReader(path) if reader.kind == "run" else reader


def new_alerts(series: Mapping[str, pd.DataFrame], rule, seen: Optional[set]) -> tuple[list, set]:
    """(alerts raised since ``seen``, at most three, oldest first; every alert now) as (run, step, verdict).

    ``seen`` None (the page just opened): nothing is new (alerts already there are in the table).
    """
    from sigreg_core.runs.alerts import alert_events

    now = {(n, e["step"], e["verdict"]) for n, df in series.items() for e in alert_events(df, rule)}
    fresh = [] if seen is None else sorted(now - seen, key=lambda k: k[1])[:3]
    return fresh, now | (seen or set())


def nearest_kept(steps: Sequence[int], want) -> Optional[int]:
    """``want`` if a snapshot of that step is kept, else the nearest kept step (the last one if ``want`` is junk)."""
    if not steps:
        return None
    try:
        w = int(want)
    except (TypeError, ValueError):
        return steps[-1]
    return w if w in steps else min(steps, key=lambda s: abs(s - w))
