"""The Compare page's tables as data: the ranking, one pair's deltas, the deltas to the reference and the
paired slice test, with the columns renamed for reading and every cell formatted for display.

Numbers are shown with 4 significant digits (3 for p-values); a missing value, NaN, None or an
empty note is "–", never "None" or "nan"; booleans read "yes" / "no".  An interval is the
bootstrap interval of :mod:`sigreg_core.compare.statistics` printed by
:func:`sigreg_core.compare.ranking.interval_text` (as many digits as the bounds need to differ),
or the note that says why there is none.  No Streamlit here: the page passes these frames to
``st.dataframe``; the CSV exports keep the raw frames.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sigreg_core.compare.comparison import DELTA_METRICS
from sigreg_core.compare.model import NO_SPREAD
from sigreg_core.compare.ranking import interval_text
from sigreg_core.util.text import csv_safe_frame

__all__ = ["table_csv", "fmt", "display_frame", "interval_cell", "ranking_table", "pair_table", "deltas_table",
           "paired_table"]


def table_csv(df: pd.DataFrame) -> bytes:
    """A table's CSV download (raw numbers, no index); text cells that a spreadsheet would evaluate as a formula
    (set names from files: ``=HYPERLINK(...)``) kept as text (:func:`sigreg_core.util.text.csv_safe_frame`)."""
    return csv_safe_frame(df).to_csv(index=False).encode()


def fmt(v, digits: int = 4) -> str:
    """``v`` with ``digits`` significant digits; "–" for NaN / inf; text that is not a number unchanged."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


def display_frame(df: pd.DataFrame, digits: dict | None = None) -> pd.DataFrame:
    """A frame for st.dataframe: numbers formatted (``digits`` per column, else 4), missing values and None as
    "–" (never "None" or "nan"), booleans as yes / no, integers kept."""
    digits = digits or {}
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = df[c]
        if col.dtype == bool:
            out[c] = np.where(col, "yes", "no")
        elif pd.api.types.is_integer_dtype(col):
            out[c] = col
        elif pd.api.types.is_numeric_dtype(col):
            out[c] = [fmt(v, digits.get(c, 4)) for v in col]
        else:
            out[c] = ["–" if v is None or (isinstance(v, float) and not np.isfinite(v)) or v == "" else
                      (("yes" if v else "no") if isinstance(v, (bool, np.bool_)) else str(v)) for v in col]
    return out


def interval_cell(lo, hi, note) -> str:
    """The note when there is one (why no interval), "–" when a bound is not finite, else ``[lo, hi]``."""
    if isinstance(note, str) and note:
        return note
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "–"
    return interval_text(lo, hi)


def ranking_table(cmp) -> pd.DataFrame:
    """The ranking, best first, with SIGReg as a multiple of the null mean and its interval (raw numbers)."""
    rk = cmp.ranking_frame()
    show = rk.assign(interval=[interval_cell(a, b, n) for a, b, n in zip(rk["x_null_low"], rk["x_null_high"],
                                                                         rk["interval_note"])])
    show = show[["rank", "set", "verdict", "x_null", "interval", "excess_over_best", "p_value", "rankme", "modes",
                 "vs_above"]]
    return show.rename(columns={"x_null": "SIGReg × null mean", "interval": f"{int(cmp.level * 100)} % interval",
                                "excess_over_best": "excess over best (× null)", "p_value": "p-value",
                                "rankme": "RankMe", "vs_above": "against the set above"})


def pair_table(deltas: list) -> pd.DataFrame:
    """One row per metric of a pair's deltas.  "significant" is the interval excluding 0 ("–" when a note says
    why there is no interval); a bootstrap p beside it could disagree (a second criterion): it stays in the
    CSV / JSON exports."""
    return pd.DataFrame([{"metric": DELTA_METRICS[d.metric][0], "delta": d.value,
                          "interval": interval_cell(d.ci_low, d.ci_high, d.note),
                          "significant": ("yes" if d.significant else "no") if not d.note else "–",
                          "healthier": d.healthier} for d in deltas])


def deltas_table(cmp) -> pd.DataFrame | None:
    """Every set's deltas to the reference (no p_boot: see :func:`pair_table`); None when there are none."""
    df = cmp.deltas_frame()
    if not len(df):
        return None
    df = df.assign(metric=[DELTA_METRICS[m][0] for m in df["metric"]],
                   interval=[interval_cell(a, b, n) for a, b, n in zip(df["ci_low"], df["ci_high"], df["note"])])
    df = df[["set", "metric", "value", "interval", "se", "significant", "healthier"]]
    df["significant"] = [("yes" if s else "no") if i != NO_SPREAD else "–"
                         for s, i in zip(df["significant"], df["interval"])]
    return df.rename(columns={"value": "delta"})


_PAIRED = {"set": "set", "num_slices": "num_slices", "fraction_lower": "fraction of slices lower",
           "median_difference": "median_difference", "design_effect": "design effect",
           "wilcoxon_p_adjusted": "Wilcoxon p (adjusted)", "sign_p_adjusted": "sign-test p (adjusted)",
           "wilcoxon_p": "Wilcoxon p (as if independent)", "sign_p": "sign-test p (as if independent)",
           "healthier": "healthier"}


def paired_table(cmp) -> pd.DataFrame:
    """The paired slice test of every set against the reference: adjusted p-values first, then the plain ones."""
    return cmp.paired_frame()[list(_PAIRED)].rename(columns=_PAIRED)
