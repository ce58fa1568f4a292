"""Server paths confined to the allowed roots (``LATENT_HEALTH_ALLOWED_ROOTS``).

A dashboard served to others must not read arbitrary files: a typed path must lie,
after resolving every symlink, below one of the allowed directories.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Optional, Union

from sigreg_core.inputs.errors import EmbeddingLoadError

ALLOWED_ROOTS_ENV = "LATENT_HEALTH_ALLOWED_ROOTS"


def allowed_roots(roots: Optional[Iterable[Union[str, os.PathLike]]] = None) -> list:
    """Directories below which server paths may be read.

    ``roots`` if given; else ``$LATENT_HEALTH_ALLOWED_ROOTS`` (``os.pathsep``-separated);
    else the default: the repository's ``sample_data/`` and ``runs/`` directories
    (next to the ``sigreg_core`` package).  The current directory and home are *not*
    allowed by default: a dashboard served to others must not read arbitrary files.
    """
    if roots is None:
        env = os.environ.get(ALLOWED_ROOTS_ENV, "")
        if env.strip():
            roots = [r for r in env.split(os.pathsep) if r.strip()]
        else:
            repo = Path(__file__).resolve().parents[2]
            roots = [repo / "sample_data", repo / "runs"]
    out = []
    for r in roots:
        p = Path(os.path.expanduser(str(r)))
        try:
            out.append(p.resolve())
        except (OSError, RuntimeError):
            continue
    return out


def resolve_server_path(path: Union[str, os.PathLike], roots: Optional[Iterable] = None) -> Path:
    """Resolve a path typed by a user of the dashboard, confined to the allowed roots.

    Refuses ``..`` components, NUL bytes, anything that after resolving symlinks is not
    below one of the allowed roots, and anything that is not a regular file.  A relative
    path is looked up below each root in turn, then (for a path that names the root itself,
    ``sample_data/x.safetensors`` with the root ``.../sample_data``) below each root's parent,
    and last against the working directory; every candidate must still resolve below a root.
    """
    root_list = allowed_roots(roots)
    text = os.fspath(path) if not isinstance(path, str) else path
    text = text.strip()
    if not text:
        raise EmbeddingLoadError("empty server path; type a path to a file below an allowed directory")
    if "\x00" in text:
        raise EmbeddingLoadError("server path contains a NUL byte; type a plain file path")
    if not root_list:
        raise EmbeddingLoadError(
            f"no allowed directories are configured for server paths; set {ALLOWED_ROOTS_ENV}"
        )
    shown = ", ".join(str(r) for r in root_list)
    p = Path(text)
    if any(part == ".." for part in p.parts):
        raise EmbeddingLoadError(f"server path {text!r} contains '..'; give a path below {shown}")
    if p.is_absolute():
        candidates = [(p, True)]
    else:  # (candidate, whether landing outside the roots is reported); the extra lookups never reveal
        #    what exists outside the roots: they count only when they land inside one
        candidates = [(r / p, True) for r in root_list]
        candidates += [(r.parent / p, False) for r in root_list if p.parts and p.parts[0] == r.name]
        candidates.append((Path.cwd() / p, False))
    for cand, report_outside in candidates:
        try:
            resolved = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not any(resolved == r or resolved.is_relative_to(r) for r in root_list):
            if not report_outside:
                continue
            raise EmbeddingLoadError(
                f"server path {text!r} resolves to {resolved}, outside the allowed directories ({shown}); "
                f"copy the file there or add its directory to {ALLOWED_ROOTS_ENV}"
            )
        try:
            st = resolved.stat()
        except OSError as exc:
            raise EmbeddingLoadError(f"cannot stat server path {text!r}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise EmbeddingLoadError(f"server path {text!r} is not a regular file; give the path of an embeddings file")
        return resolved
    raise EmbeddingLoadError(f"server path {text!r} not found below the allowed directories ({shown})")

