"""The byte limit of the loader (``LATENT_HEALTH_MAX_BYTES``) and byte-size parsing."""
from __future__ import annotations

import math
import os
import re
from typing import Union

import numpy as np

from sigreg_core.inputs.errors import EmbeddingLoadError

MAX_BYTES_ENV = "LATENT_HEALTH_MAX_BYTES"
DEFAULT_MAX_BYTES = 8 * 1024**3

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_byte_size(text: Union[str, int]) -> int:
    """``"8GiB"``, ``"512M"``, ``"1e9"``, ``1000`` → bytes (K/M/G/T are powers of 1024)."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        if int(text) <= 0:
            raise EmbeddingLoadError(f"byte limit must be positive, got {text}")
        return int(text)
    s = str(text).strip()
    m = _SIZE_RE.match(s)
    try:
        if m:
            value = float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2).lower() or "_")
        else:
            value = float(s)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise EmbeddingLoadError(
            f"cannot read byte limit {text!r}; write it like 8GiB, 512MiB or 1000000000"
        )
    return int(value)


def default_max_bytes() -> int:
    """The byte limit: ``$LATENT_HEALTH_MAX_BYTES`` if set, else 8 GiB."""
    env = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_byte_size(env)
    except EmbeddingLoadError:
        raise EmbeddingLoadError(
            f"environment variable {MAX_BYTES_ENV}={env!r} is not a byte size; write it like 8GiB or 2000000000"
        ) from None

