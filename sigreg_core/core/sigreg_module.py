"""``SIGReg``: the sliced Epps–Pulley statistic as a ``torch.nn.Module`` for a training loop.

The statistic is :func:`sigreg_core.core.statistic.sigreg` (its docstring has the formula:
``SIGReg = mean_m EP_m``, ``EP_m = s(N) sum_k c_k [(Cbar_mk - phi(t_k))^2 + Sbar_mk^2]``; LeJEPA,
Balestriero & LeCun, arXiv 2511.08544); this module adds what a step needs: LeJEPA's seeded
direction draw per step (prepared on a background thread while the step runs, bit for bit the
same draw), DDP handling and the global-batch weight.  Split from ``statistic.py`` (issue 23),
which re-exports :class:`SIGReg`.
"""
from __future__ import annotations

from typing import Optional

import torch

from sigreg_core.core import distributed as _dist
from sigreg_core.core import statistic as _st
from sigreg_core.core.directions import DrawCache, check_directions
from sigreg_core.core.presets import Preset, get_preset
from sigreg_core.core.statistic import as_float_tensor, check_shape

__all__ = ["SIGReg"]


class SIGReg(torch.nn.Module):
    """SIGReg as a training loss (LeJEPA / LeWorldModel).

    By default every call draws fresh directions from a CPU generator seeded
    with a step counter kept in the module's state (``step`` buffer, saved in
    checkpoints), as lejepa's ``SlicingUnivariateTest`` seeds with its global
    step; the counter advances on every call and, under torch.distributed, is
    synchronised to the maximum over ranks so all ranks use the same directions.
    With ``fixed_directions=True`` (or explicit ``directions``) the same
    directions are used on every call.

    The draw of the next step (seed + step + 1) can be prepared in a background
    thread while the rest of the training step computes; it is the same seeded
    draw, bit for bit, and is used only if the next call asks for exactly that
    seed and dimension.  ``prefetch="auto"`` (the default) does so when there is
    a core to spare for it: embeddings on an accelerator (the CPU waits on the
    device anyway), or fewer torch threads than usable cores.  On a CPU whose
    every core runs torch's threads, a second thread only competes with them
    (measured on 2 cores: back-to-back steps 1.02x-1.3x slower), so the draw stays on the
    caller's thread.  ``prefetch=True`` / ``False`` force it either way.  Directions the module drew (or that
    were checked once at construction) are not re-validated on every call.

    Example::

        sigreg_loss = SIGReg(num_slices=1024)          # preset "lejepa"
        loss = pred_loss + 0.09 * sigreg_loss(emb)      # emb: (..., N, D)

    Under DDP (an initialised torch.distributed group), the effective weight
    -------------------------------------------------------------------------
    Every rank's value is the statistic of the *global* batch (the ECF sums are
    all-reduced; a rank with zero rows joins every collective with zero sums, so no
    rank ever waits on it), and each rank's rows get exactly their part of the
    global-batch gradient.  DistributedDataParallel then *averages* the parameter
    gradients over the W ranks, so ``loss = pred + λ * SIGReg(emb)`` trains with an
    effective SIGReg weight of **λ / W** relative to one process on the global batch
    (the prediction loss, a per-rank mean, is averaged to the global mean and keeps
    its weight): the same λ regularises half as hard on 2 GPUs as on 1.  This matches
    lejepa's own DDP behaviour.  ``global_weight=True`` keeps λ per global batch: the
    value is unchanged and its gradient is multiplied by W, so after DDP's mean the
    parameter gradient equals the single-process one on the concatenated batch
    (tested on gloo with uneven and empty ranks, tests/test_distributed_uneven.py).
    Leading axes (views) must agree across ranks: one all-reduce per view.
    """

    def __init__(
        self,
        num_slices: int = 1024,
        preset: "str | Preset" = "lejepa",
        *,
        seed: int = 0,
        fixed_directions: bool = False,
        directions: Optional[torch.Tensor] = None,
        prefetch: "bool | str" = "auto",
        global_weight: bool = False,
    ) -> None:
        super().__init__()
        self.global_weight = bool(global_weight)
        self.preset = get_preset(preset)
        self.num_slices = int(num_slices)
        if self.num_slices < 1:
            raise ValueError(f"SIGReg: num_slices must be >= 1, got {num_slices}")
        self.seed = int(seed)
        self.fixed_directions = bool(fixed_directions or directions is not None)
        if prefetch not in (True, False, "auto"):
            raise ValueError(f"SIGReg: prefetch must be True, False or 'auto', got {prefetch!r}")
        self.prefetch = prefetch
        if directions is not None:
            directions = torch.as_tensor(directions, dtype=torch.float32)
            directions = check_directions(directions, directions.shape[0] if directions.ndim == 2 else -1)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("directions", directions, persistent=directions is not None)
        self._drawn = DrawCache()

    def extra_repr(self) -> str:
        mode = "fixed" if self.fixed_directions else "fresh per step"
        return f"preset={self.preset.name}, num_slices={self.num_slices}, directions={mode}"

    def _next_seed(self) -> int:
        if self.fixed_directions:
            return self.seed
        step = self.step.detach().clone()
        if _dist.group_active():
            import torch.distributed as dist

            if dist.get_backend() == "nccl":
                step = step.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(step, op=dist.ReduceOp.MAX)
        return self.seed + int(step)

    def current_directions(self, dim: int) -> torch.Tensor:
        """The directions of the next call (D, M), float32 on the CPU (or the given buffer)."""
        if self.directions is not None:
            return self.directions
        return self._drawn.get(int(dim), self.num_slices, self._next_seed())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = as_float_tensor(z, "z")
        active = _dist.group_active()
        check_shape(z, "z", min_rows=0 if active else 2)
        d = z.shape[-1]
        if self.directions is not None:
            if self.directions.shape[0] != d:
                raise ValueError(
                    f"directions have {self.directions.shape[0]} rows but the embeddings have D = {d} dimensions"
                )
            a = self.directions
        else:
            seed = self._next_seed()
            a = self._drawn.get(d, self.num_slices, seed, device=z.device)
            if not self.fixed_directions and _st._prefetch_pays(self.prefetch, z.device):
                self._drawn.prefetch(d, self.num_slices, seed + 1, device=z.device)
        value = _st._sigreg(z, a, self.preset, active, None, False)
        if self.global_weight and active:
            value = _st._ddp_global_weight(value)
        with torch.no_grad():
            self.step.add_(1)
        return value

    # the background draw is not state: drop it from pickles and deep copies
    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_drawn"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("global_weight", False)  # modules pickled before the option existed
        self._drawn = DrawCache()
