"""``fdopa labels``: the four-class label map from a tumour mask, brain and striatum from the atlas.

SimpleITK and the atlas are loaded inside :func:`run`, so ``fdopa --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fdopa.cli.common import (
    CohortRun,
    Commands,
    add_out,
    add_overwrite,
    print_table,
    reject_options,
    require_one,
)
from fdopa.cli.errors import EXIT_HELP
from fdopa.labels import FOREGROUND


def add(commands: Commands) -> None:
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
    add_out(scan, "label map to write (…_dseg.nii.gz)", required=False)
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
    add_overwrite(parser, "replace existing label maps")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the label map of ``--pet`` or of every subject of ``--cohort``."""
    from fdopa.hospital.labels import labels_for_cohort, labels_for_scan

    require_one(args)
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
        counts = {name: int((result.labels == value).sum()) for name, value in FOREGROUND.items()}
        print(
            f"wrote {paths['dseg']} and {paths['qc'].name} (via {result.guide}, "
            f"{result.seconds:.1f} s; voxels {counts})"
        )
        return 0
    reject_options(args, ("tumour", "flair", "out", "tumour_transform"), "a cohort uses --tumours")
    from fdopa.kinetics.cohort_indices import cohort_participants

    total = len(cohort_participants(args.cohort))
    with CohortRun("fdopa labels", "labels", total) as cohort:
        outcomes = labels_for_cohort(
            args.cohort,
            tumours=args.tumours,
            out_dir=args.labels_to,
            roi=args.roi,
            tumour_space=args.tumour_space,
            overwrite=args.overwrite,
            deformable=deformable,
            on_subject=cohort.advance,
        )
    for o in outcomes:
        cohort.record(o.participant_id, o.error)
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
    print_table(
        rows, ["participant", "status", "via", "s", "error"], f"fdopa labels → {args.cohort}"
    )
    print(
        f"wrote the label maps of {len(outcomes) - len(cohort.failed)}/{len(outcomes)} subjects "
        f"to {args.cohort / args.labels_to}"
    )
    return cohort.exit_status()
