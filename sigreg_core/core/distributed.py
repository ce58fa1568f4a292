"""torch.distributed as one concern: is a group up, and sum tensors across it.

ECF sums are additive, so the global-batch statistic only needs the per-rank
sums all-reduced (SUM) before the nonlinear step, as lejepa does for its ECF
means.  (One popular port computes the all-reduce and then discards its
result, silently scoring the local batch; we use the reduced values.)

A rank may hold no rows (an uneven split, a last shard that ran out): it still joins
every collective, with zero sums and a zero count, so no other rank waits for it and the
reduced statistic is that of the rows that exist (N = the global count).
"""
from __future__ import annotations

import torch

__all__ = ["group_active", "world_size", "rank", "all_reduce_sum", "global_mean", "resolve_distributed"]


def group_active() -> bool:
    """True when a torch.distributed process group is initialised with more than one rank."""
    try:
        import torch.distributed as dist
    except Exception:  # pragma: no cover - torch built without distributed
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return torch.distributed.get_world_size() if group_active() else 1


def rank() -> int:
    return torch.distributed.get_rank() if group_active() else 0


def resolve_distributed(distributed: "bool | str") -> bool:
    """``"auto"`` → reduce when a group is active; ``True`` demands an active group."""
    if distributed == "auto" or distributed is None:
        return group_active()
    if distributed and not group_active():
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return False  # a group of one rank: nothing to reduce
        raise ValueError(
            "distributed=True but no torch.distributed process group is initialised; "
            "call torch.distributed.init_process_group first (or run under torchrun)"
        )
    return bool(distributed)


def all_reduce_sum(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Sum each tensor over all ranks (float64 kept; one flat all-reduce call).

    On the NCCL backend tensors must live on the rank's GPU; on gloo on the CPU.
    They are moved there and back as needed.
    """
    if not group_active():
        return list(tensors)
    import torch.distributed as dist

    backend = dist.get_backend()
    dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    flat = torch.cat([t.detach().reshape(-1).to(device=dev, dtype=torch.float64) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    out, i = [], 0
    for t in tensors:
        k = t.numel()
        out.append(flat[i : i + k].reshape(t.shape).to(device=t.device, dtype=t.dtype))
        i += k
    return out


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Column means of the rows ``x`` (rows, k) of every rank: float64, one all-reduce of sums and count.

    A rank with no rows contributes zeros (a mean of per-rank means would be NaN there); when no
    rank has a row the result is zeros.  Without an active group: the local mean (zeros if empty).
    """
    x = torch.as_tensor(x)
    k = int(x.shape[1]) if x.ndim == 2 else int(x.shape[-1])
    s = x.detach().to(torch.float64).sum(0).cpu() if x.shape[0] else torch.zeros(k, dtype=torch.float64)
    cnt = torch.tensor([float(x.shape[0])], dtype=torch.float64)
    s, cnt = all_reduce_sum(s, cnt)
    return s / cnt.clamp_min(1.0)
