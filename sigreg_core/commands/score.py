"""``sigreg score``: its parser, its table and its run (single process and under torchrun).

Each FILE is loaded with :func:`sigreg_core.inputs.loading.load_embeddings` (no pickle,
limits enforced) and assessed with SIGReg, the sliced Epps–Pulley statistic of LeJEPA
(Balestriero & LeCun, arXiv 2511.08544) and LeWorldModel (arXiv 2603.19312): the mean
over M random unit directions u_m of

    EP(Z u_m) = N * sum_k c_k [ (mean_n cos(t_k x_n) - exp(-t_k^2/2))^2 + (mean_n sin(t_k x_n))^2 ],

compared with its exact null law (see :mod:`sigreg_core.assessment.assess`).  A (V, N, D)
file is V batches scored separately.  ``--distributed`` under ``torchrun``: rank r loads
shards r, r+W, r+2W, ...; the ECF sums are all-reduced (gloo on CPU, NCCL on CUDA) so
rank 0 prints the statistic of the concatenated batch.  With fewer shards than processes
the ranks without one hold no rows and join every collective with zeros (never a hang).
Heavy modules (torch, SciPy, the assessment) are imported only when a file is scored.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Optional

from sigreg_core.commands.common import (
    EXIT_FAIL_ON,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    err,
    nonneg_int,
    positive_int,
)
from sigreg_core.util.jsonsafe import to_jsonable

__all__ = ["add_score_parser", "cmd_score", "VERDICT_LEVEL"]

#: verdict order: the one table in sigreg_core.assessment.verdict ("suspicious", the earlier name of
#: everything between healthy and collapsed, is a --fail-on alias of mild)
from sigreg_core.assessment.verdict import FAIL_ON_LEVELS as VERDICT_LEVEL, GATE_P  # noqa: E402


def add_score_parser(sub):
    """Add the ``score`` subcommand to an argparse subparsers object; returns its parser."""
    from sigreg_core.assessment.family_names import FAMILIES
    from sigreg_core.core.presets import PRESETS

    s = sub.add_parser(
        "score",
        help="score embedding files (table, or JSON with --json); exit 1 when --fail-on is met",
        description="Score embedding files with SIGReg against its exact null law. "
        "Exit 0 fine, 1 when --fail-on is met, 2 on bad input or usage.",
    )
    s.add_argument("files", nargs="+", metavar="FILE", help=".npy .npz .pt .pth .safetensors .csv .tsv .parquet")
    s.add_argument("--key", help="array inside a container (.npz member, safetensors tensor, dotted .pt path, parquet column)")
    s.add_argument("--view", type=int, default=None,
                   help="for (V, N, D) files, score only this view (default: every view, scored separately and averaged)")
    s.add_argument("--preset", default="lejepa", choices=sorted(PRESETS), help="Epps-Pulley variant (default lejepa)")
    s.add_argument("--slices", type=positive_int, default=1024, help="number of random directions M (default 1024)")
    s.add_argument("--seed", type=nonneg_int, default=0, help="seed of the directions and of --max-rows (default 0)")
    s.add_argument("--family", default="random", choices=list(FAMILIES),
                   help="slice family: random (SIGReg's seeded directions), coordinate axes, principal axes, "
                        "or a searched worst direction (default random)")
    s.add_argument("--null-draws", type=nonneg_int, default=None,
                   help="size of the Monte Carlo null of SIGReg (default 200, cached in $LATENT_HEALTH_CACHE; 0 skips it: "
                        "the verdict uses exact p-values only)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    s.add_argument("--max-rows", type=positive_int, default=None,
                   help="score a random subset of at most R rows per file (default: 131 072 rows at 1024 slices, "
                        "$LATENT_HEALTH_SCORE_WORK / slices; every row of a 1-D set; at most the row limit 2^20)")
    s.add_argument("--max-bytes", default=None, help="byte limit of the loader, e.g. 2GiB (default $LATENT_HEALTH_MAX_BYTES or 8GiB)")
    s.add_argument("--drop-nonfinite", action="store_true", help="drop rows holding NaN/Inf instead of refusing the file")
    s.add_argument("--labels", default=None, metavar="LABELS",
                   help="class labels, one per row (.npy .npz .pt .safetensors .csv .tsv .parquet): adds held-out k-NN "
                        "and linear-probe accuracy (with --labels-key alone: that key in each FILE's own container)")
    s.add_argument("--labels-key", default=None, help="array / column of the labels inside LABELS (or inside FILE)")
    s.add_argument("--json", action="store_true", help="print a JSON list: one object per file ({file, ...Assessment.to_dict()})")
    s.add_argument("--fail-on", choices=["mild", "marked", "severe", "collapsed", "suspicious"], default=None,
                   help="exit 1 if any file's verdict is this bad or worse (CI gate; suspicious = mild)")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s.add_argument("--distributed", action="store_true",
                   help="under torchrun: each rank scores its shards, sums are all-reduced, rank 0 prints the global result")
    return s


# ----------------------------------------------------------------------------- output


def _jsonable(obj):
    # NaN -> null; infinities keep their sign as strings
    return to_jsonable(obj, nonfinite=lambda f: None if math.isnan(f) else ("inf" if f > 0 else "-inf"))


def _fmt(x, digits=4) -> str:
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.3g}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.{max(digits - 1, 1)}f}"


def _directions(health: dict) -> str:
    """'44.5 (12.7 %)': effective directions and their share of N(0, I)'s."""
    r, q = health.get("effective_directions"), health.get("relative_effective_rank")
    if not isinstance(r, (int, float)) or not isinstance(q, (int, float)):
        return "-"
    return f"{r:.3g} ({100 * q:.3g} %)"


def _fmt_p(p) -> str:
    """A p-value; the floor (1e-300, below which only log10_p_value keeps the value) prints as < 1e-300."""
    try:
        v = float(p)
    except (TypeError, ValueError):
        return _fmt(p)
    return "< 1e-300" if 0 <= v <= 1e-300 else _fmt(v, 3)


def _modes_text(modes) -> str:
    if not modes:
        return "-"
    out = []
    for m in modes:
        if isinstance(m, str):
            out.append(m)
        elif isinstance(m, dict):
            out.append(str(m.get("name") or m.get("mode") or m.get("kind") or m))
        else:
            out.append(str(getattr(m, "name", None) or getattr(m, "mode", None) or m))
    return ", ".join(out)


def _table(rows: list) -> str:
    from sigreg_core.util.text import visible

    headers = ["file", "rows", "dim", "SIGReg", "x null", "p-value", "verdict", "directions", "collapsing?",
               "distance", "modes", "conventions"]
    body = []
    for r in rows:
        label = visible(r["file"]) + (f"[{visible(r['key'])}]" if r.get("key") else "")  # one row stays one line
        if r.get("num_views", 1) > 1:
            label += f" ({r['num_views']} views)"
        if r.get("view") is not None:
            label += f" (view {r['view']})"
        ans = r.get("answers") or {}
        dist = ans.get("distance") or {}
        rho = dist.get("relative_distance")
        body.append([
            label, f"{r['rows']:,}", str(r["dim"]), _fmt(r.get("sigreg")), _fmt(r.get("sigreg_over_null")),
            _fmt_p(r.get("p_value")), str(r.get("verdict")), _directions(ans.get("health") or {}),
            str((ans.get("collapse") or {}).get("answer", "-")),
            f"{dist.get('level', '-')}" + (f" ({_fmt(rho, 2)})" if isinstance(rho, (int, float)) else ""),
            _modes_text(r.get("modes")),
            ", ".join(str(c.get("name")) for c in ans.get("conventions") or []) or "-",
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]
    right = {1, 2, 3, 4, 5}
    lines = []
    for cells in [headers] + body:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    if rows:
        first = rows[0]
        lines.append("")
        lines.append(
            f"preset {first.get('preset')}, {first.get('family')} slices x {first.get('num_slices')}, "
            f"seed {first.get('seed')}, device {first.get('device')}; verdict: collapsed below 2 effective "
            f"directions or on an exact rank loss, else healthy / mild / marked / severe by the share of N(0, I)'s "
            f"directions in use (directions: r (% of N(0, I))), healthy whenever the "
            f"{'Monte Carlo calibrated' if (first.get('config') or {}).get('null_draws') else 'Bonferroni (no Monte Carlo null)'}"
            f" p-value is >= {GATE_P:g}; distance from N(0, I) after centring and one global scale, 0 = N(0, I), "
            f"1 = a set on one line; docs/calibration.md"
        )
    from sigreg_core.present.quality import quality_lines

    lines.extend(quality_lines(rows))  # alpha-ReQ, LiDAR, probe accuracies (issue 22)
    for r in rows:
        for n in r.get("notices", []):
            lines.append(f"note: {visible(r['file'])}: {visible(n)}")
    return "\n".join(lines)


class _Progress:
    """A tqdm bar on stderr fed by assess's ``progress(fraction, message)`` (off when quiet or not a TTY)."""

    def __init__(self, quiet: bool, desc: str):
        self.bar = None
        self.desc = desc
        self.enabled = not quiet and sys.stderr.isatty()

    def __call__(self, fraction: float, message: str = ""):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=1000, desc=self.desc, leave=False, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        self.bar.n = int(round(1000 * min(max(float(fraction), 0.0), 1.0)))
        if message:
            self.bar.set_postfix_str(str(message)[:60], refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _assess(z, args, progress, distributed: bool):
    from sigreg_core.assessment.assess import assess

    kwargs = dict(num_slices=args.slices, seed=args.seed, preset=args.preset, family=args.family,
                  device=args.device, progress=progress, distributed=distributed)
    if args.null_draws is not None:
        kwargs["null_draws"] = args.null_draws
    return assess(z, **kwargs)


def _result_row(label: str, array, args, *, notices=(), key=None, distributed=False, rows_total=None) -> dict:
    """Assess one array ((N, D), or (V, N, D) views scored separately and averaged) into a row."""
    bar = _Progress(args.quiet, label)
    try:
        result = _assess(array, args, bar, distributed)
    finally:
        bar.close()
    row = {"file": label}
    if key is not None:
        row["key"] = key
    row["rows"] = int(rows_total if rows_total is not None else array.shape[-2])
    row["dim"] = int(array.shape[-1])
    row["num_views"] = int(array.shape[0]) if array.ndim == 3 else 1
    if args.view is not None:
        row["view"] = args.view
    row["notices"] = list(notices)
    if (result.config or {}).get("work_budget"):
        row["notices"].append(result.config["work_budget"])
    for k, val in result.to_dict().items():
        if k not in row:
            row[k] = val
    cfg = row.get("config") or {}
    row.setdefault("preset", cfg.get("preset", args.preset))
    row.setdefault("num_slices", cfg.get("num_slices", args.slices))
    row.setdefault("seed", cfg.get("seed", args.seed))
    row.setdefault("family", cfg.get("family", args.family))
    from sigreg_core.present.quality import quality_fields

    row.update(quality_fields(row.get("metrics") or {}))  # alpha_req (+ fit range), lidar of views
    return row


def _load(path: str, args):
    from sigreg_core.inputs.loading import load_embeddings

    rows = args.max_rows
    if rows is None:  # the scoring default, decided from the header's shape (seconds, not minutes)
        from sigreg_core.assessment.budget import score_rows, score_work

        score_work()  # a malformed $LATENT_HEALTH_SCORE_WORK is one line of its own, not a file error

        def rows(dim, views, _m=args.slices):
            return score_rows(dim, _m)
    return load_embeddings(
        path, key=args.key, max_rows=rows, view=args.view, drop_nonfinite=args.drop_nonfinite,
        max_bytes=args.max_bytes, seed=args.seed,
    )


def _exit_code(rows: list, fail_on: Optional[str]) -> int:
    """0, or 1 when ``--fail-on`` is met; fails closed: a verdict the gate does not rank (too few rows,
    an unknown word) fails it too, with one line on stderr saying so."""
    if fail_on is None:
        return EXIT_OK
    from sigreg_core.assessment.verdict import fail_on_met

    failed = False
    for r in rows:
        met, why = fail_on_met(r.get("verdict"), fail_on)
        if met:
            failed = True
            if why:
                err(f"{PROG} score: --fail-on {fail_on}: {r.get('file')}: {why}")
    return EXIT_FAIL_ON if failed else EXIT_OK


def _emit(rows: list, args) -> None:
    if args.json:
        sys.stdout.write(json.dumps(_jsonable(rows), indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows) + "\n")
    sys.stdout.flush()


def _check_common(args) -> None:
    from sigreg_core.core.device import resolve_device
    from sigreg_core.inputs.loading import parse_byte_size

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"{PROG} score: {exc}") from None
    if args.max_bytes is not None:
        args.max_bytes = parse_byte_size(args.max_bytes)  # EmbeddingLoadError → exit 2
    if args.max_rows is not None and args.max_rows < 2:
        raise UsageError(f"{PROG} score: --max-rows must be at least 2 (SIGReg needs 2 rows or more)")


def cmd_score(args) -> int:
    _check_common(args)
    with_labels = getattr(args, "labels", None) is not None or getattr(args, "labels_key", None) is not None
    if args.distributed and with_labels:
        raise UsageError(f"{PROG} score: --labels is not supported with --distributed; score the gathered set")
    if args.distributed:
        return _score_distributed(args)
    from sigreg_core.inputs.loading import check_source

    for path in args.files:  # cheap checks first: a typo in the last file must not cost the scoring of the others
        check_source(path)
    rows = []
    for path in args.files:
        emb = _load(path, args)
        y = None
        if with_labels:  # probes with labels (issue 22), read before scoring
            from sigreg_core.inputs.labels import labels_for

            y = labels_for(emb, path, args.labels, args.labels_key, max_bytes=args.max_bytes)
        rows.append(_result_row(path, emb.array, args, notices=emb.notices, key=emb.key))
        if y is not None:
            from sigreg_core.assessment.probes import label_quality
            from sigreg_core.core.device import resolve_device

            rows[-1].update(label_quality(emb.array, y, device=resolve_device(args.device), seed=args.seed))
    _emit(rows, args)
    return _exit_code(rows, args.fail_on)


def _score_distributed(args) -> int:
    """Each rank scores its shards; the ECF sums are all-reduced; rank 0 prints the global result."""
    import datetime

    import numpy as np
    import torch
    import torch.distributed as dist

    from sigreg_core.core.device import resolve_device
    from sigreg_core.inputs.loading import EmbeddingLoadError

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UsageError(
            f"{PROG} score --distributed must run under torchrun (RANK/WORLD_SIZE are not set); e.g. "
            f"torchrun --nproc-per-node 2 -m sigreg_core score --distributed SHARD..."
        )
    device = resolve_device(args.device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        # fewer shards than processes: the ranks without a shard hold no rows and join every
        # collective with zero sums (the statistic is that of the rows that exist)
        mine = args.files[rank::world]
        error, arrays, notices, dims = None, [], [], set()
        try:
            loaded = [_load(p, args) for p in mine]
            for e in loaded:
                arrays.append(e.array if e.array.ndim == 3 else e.array[None])
                notices.extend(f"{e.name}: {n}" for n in e.notices)
                dims.add((e.array.ndim, e.array.shape[-1], e.array.shape[0] if e.array.ndim == 3 else 1))
            if len(dims) > 1:
                error = f"{PROG} score --distributed: shards on rank {rank} differ in shape {sorted(dims)}; all shards need the same dimension and views"
        except EmbeddingLoadError as exc:
            error = f"{PROG}: error: {exc}"
        status = [None] * world
        dist.all_gather_object(status, (error, sorted(dims), sum(a.shape[1] for a in arrays), notices))
        errors = [s[0] for s in status if s[0]]
        if errors:
            if rank == 0:  # one line in all, whichever rank failed
                err(errors[0])
            return EXIT_USAGE
        all_dims = {tuple(d) for s in status for d in s[1]}
        if len(all_dims) > 1:
            if rank == 0:
                sys.stderr.write(f"{PROG} score --distributed: shards differ in shape (ndim, dim, views): {sorted(all_dims)}; all shards need the same dimension and views\n")
            return EXIT_USAGE
        total_rows = sum(s[2] for s in status)
        ndim, dim, views = next(iter(all_dims))
        # a rank without a shard: (V, 0, D) float32 rows
        z = np.concatenate(arrays, axis=1) if arrays else np.zeros((views, 0, dim), np.float32)  # (V, n_local, D)
        local = z if ndim == 3 else z[0]
        args.quiet = args.quiet or rank != 0
        label = f"{len(args.files)} shards on {world} processes"
        notices = [n for s in status for n in s[3]]
        row = _result_row(label, local, args, notices=notices, key=args.key, distributed=True, rows_total=total_rows)
        row["shards"] = list(args.files)
        row["world_size"] = world
        rows = [row]
        code = torch.tensor([0], dtype=torch.int64)
        if rank == 0:
            _emit(rows, args)
            code[0] = _exit_code(rows, args.fail_on)
        dist.broadcast(code, src=0)
        return int(code.item())
    finally:
        dist.destroy_process_group()
