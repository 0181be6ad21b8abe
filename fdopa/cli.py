"""The ``fdopa`` command line: ``fdopa synth | ...``.

Each sub-command parses its arguments, turns bad arguments into one clear line on stderr and
exit status 2, and calls the library; the library itself never prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fdopa import __version__

log = logging.getLogger("fdopa")


def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        help="generate a synthetic FDOPA PET cohort (SPEC §5)",
        description="Generate a synthetic [18F]F-DOPA PET cohort with exact ground truth.",
    )
    parser.add_argument("--cohort", default="paediatric", help="adult or paediatric")
    parser.add_argument("--n", type=int, default=40, help="number of subjects")
    parser.add_argument("--grid", default="tiny", help="tiny (4 mm) or standard (2 mm)")
    parser.add_argument("--dynamic-fraction", type=float, default=0.3,
                        help="fraction of subjects with a 4D dynamic image")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--framing", default="6x10,4x30,7x60,10x120",
                        help="dynamic framing, NxD groups in seconds")  # fmt: skip
    parser.add_argument("--no-flair", action="store_true", help="do not write the FLAIR channel")
    parser.add_argument("--noise-free", action="store_true",
                        help="write noise-free images in place of noisy ones")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=-1,
                        help="worker processes (-1: all cores)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output cohort directory")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from fdopa.data.synthetic import SynthConfig, generate_cohort

    config = SynthConfig(
        cohort=args.cohort, n=args.n, grid=args.grid, dynamic_fraction=args.dynamic_fraction,
        seed=args.seed, framing=args.framing, flair=not args.no_flair, noise=not args.noise_free,
    )  # fmt: skip
    start = time.perf_counter()
    table = generate_cohort(config, args.out, overwrite=args.overwrite, n_jobs=args.jobs)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(table)} {config.cohort} subjects ({config.grid} grid, "
        f"{int(table['dynamic'].sum())} dynamic) to {args.out} in {seconds:.1f} s "
        f"({len(table) / seconds:.2f} subjects/s)"
    )
    return 0


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_synth,)


def build_parser() -> argparse.ArgumentParser:
    """The ``fdopa`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="fdopa", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fdopa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fdopa`` console script.

    Returns:
        Exit status: 0 on success, 2 for bad arguments or input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"fdopa {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
