"""Choose a bundle's tumour threshold on its run's validation children, never on held-out ones.

Usage:
    python experiments/tumour_threshold.py --run runs/levers/mixed36 [--bundle DIR]
           [--thresholds 0.5 0.55 0.6 0.65 0.7 0.75 0.8]

``--run`` is the training run the bundle came from (``hydra.run.dir``): its
``config_resolved.yaml`` names the cohort and its ``splits.csv`` the validation children, which
no gradient step saw. The bundle (default ``<run>/validity/bundle``, written by
``benchmarks/clinical_validity.py --ckpt``) predicts each of them once with its TTA, without the
label clean-up rules, and returns the class probabilities on the native grid; each threshold is
then applied to the same probabilities (:func:`fdopa.models.postprocess.labels_from_probabilities`,
none = plain argmax). Printed per threshold: tumour Dice mean ± SD and median, the median ratio of
automatic to reference tumour volume, and how many children lose their tumour entirely. The
threshold with the highest mean Dice is the recommendation; set it as ``predict.tumour_threshold``
of the recipe (recorded in the bundle at export) or pass it to ``clinical_validity.py``
through ``--postprocess tumour_threshold=T``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml


def main() -> None:
    """Predict the validation children once, then score every threshold."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="finished fdopa training run")
    parser.add_argument("--bundle", type=Path, default=None, help="default: RUN/validity/bundle")
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8])  # fmt: skip
    args = parser.parse_args()

    from rich.progress import track

    from fdopa.data.cohort import load_cohort
    from fdopa.data.splits import read_splits
    from fdopa.evaluation.validity import dice
    from fdopa.export import Predictor
    from fdopa.labels import TUMOUR
    from fdopa.layout import RUN_CONFIG
    from fdopa.models.postprocess import PostProcess, labels_from_probabilities

    logging.getLogger("fdopa").setLevel(logging.ERROR)
    config = yaml.safe_load((args.run / RUN_CONFIG).read_text())["data"]
    val = {pid for pid, role in read_splits(args.run).items() if role == "val"}
    subjects = [
        s for s in load_cohort(config["root"], channels=tuple(config["channels"]))
        if s.participant_id in val
    ]  # fmt: skip
    predictor = Predictor.from_bundle(
        args.bundle or args.run / "validity" / "bundle", postprocess=PostProcess()
    )
    choices: list[float | None] = [None, *args.thresholds]
    rows = []
    for subject in track(subjects, description="validation children"):
        prediction = predictor.predict(
            subject.static_pet, flair=subject.flair, probabilities=True,
            participant_id=subject.participant_id,
        )  # fmt: skip
        reference = np.asarray(nib.load(subject.labels).dataobj) == TUMOUR
        for threshold in choices:
            tumour = labels_from_probabilities(prediction.probabilities, threshold) == TUMOUR
            rows.append({
                "participant_id": subject.participant_id, "threshold": threshold,
                "dice": dice(tumour, reference), "volume_ratio": tumour.sum() / reference.sum(),
                "missed": bool(reference.any() and not (tumour & reference).any()),
            })  # fmt: skip
    table = pd.DataFrame(rows).fillna({"threshold": 0.0})
    summary = table.groupby("threshold").agg(
        dice_mean=("dice", "mean"), dice_sd=("dice", "std"), dice_median=("dice", "median"),
        volume_ratio_median=("volume_ratio", "median"), missed=("missed", "sum"),
    )  # fmt: skip
    summary.index = ["argmax" if t == 0 else f"{t:g}" for t in summary.index]
    print(f"{len(subjects)} validation children of {config['root']} (bundle TTA {predictor.tta})")
    print(summary.round(3).to_string())
    best = summary["dice_mean"].idxmax()
    print(f"highest mean tumour Dice: {best} ({summary.loc[best, 'dice_mean']:.3f})")


if __name__ == "__main__":
    main()
