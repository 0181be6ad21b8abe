"""``fdopa import``: a DICOM PET (+ FLAIR) export into the cohort layout, in SUV.

pydicom and SimpleITK are imported inside :func:`run`, so ``fdopa --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fdopa.cli.common import CohortRun, Commands, add_out, add_overwrite, print_table
from fdopa.cli.errors import EXIT_HELP


def _window(text: str) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected START,END in seconds, got {text!r}") from err
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"expected 0 <= START < END, got {text!r}")
    return start, end


def add(commands: Commands) -> None:
    """Register ``fdopa import``."""
    parser = commands.add_parser(
        "import",
        help="DICOM PET (+ FLAIR) export → cohort layout in SUV, FLAIR co-registered",
        description="Read a folder of DICOM (any nesting, mixed series), convert each patient's "
        "PET study to SUVbw from the headers (static and dynamic), register a FLAIR to the PET "
        "(rigid, mutual information) and write them in the fdopa cohort layout: a new cohort, or "
        "subjects added to an existing one. Participant ids come from --mapping or are keyed "
        "pseudonyms of the PatientID; no patient name or id is written.",
        epilog=EXIT_HELP,
    )
    parser.add_argument("dicom_dir", type=Path, metavar="DICOM_DIR", help="the DICOM export")
    add_out(parser, "cohort root: new (absent or empty) or an existing fdopa cohort")
    parser.add_argument(
        "--mapping",
        type=Path,
        help="CSV/TSV with PatientID, participant_id (optional StudyInstanceUID or "
        "StudyDate; other columns, e.g. grade, go to participants.tsv)",
    )
    parser.add_argument(
        "--key",
        default="",
        help="secret key of the pseudonyms (keep it: the same key gives the same ids)",
    )
    parser.add_argument(
        "--static-window",
        type=_window,
        default=(600.0, 1800.0),
        metavar="START,END",
        help="window (s after injection) of a static image made from dynamic frames "
        "when there is no static series (default 600,1800)",
    )
    parser.add_argument(
        "--no-register",
        action="store_true",
        help="resample the FLAIR by its world coordinates only (same frame of "
        "reference, e.g. PET/MR)",
    )
    add_overwrite(parser, "replace participants already in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the DICOM export and print one row per participant."""
    from fdopa.hospital.importer import ImportOptions, import_dicom

    options = ImportOptions(
        mapping=args.mapping,
        key=args.key,
        static_window_s=args.static_window,
        register=not args.no_register,
        overwrite=args.overwrite,
    )
    with CohortRun("fdopa import", "import") as cohort:
        outcomes = import_dicom(
            args.dicom_dir, args.out, options, on_plan=cohort.plan, on_subject=cohort.advance
        )
    for o in outcomes:
        cohort.record(o.participant_id, None if o.ok else o.error or "failed")
    rows = [
        [
            o.participant_id,
            "ok" if o.ok else "FAILED",
            o.static,
            o.dynamic or "",
            o.flair,
            o.suv,
            f"{o.seconds:.1f}",
            o.error or "",
        ]
        for o in outcomes
    ]
    print_table(
        rows,
        ["participant", "status", "static", "frames", "FLAIR", "SUV from", "s", "error"],
        f"fdopa import → {args.out}",
    )
    done = len(outcomes) - len(cohort.failed)
    print(f"imported {done}/{len(outcomes)} participants into {args.out}")
    return cohort.exit_status("participant", "nothing was written for them")
