"""One conversion of results to JSON-safe Python (exports, the CLI's --json, run indexes).

numpy/torch arrays become lists, numpy scalars Python numbers, objects with
``to_dict()`` (presets, assessments) their dict, DataFrames a dict of columns,
paths strings; non-finite floats go through ``nonfinite`` (``None`` by
default, which JSON readers accept everywhere).
"""
from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(
    x: Any,
    *,
    nonfinite: Callable[[float], Any] = lambda f: None,
    max_array: Optional[int] = None,
) -> Any:
    """JSON-safe copy of ``x``; arrays with more than ``max_array`` elements become ``None``."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): conv(w) for k, w in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(w) for w in v]
        if type(v).__module__.startswith("torch") and hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            if max_array is not None and v.size > max_array:
                return None
            return conv(v.tolist())
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            f = float(v)
            return f if math.isfinite(f) else nonfinite(f)
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, PurePath):
            return str(v)
        if hasattr(v, "to_dict"):
            try:
                d = v.to_dict(orient="list")  # pandas DataFrame: a dict of columns
            except TypeError:
                d = v.to_dict()
            return conv(d)
        return str(v)

    return conv(x)
