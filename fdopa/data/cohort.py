"""Read and validate a cohort in the PET-BIDS-like cohort layout (docs/labels-and-layout.md).

:func:`load_cohort` lists every participant of ``participants.tsv`` with the paths of its files
and checks, before any training starts, what would otherwise fail deep inside a data loader:
missing files, images of one subject on different voxel grids, label values outside the label map.
Images are checked from their headers; only the label maps are read in full. Every problem of
the cohort is collected and reported at once, each naming the file and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from fdopa.data.transforms import check_channels
from fdopa.kinetics.io import AFFINE_TOL_MM
from fdopa.labels import LABEL_VALUES
from fdopa.layout import LABELS_DIR, CohortError, SubjectPaths, read_participants

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortSubject:
    """One participant of a cohort: file paths and the ``participants.tsv`` row.

    Attributes:
        participant_id: BIDS label with the ``sub-`` prefix.
        static_pet: 3D static PET image.
        labels: Label map (values 0–3), or ``None`` when labels were not required and are absent.
        flair: FLAIR channel, or ``None`` when absent.
        dynamic_pet: 4D dynamic PET image, or ``None`` when absent.
        dynamic_sidecar: JSON sidecar of the dynamic image (``None`` with it).
        pet_units: ``Units`` of the static PET sidecar, or ``None`` without a sidecar.
        shape: Voxel grid shape after reorientation to RAS+ (what the data loaders yield).
        participant: The participant's ``participants.tsv`` row.
    """

    participant_id: str
    static_pet: Path
    labels: Path | None
    flair: Path | None
    dynamic_pet: Path | None
    dynamic_sidecar: Path | None
    pet_units: str | None
    shape: tuple[int, int, int]
    participant: dict[str, Any] = field(hash=False)


def canonical_shape(image: nib.Nifti1Image) -> tuple[int, int, int]:
    """Spatial shape of ``image`` once reoriented to RAS+ (axes permuted, from the header)."""
    axes = nib.orientations.io_orientation(image.affine)[:, 0].astype(int)
    shape = [0, 0, 0]
    for axis, size in zip(axes, image.shape[:3], strict=True):
        shape[axis] = int(size)
    return shape[0], shape[1], shape[2]


def _grid_problems(reference: Path, ref: nib.Nifti1Image, path: Path) -> list[str]:
    """Differences between the voxel grid of ``path`` and that of ``reference`` (header ``ref``)."""
    header = nib.load(path)
    if header.shape[:3] != ref.shape[:3]:
        return [
            f"{path}: grid mismatch with {reference}: shape {header.shape[:3]} != {ref.shape[:3]}"
        ]
    diff = float(np.abs(header.affine - ref.affine).max())
    if diff > AFFINE_TOL_MM:
        return [f"{path}: grid mismatch with {reference}: affine differs by {diff:.4g} mm"]
    return []


def _label_problems(path: Path) -> list[str]:
    """Label values of ``path`` outside the label map."""
    values = np.unique(np.asarray(nib.load(path).dataobj))
    bad = sorted(set(values.tolist()) - set(LABEL_VALUES))
    if bad:
        return [f"{path}: label values {bad[:10]} outside the label map {list(LABEL_VALUES)}"]
    return []


def _pet_units(sidecar: Path) -> tuple[str | None, list[str]]:
    """``Units`` of a static PET sidecar, if there is one."""
    if not sidecar.is_file():
        return None, []
    try:
        units = json.loads(sidecar.read_text()).get("Units")
    except json.JSONDecodeError as error:
        return None, [f"{sidecar}: not valid JSON ({error})"]
    return (str(units) if units is not None else None), []


def _read_subject(
    root: Path,
    row: dict[str, Any],
    labels_dir: Path,
    channels: tuple[str, ...],
    require_labels: bool,
) -> tuple[CohortSubject | None, list[str]]:
    """Paths and validation of one participant; ``None`` with the problems when invalid."""
    pid = str(row["participant_id"])
    paths = SubjectPaths(root, pid)
    labels = labels_dir / pid / paths.labels.name
    problems: list[str] = []
    if not paths.static_pet.is_file():
        return None, [f"{paths.static_pet}: missing static PET of {pid}"]
    if not labels.is_file():
        if require_labels:
            problems.append(f"{labels}: missing label map (dseg) of {pid}")
        labels = None
    flair = paths.flair if paths.flair.is_file() else None
    if "flair" in channels and flair is None:
        problems.append(f"{paths.flair}: missing FLAIR of {pid} (channel 'flair' requested)")
    dynamic = paths.dynamic_pet if paths.dynamic_pet.is_file() else None
    if dynamic is not None and not paths.dynamic_sidecar.is_file():
        problems.append(f"{paths.dynamic_sidecar}: missing sidecar of the dynamic PET {dynamic}")
    units, unit_problems = _pet_units(paths.static_sidecar)
    problems += unit_problems
    static = nib.load(paths.static_pet)
    if len(static.shape) != 3:
        problems.append(f"{paths.static_pet}: static PET must be 3D, shape {static.shape}")
    for other in (labels, flair, dynamic):
        if other is not None:
            problems += _grid_problems(paths.static_pet, static, other)
    if labels is not None:
        problems += _label_problems(labels)
    if problems:
        return None, problems
    subject = CohortSubject(
        participant_id=pid,
        static_pet=paths.static_pet,
        labels=labels,
        flair=flair,
        dynamic_pet=dynamic,
        dynamic_sidecar=paths.dynamic_sidecar if dynamic is not None else None,
        pet_units=units,
        shape=canonical_shape(static),
        participant=row,
    )
    return subject, []


def load_cohort(
    root: str | Path,
    *,
    labels_from: str = LABELS_DIR,
    channels: Sequence[str] = ("pet",),
    require_labels: bool = True,
    required_columns: Sequence[str] = ("participant_id",),
) -> list[CohortSubject]:
    """Read and validate a cohort in the cohort layout.

    Args:
        root: Cohort root directory (holds ``participants.tsv``).
        labels_from: Folder of the label maps, relative to ``root`` (or absolute), laid out as
            ``<labels_from>/sub-XXX/sub-XXX_dseg.nii.gz``; e.g. ``derivatives/manual``.
        channels: Requested input channels (``pet``, ``flair``); a requested FLAIR is required.
        require_labels: Whether a missing label map is an error (``False`` for prediction).
        required_columns: Columns ``participants.tsv`` must have.

    Returns:
        The participants in ``participants.tsv`` order.

    Raises:
        CohortError: On a participants table that breaks a rule of
            :func:`fdopa.layout.read_participants`; else listing every problem found:
            missing static PET / labels / requested FLAIR / dynamic sidecar, voxel grid
            mismatch (shape, or affine beyond 1e-3 mm) naming both files, label values outside
            {0, 1, 2, 3}.
        ValueError: On an unknown channel name.
    """
    root = Path(root)
    channels = check_channels(channels)
    table = read_participants(root, required_columns)
    labels_dir = root / labels_from
    subjects: list[CohortSubject] = []
    problems: list[str] = []
    for row in table.to_dict(orient="records"):
        subject, found = _read_subject(root, row, labels_dir, channels, require_labels)
        problems += found
        if subject is not None:
            subjects.append(subject)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise CohortError(f"cohort {root}: {len(problems)} problem(s):\n{listing}")
    log.info("cohort %s: %d participants, channels %s", root, len(subjects), list(channels))
    return subjects
