"""``fdopa predict``: segment FDOPA PET with a bundle; label map, indices and QC picture.

Torch and the predictor are imported inside :func:`run`, after the arguments and outputs were
checked; a scan's inputs are checked against the bundle before the network is built.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fdopa.cli.common import (
    CohortRun,
    Commands,
    add_out,
    add_overwrite,
    add_preset,
    preset_from,
    reject_options,
    require_extra,
    require_one,
)
from fdopa.cli.errors import EXIT_HELP

if TYPE_CHECKING:
    from fdopa.export.choice import BundleChoice
    from fdopa.kinetics import Preset


def add(commands: Commands) -> None:
    """Register ``fdopa predict``."""
    parser = commands.add_parser(
        "predict",
        help="segment FDOPA PET with a bundle; label map, indices and QC picture",
        description="Segment one static FDOPA PET (--pet) or every subject of a cohort "
        "(--cohort) with an exported bundle; write <stem>_dseg.nii.gz, <stem>_indices.json, "
        "<stem>_qc.png (and <stem>_probseg.nii.gz) in --out, plus indices.csv for a cohort.",
        epilog=EXIT_HELP,
    )
    parser.add_argument(
        "--bundle", type=Path, required=True, action="append",
        help="bundle directory; give it again for a second bundle (a PET + FLAIR and a "
        "PET-only one): each scan goes to the bundle that reads the most of what it comes with",
    )  # fmt: skip
    scan = parser.add_argument_group("one scan")
    scan.add_argument("--pet", type=Path, help="3-D static PET (NIfTI; sidecar beside it)")
    scan.add_argument("--dynamic", type=Path, help="optional 4-D PET on the same grid")
    scan.add_argument("--sidecar", type=Path,
                      help="sidecar of --dynamic (default: its name with .json)")  # fmt: skip
    scan.add_argument("--flair", type=Path, help="FLAIR channel, for bundles trained with one")
    scan.add_argument("--participant-id", help="default: the sub-XXX prefix of --pet")
    parser.add_argument("--cohort", type=Path, metavar="ROOT", help="PET-BIDS-like cohort root")
    parser.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=None,
        help="left-right flip test-time augmentation (default: the bundle's inference.tta)",
    )  # fmt: skip
    parser.add_argument("--probabilities", action="store_true", help="write probability maps")
    parser.add_argument("--no-crop", action="store_true",
                        help="run the network on the whole image, not the head box")  # fmt: skip
    add_preset(parser)
    parser.add_argument("--engine", choices=("eager", "torchscript"), default="eager",
                        help="network from model.pt or the traced model.ts")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    add_out(parser, "output directory")
    add_overwrite(parser, "replace existing outputs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Segment ``--pet`` or every subject of ``--cohort`` and write the outputs."""
    require_one(args)
    if args.cohort is not None:
        reject_options(args, ("dynamic", "sidecar", "flair"), "a cohort has its own")
    preset = preset_from(args)
    require_extra("torch", "train")
    from fdopa.export.choice import BundleChoice
    from fdopa.export.inputs import image_stem
    from fdopa.export.outputs import refuse_existing, write_prediction
    from fdopa.outputs import check_artefact_dir

    if args.pet is not None:  # outputs checked before any work; a cohort's in _cohort
        refuse_existing(args.out, [image_stem(args.pet)], args.probabilities, args.overwrite)
    else:
        check_artefact_dir(args.out, kind="predictions", overwrite=args.overwrite)
    # Each network is built on first use, after the inputs were checked against its bundle.
    choice = BundleChoice.from_bundles(
        args.bundle, device=args.device, tta=args.tta, engine=args.engine, crop=not args.no_crop
    )
    if args.cohort is not None:
        return _cohort(args, choice, preset)
    prediction = choice.predict(
        args.pet, dynamic=args.dynamic, sidecar=args.sidecar, flair=args.flair, preset=preset,
        probabilities=args.probabilities, participant_id=args.participant_id,
    )  # fmt: skip
    paths = write_prediction(
        prediction, args.out, probabilities=args.probabilities, overwrite=args.overwrite
    )
    verdict = "review: " + "; ".join(prediction.qc_reasons) if prediction.qc_flag else "ok"
    model = f"{prediction.bundle} on {'+'.join(prediction.channels)}; "
    model = model if len(args.bundle) > 1 else ""
    print(f"wrote {', '.join(p.name for p in paths.values())} to {args.out} ({model}QC {verdict})")
    return 0


def _cohort(args: argparse.Namespace, choice: BundleChoice, preset: Preset) -> int:
    from fdopa.export.outputs import COHORT_COLUMNS, cohort_subjects, iter_cohort_predictions
    from fdopa.kinetics.result import csv_text
    from fdopa.outputs import staged_dir

    subjects = cohort_subjects(
        args.cohort, args.out, choice.required_channels, overwrite=args.overwrite
    )
    rows, flagged = [], []
    with (
        staged_dir(args.out, kind="predictions", overwrite=args.overwrite) as staging,
        CohortRun("fdopa predict", "predict", len(subjects)) as cohort,
    ):
        outcomes = iter_cohort_predictions(
            choice, subjects, staging, preset=preset, probabilities=args.probabilities
        )
        for outcome in cohort.track(outcomes, lambda o: (o.participant_id, o.error)):
            rows.append(outcome.row)
            if outcome.error is None and outcome.qc_flag:
                flagged.append(outcome.participant_id)
        (staging / "indices.csv").write_text(csv_text(rows, COHORT_COLUMNS), encoding="utf-8")
    table = args.out / "indices.csv"
    print(f"wrote the predictions of {len(rows) - len(cohort.failed)}/{len(rows)} subjects to "
          f"{args.out} ({len(flagged)} flagged for QC review; indices in {table})")  # fmt: skip
    return cohort.exit_status()
