"""Where a compared set comes from: one :class:`SetSource` per shipped sample, upload, server file,
encoder run on a probe batch, or kept step of a monitored run.

Each source says how to read it (``read``: a thunk, run once), the identity its read is cached
under (the file's path and modification time for server files, so an edited file is read again;
the upload's id; the run and step), the label of its messages, the set's name and the record
kept in the HTML report (``source``).  Server paths are resolved below the allowed roots
(:func:`sigreg_core.inputs.loading.resolve_server_path`); a refused path is one error line and
the other sources go on.  Uploads are data only; encoders (code) come from server paths only.
No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings, resolve_server_path
from sigreg_core.util.text import md

__all__ = ["SetSource", "sample_sources", "upload_sources", "path_sources", "encoder_sources", "run_step_sources"]


@dataclass(frozen=True)
class SetSource:
    """One set to read: its name, cache identity, reader, message label and source record."""

    name: str
    ident: tuple
    read: Callable = field(compare=False, repr=False)
    label: str = ""
    source: dict = field(default_factory=dict, compare=False)


def sample_sources(samples: dict, chosen: list, max_rows: Optional[int]) -> list:
    """The shipped samples chosen (``samples``: name -> :class:`sigreg_core.inputs.samples.Sample`)."""
    return [SetSource(n, ("sample", n, max_rows), lambda s=samples[n]: load_embeddings(s.path, key=s.key,
                                                                                       max_rows=max_rows),
                      f"sample {n}", {"kind": "sample", "name": n}) for n in chosen]


def upload_sources(files: list, max_rows: Optional[int], max_bytes: int) -> list:
    """Uploaded files (``file_id``, ``name``, ``size``, ``getvalue()``), decoded with a byte limit."""
    return [SetSource(f.name, ("upload", f.file_id, max_rows),
                      lambda f=f: load_embeddings(f.getvalue(), name=f.name, max_bytes=max_bytes, max_rows=max_rows),
                      f"upload {f.name}", {"kind": "upload", "name": f.name, "bytes": f.size}) for f in files]


def path_sources(lines: list, max_rows: Optional[int]) -> tuple[list, list]:
    """(server files below the allowed roots, one markdown-safe error line per refused path)."""
    out, errors = [], []
    for line in lines:
        try:
            p = resolve_server_path(line)
        except EmbeddingLoadError as exc:
            errors.append(md(exc, None))
            continue
        out.append(SetSource(p.name, ("path", str(p), p.stat().st_mtime_ns, max_rows),
                             lambda p=p: load_embeddings(p, max_rows=max_rows), f"server file {p.name}",
                             {"kind": "server path", "name": str(p)}))
    return out, errors


def encoder_sources(encoders: list, probe: str, *, pool: str, batch_size: int, device: str,
                    max_rows: Optional[int]) -> tuple[list, list]:
    """(TorchScript / torch.export encoders on the server, each run on the probe batch; one markdown-safe error
    line per refused path).  ``pool`` is ``"none"``, ``"mean"`` or ``"first"`` for (B, T, D) outputs."""
    from sigreg_core.inputs.checkpoints import embed_checkpoint

    out, errors = [], []
    for e in encoders:
        try:
            ep, pp = resolve_server_path(e), resolve_server_path(probe.strip())
        except EmbeddingLoadError as exc:
            errors.append(md(exc, None))
            continue
        ident = ("encoder", str(ep), ep.stat().st_mtime_ns, str(pp), pp.stat().st_mtime_ns, pool, max_rows)
        out.append(SetSource(ep.name, ident, lambda ep=ep, pp=pp: embed_checkpoint(
            ep, pp, batch_size=batch_size, device=device, max_rows=max_rows, pool=None if pool == "none" else pool),
            f"encoder {ep.name}", {"kind": "encoder", "name": str(ep), "probe": str(pp)}))
    return out, errors


def run_step_sources(reader, run: str, run_label: str, chosen: list) -> list:
    """Kept steps of one run (``reader``: :class:`sigreg_core.runs.RunReader`), each named ``<run>@<step>``."""
    return [SetSource(f"{run_label}@{s}", ("run", run, s), lambda s=s: reader.snapshot(s), f"{run_label} step {s}",
                      {"kind": "run step", "run": run, "step": s}) for s in chosen]
