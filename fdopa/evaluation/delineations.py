"""The delineation methods of the seed study and their indices over a cohort.

* ``reference`` — the cohort's reference labels (``derivatives/labels``);
* ``manual`` — a second operator's labels (``derivatives/manual``; the synthetic cohort's
  inter-operator variant);
* ``semi-automatic`` — :func:`semi_automatic_labels` of the manual labels: the tumour is
  redrawn as the voxels at or above ``mtv_threshold`` (1.6) × the reference mean inside the
  manual tumour dilated by ``dilation_mm``, the way a threshold tool refines a rough contour;
* ``automatic`` — the network's label maps, from a folder in the same layout as the labels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from nibabel.affines import voxel_sizes
from scipy import ndimage

from fdopa.kinetics import Preset, get_preset, indices_from_inputs, load_inputs, validate_inputs
from fdopa.kinetics.cohort_indices import COHORT_COLUMNS, cohort_participants
from fdopa.kinetics.regions import derive_region_set
from fdopa.layout import LABELS_DIR, MANUAL_DIR, SubjectPaths

__all__ = [
    "DEFAULT_DILATION_MM",
    "METHODS",
    "cohort_method_indices",
    "semi_automatic_labels",
]

logger = logging.getLogger(__name__)

DEFAULT_DILATION_MM = 5.0
"""Margin (mm) by which the manual tumour is grown before thresholding."""

METHODS: tuple[str, ...] = ("automatic", "reference", "manual", "semi-automatic")
"""Delineation method names, as they appear in reports and file names."""


def semi_automatic_labels(
    pet: np.ndarray,
    manual_labels: np.ndarray,
    affine: np.ndarray,
    preset: Preset | str = "guideline",
    *,
    threshold: float | None = None,
    dilation_mm: float = DEFAULT_DILATION_MM,
) -> np.ndarray:
    """Threshold-based tumour inside a dilated manual tumour (the semi-automatic delineation).

    The background reference region is derived from the manual labels; candidate voxels
    are labelled voxels (not background, not striatum) within ``dilation_mm`` (Euclidean, in
    mm) of the manual tumour; the new tumour is the candidates with
    ``pet >= threshold × mean(pet in the reference)``. Manual tumour voxels left out become
    healthy brain; brain and striatum are otherwise unchanged.

    Args:
        pet: 3-D static PET.
        manual_labels: Label map (values 0–3) of the manual delineation, same grid.
        affine: 4×4 voxel-to-RAS-world matrix.
        preset: Preset of the reference region and labels (and of ``threshold``).
        threshold: Multiple of the reference mean; default ``preset.mtv_threshold``.
        dilation_mm: Margin around the manual tumour.

    Returns:
        A new int16 label map (the tumour may come out empty).

    Raises:
        ValueError: If the manual labels have no tumour or no reference region, or on invalid
            inputs (:class:`fdopa.kinetics.InputError`).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    static, labels, affine = validate_inputs(pet, manual_labels, affine)[:3]
    regions = derive_region_set(labels, affine, preset)
    if regions.tumour[0].size == 0 or regions.reference[0].size == 0:
        raise ValueError(
            "semi-automatic delineation: the manual labels give no tumour or no "
            "background reference region"
        )
    level = (threshold or preset.mtv_threshold) * float(static[regions.reference].mean())
    tumour = labels == preset.tumour_label
    zooms = voxel_sizes(affine)
    near = ndimage.distance_transform_edt(~tumour, sampling=zooms) <= dilation_mm
    candidates = near & (labels != 0) & ~np.isin(labels, preset.striatum_labels)
    semi = labels.copy()
    semi[tumour] = preset.brain_label
    semi[candidates & (static >= level)] = preset.tumour_label
    return semi


def _labels_path(root: Path, folder: str | Path, participant_id: str) -> Path:
    """A subject's label map in ``folder`` (relative to ``root`` unless absolute).

    Either the derivatives layout (``<id>/<id>_dseg.nii.gz``) or the flat folder that
    ``fdopa predict --cohort`` writes (``<static PET stem>_dseg.nii.gz``).
    """
    nested = root / folder / participant_id / f"{participant_id}_dseg.nii.gz"
    stem = SubjectPaths(root, participant_id).static_pet.name.removesuffix(".nii.gz")
    flat = root / folder / f"{stem}_dseg.nii.gz"
    return flat if flat.is_file() and not nested.is_file() else nested


def _method_row(
    root: Path,
    participant_id: str,
    preset: Preset,
    method: str,
    folder: str | Path,
    dilation_mm: float,
) -> dict[str, Any]:
    """One method's index row of one subject; a failure becomes a row with its ``error``."""
    paths = SubjectPaths(root, participant_id)
    dynamic = paths.dynamic_pet if paths.dynamic_pet.exists() else None
    try:
        inputs = load_inputs(
            paths.static_pet,
            _labels_path(root, folder, participant_id),
            dynamic,
            None if dynamic is None else paths.dynamic_sidecar,
        )
        if method == "semi-automatic":
            semi = semi_automatic_labels(
                inputs.static, inputs.labels, inputs.affine, preset, dilation_mm=dilation_mm
            )
            inputs = dataclasses.replace(inputs, labels=semi)
        row = indices_from_inputs(inputs, preset, participant_id, paths.static_pet).to_row()
    except Exception as err:  # one failing subject is reported, the others carry on
        message = " ".join(f"{type(err).__name__}: {err}".split())
        logger.warning("%s (%s): %s", participant_id, method, message)
        return {"participant_id": participant_id, "preset": preset.name, "error": message}
    return {**row, "error": None}


def cohort_method_indices(
    root: str | Path,
    preset: Preset | str = "guideline",
    *,
    auto_labels: str | Path | None = None,
    participants: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    dilation_mm: float = DEFAULT_DILATION_MM,
    n_jobs: int = 1,
) -> dict[str, pd.DataFrame]:
    """Indices of every available delineation method for every subject of a cohort.

    ``reference`` is always available; ``manual`` and ``semi-automatic`` when the cohort has
    ``derivatives/manual``; ``automatic`` when ``auto_labels`` is given; each only if named
    in ``methods``.

    Args:
        root: Root of a cohort in the cohort layout.
        preset: Index preset (also that of the semi-automatic threshold).
        auto_labels: Folder of automatic label maps (``<id>/<id>_dseg.nii.gz``, or the flat
            output folder of ``fdopa predict --cohort``), relative to the current folder or to
            ``root`` unless absolute.
        participants: Subjects to run; default every subject of the cohort.
        methods: Compute only these of the available methods.
        dilation_mm: Margin of :func:`semi_automatic_labels`.
        n_jobs: Worker processes (joblib).

    Returns:
        Method name (in :data:`METHODS` order) → one row per subject over
        :data:`fdopa.kinetics.cohort_indices.COHORT_COLUMNS` (``missing`` as JSON; ``error``
        empty on success), sorted by ``participant_id``.

    Raises:
        FileNotFoundError: If ``auto_labels`` is given but is not a folder.
    """
    root = Path(root)
    preset = get_preset(preset) if isinstance(preset, str) else preset
    ids = cohort_participants(root) if participants is None else sorted(participants)
    folders: dict[str, str | Path] = {"reference": LABELS_DIR}
    if auto_labels is not None:
        if not (root / auto_labels).is_dir() and Path(auto_labels).is_dir():
            auto_labels = Path(auto_labels).resolve()  # given relative to the current folder
        if not (root / auto_labels).is_dir():
            raise FileNotFoundError(f"--auto-labels: {root / auto_labels} is not a folder")
        folders = {"automatic": auto_labels, **folders}
    if (root / MANUAL_DIR).is_dir():
        folders |= {"manual": MANUAL_DIR, "semi-automatic": MANUAL_DIR}
    folders = {name: folder for name, folder in folders.items() if name in methods}
    jobs = [
        delayed(_method_row)(root, pid, preset, method, folder, dilation_mm)
        for method, folder in folders.items()
        for pid in ids
    ]
    rows = Parallel(n_jobs=n_jobs)(jobs)
    return {
        method: pd.DataFrame(rows[i * len(ids) : (i + 1) * len(ids)], columns=list(COHORT_COLUMNS))
        for i, method in enumerate(folders)
    }
