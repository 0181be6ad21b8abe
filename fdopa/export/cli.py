"""``fdopa export`` and ``fdopa predict``: argument parsing and console output only.

The heavy imports (torch, the predictor) happen inside the handlers, so ``fdopa --help`` stays
fast. Errors the library raises as ``ValueError`` (bad input, a tampered bundle, a file that
is not a checkpoint) or ``OSError`` (missing inputs, outputs that cannot be written) become one
line on stderr and exit status 2 (:mod:`fdopa.errors`). Outputs are checked, and a scan's
inputs against the bundle, before the network is built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fdopa.errors import EXIT_HELP

if TYPE_CHECKING:
    from fdopa.export.predictor import Predictor
    from fdopa.kinetics import Preset

__all__ = ["add_export", "add_predict"]


def add_export(commands: argparse._SubParsersAction) -> None:
    """Register ``fdopa export``."""
    parser = commands.add_parser(
        "export",
        help="export a training checkpoint as a self-contained model bundle",
        description="Write a bundle (model.pt, model.ts, config.json, metadata.json, "
        "checksums.json) from a checkpoint and its run's config_resolved.yaml.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="Lightning checkpoint")
    parser.add_argument("--config", type=Path,
                        help="run config (default: RUN_DIR/config_resolved.yaml of the "
                        "checkpoint RUN_DIR/checkpoints/x.ckpt)")  # fmt: skip
    parser.add_argument("--data-root", type=Path,
                        help="training cohort, if not at data.root of the config")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from fdopa.export.run import export_checkpoint

    bundle = export_checkpoint(
        args.ckpt, args.out, config=args.config, data_root=args.data_root, overwrite=args.overwrite
    )
    monitors = bundle.metadata["validation"]["monitors"]
    shown = ", ".join(f"{m['monitor']} {m['score']}" for m in monitors)
    print(f"wrote bundle {bundle.path} ({shown or 'no monitored validation metric'})")
    return 0


def add_predict(commands: argparse._SubParsersAction) -> None:
    """Register ``fdopa predict``."""
    parser = commands.add_parser(
        "predict",
        help="segment FDOPA PET with a bundle; label map, indices and QC picture",
        description="Segment one static FDOPA PET (--pet) or every subject of a cohort "
        "(--cohort) with an exported bundle; write <stem>_dseg.nii.gz, <stem>_indices.json, "
        "<stem>_qc.png (and <stem>_probseg.nii.gz) in --out, plus indices.csv for a cohort.",
        epilog=EXIT_HELP,
    )
    parser.add_argument("--bundle", type=Path, required=True, help="bundle directory")
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
    parser.add_argument("--preset", default="guideline", help="guideline or genoa2024")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a preset field (repeatable)")  # fmt: skip
    parser.add_argument("--engine", choices=("eager", "torchscript"), default="eager",
                        help="network from model.pt or the traced model.ts")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from fdopa.export.inputs import image_stem
    from fdopa.export.outputs import refuse_existing, write_prediction
    from fdopa.export.predictor import Predictor
    from fdopa.kinetics import get_preset, parse_overrides
    from fdopa.outputs import check_artefact_dir

    if (args.pet is None) == (args.cohort is None):
        raise ValueError("give either --pet (one scan) or --cohort (a cohort)")
    if args.cohort is not None and (args.dynamic or args.sidecar or args.flair):
        raise ValueError("--dynamic/--sidecar/--flair: one-scan options; a cohort has its own")
    preset = get_preset(args.preset, **parse_overrides(args.set))
    if args.pet is not None:  # outputs checked before any work; a cohort's in _predict_cohort
        refuse_existing(args.out, [image_stem(args.pet)], args.probabilities, args.overwrite)
    else:
        check_artefact_dir(args.out, kind="predictions", overwrite=args.overwrite)
    # The network is built on first use, after the inputs were checked against the bundle.
    predictor = Predictor.from_bundle(
        args.bundle, device=args.device, tta=args.tta, engine=args.engine
    )
    if args.cohort is not None:
        return _predict_cohort(args, predictor, preset)
    prediction = predictor.predict(
        args.pet, dynamic=args.dynamic, sidecar=args.sidecar, flair=args.flair, preset=preset,
        probabilities=args.probabilities, participant_id=args.participant_id,
    )  # fmt: skip
    paths = write_prediction(
        prediction, args.out, probabilities=args.probabilities, overwrite=args.overwrite
    )
    verdict = "review: " + "; ".join(prediction.qc_reasons) if prediction.qc_flag else "ok"
    print(f"wrote {', '.join(p.name for p in paths.values())} to {args.out} (QC {verdict})")
    return 0


def _predict_cohort(args: argparse.Namespace, predictor: Predictor, preset: Preset) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fdopa.export.outputs import COHORT_COLUMNS, cohort_subjects, iter_cohort_predictions
    from fdopa.kinetics.result import csv_text
    from fdopa.outputs import staged_dir

    subjects = cohort_subjects(
        args.cohort, args.out, predictor.required_channels, overwrite=args.overwrite
    )
    rows, failed, flagged = [], [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        staged_dir(args.out, kind="predictions", overwrite=args.overwrite) as staging,
        Progress(*columns, console=Console(stderr=True)) as bar,
    ):
        task = bar.add_task("predict", total=len(subjects))
        outcomes = iter_cohort_predictions(
            predictor, subjects, staging, preset=preset, probabilities=args.probabilities
        )
        for outcome in outcomes:
            rows.append(outcome.row)
            if outcome.error is not None:
                failed.append(outcome.participant_id)
            elif outcome.qc_flag:
                flagged.append(outcome.participant_id)
            bar.advance(task)
        (staging / "indices.csv").write_text(csv_text(rows, COHORT_COLUMNS), encoding="utf-8")
    table = args.out / "indices.csv"
    print(f"wrote the predictions of {len(rows) - len(failed)}/{len(rows)} subjects to "
          f"{args.out} ({len(flagged)} flagged for QC review; indices in {table})")  # fmt: skip
    if failed:
        print(f"fdopa predict: {len(failed)} subject(s) failed: {', '.join(failed)} "
              "(see the error column)", file=sys.stderr)  # fmt: skip
    return 1 if failed else 0
