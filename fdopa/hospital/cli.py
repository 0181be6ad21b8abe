"""``fdopa import`` and ``fdopa labels``: argument parsing and console output only.

Heavy imports (pydicom, SimpleITK, nilearn) happen inside the handlers, so ``fdopa --help``
stays fast. Library errors (``ValueError``, ``OSError``) become one line on stderr and exit
status 2 in :func:`fdopa.cli.main`; a run in which some subjects failed exits with 1 after the
summary table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fdopa.errors import EXIT_HELP

__all__ = ["add_import", "add_labels"]


def _window(text: str) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected START,END in seconds, got {text!r}") from err
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"expected 0 <= START < END, got {text!r}")
    return start, end


def add_import(commands: argparse._SubParsersAction) -> None:
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
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="cohort root: new (absent or empty) or an existing fdopa cohort",
    )
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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace participants already in --out"
    )
    parser.set_defaults(func=_import)


def _progress() -> Any:
    """A rich progress bar on stderr (description, bar, n/total, elapsed time)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=Console(stderr=True))


def _summary(rows: list[list[Any]], columns: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(width=160).print(table)


def _import(args: argparse.Namespace) -> int:
    from fdopa.hospital.importer import ImportOptions, import_dicom

    options = ImportOptions(
        mapping=args.mapping,
        key=args.key,
        static_window_s=args.static_window,
        register=not args.no_register,
        overwrite=args.overwrite,
    )
    with _progress() as bar:
        task = bar.add_task("import", total=None)
        outcomes = import_dicom(
            args.dicom_dir,
            args.out,
            options,
            on_plan=lambda n: bar.update(task, total=n),
            on_subject=lambda _: bar.advance(task),
        )
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
    _summary(
        rows,
        ["participant", "status", "static", "frames", "FLAIR", "SUV from", "s", "error"],
        f"fdopa import → {args.out}",
    )
    failed = [o for o in outcomes if not o.ok]
    print(f"imported {len(outcomes) - len(failed)}/{len(outcomes)} participants into {args.out}")
    if failed:
        print(
            f"fdopa import: {len(failed)} participant(s) failed; nothing was written for them",
            file=sys.stderr,
        )
    return 1 if failed else 0


def add_labels(commands: argparse._SubParsersAction) -> None:
    """Register ``fdopa labels``."""
    parser = commands.add_parser(
        "labels",
        help="four-class label map from a tumour mask (brain and striatum from the atlas)",
        description="Build the label map (0 background, 1 brain, 2 striatum, 3 tumour) of one "
        "scan (--pet) or of every subject of a cohort (--cohort): brain and striatum from the "
        "MNI template and atlas registered to the subject (affine + B-spline, via the FLAIR when "
        "there is one, else the PET), the tumour from the physician's mask (NIfTI, DICOM SEG or "
        "RTSTRUCT), which wins over striatum and brain. Writes a QC picture beside each map.",
        epilog=EXIT_HELP,
    )
    scan = parser.add_argument_group("one scan")
    scan.add_argument("--pet", type=Path, help="3-D static PET (NIfTI)")
    scan.add_argument(
        "--tumour",
        type=Path,
        help="tumour mask: NIfTI, DICOM SEG or RTSTRUCT file (or a folder with one)",
    )
    scan.add_argument("--flair", type=Path, help="FLAIR on the PET grid (e.g. from fdopa import)")
    scan.add_argument("--out", type=Path, help="label map to write (…_dseg.nii.gz)")
    scan.add_argument(
        "--tumour-transform",
        type=Path,
        metavar="TFM",
        help="for a mask drawn on the FLAIR as exported: fdopa import's rigid transform "
        "(derivatives/registration/<id>/<id>_from-FLAIR_to-PET_xfm.tfm)",
    )
    cohort = parser.add_argument_group("a cohort")
    cohort.add_argument("--cohort", type=Path, metavar="ROOT", help="cohort root")
    cohort.add_argument(
        "--tumours",
        type=Path,
        metavar="DIR",
        help="masks as DIR/<participant_id>/ or DIR/<participant_id>_*.nii.gz "
        "(default ROOT/derivatives/tumour)",
    )
    cohort.add_argument(
        "--labels-to",
        default="derivatives/labels",
        help="label folder relative to ROOT (%(default)s)",
    )
    cohort.add_argument(
        "--tumour-space",
        choices=("pet", "flair"),
        default="pet",
        help="pet: masks drawn on the PET or the imported FLAIR (default); flair: drawn on the "
        "FLAIR as exported, brought to the PET by fdopa import's transform",
    )
    parser.add_argument("--roi", help="segment / ROI name when the mask holds several")
    parser.add_argument("--affine-only", action="store_true", help="skip the deformable step")
    parser.add_argument("--overwrite", action="store_true", help="replace existing label maps")
    parser.set_defaults(func=_labels)


def _labels(args: argparse.Namespace) -> int:
    from fdopa.hospital.labels import labels_for_cohort, labels_for_scan

    if (args.pet is None) == (args.cohort is None):
        raise ValueError("give either --pet (one scan) or --cohort (a cohort)")
    deformable = not args.affine_only
    if args.pet is not None:
        if args.tumour is None or args.out is None:
            raise ValueError("--tumour and --out: required with --pet")
        result, paths = labels_for_scan(
            args.pet,
            args.tumour,
            args.out,
            flair_path=args.flair,
            roi=args.roi,
            tumour_transform=args.tumour_transform,
            overwrite=args.overwrite,
            deformable=deformable,
        )
        counts = {
            name: int((result.labels == value).sum())
            for value, name in ((1, "brain"), (2, "striatum"), (3, "tumour"))
        }
        print(
            f"wrote {paths['dseg']} and {paths['qc'].name} (via {result.guide}, "
            f"{result.seconds:.1f} s; voxels {counts})"
        )
        return 0
    if args.tumour or args.flair or args.out or args.tumour_transform:
        raise ValueError(
            "--tumour/--flair/--out/--tumour-transform: one-scan options; a cohort uses --tumours"
        )
    from fdopa.kinetics.cohort import cohort_participants

    total = len(cohort_participants(args.cohort))
    with _progress() as bar:
        task = bar.add_task("labels", total=total)
        outcomes = labels_for_cohort(
            args.cohort,
            tumours=args.tumours,
            out_dir=args.labels_to,
            roi=args.roi,
            tumour_space=args.tumour_space,
            overwrite=args.overwrite,
            deformable=deformable,
            on_subject=lambda _: bar.advance(task),
        )
    rows = [
        [
            o.participant_id,
            "ok" if o.error is None else "FAILED",
            o.result.guide if o.result else "",
            f"{o.result.seconds:.1f}" if o.result else "",
            o.error or "",
        ]
        for o in outcomes
    ]
    _summary(rows, ["participant", "status", "via", "s", "error"], f"fdopa labels → {args.cohort}")
    failed = [o for o in outcomes if o.error is not None]
    print(
        f"wrote the label maps of {len(outcomes) - len(failed)}/{len(outcomes)} subjects to "
        f"{args.cohort / args.labels_to}"
    )
    return 1 if failed else 0
