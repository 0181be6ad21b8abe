"""``fdopa indices``: the FDOPA PET indices of one scan or of a whole cohort."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fdopa.cli.common import CohortRun, Commands, add_out, add_preset, preset_from, require_one
from fdopa.cli.errors import EXIT_HELP

if TYPE_CHECKING:
    from fdopa.kinetics import Preset


def add(commands: Commands) -> None:
    """Register ``fdopa indices``."""
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
    add_preset(parser)
    add_out(parser, "result JSON (one scan) or indices CSV (cohort)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute and write the indices of ``--pet`` or of ``--cohort``."""
    from fdopa.kinetics import indices_from_files
    from fdopa.outputs import check_output_file, write_text_atomic

    preset = preset_from(args)
    require_one(args)
    check_output_file(args.out, parents=True)  # missing folders are created
    if args.cohort is not None:
        return _cohort(args, preset)
    if args.labels is None:
        raise ValueError("--labels: required with --pet")
    result = indices_from_files(
        args.pet, args.labels, preset, dynamic_path=args.dynamic, sidecar_path=args.sidecar,
        participant_id=args.participant_id,
    )  # fmt: skip
    write_text_atomic(args.out, result.to_json())
    print(f"wrote the {preset.name} indices of {result.participant_id} to {args.out}")
    return 0


def _cohort(args: argparse.Namespace, preset: Preset) -> int:
    from fdopa.kinetics.cohort_indices import (
        COHORT_COLUMNS,
        cohort_participants,
        iter_cohort_indices,
    )
    from fdopa.kinetics.result import csv_text
    from fdopa.outputs import check_output_dir, staged_files, write_text_atomic

    ids = cohort_participants(args.cohort)
    tac_dir = args.out.with_name(f"{args.out.stem}_tacs")
    check_output_dir(tac_dir)
    rows, tacs = [], {}
    outcomes = iter_cohort_indices(
        args.cohort, preset, participants=ids, labels_from=args.labels_from, n_jobs=args.jobs
    )
    with CohortRun("fdopa indices", f"indices {preset.name}", len(ids)) as cohort:
        for item in cohort.track(outcomes, lambda item: (item.participant_id, item.error)):
            rows.append(item.to_row())
            if item.error is None and item.result is not None and item.result.tacs is not None:
                tacs[tac_dir / f"{item.participant_id}_tacs.csv"] = item.result.tacs.to_csv()
    rows.sort(key=lambda row: row["participant_id"])
    if tacs:
        with staged_files({str(p): p for p in tacs}, overwrite=True) as staged:
            for path, text in tacs.items():
                staged[str(path)].write_text(text, encoding="utf-8")
    write_text_atomic(args.out, csv_text(rows, COHORT_COLUMNS))
    print(f"wrote the {preset.name} indices of {len(ids) - len(cohort.failed)}/{len(ids)} "
          f"subjects to {args.out} (TACs in {tac_dir})")  # fmt: skip
    return cohort.exit_status()
