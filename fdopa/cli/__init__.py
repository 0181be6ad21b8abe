"""The fdopa command line: synth | indices | report | export | predict | import | labels | train.

One module per sub-command (:mod:`fdopa.cli.synth`, :mod:`fdopa.cli.indices`, …), each with an
``add(commands)`` that registers its parser and a ``run(args)`` that calls the library; the
shared options and the cohort loop live in :mod:`fdopa.cli.common`. Bad arguments become one
clear line on stderr and exit status 2 (:mod:`fdopa.cli.errors`); the library itself never prints.
Heavy imports (torch, Hydra, SimpleITK) happen inside the ``run`` functions, so ``fdopa --help``,
``fdopa indices``, ``fdopa synth`` and ``fdopa report`` never import torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fdopa import __version__
from fdopa.cli import dicom_import, export, indices, labels, predict, report, synth, train
from fdopa.cli.errors import EXIT_HELP, run_guarded

__all__ = ["build_parser", "main"]

_COMMANDS = (synth, indices, report, export, predict, dicom_import, labels, train)


def build_parser() -> argparse.ArgumentParser:
    """The ``fdopa`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="fdopa", description=__doc__.splitlines()[0], epilog=EXIT_HELP
    )
    parser.add_argument("--version", action="version", version=f"fdopa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add(commands)
    return parser


def _split_train(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``fdopa [-v] train ARGS…``: ARGS go to Hydra verbatim (``--cfg job``, ``-m`` …)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):  # the command: fdopa's own options take no values
            return (argv[: i + 1], argv[i + 1 :]) if arg == "train" else (argv, None)
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fdopa`` console script.

    Returns:
        Exit status (:data:`fdopa.cli.errors.EXIT_HELP`): 0 success, 1 some cohort subjects
        failed, 2 bad input (one line on stderr), 130 interrupted.
    """
    argv, hydra_args = _split_train(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if hydra_args is not None:
        args.overrides = hydra_args
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return run_guarded(f"fdopa {args.command}", lambda: args.func(args), verbose=args.verbose)
