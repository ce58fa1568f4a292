"""The loader's work budget: bytes, table columns and object-graph nodes, all checked from headers.

* ``LATENT_HEALTH_MAX_BYTES`` (default 8 GiB): what may be allocated or decompressed.
* ``LATENT_HEALTH_MAX_COLUMNS`` (default 16384): columns of a CSV/TSV table (counted on
  its first line before parsing: a 12 MB CSV of 10^6 columns would otherwise cost minutes
  of per-column work) and of a parquet table (from its schema).
* ``LATENT_HEALTH_MAX_NODES`` (default 100 000): containers and tensors visited in the
  object graph of a ``.pt`` file, counting every path to a shared object (a 1.7 KB pickle of
  ``c = [c] * 10`` nested 12 times has 10^12 paths).
* Compression ratio of any zip member at most ``MAX_COMPRESSION_RATIO`` (1100:1): deflate
  cannot do better than ~1032:1, and real embeddings compress by less than 10:1, so a
  bzip2/lzma member of zeros declaring gigabytes is refused before it is decompressed.

Each refusal is one line naming the limit and how to raise it.
"""
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



MAX_COLUMNS_ENV = "LATENT_HEALTH_MAX_COLUMNS"
DEFAULT_MAX_COLUMNS = 16384
MAX_NODES_ENV = "LATENT_HEALTH_MAX_NODES"
DEFAULT_MAX_NODES = 100_000
#: no zip member may claim more than this ratio of uncompressed to compressed bytes
MAX_COMPRESSION_RATIO = 1100


def _env_count(name: str, default: int) -> int:
    env = os.environ.get(name, "").strip()
    if not env:
        return default
    try:
        value = int(float(env.replace("_", "").replace(",", "")))
    except (ValueError, OverflowError):
        value = 0
    if value < 1:
        raise EmbeddingLoadError(f"environment variable {name}={env[:40]!r} is not a positive whole number; write it like {default}")
    return value


def max_columns() -> int:
    """Table column limit: ``$LATENT_HEALTH_MAX_COLUMNS`` if set, else 16384."""
    return _env_count(MAX_COLUMNS_ENV, DEFAULT_MAX_COLUMNS)


def max_nodes() -> int:
    """Object-graph node limit of ``.pt`` files: ``$LATENT_HEALTH_MAX_NODES`` if set, else 100 000."""
    return _env_count(MAX_NODES_ENV, DEFAULT_MAX_NODES)


# ----------------------------------------------------------------------------- rows and views (issue 24)
MAX_ROWS_ENV = "LATENT_HEALTH_MAX_ROWS"
#: rows kept per view by default: 2^20 >= 10^6, the scale the product promises on a CPU
DEFAULT_MAX_ROWS = 1 << 20
MAX_VIEWS_ENV = "LATENT_HEALTH_MAX_VIEWS"
#: views (or time steps) of a (V, N, D) array scored by default: each costs one whole assessment
DEFAULT_MAX_VIEWS = 256
MAX_MEMORY_ENV = "LATENT_HEALTH_MAX_MEMORY"
DEFAULT_MAX_MEMORY = 1024**3


def max_rows() -> int:
    """Rows kept per view: ``$LATENT_HEALTH_MAX_ROWS`` if set, else 2^20 (a larger set is sampled while read)."""
    return _env_count(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)


def max_views() -> int:
    """Views of a (V, N, D) array scored at most: ``$LATENT_HEALTH_MAX_VIEWS`` if set, else 256."""
    return _env_count(MAX_VIEWS_ENV, DEFAULT_MAX_VIEWS)


def max_memory() -> int:
    """The memory budget ``$LATENT_HEALTH_MAX_MEMORY`` (bytes, e.g. ``1GiB`` or ``4e9``), else 1 GiB."""
    env = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_MEMORY
    try:
        return parse_byte_size(env)
    except EmbeddingLoadError:
        raise EmbeddingLoadError(
            f"environment variable {MAX_MEMORY_ENV}={env[:40]!r} is not a byte size; write it like 1GiB or 4e9"
        ) from None


def row_limit(dim: int, views: int = 1) -> tuple:
    """``(rows, why)``: the rows per view kept when nothing smaller is asked for.

    The smaller of ``$LATENT_HEALTH_MAX_ROWS`` (2^20) and the rows whose float32 values
    (views x rows x dim x 4 bytes) fit the memory budget ``$LATENT_HEALTH_MAX_MEMORY``
    (1 GiB: 10^6 rows up to 256 dimensions); ``why`` names the limit that binds.
    """
    per_row = 4 * max(int(dim), 1) * max(int(views), 1)
    by_memory = max(2, int(max_memory() // per_row))
    by_count = max_rows()
    if by_memory < by_count:
        return by_memory, f"the memory budget {MAX_MEMORY_ENV}"
    return by_count, f"the row limit {MAX_ROWS_ENV}"


MAX_UPLOAD_ENV = "LATENT_HEALTH_MAX_UPLOAD"
#: browser uploads: Streamlit holds each whole in the server's RAM
DEFAULT_MAX_UPLOAD = 1024**3


def max_upload_bytes() -> int:
    """Bytes of one browser upload (``$LATENT_HEALTH_MAX_UPLOAD``, default 1 GiB), passed to Streamlit's
    ``file_uploader(max_upload_size=...)``, and the byte limit its decoding gets (``max_bytes``): an upload
    of a few hundred KB must not make the server decompress gigabytes."""
    env = os.environ.get(MAX_UPLOAD_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_UPLOAD
    try:
        return parse_byte_size(env)
    except EmbeddingLoadError:
        raise EmbeddingLoadError(f"environment variable {MAX_UPLOAD_ENV}={env[:40]!r} is not a byte size; write it like 1GiB") from None


def max_upload_mb() -> int:
    """:func:`max_upload_bytes` in whole megabytes, as ``st.file_uploader(max_upload_size=...)`` takes it (the
    default when the variable is malformed: the page still runs, and decoding an upload says what is wrong)."""
    try:
        return max(1, max_upload_bytes() // (1024 * 1024))
    except EmbeddingLoadError:
        return DEFAULT_MAX_UPLOAD // (1024 * 1024)


ALLOW_ENCODERS_ENV = "LATENT_HEALTH_ALLOW_ENCODERS"
#: what the Compare page says while encoders are off
ENCODERS_OFF = (
    "Encoders are off on this server. A TorchScript or torch.export encoder is a program: running it can read and "
    "write anything the server's user can. Start the server with LATENT_HEALTH_ALLOW_ENCODERS=1 to allow encoders "
    "from the allowed directories (only files you trust), or embed offline with `sigreg embed` and compare the "
    "embeddings."
)


def encoders_allowed() -> bool:
    """True only when the server was started with ``LATENT_HEALTH_ALLOW_ENCODERS=1``: a TorchScript /
    torch.export encoder runs arbitrary code with the server's rights (it can read /etc/passwd and write
    files), so the dashboard never runs one unless its operator opted in."""
    return os.environ.get(ALLOW_ENCODERS_ENV, "").strip() == "1"
