"""Files of a prediction, written all or nothing, for one scan or a whole cohort.

For an input ``X.nii.gz`` (stem ``X``) in ``DIR``:

* ``DIR/X_dseg.nii.gz`` — label map (values 0–3, uint8) with the input's affine and shape;
* ``DIR/X_indices.json`` — the index output fields, ``qc_flag``, ``qc_reasons``, the extras,
  ``crop`` (the head box the network ran in: native voxels ``start``/``stop`` and ``method``) and
  ``tacs``;
* ``DIR/X_qc.png`` — the QC picture (:func:`fdopa.export.qc.qc_figure`);
* ``DIR/X_probseg.nii.gz`` — softmax per class on the 4th axis (float32), on request.

The files of one input are written into a hidden directory beside them and renamed into place
only when all of them exist (:func:`fdopa.outputs.staged_files`); other files in ``DIR`` are
never touched. A cohort's predictions are a folder of their own, staged as a whole beside
its target (:func:`fdopa.outputs.staged_dir`, kind ``predictions``) with ``indices.csv``, one
row per subject.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from fdopa.data.cohort import CohortSubject, load_cohort
from fdopa.export.choice import BundleChoice
from fdopa.export.predictor import Prediction, Predictor
from fdopa.export.qc import qc_figure
from fdopa.kinetics import CSV_COLUMNS, Preset
from fdopa.outputs import check_artefact_dir, check_output_file, staged_files

__all__ = [
    "COHORT_COLUMNS",
    "CohortOutcome",
    "cohort_subjects",
    "iter_cohort_predictions",
    "output_paths",
    "refuse_existing",
    "write_prediction",
]

log = logging.getLogger(__name__)

COHORT_COLUMNS: tuple[str, ...] = (
    *CSV_COLUMNS,
    "qc_flag",
    "qc_reasons",
    "tta_disagreement",
    "bundle",
    "channels",
    "error",
)
"""Columns of a cohort's ``indices.csv``."""


def output_paths(out_dir: str | Path, stem: str, probabilities: bool = False) -> dict[str, Path]:
    """Output files of one input (``labels``, ``indices``, ``qc``, optional ``probabilities``)."""
    out = Path(out_dir)
    paths = {
        "labels": out / f"{stem}_dseg.nii.gz",
        "indices": out / f"{stem}_indices.json",
        "qc": out / f"{stem}_qc.png",
    }
    if probabilities:
        paths["probabilities"] = out / f"{stem}_probseg.nii.gz"
    return paths


def refuse_existing(
    out_dir: str | Path, stems: Sequence[str], probabilities: bool = False, overwrite: bool = False
) -> None:
    """Check, before any work, that the outputs of ``stems`` can be written.

    Raises:
        FileExistsError: Naming the existing files, unless ``overwrite``.
        IsADirectoryError, NotADirectoryError, PermissionError: If an output cannot be
            written (a folder in its place, ``out_dir`` a file, a read-only folder).
    """
    paths = [p for stem in stems for p in output_paths(out_dir, stem, probabilities).values()]
    existing = [str(p) for p in paths if p.is_file()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)}: already exist(s) (use --overwrite)")
    for path in paths:
        check_output_file(path, parents=True, what="output")


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def write_prediction(
    prediction: Prediction,
    out_dir: str | Path,
    *,
    probabilities: bool = False,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the files of one prediction (see the module docstring), all or nothing.

    Args:
        prediction: The prediction; ``probabilities`` needs its probability maps.
        out_dir: Output directory (created when absent).
        probabilities: Also write ``<stem>_probseg.nii.gz``.
        overwrite: Replace existing outputs of the same stem.

    Returns:
        Kind → written path.

    Raises:
        FileExistsError: If an output exists and ``overwrite`` is false.
        ValueError: If probabilities are requested but the prediction holds none.
    """
    paths = output_paths(out_dir, prediction.stem, probabilities)
    if probabilities and prediction.probabilities is None:
        raise ValueError("probabilities: predict with probabilities=True to write them")
    with staged_files(paths, overwrite=overwrite) as staged:
        labels = _nifti(prediction.labels.astype(np.uint8), prediction.affine)
        nib.save(labels, staged["labels"])
        staged["indices"].write_text(prediction.to_json(), encoding="utf-8")
        qc_figure(prediction, staged["qc"])
        if probabilities and prediction.probabilities is not None:
            maps = np.moveaxis(prediction.probabilities, 0, -1).astype(np.float32)
            nib.save(_nifti(maps, prediction.affine), staged["probabilities"])
    return paths


@dataclass(frozen=True)
class CohortOutcome:
    """One cohort subject's prediction: its CSV row, files, or the error that stopped it.

    Attributes:
        participant_id: BIDS label.
        row: Row over :data:`COHORT_COLUMNS`.
        paths: Written files (empty on failure).
        error: ``<ExceptionType>: <message>`` on failure, else None.
        qc_flag: The subject's QC flag (None on failure).
    """

    participant_id: str
    row: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    qc_flag: bool | None = None


def cohort_subjects(
    root: str | Path,
    out_dir: str | Path,
    channels: Sequence[str],
    *,
    overwrite: bool = False,
) -> list[CohortSubject]:
    """Check that the predictions folder can be written, then validate the cohort.

    Args:
        root: Cohort root (``participants.tsv``, static PET, optional dynamic PET and FLAIR).
        out_dir: The cohort's predictions folder (written with :func:`fdopa.outputs.staged_dir`).
        channels: The input channels every subject needs (``required_channels`` of the
            :class:`~fdopa.export.predictor.Predictor` or
            :class:`~fdopa.export.choice.BundleChoice`).
        overwrite: An earlier predictions folder may be replaced.

    Returns:
        The subjects, in ``participants.tsv`` order.

    Raises:
        fdopa.layout.CohortError: If the cohort is invalid.
        FileExistsError: If ``out_dir`` holds predictions and ``overwrite`` is false, or holds
            anything else (see :func:`fdopa.outputs.staged_dir`).
    """
    check_artefact_dir(out_dir, kind="predictions", overwrite=overwrite)
    return load_cohort(root, channels=channels, require_labels=False)


def iter_cohort_predictions(
    predictor: Predictor | BundleChoice,
    subjects: Sequence[CohortSubject],
    out_dir: str | Path,
    *,
    preset: Preset | str = "guideline",
    probabilities: bool = False,
    overwrite: bool = False,
) -> Iterator[CohortOutcome]:
    """Predict and write every subject; a failing subject becomes an error row.

    Args:
        predictor: The predictor, or several bundles to choose from per subject (a subject's
            FLAIR goes to a bundle that reads one).
        subjects: Subjects from :func:`cohort_subjects`.
        out_dir: Output directory of every subject's files.
        preset: Index preset.
        probabilities: Also write probability maps.
        overwrite: Replace existing outputs.

    Yields:
        One :class:`CohortOutcome` per subject, in order.
    """
    choice = predictor if isinstance(predictor, BundleChoice) else BundleChoice([predictor])
    for subject in subjects:
        pid = subject.participant_id
        try:
            prediction = choice.predict(
                subject.static_pet, dynamic=subject.dynamic_pet, sidecar=subject.dynamic_sidecar,
                flair=subject.flair, preset=preset,
                probabilities=probabilities, participant_id=pid,
            )  # fmt: skip
            paths = write_prediction(
                prediction, out_dir, probabilities=probabilities, overwrite=overwrite
            )
        except Exception as err:  # a cohort run reports a failing subject and carries on
            message = " ".join(f"{type(err).__name__}: {err}".split())
            log.warning("%s: %s", pid, message)
            name = getattr(preset, "name", preset)
            yield CohortOutcome(
                pid, {"participant_id": pid, "preset": name, "error": message}, error=message
            )
            continue
        row = {**prediction.to_row(), "error": None}
        yield CohortOutcome(pid, row, paths, qc_flag=prediction.qc_flag)
