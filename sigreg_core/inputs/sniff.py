"""Sources (path, bytes, upload), their format from the extension, and content sniffing."""
from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Optional

from sigreg_core.inputs.errors import EmbeddingLoadError

#: extension -> format name
SUPPORTED_EXTENSIONS = {
    ".npy": "npy",
    ".npz": "npz",
    ".pt": "pt",
    ".pth": "pt",
    ".safetensors": "safetensors",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}



class _Source:
    """A path or in-memory bytes, with a display name and a format."""

    def __init__(self, source, name: Optional[str]):
        self.path: Optional[Path] = None
        self.data: Optional[bytes] = None
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(source)
            self.name = name or self.path.name
            try:
                st = self.path.stat()
            except FileNotFoundError:
                raise EmbeddingLoadError(f"{self.path}: file not found; check the path") from None
            except OSError as exc:
                raise EmbeddingLoadError(f"{self.path}: cannot open ({exc.strerror})") from None
            if stat.S_ISDIR(st.st_mode):
                raise EmbeddingLoadError(f"{self.path}: is a directory; give an embeddings file inside it")
            if not stat.S_ISREG(st.st_mode):
                raise EmbeddingLoadError(f"{self.path}: not a regular file; give an embeddings file")
            self.size = int(st.st_size)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
            self.name = name or "upload"
            self.size = len(self.data)
        elif hasattr(source, "read"):  # file-like, e.g. Streamlit's UploadedFile
            if hasattr(source, "seek"):
                try:
                    source.seek(0)
                except (OSError, ValueError):
                    pass
            data = source.read()
            if isinstance(data, str):
                data = data.encode("utf-8")
            self.data = bytes(data)
            self.name = name or getattr(source, "name", None) or "upload"
            self.size = len(self.data)
        else:
            raise EmbeddingLoadError(
                f"cannot load embeddings from a {type(source).__name__}; pass a file path or the file's bytes"
            )
        self.name = os.path.basename(str(self.name)) or str(self.name)
        ext = os.path.splitext(str(name or (self.path.name if self.path else self.name)))[1].lower()
        self.ext = ext
        self.format = SUPPORTED_EXTENSIONS.get(ext)

    def head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def open(self):
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def digest_source(self):
        return self.data if self.data is not None else self.path


def source_digest(source) -> str:
    """sha256 hex digest of bytes or of a file's content (streamed in 1 MiB blocks)."""
    h = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        h.update(source)
    else:
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x93NUMPY"):
        return "a .npy array"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "a zip archive (.npz or .pt)"
    if head.startswith(b"PAR1"):
        return "a parquet file"
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a raw Python pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file"
    return ""

