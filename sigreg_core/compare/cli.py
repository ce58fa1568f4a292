"""``sigreg compare``: the command-line subcommand over :func:`sigreg_core.compare.comparison.compare_sets`.

Exit 0 on success; 2 with one line on stderr for bad input or sets that cannot be
compared (different D, too few rows, unreadable files, out of memory); 3 with one line
("internal error: ...") for anything else; never a traceback (``SIGREG_DEBUG=1`` shows it).
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

from sigreg_core.compare.comparison import compare_sets
from sigreg_core.compare.exports import comparison_csv, comparison_html, comparison_text
from sigreg_core.compare.model import COMPARABLE_FAMILIES, CompareError
from sigreg_core.util.errors import InputError
from sigreg_core.util.jsonsafe import to_jsonable
from sigreg_core.util.text import visible

__all__ = ["add_compare_parser", "run_compare"]


def add_compare_parser(subparsers):
    """Add ``compare`` to an argparse subparsers object; returns the new parser."""
    from sigreg_core.core.presets import PRESETS

    c = subparsers.add_parser(
        "compare",
        help="compare embedding files on the same slices and the same N, with bootstrap intervals of the deltas",
        description="Score two or more embedding files on the same directions (same seed and family) and the same "
                    "N (subsampled to the smallest unless --keep-all-rows), and compare each with the reference: "
                    "deltas of SIGReg and the companion metrics with bootstrap intervals over rows, and a paired "
                    "test over slices. Exit 0 on success, 2 on bad input (different D, too few rows).",
    )
    c.add_argument("files", nargs="+", metavar="FILE", help="two or more embedding files (.npy .npz .pt .safetensors .csv .parquet ...)")
    c.add_argument("--reference", default=None, help="the set the others are compared with: a FILE as given, its name, or its position (1 = first; default the first)")
    c.add_argument("--key", default=None, help="array inside each container (.npz member, safetensors tensor, ...)")
    c.add_argument("--view", type=int, default=None, help="for (V, N, D) files, compare only this view (default: every view, SIGReg averaged over views)")
    c.add_argument("--preset", default="lejepa", choices=sorted(PRESETS), help="Epps-Pulley variant (default lejepa)")
    c.add_argument("--slices", type=int, default=1024, help="number of random directions M (default 1024)")
    c.add_argument("--seed", type=int, default=0, help="seed of the directions, of the subsampling and of the bootstrap (default 0)")
    c.add_argument("--family", default="random", choices=list(COMPARABLE_FAMILIES), help="slice family shared by every set (default random)")
    c.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples per set (default 200; 0 for no intervals)")
    c.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    c.add_argument("--keep-all-rows", action="store_true", help="do not subsample to the smallest N (deltas then mix in the change of N)")
    c.add_argument("--max-rows", type=int, default=None, help="read at most R random rows of each file")
    c.add_argument("--max-bytes", default=None, help="byte limit of the loader, e.g. 2GiB")
    c.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    c.add_argument("--null-draws", type=int, default=None, help="Monte Carlo null size of each assessment (default: assess's, 200; 0 to skip; cached on disk)")
    c.add_argument("--labels", action="append", default=None, metavar="LABELS",
                   help="class labels, one per row: once for every file, or once per file in order; adds held-out "
                        "k-NN and linear-probe accuracy and ranks the sets by it")
    c.add_argument("--rank-by", default=None, metavar="MEASURE",
                   choices=["verdict", "rankme", "alpha_req", "lidar", "x_null", "knn_accuracy", "linear_probe_accuracy"],
                   help="also rank the sets by one measure: verdict (the headline), rankme (the best label-free "
                        "predictor of probe quality in docs/quality.md), alpha_req (closest to 1), lidar (views), "
                        "x_null (SIGReg x null mean), knn_accuracy or linear_probe_accuracy (need --labels)")
    c.add_argument("--labels-key", default=None, help="array / column of the labels inside LABELS (or inside each FILE)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.add_argument("--csv", metavar="OUT.csv", default=None, help="also write the summary table with deltas as CSV")
    c.add_argument("--html", metavar="OUT.html", default=None, help="also write a standalone HTML report")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return c


def _labels(paths: Sequence[str]) -> list:
    """Set names: the file's base name, the path as given when base names clash, #k for repeats."""
    from pathlib import Path

    base = [Path(p).name for p in paths]
    distinct = {}
    for b, p in zip(base, paths):
        distinct.setdefault(b, set()).add(str(p))
    # names are data: a newline or an escape sequence in a file name must not reach the terminal (or forge a row)
    names = [visible(b if len(distinct[b]) == 1 else p) for b, p in zip(base, paths)]
    out, seen = [], {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _resolve_reference(ref: Optional[str], paths: Sequence[str], labels: Sequence[str]) -> str:
    if ref is None:
        return labels[0]
    if ref in labels:
        return ref
    if ref in paths:
        return labels[list(paths).index(ref)]
    if ref.isdigit() and 1 <= int(ref) <= len(labels):
        return labels[int(ref) - 1]
    raise CompareError(f"--reference {ref!r} is none of the files ({', '.join(labels)}) nor a position 1..{len(labels)}")


def run_compare(args) -> int:
    """Run ``sigreg compare``; 0 on success, 2 with one line on stderr for bad input or incompatible sets,
    3 with one line for an internal error."""
    import os
    import sys

    from sigreg_core.inputs.loading import EmbeddingLoadError, load_embeddings

    bar = None

    def err(line: str) -> int:
        sys.stderr.write(visible(" ".join(str(line).split())) + "\n")
        sys.stderr.flush()
        return 2

    try:
        if len(args.files) < 2:
            raise CompareError(f"give at least 2 files to compare, got {len(args.files)}")
        if args.slices < 1:
            raise CompareError(f"--slices must be at least 1, got {args.slices}")
        if args.seed < 0:
            raise CompareError(f"--seed must be 0 or more, got {args.seed}")
        if args.max_rows is not None and args.max_rows < 2:
            raise CompareError(f"--max-rows must be at least 2, got {args.max_rows}")
        if args.null_draws is not None and args.null_draws < 0:
            raise CompareError(f"--null-draws must be 0 or more, got {args.null_draws}")
        labels = _labels(args.files)
        reference = _resolve_reference(args.reference, args.files, labels)
        sets, notes, ys = {}, [], {}
        label_files, labels_key = getattr(args, "labels", None) or [], getattr(args, "labels_key", None)
        if len(label_files) not in (0, 1, len(args.files)):
            raise CompareError(f"give --labels once (for every file) or once per file ({len(args.files)}), "
                               f"got {len(label_files)}")
        for i, (path, label) in enumerate(zip(args.files, labels)):
            emb = load_embeddings(path, key=args.key, max_rows=args.max_rows, view=args.view,
                                  max_bytes=args.max_bytes, seed=args.seed)
            sets[label] = emb.array
            if label_files or labels_key is not None:  # probes with labels (issue 22)
                from sigreg_core.inputs.labels import labels_for
                ys[label] = labels_for(emb, path, label_files[i % len(label_files)] if label_files else None,
                                       labels_key, max_bytes=args.max_bytes)
            notes += [f"{label}: {n}" for n in emb.notices]

        def progress(frac, msg):
            nonlocal bar
            if args.quiet or not sys.stderr.isatty():
                return
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=1000, desc="compare", leave=False, file=sys.stderr, bar_format="{l_bar}{bar}| {postfix}")
            bar.n = int(1000 * frac)
            bar.set_postfix_str(msg[:60], refresh=True)

        import warnings

        with warnings.catch_warnings():
            if os.environ.get("SIGREG_DEBUG", "") in ("", "0"):
                warnings.simplefilter("ignore")  # stderr carries only the progress bar and errors
            cmp = compare_sets(sets, reference=reference, num_slices=args.slices, seed=args.seed,
                               preset=args.preset, family=args.family, same_n=not args.keep_all_rows,
                               n_boot=args.n_boot, level=args.level, device=args.device, progress=progress,
                               null_draws=args.null_draws)
        from sigreg_core.present.quality import quality_fields
        quality = {nm: quality_fields(cmp.sets[nm].metrics) for nm in cmp.names}
        if ys:
            from sigreg_core.assessment.probes import label_quality
            from sigreg_core.core.device import resolve_device
            for nm in cmp.names:
                quality[nm].update(label_quality(sets[nm], ys[nm], device=resolve_device(args.device), seed=args.seed))
        ranked = None
        if getattr(args, "rank_by", None):
            from sigreg_core.compare.ranking import measure_values, rank_by
            try:
                order = rank_by(cmp, args.rank_by, quality)
            except ValueError as exc:
                raise CompareError(f"--rank-by: {exc}") from None
            vals = measure_values(cmp, quality).get(args.rank_by, {})
            ranked = {"measure": args.rank_by, "order": order, "values": {nm: vals.get(nm) for nm in order}}
    except (CompareError, EmbeddingLoadError, InputError) as exc:  # the input or the settings: exit 2
        return err(f"sigreg compare: error: {exc}")
    except MemoryError:
        return err("sigreg compare: error: out of memory; use --max-rows, fewer --slices or a smaller --n-boot")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # anything else is ours: exit 3, one line (ValueErrors included)
        if os.environ.get("SIGREG_DEBUG", "") not in ("", "0"):
            raise
        text = " ".join(str(exc).split())
        if isinstance(exc, RuntimeError) and ("allocate" in text.lower() or "out of memory" in text.lower()):
            return err(f"sigreg compare: error: out of memory ({text[:160]}); use --max-rows, fewer --slices or a "
                       f"smaller --n-boot")
        err(f"sigreg compare: internal error: {type(exc).__name__}: {text[:300]} "
            f"(rerun with SIGREG_DEBUG=1 for the traceback)")
        return 3
    finally:
        if bar is not None:
            bar.close()
    try:
        if args.csv:
            with open(args.csv, "wb") as f:
                f.write(comparison_csv(cmp))
        if args.html:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(comparison_html(cmp, source={"files": list(args.files)}))
    except OSError as exc:
        return err(f"sigreg compare: error: cannot write {exc.filename}: {exc.strerror}")
    if args.json:
        doc = cmp.to_dict()
        doc["files"] = dict(zip(labels, args.files))
        doc["notices"] = notes
        doc["quality"] = to_jsonable(quality, nonfinite=lambda f: None)
        if ranked is not None:
            doc["ranked_by"] = to_jsonable(ranked, nonfinite=lambda f: None)
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(comparison_text(cmp) + "\n")
        from sigreg_core.present.quality import compare_quality_lines
        for line in compare_quality_lines(quality, {nm: cmp.sets[nm].metrics for nm in cmp.names}):
            sys.stdout.write(line + "\n")
        if ranked is not None:
            from sigreg_core.compare.ranking import RANK_MEASURES
            label = RANK_MEASURES[ranked["measure"]][0]
            sys.stdout.write(f"ranked by {label}: " + " > ".join(
                visible(nm) + ("" if ranked["values"].get(nm) is None else f" ({ranked['values'][nm]:.4g})")
                for nm in ranked["order"]) + "\n")
        for n in notes:
            sys.stdout.write(f"note: {visible(n)}\n")
    sys.stdout.flush()
    return 0
