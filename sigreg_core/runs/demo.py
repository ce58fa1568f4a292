"""A small JEPA-style world model trained on synthetic trajectories, logged with :class:`RunWriter`.

LeWorldModel (arXiv 2603.19312) trains an encoder and an action-conditioned
predictor end to end, with no stop-gradient and no EMA target, on

    loss = || pred(enc(o_t), a_t) - enc(o_{t+1}) ||^2  +  lambda * SIGReg(enc(o)),

where SIGReg is the sliced Epps–Pulley statistic of LeJEPA (arXiv 2511.08544).
Without the regulariser (lambda = 0) the prediction loss alone is minimised by a
constant embedding, and the encoder collapses; with lambda of about 0.09 (the
value LeWM uses) the embeddings stay close to N(0, I).  This module reproduces
that on the CPU in a minute or two, so the Monitor page can show both runs.

The world
---------
A hidden state s_t in R^S (S = ``state_dim``) follows stable linear dynamics
driven by the action a_t in R^A and process noise,

    s_{t+1} = F s_t + B a_t + sigma w_t,   w_t ~ N(0, I),

with F a random orthogonal matrix times 0.9 and actions drawn N(0, I); the
trajectories start from the stationary law, so s_t is Gaussian at every t.  The
agent sees only o_t = W2 tanh(0.5 W1 s_t / scale) + 0.05 e_t in R^O (O = ``obs_dim``):
a fixed random two-layer network (a mildly nonlinear, well-conditioned mixing).  A
good encoder undoes it and whitens s, which is exactly N(0, I), so a healthy verdict
is reachable; a constant encoder predicts perfectly, so collapse is reachable too.

Training
--------
Encoder: MLP O -> 128 -> 128 -> D (last layer scaled so the embeddings start at about
unit scale).  Predictor: residual MLP z_t + f(z_t, a_t), (D + A) -> 128 -> D.  Adam,
learning rate 3e-3 with a cosine decay to 10 %, batches of ``batch`` trajectories of
``horizon`` steps; SIGReg (:class:`sigreg_core.core.sigreg_module.SIGReg`, preset ``lejepa``,
256 fresh directions per step) on all B x (T + 1) embeddings of the batch.  Every
``log_every`` steps the embeddings of a fixed held-out set of ``eval_rows``
observations of independent states are logged through
:class:`sigreg_core.runs.RunWriter` with the losses as scalars.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from sigreg_core.runs import RunWriter
from sigreg_core.core.sigreg_module import SIGReg

__all__ = ["DemoConfig", "SyntheticWorld", "WorldModel", "train_demo", "add_demo_parser", "run_demo",
           "DEFAULT_STEPS"]

DEFAULT_STEPS = 400


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo world and model (the defaults run in about a minute on 2 cores)."""

    state_dim: int = 8
    action_dim: int = 4
    obs_dim: int = 32
    embed_dim: int = 8
    hidden: int = 128
    batch: int = 32
    horizon: int = 8
    lr: float = 3e-3
    lr_floor: float = 0.1
    sigreg_slices: int = 256
    eval_rows: int = 512
    process_noise: float = 0.3
    mixing_gain: float = 0.5
    init_scale: float = 16.0


class SyntheticWorld:
    """Linear-Gaussian hidden dynamics seen through a fixed nonlinear observation map."""

    def __init__(self, cfg: DemoConfig, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(int(seed) + 1000)
        s, a, o = cfg.state_dim, cfg.action_dim, cfg.obs_dim
        q, _ = torch.linalg.qr(torch.randn(s, s, generator=g))
        self.F = 0.9 * q
        self.B = torch.randn(s, a, generator=g) / math.sqrt(a)
        self.sigma = cfg.process_noise
        # stationary covariance: the fixed point of P = F P F^T + B B^T + sigma^2 I (|eig F| = 0.9)
        p = torch.zeros(s, s)
        bb = self.B @ self.B.T + self.sigma**2 * torch.eye(s)
        for _ in range(200):
            p = self.F @ p @ self.F.T + bb
        self.P = p
        self.P_chol = torch.linalg.cholesky(p)
        self.W1 = torch.randn(s, 2 * o, generator=g) / math.sqrt(s)
        self.W2 = torch.randn(2 * o, o, generator=g) / math.sqrt(2 * o)
        self.s_scale = 1.0 / math.sqrt(float(torch.diagonal(p).mean()))
        self.cfg = cfg

    def observe(self, s: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        h = torch.tanh((s * self.s_scale) @ self.W1 * self.cfg.mixing_gain)
        return h @ self.W2 + 0.05 * torch.randn(*s.shape[:-1], self.cfg.obs_dim, generator=g)

    def trajectories(self, batch: int, horizon: int, g: torch.Generator):
        """Observations (B, T+1, O) and actions (B, T, A) of ``batch`` trajectories."""
        s_dim, a_dim = self.cfg.state_dim, self.cfg.action_dim
        s = torch.randn(batch, s_dim, generator=g) @ self.P_chol.T
        states = [s]
        actions = torch.randn(batch, horizon, a_dim, generator=g)
        for t in range(horizon):
            s = s @ self.F.T + actions[:, t] @ self.B.T + self.sigma * torch.randn(batch, s_dim, generator=g)
            states.append(s)
        st = torch.stack(states, 1)
        return self.observe(st, g), actions


class WorldModel(nn.Module):
    """Encoder o -> z and action-conditioned predictor (z_t, a_t) -> z_{t+1}."""

    def __init__(self, cfg: DemoConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.encoder = nn.Sequential(nn.Linear(cfg.obs_dim, h), nn.GELU(), nn.Linear(h, h), nn.GELU(),
                                     nn.Linear(h, cfg.embed_dim))
        self.predictor = nn.Sequential(nn.Linear(cfg.embed_dim + cfg.action_dim, h), nn.GELU(),
                                       nn.Linear(h, cfg.embed_dim))
        with torch.no_grad():  # embeddings of about unit scale at the start, as a pretrained encoder
            self.encoder[-1].weight.mul_(cfg.init_scale)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor):
        z = self.encoder(obs)                     # (B, T+1, D)
        pred = z[:, :-1] + self.predictor(torch.cat([z[:, :-1], actions], -1))
        return z, pred


def train_demo(
    run_dir,
    sigreg_weight: float = 0.09,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    log_every: int = 10,
    progress: Optional[Callable[[int, int, dict], None]] = None,
    *,
    config: DemoConfig = DemoConfig(),
    writer_kwargs: Optional[dict] = None,
    threads: Optional[int] = None,
) -> dict:
    """Train the demo world model for ``steps`` steps, logging to ``run_dir`` every ``log_every`` steps.

    ``sigreg_weight`` is lambda (0 collapses).  ``progress(step, steps, scalars)`` is
    called after every logged step.  Returns the last scalars and the writer's counts.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if not (sigreg_weight >= 0 and math.isfinite(sigreg_weight)):
        raise ValueError(f"sigreg_weight must be a finite number >= 0, got {sigreg_weight}")
    if threads is not None:
        torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    cfg = config
    world = SyntheticWorld(cfg, seed=seed)
    model = WorldModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    floor = cfg.lr_floor
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    reg = SIGReg(num_slices=cfg.sigreg_slices, seed=int(seed))
    g_train = torch.Generator().manual_seed(int(seed) + 1)
    g_eval = torch.Generator().manual_seed(int(seed) + 2)
    # held-out observations of independent states (rows of one trajectory are correlated, and the
    # null law of the statistic assumes independent rows)
    eval_obs = world.trajectories(cfg.eval_rows, 0, g_eval)[0].reshape(-1, cfg.obs_dim)
    meta = {"demo": "jepa-world-model", "sigreg_weight": float(sigreg_weight), "steps": int(steps),
            "seed": int(seed), "log_every": int(log_every), **asdict(cfg)}
    # the hyper-parameters the Monitor page groups by (lambda, seed, ...)
    hp = {"lambda": float(sigreg_weight), "seed": int(seed), "steps": int(steps), "lr": cfg.lr,
          "embed_dim": cfg.embed_dim, "batch": cfg.batch}
    wk = {"every": log_every, "max_rows": cfg.eval_rows, "metadata": meta, "config": hp}
    wk.update(writer_kwargs or {})
    last: dict = {}
    t0 = time.perf_counter()
    with RunWriter(run_dir, **wk) as writer:
        for step in range(steps + 1):
            obs, actions = world.trajectories(cfg.batch, cfg.horizon, g_train)
            z, pred = model(obs, actions)
            pred_loss = (pred - z[:, 1:]).pow(2).mean()
            if sigreg_weight > 0:
                sig = reg(z.reshape(-1, cfg.embed_dim))
            else:
                with torch.no_grad():
                    sig = reg(z.reshape(-1, cfg.embed_dim))
            loss = pred_loss + sigreg_weight * sig
            if step < steps:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if writer.should_log(step):
                with torch.no_grad():
                    model.eval()
                    emb = model.encoder(eval_obs)
                    model.train()
                last = {"loss": float(loss.detach()), "pred_loss": float(pred_loss.detach()),
                        "sigreg_loss": float(sig.detach()), "lambda": float(sigreg_weight),
                        "lr": float(opt.param_groups[0]["lr"]), "seconds": time.perf_counter() - t0}
                writer.log(step, emb, **last)
                if progress is not None:
                    progress(step, steps, last)
        written, failed = writer.written, writer.failed
    return {**last, "written": written, "failed": failed, "run_dir": str(run_dir)}


# ------------------------------------------------------------------------------ CLI
def add_demo_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``demo-train`` to an argparse subparsers object (the ``sigreg`` CLI)."""
    p = subparsers.add_parser(
        "demo-train",
        help="train a small JEPA-style world model on synthetic trajectories and log it for the Monitor page",
        description="Train a small JEPA-style world model (encoder + action-conditioned predictor, loss = "
                    "prediction + lambda * SIGReg, as LeWorldModel) on synthetic trajectories on the CPU, "
                    "logging embedding snapshots and their latent-health summary through RunWriter. "
                    "lambda = 0 collapses; lambda = 0.09 stays healthy.",
    )
    p.add_argument("--run-dir", required=True, help="directory of the run (created; an existing run is appended to)")
    p.add_argument("--sigreg-weight", type=float, default=0.09, help="lambda, the SIGReg weight (default 0.09)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    p.add_argument("--log-every", type=int, default=10, help="log a snapshot every this many steps (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, the model and the data (default 0)")
    p.add_argument("--max-rows", type=int, default=None, help=f"rows per logged snapshot (default {DemoConfig().eval_rows})")
    p.add_argument("--keep-last", type=int, default=None, help="keep only the last K snapshots (index rows kept)")
    p.add_argument("--keep-every", type=int, default=None, help="keep every k-th snapshot (index rows kept)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_demo)
    return p


def run_demo(args) -> int:
    """Run ``demo-train``; 0 on success, 2 with one line on stderr for bad arguments."""
    try:
        if args.steps < 1 or args.log_every < 1:
            raise ValueError("--steps and --log-every must be >= 1")
        if not (args.sigreg_weight >= 0 and math.isfinite(args.sigreg_weight)):
            raise ValueError(f"--sigreg-weight must be a finite number >= 0, got {args.sigreg_weight}")
        for name in ("max_rows", "keep_last", "keep_every"):
            v = getattr(args, name, None)
            if v is not None and v < (2 if name == "max_rows" else 1):
                raise ValueError(f"--{name.replace('_', '-')} is too small: {v}")
        run_dir = Path(args.run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise ValueError(f"--run-dir {run_dir} exists and is not a directory")
    except ValueError as exc:
        print(f"sigreg demo-train: error: {exc}", file=sys.stderr)
        return 2
    wk = {k: getattr(args, k) for k in ("keep_last", "keep_every") if getattr(args, k, None) is not None}
    cfg = DemoConfig() if args.max_rows is None else DemoConfig(eval_rows=int(args.max_rows))

    def progress(step, steps, scalars):
        if not args.quiet:
            print(f"step {step:>6}/{steps}  loss {scalars['loss']:.4f}  pred {scalars['pred_loss']:.4f}  "
                  f"SIGReg {scalars['sigreg_loss']:.3f}  ({scalars['seconds']:.1f} s)", flush=True)

    try:
        out = train_demo(run_dir, sigreg_weight=args.sigreg_weight, steps=args.steps, seed=args.seed,
                         log_every=args.log_every, progress=progress, config=cfg, writer_kwargs=wk)
    except OSError as exc:
        print(f"sigreg demo-train: error: cannot use --run-dir {run_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {out['written']} steps to {run_dir}" + (f" ({out['failed']} failed)" if out["failed"] else ""))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sigreg_core.runs.demo")
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
