"""Clinical validity of a trained model on held-out synthetic children.

Usage:
    python benchmarks/clinical_validity.py --ckpt runs/finetune/runs/<ts>/checkpoints/<best>.ckpt
    python benchmarks/clinical_validity.py --bundle bundle/ [--bundle pet_only/]
           [--seed 7311 7529 7877] [--n 8]
           [--grid tiny] [--flair both|given|absent] [--tta|--no-tta]
           [--postprocess keep_brain_component=true min_tumour_ml=0.5] [--out DIR]

One paediatric cohort per ``--seed`` (``--n`` children each, ``--grid``) is generated on first
use into ``--cache`` (default ``data/heldout``) and reused afterwards; choose seeds that no
training or tuning run saw. A ``--ckpt`` is first exported to a bundle (``DIR/bundle``) exactly
as ``fdopa export`` does. Every child is then segmented with ``fdopa predict``'s library call
(:class:`fdopa.export.Predictor`), and the automatic label map and its indices (guideline
preset) are compared with the reference label map and the indices of the reference delineation
on the same images (:mod:`fdopa.evaluation.validity`). With ``--flair both`` (default) a model
trained with FLAIR dropout is run twice: with the FLAIR given and without it. Two ``--bundle``
(a PET + FLAIR and a PET-only one) are chosen between per child as ``fdopa predict`` does
(:class:`fdopa.export.choice.BundleChoice`): with the FLAIR given the first, without it the
second.

Printed per variant: tumour Dice mean ± SD and median, by grade, location and reference volume
(< 5 / ≥ 5 mL); tumours missed entirely and whether QC flagged them; striatum and brain Dice;
ICC(A,1) auto vs reference of T/S, TBRmax, TBRmean, MTV with the number of children where the
index exists on one side only; the median absolute MTV error (reference MTV ≥ 1 mL); the share
of dynamic children whose TTP falls within one frame. Written to ``--out``:
``children_<variant>.csv`` (one row per child), ``summary.json``, ``bland_altman_<variant>.png``
and the QC pictures of the two children with the lowest tumour Dice
(``worst_<variant>_<participant>.png``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

GRADES = ("LGG", "HGG")


def ensure_cohort(cache: Path, seed: int, n: int, grid: str, dynamic_fraction: float) -> Path:
    """Generate (or reuse, after checking its options) one held-out paediatric cohort."""
    from fdopa.data.datamodule import FdopaDataModule

    root = cache / f"paediatric-{grid}-n{n}-seed{seed}"
    synth = {
        "cohort": "paediatric", "n": n, "grid": grid, "dynamic_fraction": dynamic_fraction,
        "seed": seed,
    }  # fmt: skip
    FdopaDataModule(str(root), synth=synth, synth_dir=str(cache)).prepare_data()
    return root


def add_postprocess_option(parser: argparse.ArgumentParser) -> None:
    """``--postprocess KEY=VALUE ...``: the label decision and clean-up instead of the bundle's."""
    parser.add_argument("--postprocess", nargs="*", default=None, metavar="KEY=VALUE",
                        help="replace the bundle's inference.postprocess (none: off)")  # fmt: skip


def postprocess_rules(pairs: list[str] | None) -> Any:
    """The :class:`~fdopa.models.postprocess.PostProcess` of ``--postprocess`` pairs (YAML
    values: ``true``, ``0.5``); None (the bundle's own) when the option was not given."""
    from fdopa.models.postprocess import PostProcess

    if pairs is None:
        return None
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--postprocess: expected KEY=VALUE, got {pair!r}")
        settings[key] = yaml.safe_load(value)
    return PostProcess(**settings)


def evaluate(
    predictor: Any, roots: list[Path], flair: bool, pictures: Path, tag: str
) -> pd.DataFrame:
    """One row per held-out child (see :func:`fdopa.evaluation.validity.child_row`)."""
    import nibabel as nib
    from rich.progress import track

    from fdopa.data.cohort import load_cohort
    from fdopa.evaluation.validity import child_row
    from fdopa.export.qc import qc_figure
    from fdopa.kinetics import indices_from_files

    subjects = [(root, s) for root in roots for s in load_cohort(root, channels=("pet",))]
    rows, predictions = [], {}
    for root, subject in track(subjects, description=f"predict ({tag})"):
        pid = subject.participant_id
        prediction = predictor.predict(
            subject.static_pet, dynamic=subject.dynamic_pet, sidecar=subject.dynamic_sidecar,
            flair=subject.flair if flair else None, participant_id=pid,
        )  # fmt: skip
        reference = indices_from_files(
            subject.static_pet, subject.labels, "guideline", dynamic_path=subject.dynamic_pet,
            sidecar_path=subject.dynamic_sidecar, participant_id=pid,
        )  # fmt: skip
        labels = nib.load(subject.labels)
        voxel_ml = float(np.prod(labels.header.get_zooms()[:3])) / 1000.0
        row = child_row(
            subject.participant, prediction.labels, np.asarray(labels.dataobj), voxel_ml,
            prediction.indices, reference, qc_flag=prediction.qc_flag,
            qc_reasons=prediction.qc_reasons,
        )  # fmt: skip
        # participant ids repeat across the seeds' cohorts: prefix the cohort's seed
        row["participant_id"] = f"{root.name.rsplit('-', 1)[-1]}/{pid}"
        rows.append({"cohort": root.name, **row})
        predictions[row["participant_id"]] = prediction
    table = pd.DataFrame(rows)
    for pid in table.nsmallest(2, "dice_tumour")["participant_id"]:
        qc_figure(predictions[pid], pictures / f"worst_{tag}_{pid.replace('/', '_')}.png")
    return table


def bland_altman(table: pd.DataFrame, path: Path) -> None:
    """Bland–Altman panels of the key indices (the report's figure)."""
    from fdopa.evaluation.plots import agreement_figure, save_figure
    from fdopa.evaluation.validity import KEY_INDICES

    pairs = {}
    for name in KEY_INDICES:
        pair = table[[f"ref_{name}", f"auto_{name}"]].dropna()
        pairs[name] = pair.set_axis(["reference", "method"], axis=1)
    save_figure(agreement_figure(pairs, "bland_altman", "automatic", "reference"), path)


def main() -> None:
    """Parse the arguments, run every variant, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", type=Path, help="training checkpoint (exported first)")
    source.add_argument("--bundle", type=Path, action="append",
                        help="exported bundle (again: a second one to choose from)")  # fmt: skip
    parser.add_argument("--seed", type=int, nargs="+", default=[7311, 7529, 7877])
    parser.add_argument("--n", type=int, default=8, help="children per seed")
    parser.add_argument("--grid", default="tiny")
    parser.add_argument("--dynamic-fraction", type=float, default=0.3)
    parser.add_argument("--cache", type=Path, default=Path("data/heldout"))
    parser.add_argument("--flair", choices=("both", "given", "absent"), default="both")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="default: the bundle's inference.tta")  # fmt: skip
    add_postprocess_option(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/clinical_validity"))
    args = parser.parse_args()

    from fdopa.evaluation.validity import format_summary, summarise
    from fdopa.export.choice import BundleChoice
    from fdopa.export.run import export_checkpoint

    # the summary says it all: no per-child log lines (e.g. the no-FLAIR warning) in between
    logging.getLogger("fdopa").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    roots = [
        ensure_cohort(args.cache, s, args.n, args.grid, args.dynamic_fraction) for s in args.seed
    ]
    bundles = args.bundle
    if args.ckpt is not None:
        bundles = [export_checkpoint(args.ckpt, args.out / "bundle", overwrite=True).path]
    choice = BundleChoice.from_bundles(
        bundles, tta=args.tta, postprocess=postprocess_rules(args.postprocess)
    )
    variants = {"given": {"pet", "flair"}, "absent": {"pet"}, "pet_only": {"pet"}}
    if not any("flair" in p.config.channels for p in choice.predictors):
        chosen = ["pet_only"]
    elif args.flair == "both":
        chosen = ["given", "absent"] if choice.required_channels == ("pet",) else ["given"]
    else:
        chosen = [args.flair]
    models = [
        {"bundle": str(p.bundle.path), "channels": list(p.config.channels),
         "optional": list(p.config.optional_channels), "tta": p.tta,
         "postprocess": str(p.postprocess)}
        for p in choice.predictors
    ]  # fmt: skip
    for model in models:
        print(", ".join(f"{key} {value}" for key, value in model.items()))
    summaries = {}
    for tag in chosen:
        start = time.perf_counter()
        given = variants[tag]
        table = evaluate(choice, roots, "flair" in given, args.out, f"flair_{tag}")
        seconds = time.perf_counter() - start
        table.to_csv(args.out / f"children_flair_{tag}.csv", index=False)
        bland_altman(table, args.out / f"bland_altman_flair_{tag}.png")
        summary = summarise(table)
        bundle = str(choice.choose(given).bundle.path)
        summaries[tag] = {**summary, "seconds_per_child": seconds / len(table), "bundle": bundle}
        print(f"\n=== FLAIR {tag}: {bundle} ({seconds / len(table):.2f} s per child)")
        print(format_summary(summary))
    settings = {"seeds": args.seed, "n": args.n, "grid": args.grid, "bundles": models}
    text = json.dumps({"settings": settings, "variants": summaries}, indent=2, default=str)
    (args.out / "summary.json").write_text(text + "\n")
    print(f"\nwrote {args.out}/children_*.csv, summary.json and pictures")


if __name__ == "__main__":
    main()
