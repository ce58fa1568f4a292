"""Errors and results of the embeddings loader: one-line refusals, what was loaded.

Every refusal of :func:`sigreg_core.inputs.loading.load_embeddings` is an
:class:`EmbeddingLoadError` whose message is a single line (what, where, how to fix);
a successful load is a :class:`LoadedEmbeddings` holding a float32 (N, D) or (V, N, D)
array, the batch SIGReg scores (LeJEPA, arXiv 2511.08544).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from sigreg_core.util.text import visible


class EmbeddingLoadError(ValueError):
    """A file could not be used as embeddings; the message is one line: what, where, how to fix."""

    def __init__(self, message: str):
        # one line, always; control characters from file names/keys shown as escapes (\x1b), never raw
        message = visible(" ".join(str(message).split()))
        if len(message) > 600:
            message = message[:597] + "..."
        super().__init__(message)


@dataclass(frozen=True)
class ArrayEntry:
    """One array inside a source (what :func:`list_keys` returns)."""

    key: Optional[str]
    shape: tuple
    dtype: str
    usable: bool  # numeric and 2-D or 3-D

    def __str__(self) -> str:
        shape = " x ".join(str(s) for s in self.shape) if self.shape else "scalar"
        label = self.key if self.key is not None else "(whole file)"
        return f"{label}: {shape} {self.dtype}" + ("" if self.usable else " (not usable)")


@dataclass
class LoadedEmbeddings:
    """Embeddings read from one source.

    ``array`` is float32 of shape (N, D), or (V, N, D) for V views / time steps
    scored separately.  ``notices`` are the non-fatal things the loader did
    (columns set aside, rows subsampled, rows dropped, dtype converted).
    """

    array: np.ndarray
    name: str
    format: str
    key: Optional[str] = None
    notices: list = field(default_factory=list)
    original_shape: tuple = ()
    original_dtype: str = ""
    row_indices: Optional[np.ndarray] = None  # original rows kept (None: all, in order)
    _digest: Optional[str] = field(default=None, repr=False)
    _digest_source: Any = field(default=None, repr=False)
    _data_digest: Optional[str] = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        """sha256 of the source bytes (computed once, lazily for server paths)."""
        if self._digest is None:
            from sigreg_core.inputs.sniff import source_digest  # sniff imports this module

            self._digest = source_digest(self._digest_source)
        return self._digest

    @property
    def data_sha256(self) -> str:
        """sha256 of the array actually returned (dtype, shape, then its bytes): the key of anything
        computed from it.  Unlike :attr:`sha256` (the source file, hashed when first asked, after the
        load), it cannot describe other bytes than those scored: a server file replaced between the
        load and the digest changes nothing here (one read, no window)."""
        if self._data_digest is None:
            self._data_digest = array_digest(self.array)
        return self._data_digest

    @property
    def num_views(self) -> int:
        return 1 if self.array.ndim == 2 else int(self.array.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.array.shape[-2])

    @property
    def dim(self) -> int:
        return int(self.array.shape[-1])

    @property
    def views(self) -> list:
        """The (N, D) batches: one for a 2-D array, V for a 3-D one."""
        return [self.array] if self.array.ndim == 2 else [self.array[v] for v in range(self.array.shape[0])]

    def describe(self) -> str:
        shape = " x ".join(f"{s:,}" for s in self.array.shape)
        src = f"{self.name}" + (f"[{self.key}]" if self.key else "")
        return f"{shape} ({self.original_dtype} → float32) from {src}"


def array_digest(arr: np.ndarray) -> str:
    """sha256 hex digest of an array's dtype, shape and C-ordered bytes (hashed in place when contiguous)."""
    import hashlib

    a = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]


def _human(nbytes: int) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"

