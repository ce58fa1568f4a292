"""The ``sigreg embed`` command: argument parser and runner (exit 0, or 2 with one line on stderr)."""
from __future__ import annotations

import sys
from pathlib import Path

from sigreg_core.inputs.checkpoints import POOLS, CheckpointError, embed_checkpoint
from sigreg_core.inputs.statedict import embed_state_dict, save_embeddings
from sigreg_core.util.text import visible

# ----------------------------------------------------------------------------- CLI
def add_embed_parser(subparsers):
    """Add ``embed`` to an argparse subparsers object; returns the new parser."""
    e = subparsers.add_parser(
        "embed",
        help="compute embeddings of a probe batch from a checkpoint (state_dict + your model code, or a "
             "TorchScript / torch.export encoder) and save them as safetensors",
        description="Embed a probe batch with a checkpoint, on the GPU when present. Either --model "
                    "package.module:factory --checkpoint CKPT (your model code is imported locally; the weights are "
                    "read with torch.load(weights_only=True)), or --encoder FILE (TorchScript or torch.export). "
                    "WARNING: --model imports and runs Python code, and --encoder runs the program stored in the "
                    "file: either can read, write or delete anything your user can. Use only code and files you "
                    "trust, or run this in a sandbox (a container or a throwaway account). "
                    "Exit 0 on success, 2 on bad input.",
    )
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="PACKAGE.MODULE:FACTORY",
                     help="callable building the model (imported from the current directory; runs that code "
                          "with your rights)")
    src.add_argument("--encoder", metavar="FILE", help="TorchScript (torch.jit.save) or torch.export (.pt2) encoder "
                                                      "(a program: runs with your rights; trusted files only)")
    e.add_argument("--checkpoint", metavar="CKPT", help="state_dict file (.pt/.pth via weights_only, or .safetensors); with --model")
    e.add_argument("--probe", required=True, metavar="FILE", help="probe batch: .safetensors .npy .pt (any shape, axis 0 = rows) or any embeddings format (2-D)")
    e.add_argument("--out", required=True, metavar="OUT.safetensors", help="where to write the embeddings (key 'embeddings')")
    e.add_argument("--key", default=None, help="tensor inside the probe file")
    e.add_argument("--state-key", default=None, help="dict inside the checkpoint holding the weights (e.g. state_dict)")
    e.add_argument("--no-strict", action="store_true", help="load only the matching parameters (reported)")
    e.add_argument("--batch-size", type=int, default=256, help="probe rows per forward pass (default 256)")
    e.add_argument("--max-rows", type=int, default=None, help="embed a random subset of at most R probe rows")
    e.add_argument("--output-key", default=None, help="which output when the model returns a tuple (index) or dict (key)")
    e.add_argument("--pool", choices=POOLS, default=None, help="pool outputs (B, T, D) to (B, D): mean over T, or the first token")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (default auto)")
    e.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return e


def _err(line: str) -> None:
    sys.stderr.write(visible(" ".join(str(line).split())) + "\n")
    sys.stderr.flush()


def run_embed(args) -> int:
    """Run ``sigreg embed``; 0 on success, 2 with one line on stderr for bad input."""
    from sigreg_core.inputs.loading import EmbeddingLoadError

    bar = None
    try:
        if args.batch_size < 1:
            raise CheckpointError(f"--batch-size must be at least 1, got {args.batch_size}")
        if args.max_rows is not None and args.max_rows < 2:
            raise CheckpointError(f"--max-rows must be at least 2, got {args.max_rows}")

        def progress(done, total):
            nonlocal bar
            if args.quiet or not sys.stderr.isatty():
                return
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, desc="embedding", unit="rows", leave=False, file=sys.stderr)
            bar.n = done
            bar.refresh()

        if args.model is not None:
            if not args.checkpoint:
                raise CheckpointError("sigreg embed: --model needs --checkpoint CKPT")
            res = embed_state_dict(args.model, args.checkpoint, args.probe, args.out, key=args.key,
                                   state_key=args.state_key, strict=not args.no_strict, batch_size=args.batch_size,
                                   device=args.device, max_rows=args.max_rows, output_key=args.output_key,
                                   pool=args.pool, progress=progress)
            what = f"{args.model} with {Path(args.checkpoint).name}"
        else:
            if args.checkpoint or args.state_key or args.no_strict:
                raise CheckpointError("sigreg embed: --checkpoint/--state-key/--no-strict go with --model, not --encoder")
            res = embed_checkpoint(args.encoder, args.probe, key=args.key, batch_size=args.batch_size,
                                   device=args.device, max_rows=args.max_rows, output_key=args.output_key,
                                   pool=args.pool, confine=False, progress=progress)
            res.out = save_embeddings(res.array, args.out, {"tool": "latent-health sigreg embed",
                                                            "encoder": Path(args.encoder).name,
                                                            "encoder_kind": res.meta["encoder_kind"],
                                                            "probe": Path(args.probe).name})
            what = f"{Path(args.encoder).name} ({res.meta['encoder_kind']})"
    except (CheckpointError, EmbeddingLoadError, ValueError) as exc:
        _err(f"sigreg embed: error: {exc}")
        return 2
    except MemoryError:
        _err("sigreg embed: error: out of memory; lower --batch-size or --max-rows")
        return 2
    finally:
        if bar is not None:
            bar.close()
    n, d = res.array.shape
    sys.stdout.write(f"wrote {visible(res.out)}: {n:,} x {d} embeddings from {visible(what)} on {res.meta.get('device', args.device)} "
                     f"in {res.meta['seconds']:.2f} s\n")
    for note in res.notices:
        sys.stdout.write(f"note: {visible(note)}\n")
    sys.stdout.flush()
    return 0
