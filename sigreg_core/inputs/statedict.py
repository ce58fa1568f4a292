"""Embeddings from an ordinary state_dict checkpoint: the user's model code builds the model.

The ``sigreg embed --model package.module:factory --checkpoint CKPT`` route of
:mod:`sigreg_core.inputs.checkpoints`: weights read with ``torch.load(weights_only=True)``
or safetensors (never unpickled), the probe batch embedded, the result saved as
safetensors for SIGReg (LeJEPA, arXiv 2511.08544) to score.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from sigreg_core.inputs.checkpoints import _STATE_KEYS, CheckpointError, EmbedResult, _first_line, embed, load_probe

# ----------------------------------------------------------------------------- state_dict route
def import_factory(spec: str) -> Callable:
    """``package.module:factory`` → the callable (the current directory is importable, as with ``python -m``)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise CheckpointError(f"model spec {spec!r} must look like package.module:factory")
    mod_name, attr = spec.split(":")
    if not mod_name or not attr:
        raise CheckpointError(f"model spec {spec!r} must look like package.module:factory")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:
        raise CheckpointError(f"cannot import {mod_name!r} for --model {spec} ({type(exc).__name__}: "
                              f"{_first_line(exc)}); run from the directory that holds your model code") from None
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CheckpointError(f"module {mod_name!r} has no {attr!r} (from --model {spec})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CheckpointError(f"{spec} is not callable; point --model at a function or class that builds the model")
    return obj


def load_state_dict_file(path: Union[str, os.PathLike], state_key: Optional[str] = None) -> tuple[dict, list]:
    """A state_dict from ``path`` (``torch.load(weights_only=True)`` or safetensors), and notices.

    A training checkpoint that nests the weights (``{"state_dict": ..., "optimizer": ...}``)
    is unwrapped with ``state_key`` or, failing that, the one of the usual keys
    (state_dict, model_state_dict, model, module, encoder, net, backbone) present; a
    common ``module.`` prefix (DistributedDataParallel) is removed.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    notices = []
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(p))
        except Exception as exc:
            raise CheckpointError(f"{p.name}: cannot read as safetensors ({_first_line(exc)})") from None
    else:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"{p.name}: torch.load(weights_only=True) refused it ({type(exc).__name__}: {_first_line(exc)}); "
                "save the weights with torch.save(model.state_dict(), path) — pickled objects are never loaded") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p.name}: holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    if state_key is not None:
        if state_key not in obj or not isinstance(obj[state_key], dict):
            raise CheckpointError(f"{p.name}: no dict under {state_key!r}; top-level keys: "
                                  f"{', '.join(map(str, list(obj)[:10]))}")
        obj = obj[state_key]
        notices.append(f"weights taken from {state_key!r}")
    elif not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in _STATE_KEYS:
            if isinstance(obj.get(k), dict):
                obj = obj[k]
                notices.append(f"weights taken from {k!r} (pass --state-key to choose another)")
                break
        else:
            raise CheckpointError(f"{p.name}: no tensors at the top level and none of {', '.join(_STATE_KEYS)}; "
                                  "pass --state-key")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{p.name}: the state_dict holds no tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        notices.append("removed the 'module.' prefix (DistributedDataParallel)")
    return sd, notices


def save_embeddings(z: np.ndarray, out: Union[str, os.PathLike], metadata: Optional[dict] = None) -> Path:
    """Write (N, D) float32 embeddings to ``out`` as safetensors (key ``embeddings``), atomically."""
    from safetensors.numpy import save

    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{out}: the output must end in .safetensors")
    if out.parent and not out.parent.exists():
        raise CheckpointError(f"{out.parent}: the output directory does not exist")
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    data = save({"embeddings": np.ascontiguousarray(z, dtype=np.float32)}, metadata=meta)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise CheckpointError(f"{out}: cannot write ({exc.strerror})") from None
    return out


def embed_state_dict(
    model_spec: str,
    checkpoint: Union[str, os.PathLike],
    probe: Union[str, os.PathLike],
    out: Optional[Union[str, os.PathLike]] = None,
    *,
    key: Optional[str] = None,
    state_key: Optional[str] = None,
    strict: bool = True,
    batch_size: int = 256,
    device="auto",
    max_rows: Optional[int] = None,
    output_key=None,
    pool: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> EmbedResult:
    """Build the user's model from ``model_spec``, load ``checkpoint``'s weights, embed ``probe``, save to ``out``."""
    from sigreg_core.core.device import resolve_device

    t0 = time.perf_counter()
    factory = import_factory(model_spec)
    sd, notices = load_state_dict_file(checkpoint, state_key)
    probe_arr, probe_notes = load_probe(probe, key=key, max_rows=max_rows)
    notices += probe_notes
    try:
        model = factory()
    except Exception as exc:
        raise CheckpointError(f"{model_spec}() failed ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(model, torch.nn.Module):
        raise CheckpointError(f"{model_spec}() returned a {type(model).__name__}, not a torch.nn.Module")
    try:
        res = model.load_state_dict(sd, strict=bool(strict))
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(
            f"{Path(checkpoint).name} does not fit {model_spec}: {detail[:300]}"
            " (pass --no-strict to load the matching keys only, or --state-key)"
        ) from None
    if not strict:
        if res.missing_keys:
            notices.append(f"{len(res.missing_keys)} parameter(s) not in the checkpoint kept their initial values "
                           f"(e.g. {res.missing_keys[0]})")
        if res.unexpected_keys:
            notices.append(f"{len(res.unexpected_keys)} checkpoint key(s) unused (e.g. {res.unexpected_keys[0]})")
    dev = resolve_device(device)
    model.eval().to(dev)
    z = embed(model, probe_arr, batch_size=batch_size, device=dev, output_key=output_key, pool=pool,
              progress=progress, name=f"{model_spec}")
    meta = {"model": model_spec, "checkpoint": str(checkpoint), "probe": str(probe), "probe_shape": list(probe_arr.shape),
            "rows": int(z.shape[0]), "dim": int(z.shape[1]), "device": str(dev),
            "seconds": time.perf_counter() - t0}
    path = None
    if out is not None:
        path = save_embeddings(z, out, {"tool": "latent-health sigreg embed", "model": model_spec,
                                        "checkpoint": Path(checkpoint).name, "probe": Path(probe).name})
    return EmbedResult(array=z, notices=notices, meta=meta, out=path)
