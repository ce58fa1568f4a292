"""The ``sigreg`` subcommands that live beside the CLI's parser: ``score`` (:mod:`.score`) and what
every subcommand shares, exit codes, the one-line usage error and argparse types (:mod:`.common`).
The parser and dispatch are :mod:`sigreg_core.cli`.
"""
