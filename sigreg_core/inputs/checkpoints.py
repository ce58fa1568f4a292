"""Embeddings from checkpoints: run an encoder on a probe batch, then score with SIGReg.

Comparing checkpoints (issue 8) needs their embeddings of the *same* inputs.  Two
routes, both computing on the device (CUDA when present) in batches under
``torch.inference_mode()``:

1. **A serialised encoder** (:func:`embed_checkpoint`): a TorchScript file
   (``torch.jit.save``, loaded with ``torch.jit.load``) or a ``torch.export``
   program (``torch.export.save``, loaded with ``torch.export.load``), plus a probe
   batch file.  Such files carry code, so they are read **only from a path on the
   server** (below the allowed roots of :func:`sigreg_core.inputs.loading.resolve_server_path`
   in the dashboard, or a local path on the command line), never from a browser
   upload: uploads stay data-only.
2. **An ordinary state_dict checkpoint** (:func:`embed_state_dict`, the
   ``sigreg embed`` command): the user's own model code is imported locally
   (``--model package.module:factory``; the current directory is on the import
   path, as with ``python -m``), the factory builds the model, and the weights are
   loaded with ``torch.load(ckpt, weights_only=True)`` (or safetensors), never
   unpickled.  The embeddings are saved as safetensors (key ``embeddings``).

The probe batch is read without pickle: 2-D float arrays through
:func:`sigreg_core.inputs.loading.load_embeddings` (all its checks); other shapes
(images (N, C, H, W), sequences (N, T, F)) and integer arrays (token ids) from
``.safetensors``, ``.npy`` (``allow_pickle=False``, size checked) or ``.pt``
(``weights_only=True``), keeping their dtype (floats become float32).  Axis 0 is
the batch.

The encoder must return a tensor (B, D), or a tuple/list/dict holding one
(``output_key``); outputs (B, T, D) can be pooled (``pool="mean"`` over the middle
axes, or ``"first"``, the first token).  The resulting (N, D) embeddings are what
SIGReg — the sliced Epps–Pulley statistic of LeJEPA (arXiv 2511.08544) and
LeWorldModel (arXiv 2603.19312) — scores.
"""
from __future__ import annotations

import importlib
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "EmbedResult",
    "encoder_kind",
    "load_encoder",
    "load_probe",
    "embed",
    "embed_checkpoint",
    "import_factory",
    "load_state_dict_file",
    "embed_state_dict",
    "save_embeddings",
    "add_embed_parser",
    "run_embed",
    "ENCODER_KINDS",
    "POOLS",
]

ENCODER_KINDS = ("torchscript", "export")
POOLS = ("mean", "first")
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "encoder", "net", "backbone")
_RAW_PROBE_EXT = (".safetensors", ".npy", ".pt", ".pth")


class CheckpointError(ValueError):
    """A checkpoint, encoder or probe that cannot be used; the message is one line."""

    def __init__(self, message: str):
        message = " ".join(str(message).split())
        if len(message) > 600:
            message = message[:597] + "..."
        super().__init__(message)


@dataclass
class EmbedResult:
    """Embeddings computed from a checkpoint, and how."""

    array: np.ndarray            # (N, D) float32
    notices: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    out: Optional[Path] = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- encoders
def encoder_kind(path: Union[str, os.PathLike]) -> str:
    """``"torchscript"`` or ``"export"`` from the archive's members (CheckpointError otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: not a file")
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"{p.name}: not a TorchScript or torch.export archive ({_first_line(exc)}); save the encoder with "
            "torch.jit.save(torch.jit.script(model), path) or torch.export.save(torch.export.export(model, args), path)"
        ) from None
    tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "archive_format" in tails or any(t.startswith("models/") for t in tails):
        return "export"
    if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        raise CheckpointError(
            f"{p.name}: is a torch.save checkpoint (weights or a pickled module), not a serialised encoder; use "
            "`sigreg embed --model package.module:factory --checkpoint ...` for state_dict checkpoints")
    raise CheckpointError(f"{p.name}: a zip archive but neither TorchScript nor torch.export")


def load_encoder(path: Union[str, os.PathLike], *, device="auto") -> tuple[Callable, str]:
    """Load a TorchScript or ``torch.export`` encoder from a local / server path, in eval mode on ``device``."""
    from sigreg_core.core.device import resolve_device

    dev = resolve_device(device)
    kind = encoder_kind(path)
    try:
        if kind == "torchscript":
            model = torch.jit.load(str(path), map_location=dev)
            model.eval()
        else:
            ep = torch.export.load(str(path))
            model = ep.module()
            model.to(dev)
    except Exception as exc:  # the loaders raise many types; one line either way
        raise CheckpointError(f"{Path(path).name}: cannot load the {kind} encoder ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None
    return model, kind


# ----------------------------------------------------------------------------- probes
def _subset_rows(n: int, max_rows: Optional[int], seed: int) -> Optional[np.ndarray]:
    if max_rows is None or n <= int(max_rows):
        return None
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(n, size=int(max_rows), replace=False))


def _check_nbytes(nbytes: int, name: str, max_bytes: Optional[Union[int, str]]) -> None:
    from sigreg_core.inputs.loading import default_max_bytes, parse_byte_size

    limit = default_max_bytes() if max_bytes is None else parse_byte_size(max_bytes)
    if nbytes > limit:
        raise CheckpointError(f"{name}: the probe needs {nbytes:,} bytes, over the limit of {limit:,}; "
                              "pass max_rows (CLI --max-rows) or raise the limit")


def _raw_probe(path: Path, key: Optional[str], max_bytes) -> Any:
    ext = path.suffix.lower()
    if ext == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                keys = list(f.keys())
                if key is None:
                    if len(keys) != 1:
                        raise CheckpointError(f"{path.name}: holds {len(keys)} tensors ({', '.join(keys[:8])}); "
                                              "pick one with key (CLI --key)")
                    key = keys[0]
                if key not in keys:
                    raise CheckpointError(f"{path.name}: no tensor {key!r}; it holds {', '.join(keys[:8])}")
                sl = f.get_slice(key)
                shape = tuple(sl.get_shape())
                dtype = sl.get_dtype()
                itemsize = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
                            "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1}.get(dtype, 8)
                _check_nbytes(int(np.prod(shape, dtype=np.int64)) * itemsize, path.name, max_bytes)
                return f.get_tensor(key)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path.name}: cannot read as safetensors ({_first_line(exc)})") from None
    if ext == ".npy":
        try:
            arr = np.load(str(path), mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise CheckpointError(f"{path.name}: cannot read as .npy without pickle ({_first_line(exc)})") from None
        _check_nbytes(int(arr.nbytes), path.name, max_bytes)
        return arr
    # .pt / .pth
    _check_nbytes(path.stat().st_size, path.name, max_bytes)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path.name}: cannot be read with torch.load(weights_only=True) "
                              f"({_first_line(exc)}); save the probe as a tensor or a dict of tensors") from None
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise CheckpointError(f"{path.name}: holds one tensor, no key {key!r}")
        return _real_tensor(obj, path.name)
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if key is None:
            if len(tensors) != 1:
                raise CheckpointError(f"{path.name}: holds {len(tensors)} tensors ({', '.join(list(tensors)[:8])}); "
                                      "pick one with key (CLI --key)")
            return _real_tensor(next(iter(tensors.values())), path.name)
        if key not in tensors:
            raise CheckpointError(f"{path.name}: no tensor {key!r}; it holds {', '.join(list(tensors)[:8])}")
        return _real_tensor(tensors[key], path.name)
    raise CheckpointError(f"{path.name}: holds a {type(obj).__name__}, not a tensor or a dict of tensors")


def _real_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse zero-stride / overlapping views: 4 stored bytes must not become a 1 GiB probe batch."""
    from sigreg_core.inputs.formats.pt import _view_problem

    problem = _view_problem(t) if t.layout == torch.strided else None
    if problem:
        raise CheckpointError(f"{name}: the probe tensor {problem}")
    return t


def load_probe(
    path: Union[str, os.PathLike],
    *,
    key: Optional[str] = None,
    max_rows: Optional[int] = None,
    seed: int = 0,
    max_bytes: Optional[Union[int, str]] = None,
) -> tuple[np.ndarray, list]:
    """The probe batch (axis 0 = rows) as a numpy array, and notices.

    2-D float arrays go through :func:`sigreg_core.inputs.loading.load_embeddings`; other
    shapes and integer arrays are read from .safetensors / .npy / .pt without
    pickle, floats as float32, integers as int64.  ``max_rows`` keeps a uniform
    random subset (seeded), in order.
    """
    from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: probe file not found")
    notices: list = []
    if p.suffix.lower() in _RAW_PROBE_EXT:
        t = _raw_probe(p, key, max_bytes)
        arr = t.numpy() if isinstance(t, torch.Tensor) and t.dtype != torch.bfloat16 else (
            t.float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t))
        if arr.ndim == 2 and arr.dtype.kind == "f":
            try:  # the full checks of the embeddings loader (finite values, sizes)
                emb = load_embeddings(p, key=key, max_rows=max_rows, seed=seed, max_bytes=max_bytes)
            except EmbeddingLoadError as exc:
                raise CheckpointError(f"probe {exc}") from None
            return emb.array, list(emb.notices)
        if arr.ndim < 1 or arr.shape[0] < 1:
            raise CheckpointError(f"{p.name}: the probe needs a batch axis (shape (N, ...)), got {arr.shape}")
        if arr.dtype.kind == "f":
            arr = np.asarray(arr, dtype=np.float32)
            if not np.isfinite(arr).all():
                raise CheckpointError(f"{p.name}: the probe contains NaN or Inf")
        elif arr.dtype.kind in "iub":
            arr = np.asarray(arr, dtype=np.int64)
        else:
            raise CheckpointError(f"{p.name}: probe dtype {arr.dtype} is not numeric")
        n0 = int(arr.shape[0])
        idx = _subset_rows(n0, max_rows, seed)
        if idx is not None:
            arr = arr[idx]
            notices.append(f"probe: {len(idx):,} of {n0:,} rows kept (uniform without replacement, seed {seed})")
        return np.ascontiguousarray(arr), notices
    try:
        emb = load_embeddings(p, key=key, max_rows=max_rows, seed=seed, max_bytes=max_bytes)
    except EmbeddingLoadError as exc:
        raise CheckpointError(f"probe {exc}") from None
    if emb.array.ndim != 2:
        raise CheckpointError(f"{p.name}: a 3-D table is ambiguous as a probe; save it as .safetensors or .npy")
    return emb.array, list(emb.notices)


# ----------------------------------------------------------------------------- running
def _pick_output(out, output_key, name: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        if output_key is not None:
            raise CheckpointError(f"{name} returned one tensor; output_key {output_key!r} does not apply")
        return out
    if isinstance(out, (tuple, list)):
        i = 0 if output_key is None else output_key
        try:
            i = int(i)
            val = out[i]
        except (ValueError, IndexError):
            raise CheckpointError(f"{name} returned a {type(out).__name__} of {len(out)}; output_key must be an "
                                  f"index below {len(out)}, got {output_key!r}") from None
        return _pick_output(val, None, name)
    if isinstance(out, dict):
        keys = [str(k) for k in out]
        if output_key is None:
            if len(out) == 1:
                return _pick_output(next(iter(out.values())), None, name)
            raise CheckpointError(f"{name} returned a dict ({', '.join(keys[:8])}); choose one with output_key "
                                  "(CLI --output-key)")
        if str(output_key) not in keys:
            raise CheckpointError(f"{name} returned no {output_key!r}; it returned {', '.join(keys[:8])}")
        return _pick_output(out[output_key], None, name)
    raise CheckpointError(f"{name} returned a {type(out).__name__}, not a tensor")


def embed(
    encoder: Callable,
    probe,
    *,
    batch_size: int = 256,
    device="auto",
    output_key=None,
    pool: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    name: str = "the encoder",
) -> np.ndarray:
    """Run ``encoder`` on ``probe`` (N, ...) in batches under ``torch.inference_mode()`` → (N, D) float32."""
    from sigreg_core.core.device import resolve_device

    if pool is not None and pool not in POOLS:
        raise CheckpointError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise CheckpointError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    n = int(probe.shape[0])
    parts = []
    with torch.inference_mode():
        for b0 in range(0, n, batch_size):
            x = probe[b0:b0 + batch_size]
            xt = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
            xt = xt.to(dev)
            try:
                out = encoder(xt)
            except CheckpointError:
                raise
            except Exception as exc:
                raise CheckpointError(f"{name} failed on a probe batch of shape {tuple(xt.shape)} "
                                      f"({type(exc).__name__}: {_first_line(exc)})") from None
            y = _pick_output(out, output_key, name)
            if y.ndim > 2 and pool is not None:
                y = y.float().mean(dim=tuple(range(1, y.ndim - 1))) if pool == "mean" else y[:, 0]
                while y.ndim > 2:
                    y = y[:, 0]
            if y.ndim == 1:
                y = y[:, None]
            if y.ndim != 2 or y.shape[0] != xt.shape[0]:
                raise CheckpointError(
                    f"{name} returned shape {tuple(y.shape)} for a batch of {xt.shape[0]}; SIGReg needs (batch, D): "
                    "pool the extra axes (pool='mean' or 'first', CLI --pool)")
            if not y.is_floating_point():
                raise CheckpointError(f"{name} returned {y.dtype}, not floating-point embeddings")
            parts.append(y.detach().float().cpu().numpy())
            if progress is not None:
                progress(min(n, b0 + batch_size), n)
    z = np.concatenate(parts, axis=0) if parts else np.empty((0, 0), np.float32)
    if not np.isfinite(z).all():
        bad = int(np.argmax(~np.isfinite(z).all(1)))
        raise CheckpointError(f"{name} produced NaN or Inf embeddings (first in row {bad})")
    return z


def embed_checkpoint(
    encoder_path: Union[str, os.PathLike],
    probe_path: Union[str, os.PathLike],
    *,
    key: Optional[str] = None,
    batch_size: int = 256,
    device="auto",
    max_rows: Optional[int] = None,
    output_key=None,
    pool: Optional[str] = None,
    confine: bool = True,
    roots=None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> EmbedResult:
    """Embeddings of a probe batch by a TorchScript / ``torch.export`` encoder, both read from the server.

    With ``confine=True`` (the dashboard) both paths must lie below the allowed
    roots (:func:`sigreg_core.inputs.loading.resolve_server_path`); the CLI passes local paths.
    """
    from sigreg_core.inputs.loading import EmbeddingLoadError, resolve_server_path

    t0 = time.perf_counter()
    if confine:
        try:
            encoder_path = resolve_server_path(encoder_path, roots)
            probe_path = resolve_server_path(probe_path, roots)
        except EmbeddingLoadError as exc:
            raise CheckpointError(str(exc)) from None
    enc, kind = load_encoder(encoder_path, device=device)
    probe, notices = load_probe(probe_path, key=key, max_rows=max_rows)
    z = embed(enc, probe, batch_size=batch_size, device=device, output_key=output_key, pool=pool,
              progress=progress, name=f"{Path(encoder_path).name} ({kind})")
    from sigreg_core.core.device import resolve_device

    meta = {"encoder": str(encoder_path), "encoder_kind": kind, "probe": str(probe_path),
            "device": str(resolve_device(device)),
            "probe_shape": list(probe.shape), "rows": int(z.shape[0]), "dim": int(z.shape[1]),
            "seconds": time.perf_counter() - t0}
    return EmbedResult(array=z, notices=notices, meta=meta)


_MOVED = {
    "import_factory": "sigreg_core.inputs.statedict",
    "load_state_dict_file": "sigreg_core.inputs.statedict",
    "save_embeddings": "sigreg_core.inputs.statedict",
    "embed_state_dict": "sigreg_core.inputs.statedict",
    "add_embed_parser": "sigreg_core.inputs.embed_cli",
    "run_embed": "sigreg_core.inputs.embed_cli",
}


def __getattr__(name: str):
    """Lazy re-exports of the state_dict route and the ``embed`` command (they import this module)."""
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
