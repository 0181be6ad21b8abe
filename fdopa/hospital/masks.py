"""Tumour masks drawn by physicians, on the PET grid: NIfTI, DICOM SEG or DICOM RTSTRUCT.

* NIfTI (ITK-SNAP, 3D Slicer): voxels > 0; on another grid the mask is resampled by its world
  coordinates (linear interpolation of the 0/1 mask, kept where ≥ 0.5);
* DICOM SEG: read with highdicom (its volume geometry), one segment;
* DICOM RTSTRUCT: the closed planar contours of one ROI, filled on the PET grid: a PET voxel
  centre belongs to the ROI when it lies inside an odd number of the contours of the nearest
  contour plane (holes drawn as inner contours), within half the contour spacing of it.

A mask drawn on another scan — typically the FLAIR as exported, before the import registered it
to the PET — is brought onto the PET by that registration's rigid transform (``to_mask``).

With several segments or ROIs, ``roi`` names one; without it the only one, or the only one whose
name says tumour / GTV / lesion, is taken. Errors name the file and what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as Polygon
from pydicom.errors import InvalidDicomError

from fdopa.hospital.dicom import LPS_TO_RAS
from fdopa.hospital.registration import resample
from fdopa.kinetics.io import AFFINE_TOL_MM, read_nifti
from fdopa.kinetics.validation import InputError

__all__ = ["read_tumour_mask"]

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
_TUMOUR_NAME = re.compile(r"tum|gtv|lesion|glioma", re.IGNORECASE)


def _choose(names: dict[int, str], roi: str | None, path: Path, what: str) -> int:
    """The number of the wanted segment / ROI among ``number → name``."""
    if roi is not None:
        chosen = [n for n, name in names.items() if name.strip().lower() == roi.strip().lower()]
        if len(chosen) != 1:
            raise InputError(
                path, what, f"no single {what} named {roi!r} among {sorted(names.values())}"
            )
        return chosen[0]
    if len(names) == 1:
        return next(iter(names))
    tumour = [n for n, name in names.items() if _TUMOUR_NAME.search(name)]
    if len(tumour) == 1:
        return tumour[0]
    raise InputError(path, what, f"several: {sorted(names.values())}; choose one with --roi NAME")


def _on_grid(
    mask: np.ndarray, mask_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray
) -> np.ndarray:
    same = (
        mask.shape[:3] == tuple(shape[:3]) and np.abs(mask_affine - affine).max() <= AFFINE_TOL_MM
    )
    if same:
        return mask > 0
    fraction = resample(
        (mask > 0).astype(np.float32), mask_affine, sitk.Euler3DTransform(), shape, affine
    )
    return fraction >= 0.5


def _nifti_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, mask_affine = read_nifti(path, np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, "shape", f"a tumour mask must be 3-D, got shape {data.shape}")
    return np.nan_to_num(data), mask_affine


def _seg_mask(path: Path, roi: str | None) -> tuple[np.ndarray, np.ndarray]:
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    names = {
        int(item.SegmentNumber): str(item.get("SegmentLabel", "")) for item in seg.SegmentSequence
    }
    number = _choose(names, roi, path, "segment")
    try:
        volume = seg.get_volume(segment_numbers=[number], combine_segments=True)
    except (ValueError, RuntimeError) as err:
        raise InputError(
            path, "segment", f"its frames do not form one regular volume ({err})"
        ) from err
    return np.asarray(volume.array), LPS_TO_RAS @ np.asarray(volume.affine, float)


def _rtstruct_contours(path: Path, dataset: pydicom.Dataset, roi: str | None) -> list[np.ndarray]:
    """The closed planar contours (RAS points) of the chosen ROI."""
    names = {
        int(item.ROINumber): str(item.get("ROIName", ""))
        for item in dataset.get("StructureSetROISequence", [])
    }
    if not names:
        raise InputError(path, "StructureSetROISequence", "no ROI in the structure set")
    number = _choose(names, roi, path, "ROI")
    contours = []
    for item in dataset.get("ROIContourSequence", []):
        if int(item.ReferencedROINumber) != number:
            continue
        for contour in item.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
                continue
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            if len(points) >= 3:
                contours.append((LPS_TO_RAS[:3, :3] @ points.T).T)
    if not contours:
        raise InputError(
            path, "ContourSequence", f"ROI {names[number]!r} has no closed planar contour"
        )
    return contours


def _fill_contours(
    contours: list[np.ndarray], shape: tuple[int, ...], affine: np.ndarray
) -> np.ndarray:
    """Voxels of the grid inside the planar contours (even-odd rule per plane)."""
    largest = max(contours, key=len)
    _, _, vt = np.linalg.svd(largest - largest.mean(axis=0))
    normal, u, v = vt[2], vt[0], vt[1]
    heights = np.array([float(c.mean(axis=0) @ normal) for c in contours])
    planes = np.unique(np.round(heights, 2))
    gaps = np.diff(planes)
    voxel = float(np.abs(affine[:3, :3] @ normal).max())
    half = (float(np.median(gaps)) if len(gaps) else voxel) / 2.0
    index = np.indices(tuple(shape[:3])).reshape(3, -1).T
    world = index @ affine[:3, :3].T + affine[:3, 3]
    height = world @ normal
    nearest = (
        planes[np.abs(height[:, None] - planes[None, :]).argmin(axis=1)] if len(planes) else height
    )
    mask = np.zeros(len(world), bool)
    for plane in planes:
        rows = np.flatnonzero((nearest == plane) & (np.abs(height - plane) <= half + 1e-6))
        if rows.size == 0:
            continue
        flat = np.stack([world[rows] @ u, world[rows] @ v], axis=1)
        inside = np.zeros(rows.size, bool)
        for contour, level in zip(contours, np.round(heights, 2), strict=True):
            if level == plane:
                inside ^= Polygon(np.stack([contour @ u, contour @ v], axis=1)).contains_points(
                    flat
                )
        mask[rows] = inside
    return mask.reshape(tuple(shape[:3]))


def _dicom_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def read_tumour_mask(
    path: str | Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    *,
    roi: str | None = None,
    to_mask: np.ndarray | None = None,
) -> np.ndarray:
    """A tumour mask on the PET grid.

    Args:
        path: NIfTI file, DICOM SEG or RTSTRUCT file, or a folder holding one SEG or RTSTRUCT.
        shape: PET grid shape.
        affine: PET RAS affine.
        roi: Segment label (SEG) or ROI name (RTSTRUCT) when there are several.
        to_mask: 4×4 RAS matrix from PET world to the mask's world, for a mask drawn on
            another scan (e.g. the FLAIR before registration: the import's transform); None
            when the mask is in the PET's world.

    Returns:
        Boolean mask on the PET grid.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: Naming the file, for an unreadable, ambiguous or empty mask.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (the tumour mask)")
    back = np.eye(4) if to_mask is None else np.linalg.inv(np.asarray(to_mask, float))
    if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")):
        data, mask_affine = _nifti_mask(path)
        mask = _on_grid(data, back @ mask_affine, shape, affine)
    else:
        found = []
        for file in _dicom_files(path):
            try:
                dataset = pydicom.dcmread(file)
            except (InvalidDicomError, OSError, ValueError, EOFError):
                continue
            if str(dataset.get("SOPClassUID", "")) in (SEG_STORAGE, RTSTRUCT_STORAGE):
                found.append((file, dataset))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise InputError(
                path,
                "SOPClassUID",
                f"{what} DICOM SEG or RTSTRUCT found; give exactly one (or a NIfTI mask)",
            )
        file, dataset = found[0]
        if str(dataset.SOPClassUID) == SEG_STORAGE:
            data, mask_affine = _seg_mask(file, roi)
            mask = _on_grid(data, back @ mask_affine, shape, affine)
        else:
            contours = _rtstruct_contours(file, dataset, roi)
            moved = [c @ back[:3, :3].T + back[:3, 3] for c in contours]
            mask = _fill_contours(moved, shape, affine)
    if not mask.any():
        raise InputError(
            path, "mask", "no tumour voxel on the PET grid (wrong patient or frame of reference?)"
        )
    return mask
