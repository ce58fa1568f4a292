"""Choosing where the statistic runs: CUDA when present, the CPU otherwise."""
from __future__ import annotations

import torch

__all__ = ["resolve_device", "device_report", "cuda_available", "openmp_spin_note"]


def cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver must not stop the CPU path
        return False


def resolve_device(device: "str | torch.device | None" = "auto") -> torch.device:
    """``"auto"``/``None`` → CUDA if available else CPU; ``"cpu"``; ``"cuda"`` (refused clearly if absent)."""
    from sigreg_core.util.errors import InputError  # lazily: the statistic core imports nothing above it

    if isinstance(device, torch.device):
        dev = device
    else:
        name = "auto" if device is None else str(device).strip().lower()
        if name == "auto":
            return torch.device("cuda") if cuda_available() else torch.device("cpu")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise InputError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not cuda_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use auto or cpu")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {dev}; use auto, cpu or cuda")
    return dev


def openmp_spin_note() -> str:
    """A note when OpenMP threads spin-wait (torch was imported before sigreg_core, no OMP_WAIT_POLICY).

    Empty when the passive policy is in effect or the user chose a policy.
    """
    import sigreg_core

    if getattr(sigreg_core, "_OMP_POLICY_LATE", False):
        return ("OpenMP threads spin-wait (torch was imported before sigreg_core): set OMP_WAIT_POLICY=PASSIVE "
                "in the environment, or import sigreg_core first, when the CPU is shared")
    return ""


def device_report() -> str:
    """One line saying what was detected (shown in the app's sidebar and the CLI)."""
    if cuda_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"CUDA: {', '.join(names)} (torch {torch.__version__})"
    line = f"CPU only: {torch.get_num_threads()} threads, no CUDA GPU detected (torch {torch.__version__})"
    note = openmp_spin_note()
    return f"{line}; {note}" if note else line
