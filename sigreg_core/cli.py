"""The ``sigreg`` command line: the parser and the dispatch of its subcommands.

``sigreg score FILE...`` scores embedding files with SIGReg, the sliced Epps–Pulley
statistic of LeJEPA (Balestriero & LeCun, arXiv 2511.08544) and LeWorldModel
(arXiv 2603.19312), against its exact null law; table or JSON, ``--fail-on`` as a CI
gate, ``--distributed`` under ``torchrun`` (:mod:`sigreg_core.commands.score`).
``sigreg app`` starts the Streamlit dashboard; ``compare``, ``embed`` and ``demo-train``
come from their own modules (:data:`EXTRA_COMMANDS`), imported only when named.

Exit codes (:mod:`sigreg_core.commands.common`): 0 every file fine; 1 ``--fail-on`` met;
2 bad input or usage, with exactly one line on stderr and no traceback; 3 an internal
error (one line too; ``SIGREG_DEBUG=1`` shows the traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from sigreg_core.commands.common import (
    EXIT_FAIL_ON,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    OneLineParser,
    UsageError,
    err,
    port,
)
from sigreg_core.commands.score import add_score_parser, cmd_score

__all__ = ["main", "build_parser", "app_path", "UsageError", "EXIT_OK", "EXIT_FAIL_ON", "EXIT_USAGE", "EXIT_INTERNAL",
           "EXIT_INTERRUPTED"]


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Is your self-supervised embedding healthy or collapsing? SIGReg diagnostics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    extras = _extra_commands(only) if only is not None else {}
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(["score", "app", *EXTRA_COMMANDS]) + "}")
    add_score_parser(sub)
    a = sub.add_parser("app", help="start the Streamlit dashboard", description="Start the latent-health dashboard (streamlit run app.py).")
    a.add_argument("--port", type=port, default=None, help="port to serve on (default: Streamlit's, 8501)")
    a.add_argument("--address", default=None, help="address to bind (default: Streamlit's)")
    a.add_argument("streamlit_args", nargs="*", metavar="-- STREAMLIT_ARGS", help="further options for streamlit run, after --")
    for name, (add, run) in extras.items():
        add(sub).set_defaults(_run=run)
    if only is None:  # no command named (--help, --version): list the others without importing them (torch)
        for name, text in EXTRA_HELP.items():
            sub.add_parser(name, help=text)
    return parser


#: subcommands contributed by other modules: name -> (module, add_parser function, run function)
EXTRA_COMMANDS = {
    "compare": ("sigreg_core.compare.cli", "add_compare_parser", "run_compare"),
    "embed": ("sigreg_core.inputs.checkpoints", "add_embed_parser", "run_embed"),
    "demo-train": ("sigreg_core.runs.demo", "add_demo_parser", "run_demo"),
}

#: their one-line help, for ``sigreg --help`` without importing the modules (a test keeps it equal to theirs)
EXTRA_HELP = {
    "compare": "compare embedding files on the same slices and the same N, with bootstrap intervals of the deltas",
    "embed": "compute embeddings of a probe batch from a checkpoint (state_dict + your model code, or a "
             "TorchScript / torch.export encoder) and save them as safetensors",
    "demo-train": "train a small JEPA-style world model on synthetic trajectories and log it for the Monitor page",
}


def _extra_commands(only: Optional[str] = None) -> dict:
    """The contributed subcommands whose modules import cleanly (a broken one must not break ``score``).

    Only the one named by ``only`` is imported (none for score/app): ``sigreg score`` skips their imports.
    """
    import importlib

    out = {}
    for name, (module, add, run) in EXTRA_COMMANDS.items():
        if only in ("score", "app") or (only in EXTRA_COMMANDS and name != only):
            continue
        try:
            mod = importlib.import_module(module)
            out[name] = (getattr(mod, add), getattr(mod, run))
        except Exception:
            continue
    return out


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("latent-health")
    except Exception:
        return "0.1.0"


# ----------------------------------------------------------------------------- app


def app_path() -> Path:
    """``app.py`` at the repository root, beside the ``sigreg_core`` package."""
    from sigreg_core import __file__ as pkg_file

    return Path(pkg_file).resolve().parents[1] / "app.py"


def cmd_app(args) -> int:
    import importlib.util
    import subprocess

    path = app_path()
    if not path.is_file():
        raise UsageError(
            f"{PROG} app: the dashboard {path} is missing (sigreg_core is installed without its source tree); "
            f"run from a checkout: pip install -e <repo> or streamlit run <repo>/app.py"
        )
    if importlib.util.find_spec("streamlit") is None:
        raise UsageError(f"{PROG} app: streamlit is not installed; pip install streamlit")
    cmd = [sys.executable, "-m", "streamlit", "run", str(path)]
    if args.port is not None:
        cmd += ["--server.port", str(args.port)]
    if args.address is not None:
        cmd += ["--server.address", args.address]
    cmd += list(args.streamlit_args)
    if os.name == "posix":
        # become Streamlit: a SIGTERM (a process manager, a test's terminate()) or a hang-up sent to
        # `sigreg app` then reaches the server itself; as a child it was left running, orphaned
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return EXIT_OK


# ----------------------------------------------------------------------------- main


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sigreg`` console script and ``python -m sigreg_core``."""
    from sigreg_core.inputs.loading import EmbeddingLoadError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("SIGREG_DEBUG", "") not in ("", "0")
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")  # stderr carries only the progress bar and errors
            parser = build_parser(only=next((a for a in argv if not a.startswith("-")), None))
            args = parser.parse_args(argv)
            if args.command is None:
                raise UsageError(f"{PROG}: choose a command: {', '.join(['score', 'app', *EXTRA_COMMANDS])} (see {PROG} --help)")
            if args.command == "score":
                return cmd_score(args)
            if args.command == "app":
                return cmd_app(args)
            return int(args._run(args) or 0)
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    except EmbeddingLoadError as exc:
        err(f"{PROG}: error: {exc}")
        return EXIT_USAGE
    except ValueError as exc:
        if debug:
            raise
        from sigreg_core.assessment.budget import WorkBudgetError
        from sigreg_core.util.errors import InputError

        if isinstance(exc, (InputError, WorkBudgetError)):  # the input or the settings: exit 2, one line
            err(f"{PROG}: error: {' '.join(str(exc).split())}")
            return EXIT_USAGE
        # any other ValueError is ours, not the user's: never report a bug as "bad input"
        err(f"{PROG}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
            f"(rerun with SIGREG_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL
    except MemoryError:
        err(f"{PROG}: error: out of memory; score fewer rows with --max-rows or fewer --slices")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except SystemExit as exc:  # --help / --version
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except RuntimeError as exc:  # torch's allocator reports exhaustion as RuntimeError, not MemoryError
        if debug:
            raise
        if "allocate" in str(exc).lower() or "out of memory" in str(exc).lower():
            err(f"{PROG}: error: out of memory ({' '.join(str(exc).split())[:160]}); score fewer rows with --max-rows, "
                 f"fewer --slices, or lower LATENT_HEALTH_MAX_MEMORY so the work budget refuses it up front")
            return EXIT_USAGE
        err(f"{PROG}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (rerun with SIGREG_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL
    except Exception as exc:
        if debug:
            raise
        err(f"{PROG}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (rerun with SIGREG_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
