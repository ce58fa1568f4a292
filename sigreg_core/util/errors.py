"""The one exception that means "your input or settings are wrong", as opposed to a bug.

``InputError`` (a ``ValueError``) is raised by the library where the caller's data or
settings cannot be scored: a non-float dtype, non-finite values, too few rows, values too
large for float64, an unknown device.  The CLI maps it (with the loaders'
``EmbeddingLoadError`` and the work budget's ``WorkBudgetError``) to exit 2 with one line;
any other exception, ``ValueError`` included, is an internal error: exit 3, so a bug is
never reported to the user as "bad input".
"""
from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """The caller's input or settings are wrong (one line, CLI exit 2)."""
