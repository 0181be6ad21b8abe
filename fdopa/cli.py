"""The ``fdopa`` command line: ``synth | indices | report | export | predict | import | labels``.

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
from typing import TYPE_CHECKING

from fdopa import __version__
from fdopa.errors import EXIT_HELP, run_guarded
from fdopa.evaluation.cli import add_report
from fdopa.export.cli import add_export, add_predict
from fdopa.hospital.cli import add_import, add_labels

if TYPE_CHECKING:
    from fdopa.kinetics import Preset

log = logging.getLogger("fdopa")


def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        help="generate a synthetic FDOPA PET cohort with exact ground truth",
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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier fdopa cohort (never other files)")  # fmt: skip
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


def _add_indices(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "indices",
        help="FDOPA PET indices of one scan or of a whole cohort",
        description="Compute the FDOPA PET indices (T/S, TBRmax, TBRmean, MTV, TACs, "
        "TTP, slopes, DSR, Patlak Ki_ref) of one scan (--pet) or of a cohort (--cohort).",
        epilog=EXIT_HELP,
    )
    scan = parser.add_argument_group("one scan")
    scan.add_argument("--pet", type=Path, help="3D static PET (NIfTI)")
    scan.add_argument("--labels", type=Path,
                      help="label map on the same grid: 0 background, 1 brain, 2 striatum, "
                      "3 tumour")  # fmt: skip
    scan.add_argument("--dynamic", type=Path, help="optional 4D PET on the same grid")
    scan.add_argument("--sidecar", type=Path,
                      help="sidecar of --dynamic (default: its name with .json)")  # fmt: skip
    scan.add_argument("--participant-id", help="default: the sub-XXX prefix of --pet")
    cohort = parser.add_argument_group("a cohort (PET-BIDS-like cohort layout)")
    cohort.add_argument("--cohort", type=Path, metavar="ROOT", help="cohort root directory")
    cohort.add_argument("--labels-from", default="derivatives/labels",
                        help="label folder relative to ROOT (%(default)s)")  # fmt: skip
    cohort.add_argument("--jobs", type=int, default=1, help="worker processes (-1: all cores)")
    parser.add_argument("--preset", default="guideline", help="guideline or genoa2024")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a preset field, e.g. slab_mm=20 (repeatable)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True,
                        help="result JSON (one scan) or indices CSV (cohort)")  # fmt: skip
    parser.set_defaults(func=_indices)


def _indices(args: argparse.Namespace) -> int:
    from fdopa.kinetics import get_preset, indices_from_files, parse_overrides
    from fdopa.outputs import check_output_file, write_text_atomic

    preset = get_preset(args.preset, **parse_overrides(args.set))
    if (args.pet is None) == (args.cohort is None):
        raise ValueError("give either --pet (one scan) or --cohort (a cohort)")
    check_output_file(args.out, parents=True)  # missing folders are created
    if args.cohort is not None:
        return _indices_cohort(args, preset)
    if args.labels is None:
        raise ValueError("--labels: required with --pet")
    result = indices_from_files(
        args.pet, args.labels, preset, dynamic_path=args.dynamic, sidecar_path=args.sidecar,
        participant_id=args.participant_id,
    )  # fmt: skip
    write_text_atomic(args.out, result.to_json())
    print(f"wrote the {preset.name} indices of {result.participant_id} to {args.out}")
    return 0


def _indices_cohort(args: argparse.Namespace, preset: Preset) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fdopa.kinetics.cohort import COHORT_COLUMNS, cohort_participants, iter_cohort_indices
    from fdopa.kinetics.result import csv_text
    from fdopa.outputs import check_output_dir, staged_files, write_text_atomic

    ids = cohort_participants(args.cohort)
    tac_dir = args.out.with_name(f"{args.out.stem}_tacs")
    check_output_dir(tac_dir)
    rows, failed, tacs = [], [], {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"indices {preset.name}", total=len(ids))
        outcomes = iter_cohort_indices(
            args.cohort, preset, participants=ids, labels_from=args.labels_from, n_jobs=args.jobs
        )
        for item in outcomes:
            rows.append(item.to_row())
            if item.error is not None:
                failed.append(item.participant_id)
            elif item.result is not None and item.result.tacs is not None:
                tacs[tac_dir / f"{item.participant_id}_tacs.csv"] = item.result.tacs.to_csv()
            bar.advance(task)
    rows.sort(key=lambda row: row["participant_id"])
    if tacs:
        with staged_files({str(p): p for p in tacs}, overwrite=True) as staged:
            for path, text in tacs.items():
                staged[str(path)].write_text(text, encoding="utf-8")
    write_text_atomic(args.out, csv_text(rows, COHORT_COLUMNS))
    print(f"wrote the {preset.name} indices of {len(ids) - len(failed)}/{len(ids)} subjects to "
          f"{args.out} (TACs in {tac_dir})")  # fmt: skip
    if failed:
        print(f"fdopa indices: {len(failed)} subject(s) failed: {', '.join(sorted(failed))} "
              f"(see the error column)", file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_synth,
    _add_indices,
    add_report,
    add_export,
    add_predict,
    add_import,
    add_labels,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``fdopa`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="fdopa", description=__doc__.splitlines()[0], epilog=EXIT_HELP
    )
    parser.add_argument("--version", action="version", version=f"fdopa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fdopa`` console script.

    Returns:
        Exit status (:data:`fdopa.errors.EXIT_HELP`): 0 success, 1 some cohort subjects
        failed, 2 bad input (one line on stderr), 130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return run_guarded(f"fdopa {args.command}", lambda: args.func(args), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
