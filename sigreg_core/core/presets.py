"""Quadrature presets of the sliced Epps–Pulley statistic (SIGReg).

The Epps–Pulley statistic of one slice (1-D projected samples ``x_1..x_N``)
against exactly N(0, 1) is, in its quadrature form,

    EP(x) = s(N) * sum_k c_k * [ (Cbar_k - phi(t_k))^2 + Sbar_k^2 ],
    Cbar_k = mean_n cos(t_k x_n),  Sbar_k = mean_n sin(t_k x_n),  phi(t) = exp(-t^2/2),

with ``c_k = quadrature weight_k * window(t_k)`` and ``s(N) = N`` (or 1).
SIGReg is the mean of EP over M random unit directions (LeJEPA, Balestriero &
LeCun, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312).

Published implementations differ in the node grid, the quadrature, the window
and the scaling, and a logged value only reproduces with the same choice.  The
named presets below are exactly the variants people log:

========================  ==============================  =====================================
name                      grid / weights / scale          matches
========================  ==============================  =====================================
``lejepa`` (default)      17 nodes on [0, 3]; trapezoid    lejepa ``EppsPulley`` (2025-12-08 on),
                          doubled by symmetry (dt at both  LeWM ``SIGReg``, lightly,
                          ends, 2 dt inside); x N          stable-pretraining
``lejepa-paper``          17 nodes on [-5, 5]; plain       LeJEPA paper, Algorithm 1
                          trapezoid; x N
``lejepa-legacy``         10 nodes on [-3, 3] (no t = 0);  lejepa ``EppsPulley`` before
                          plain trapezoid; unscaled        2025-12-08 (complex form)
``gist``                  64 nodes on [0.2, 4]; plain      the public SIGReg demo gist and the
                          trapezoid; window b = 1;         LeWM paper appendix
                          unscaled
========================  ==============================  =====================================

A :class:`Preset` can also be built by hand (``Preset.custom(...)``) with every
knob in which known implementations differ: node range and count, mirrored-half
or plain trapezoid, window bandwidth (or no window), scaling by N, per-dimension
standardisation, and the *modulus* form.

The modulus form (seen in blog posts) standardises each dimension, then compares
the squared modulus of the ECF with that of N(0, 1):

    MOD(x) = (1/K) sum_k ( Cbar_k^2 + Sbar_k^2 - exp(-t_k^2) )^2.

It ignores the phase of the ECF, so it cannot see a shift.  As in the blog's code,
each dimension is standardised with ``torch.std`` (ddof 1) and batches of fewer than
4 rows score 0 (``std_ddof=1``, ``min_rows=4``).  Its node range is not
published; we use 20 equispaced nodes on [0.25, 3] (t = 0 is excluded because
there the difference is identically zero; 3 is the range of the lejepa grid).
It is offered as the named custom configuration ``modulus`` only, never as a default.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Optional

import numpy as np

Quadrature = Literal["trapezoid", "mirrored-trapezoid", "mean"]
Form = Literal["ecf", "modulus"]

__all__ = ["Preset", "PRESETS", "get_preset", "DEFAULT_PRESET"]

DEFAULT_PRESET = "lejepa"


@dataclass(frozen=True)
class Preset:
    """One quadrature variant of the Epps–Pulley statistic.

    Attributes
    ----------
    name: label stored with every result.
    t_min, t_max, num_nodes: equispaced nodes ``t_k = t_min + k h``.
    quadrature: ``"trapezoid"`` (plain trapezoid on [t_min, t_max]),
        ``"mirrored-trapezoid"`` (trapezoid weights doubled: the integrand is even
        in t, so on [0, T] this equals the trapezoid on [-T, T]) or ``"mean"``
        (weight 1/K on every node, the modulus form).
    bandwidth: window ``exp(-t^2 / (2 b^2))``; ``None`` for no window.
    scale_by_n: multiply by the number of rows N (lejepa) or not.
    standardize: standardise each input dimension (zero mean, unit variance) first.
    std_ddof: delta degrees of freedom of that standardisation (0: population std;
        1: ``torch.std``'s default, what the blog-post modulus code uses).
    min_rows: below this many rows the statistic is defined as 0 (the blog-post
        modulus code returns 0 for batches of fewer than 4 rows); 2 otherwise.
    form: ``"ecf"`` (the Epps–Pulley integrand) or ``"modulus"``.
    description, source: shown in the app and the Method page.
    """

    name: str
    t_min: float
    t_max: float
    num_nodes: int
    quadrature: Quadrature = "trapezoid"
    bandwidth: Optional[float] = 1.0
    scale_by_n: bool = True
    standardize: bool = False
    form: Form = "ecf"
    std_ddof: int = 0
    min_rows: int = 2
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.num_nodes < 2:
            raise ValueError(f"preset {self.name!r}: num_nodes must be >= 2, got {self.num_nodes}")
        if not (math.isfinite(self.t_min) and math.isfinite(self.t_max)) or self.t_max <= self.t_min:
            raise ValueError(
                f"preset {self.name!r}: need finite t_min < t_max, got [{self.t_min}, {self.t_max}]"
            )
        if self.quadrature not in ("trapezoid", "mirrored-trapezoid", "mean"):
            raise ValueError(f"preset {self.name!r}: unknown quadrature {self.quadrature!r}")
        if self.form not in ("ecf", "modulus"):
            raise ValueError(f"preset {self.name!r}: unknown form {self.form!r}")
        if self.std_ddof not in (0, 1) or self.min_rows < 2:
            raise ValueError(f"preset {self.name!r}: std_ddof must be 0 or 1 and min_rows >= 2")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"preset {self.name!r}: bandwidth must be > 0 or None")

    # ----------------------------------------------------------------- grid
    @property
    def step(self) -> float:
        """Node spacing h."""
        return (self.t_max - self.t_min) / (self.num_nodes - 1)

    @cached_property
    def nodes(self) -> np.ndarray:
        """Nodes t_k (float64, K)."""
        return self.t_min + self.step * np.arange(self.num_nodes, dtype=np.float64)

    @cached_property
    def quadrature_weights(self) -> np.ndarray:
        """Quadrature weights alone (no window), float64 (K,)."""
        k = self.num_nodes
        if self.quadrature == "mean":
            return np.full(k, 1.0 / k)
        w = np.full(k, self.step)
        w[[0, -1]] = self.step / 2
        if self.quadrature == "mirrored-trapezoid":
            w = 2 * w
        return w

    @cached_property
    def window(self) -> np.ndarray:
        """Window values at the nodes (float64, K)."""
        if self.bandwidth is None:
            return np.ones(self.num_nodes)
        return np.exp(-(self.nodes**2) / (2 * self.bandwidth**2))

    @cached_property
    def weights(self) -> np.ndarray:
        """c_k = quadrature weight * window (float64, K)."""
        return self.quadrature_weights * self.window

    @cached_property
    def target(self) -> np.ndarray:
        """Target characteristic function of N(0, 1) at the nodes, exp(-t^2/2)."""
        return np.exp(-(self.nodes**2) / 2)

    # ------------------------------------------------------- reference facts
    def null_mean(self, n: int | None = None) -> float:
        """Exact E[EP] of one slice when the slice is exactly N(0, 1).

        For the ECF form, E[(Cbar - phi)^2 + Sbar^2] = (1 - exp(-t^2)) / N at every N,
        so E[EP] = s(N)/N * sum_k c_k (1 - exp(-t_k^2)) (1.052464 for ``lejepa``).
        Unscaled presets need ``n``.  The modulus form has no such closed form
        here (it is standardised); ``None`` is returned.
        """
        if self.form != "ecf":
            return float("nan")
        base = float(np.sum(self.weights * (1 - np.exp(-(self.nodes**2)))))
        if self.scale_by_n:
            return base
        if n is None:
            raise ValueError(f"preset {self.name!r} is not scaled by N: null_mean needs n")
        return base / n

    def collapse_value(self, n: int) -> float:
        """EP of a fully collapsed slice (every x_n = 0): s(N) sum_k c_k (1 - phi_k)^2."""
        if self.form != "ecf":
            return float(np.mean((1 - np.exp(-(self.nodes**2))) ** 2))
        base = float(np.sum(self.weights * (1 - self.target) ** 2))
        return base * n if self.scale_by_n else base

    def to_dict(self) -> dict:
        """JSON-safe description (everything needed to rebuild it)."""
        d = dataclasses.asdict(self)
        d["nodes"] = [float(v) for v in self.nodes]
        d["weights"] = [float(v) for v in self.weights]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    @classmethod
    def custom(
        cls,
        *,
        t_min: float = 0.0,
        t_max: float = 3.0,
        num_nodes: int = 17,
        quadrature: Quadrature = "mirrored-trapezoid",
        bandwidth: Optional[float] = 1.0,
        scale_by_n: bool = True,
        standardize: bool = False,
        form: Form = "ecf",
        name: str = "custom",
        std_ddof: int = 0,
        min_rows: int = 2,
    ) -> "Preset":
        """A hand-built configuration; defaults reproduce ``lejepa``."""
        return cls(
            name=name,
            t_min=float(t_min),
            t_max=float(t_max),
            num_nodes=int(num_nodes),
            quadrature=quadrature,
            bandwidth=None if bandwidth is None else float(bandwidth),
            scale_by_n=bool(scale_by_n),
            standardize=bool(standardize),
            form=form,
            std_ddof=int(std_ddof),
            min_rows=int(min_rows),
            description="custom configuration",
            source="user",
        )


PRESETS: dict[str, Preset] = {
    "lejepa": Preset(
        name="lejepa",
        t_min=0.0,
        t_max=3.0,
        num_nodes=17,
        quadrature="mirrored-trapezoid",
        bandwidth=1.0,
        scale_by_n=True,
        description="17 nodes on [0, 3], trapezoid doubled by symmetry, window exp(-t²/2), × N",
        source="lejepa EppsPulley (since 2025-12-08), LeWorldModel SIGReg, lightly, stable-pretraining",
    ),
    "lejepa-paper": Preset(
        name="lejepa-paper",
        t_min=-5.0,
        t_max=5.0,
        num_nodes=17,
        quadrature="trapezoid",
        bandwidth=1.0,
        scale_by_n=True,
        description="17 nodes on [-5, 5], plain trapezoid, window exp(-t²/2), × N",
        source="LeJEPA paper (arXiv 2511.08544), Algorithm 1",
    ),
    "lejepa-legacy": Preset(
        name="lejepa-legacy",
        t_min=-3.0,
        t_max=3.0,
        num_nodes=10,
        quadrature="trapezoid",
        bandwidth=1.0,
        scale_by_n=False,
        description="10 nodes on [-3, 3] (t = 0 not a node), plain trapezoid, window exp(-t²/2), unscaled",
        source="lejepa EppsPulley before 2025-12-08 (complex form)",
    ),
    "gist": Preset(
        name="gist",
        t_min=0.2,
        t_max=4.0,
        num_nodes=64,
        quadrature="trapezoid",
        bandwidth=1.0,
        scale_by_n=False,
        description="64 nodes on [0.2, 4], plain trapezoid, window exp(-t²/(2b²)) with b = 1, unscaled",
        source="public SIGReg demo gist, LeWorldModel paper appendix",
    ),
    "modulus": Preset(
        name="modulus",
        t_min=0.25,
        t_max=3.0,
        num_nodes=20,
        quadrature="mean",
        bandwidth=None,
        scale_by_n=False,
        standardize=True,
        form="modulus",
        std_ddof=1,
        min_rows=4,
        description="custom: standardise dims (torch.std, ddof 1), 0 below 4 rows, mean over 20 nodes on [0.25, 3] of (|ECF|² - exp(-t²))²; blind to shifts",
        source="blog-post form (node range not published; ours documented above)",
    ),
}

#: The presets that reproduce a published implementation (``modulus`` is a custom form).
REFERENCE_PRESETS = ("lejepa", "lejepa-paper", "lejepa-legacy", "gist")


def get_preset(preset: "str | Preset") -> Preset:
    """Return a :class:`Preset` from a name or a Preset (returned as is)."""
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, dict):
        return Preset.from_dict(preset)
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)} or build Preset.custom(...)"
        ) from None
