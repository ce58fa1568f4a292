"""What every ``sigreg`` subcommand shares: exit codes, the usage error, argparse value types.

Exit codes: 0 every file fine; 1 ``--fail-on`` met (a CI gate); 2 bad input or usage,
with exactly one line on stderr and no traceback; 3 an internal error; 130 interrupted.
File names and messages are data: :func:`err` strips control bytes before printing.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["EXIT_OK", "EXIT_FAIL_ON", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "PROG", "UsageError",
           "OneLineParser", "positive_int", "nonneg_int", "port", "err"]

EXIT_OK, EXIT_FAIL_ON, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PROG = "sigreg"


class UsageError(Exception):
    """Bad input or usage: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block) and exit 2."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _int_at_least(minimum: int, what: str):
    """An argparse type: a whole number >= minimum."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


positive_int = _int_at_least(1, "a positive number")
nonneg_int = _int_at_least(0, "0 or more")


def port(text: str) -> int:
    v = positive_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"port must be at most 65535, got {v}")
    return v


def err(line: str) -> None:
    from sigreg_core.util.text import visible

    sys.stderr.write(" ".join(visible(line).split()) + "\n")  # file names are data: no raw control bytes
    sys.stderr.flush()
