"""Index rows into the Monitor's time-series frame: typed columns, modes and user scalars parsed with bounds.

The rows come from :mod:`sigreg_core.runs.safeindex` (sizes and types bounded by SQL); here the
series columns become float64, ``n``/``d``/``m`` whole numbers or missing, the modes JSON a short
comma-separated text and the scalars JSON one column per key (at most
:data:`~sigreg_core.runs.safeindex.MAX_SCALAR_COLUMNS`, a key that clashes with a series column
prefixed ``user_``).  JSON is parsed only below its length limit and nesting depth
(:func:`~sigreg_core.runs.safeindex.bounded_json`); a bad value is one line in ``errors``
(at most 20), never an exception.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from sigreg_core.runs import safeindex as _si
from sigreg_core.runs.safeindex import RunReadError
from sigreg_core.runs.writer import SERIES_COLUMNS, _TEXT_COLUMNS

__all__ = ["finish_frame"]


def _finish_frame(df: pd.DataFrame, name: str = "", errors: Optional[list] = None) -> pd.DataFrame:
    errors = [] if errors is None else errors
    for c in SERIES_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["step"] = df["step"].astype("int64")
    for c in ("n", "d", "m"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
        whole = df[c].notna() & (df[c] == df[c].round()) & (df[c].abs() < 2**53)
        df[c] = df[c].where(whole)
        df[c] = df[c].astype("Int64") if df[c].isna().any() else df[c].astype("int64")
    df["snapshot"] = df["snapshot"].astype(object).where(df["snapshot"].notna(), None)

    def modes(m, step):
        if not (isinstance(m, str) and m):
            return ""
        try:
            got = _si.bounded_json(m, f"{name} step {step}: the modes")
        except RunReadError as exc:
            if len(errors) < 20:
                errors.append(str(exc))
            return ""
        if not isinstance(got, list):
            return ""
        return ", ".join(str(x)[:80] for x in got[:16] if isinstance(x, (str, int, float)))

    df["modes"] = [modes(m, s) for m, s in zip(df["modes"], df["step"])]
    scal = df.pop("scalars")
    parsed = []
    keys: dict = {}
    for s, step in zip(scal, df["step"]):
        d = {}
        if isinstance(s, str) and s:
            try:
                got = _si.bounded_json(s, f"{name} step {step}: the scalars", max_len=_si.MAX_SCALARS_TEXT)
            except RunReadError as exc:
                got = None
                if len(errors) < 20:
                    errors.append(str(exc))
            if isinstance(got, dict):
                for k, v in got.items():
                    if k not in keys and len(keys) >= _si.MAX_SCALAR_COLUMNS:
                        continue
                    keys.setdefault(k, None)
                    d[k] = v if isinstance(v, (int, float, bool)) or v is None else str(v)[:200]
        parsed.append(d)
    if any(parsed):
        sf = pd.DataFrame.from_records(parsed, index=df.index)
        sf.columns = [c if c not in df.columns else f"user_{c}" for c in sf.columns]
        df = pd.concat([df, sf], axis=1)
    df.attrs["scalar_columns"] = [c for c in df.columns if c not in
                                  ("step", "time", "snapshot", *SERIES_COLUMNS, *_TEXT_COLUMNS)]
    return df


finish_frame = _finish_frame
