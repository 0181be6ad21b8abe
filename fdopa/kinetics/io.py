"""Reading the images and sidecar of one scan, with errors that name the file and the field.

Checks (each raises :class:`~fdopa.kinetics.validation.InputError`):
    * a file that is not NIfTI or whose voxels cannot be read (``format`` / ``voxels``);
    * a static image or label map that is not 3-D, a dynamic image that is not 4-D (``shape``);
    * a grid differing from the static image's: spatial shape (``shape``), or an affine that
      moves any voxel centre by more than 1e-3 mm (``affine``) — the message names both files;
    * NaN or Inf voxels (``voxels``); label values outside 0–3 (``labels``);
    * sidecar fields: ``FrameTimesStart`` / ``FrameDuration`` missing, not numbers, a count
      other than the 4-D length, non-increasing or overlapping frames, durations ≤ 0.
"""

from __future__ import annotations

import itertools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from fdopa.kinetics.validation import (
    InputError,
    check_frame_timing,
    check_labels,
    check_volume,
    finite_array,
)

__all__ = [
    "AFFINE_TOL_MM",
    "PetInputs",
    "load_inputs",
    "read_frame_timing",
    "sidecar_for",
]

AFFINE_TOL_MM = 1e-3
"""Largest displacement (mm) of a voxel centre between two affines of the same grid."""


@dataclass(frozen=True, eq=False)
class PetInputs:
    """Validated arrays of one scan.

    Attributes:
        static: 3-D static image (float64).
        labels: 3-D label map, values 0–3 (int16).
        affine: 4×4 voxel-to-RAS-world matrix (float64).
        dynamic: Optional 4-D image, frames on the last axis (float32 or float64).
        frame_start_s: Frame starts (s), with ``dynamic``.
        frame_duration_s: Frame durations (s), with ``dynamic``.
    """

    static: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    dynamic: np.ndarray | None = None
    frame_start_s: np.ndarray | None = None
    frame_duration_s: np.ndarray | None = None


def sidecar_for(image_path: str | Path) -> Path:
    """The BIDS sidecar of an image: the same name with ``.json`` for ``.nii[.gz]``."""
    path = Path(image_path)
    name = path.name.removesuffix(".gz").removesuffix(".nii")
    return path.with_name(f"{name}.json")


def read_nifti(path: Path, dtype: type | None) -> tuple[np.ndarray, np.ndarray]:
    """Voxels (as ``dtype``, or the stored integer type when None) and affine of a NIfTI file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        image = nib.load(path)
    except ImageFileError as err:
        raise InputError(path, "format", f"not a NIfTI image ({err})") from err
    try:
        data = np.asanyarray(image.dataobj) if dtype is None else image.get_fdata(dtype=dtype)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise InputError(path, "voxels", f"cannot read the voxels ({err})") from err
    affine = np.asarray(image.affine, dtype=float)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) == 0:
        raise InputError(path, "affine", "the header affine is not finite and invertible")
    return data, affine


def check_same_grid(
    path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref: Path,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
) -> None:
    """Raise unless ``path`` has the spatial grid of ``ref`` (shape; affine within 1e-3 mm)."""
    if tuple(shape[:3]) != tuple(ref_shape[:3]):
        raise InputError(
            path, "shape", f"spatial shape {tuple(shape[:3])} differs from {ref_shape[:3]} of {ref}"
        )
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in ref_shape[:3]])), float)
    moved = (corners @ (affine - ref_affine)[:3, :3].T) + (affine - ref_affine)[:3, 3]
    distance = float(np.sqrt((moved**2).sum(axis=1)).max())
    if distance > AFFINE_TOL_MM:
        raise InputError(
            path,
            "affine",
            f"differs from the affine of {ref} by {distance:.3g} mm (> {AFFINE_TOL_MM:g} mm)",
        )


def read_sidecar(path: str | Path, what: str = "sidecar") -> dict[str, Any]:
    """Read a JSON sidecar that must hold one object.

    Args:
        path: Sidecar file.
        what: What the file is, for the missing-file message.

    Raises:
        FileNotFoundError: If the file does not exist.
        InputError: Naming the file, for invalid JSON or a non-object payload.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file ({what})")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, "json", f"not valid JSON ({err})") from err
    if not isinstance(payload, dict):
        raise InputError(path, "json", "expected a JSON object")
    return payload


def read_frame_timing(sidecar: str | Path, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate ``FrameTimesStart`` and ``FrameDuration`` from a JSON sidecar.

    Args:
        sidecar: Sidecar path.
        n_frames: Number of frames of the 4-D image.

    Returns:
        ``(starts_s, durations_s)`` as float64 arrays.

    Raises:
        InputError: Naming the sidecar and the field.
        FileNotFoundError: If the sidecar does not exist.
    """
    path = Path(sidecar)
    payload = read_sidecar(path, "the dynamic image's sidecar")
    timing = []
    for field in ("FrameTimesStart", "FrameDuration"):
        value = payload.get(field)
        if value is None:
            raise InputError(path, field, "missing (required with a dynamic image)")
        numbers = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        )
        if not numbers:
            raise InputError(path, field, f"expected a list of numbers, got {value!r:.60}")
        timing.append(value)
    return check_frame_timing(*timing, n_frames, start_source=path, duration_source=path)


def load_inputs(
    static_path: str | Path,
    labels_path: str | Path,
    dynamic_path: str | Path | None = None,
    sidecar_path: str | Path | None = None,
) -> PetInputs:
    """Load and validate the images of one scan (and the dynamic image's frame timing).

    Args:
        static_path: 3-D static PET (NIfTI).
        labels_path: Label map (NIfTI, values 0–3) on the same grid.
        dynamic_path: Optional 4-D PET on the same grid.
        sidecar_path: Sidecar of the 4-D PET; defaults to :func:`sidecar_for` of it.

    Returns:
        The validated :class:`PetInputs`.

    Raises:
        InputError: Naming the file and the field (see the module docstring).
        FileNotFoundError: If a file does not exist.
    """
    static_file, labels_file = Path(static_path), Path(labels_path)
    static, affine = read_nifti(static_file, np.float64)
    check_volume(static, static_file, 3)
    finite_array(static, static_file)
    labels, labels_affine = read_nifti(labels_file, None)
    check_volume(labels, labels_file, 3)
    check_same_grid(labels_file, labels.shape, labels_affine, static_file, static.shape, affine)
    labels = check_labels(labels, labels_file)
    if dynamic_path is None:
        if sidecar_path is not None:
            raise InputError(sidecar_path, "FrameTimesStart", "sidecar given without dynamic image")
        return PetInputs(static, labels, affine)
    dynamic_file = Path(dynamic_path)
    dynamic, dynamic_affine = read_nifti(dynamic_file, np.float32)
    check_volume(dynamic, dynamic_file, 4)
    check_same_grid(dynamic_file, dynamic.shape, dynamic_affine, static_file, static.shape, affine)
    finite_array(dynamic, dynamic_file)
    sidecar = sidecar_for(dynamic_file) if sidecar_path is None else Path(sidecar_path)
    starts, durations = read_frame_timing(sidecar, dynamic.shape[3])
    return PetInputs(static, labels, affine, dynamic, starts, durations)
