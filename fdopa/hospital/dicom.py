"""DICOM series of a hospital export: discovery, grouping and voxel geometry (pydicom).

A folder of any nesting is read header-first (``stop_before_pixels``); files that are not
DICOM images (a DICOMDIR, text, JPEG) are skipped. Instances are grouped by
``SeriesInstanceUID``. A classic single-frame series becomes one 3-D volume: its slices are
sorted along the slice normal (``ImageOrientationPatient`` × ``ImagePositionPatient``), so any
instance order — head first, feet first, shuffled — gives the same volume, and any orientation
(axial, sagittal, coronal, oblique) gets its exact voxel-to-world affine. Refused, each with one
line naming the series and the tag: mixed orientations or pixel spacings in one volume, slices
missing (a gap in the slice positions) or duplicated, and gantry-tilted (sheared) stacks.

Multi-frame (enhanced) MR images are read through highdicom's volume geometry.

Every error is a :class:`~fdopa.kinetics.validation.InputError` whose source is the series
(``series 4 "PET Brain Dyn"``) and whose field is the DICOM keyword and tag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from fdopa.kinetics.validation import InputError

__all__ = [
    "LPS_TO_RAS",
    "DicomSeries",
    "Instance",
    "dicom_date",
    "dicom_datetime",
    "read_volume",
    "scan_folder",
    "series_error",
    "slice_order",
    "tag_name",
]

log = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates (LPS) to NIfTI world coordinates (RAS)."""

ORIENTATION_TOL = 1e-4
"""Largest difference of direction cosines between slices of one volume."""

SPACING_TOL = 0.01
"""Largest deviation of a slice step from the median step, as a fraction of it."""

TILT_TOL = 1e-3
"""Largest in-plane slice shift per mm of stacking (tangent of the gantry-tilt shear)."""


def tag_name(keyword: str) -> str:
    """``Keyword (gggg,eeee)`` for a DICOM keyword, as error messages show it."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def series_error(series: object, keyword: str, problem: str) -> InputError:
    """An :class:`InputError` naming a series, a DICOM tag and the problem."""
    return InputError(series, tag_name(keyword), problem)


@dataclass(frozen=True)
class Instance:
    """One DICOM file: its path and its header (without pixel data)."""

    path: Path
    header: Dataset


@dataclass(frozen=True)
class DicomSeries:
    """The instances of one ``SeriesInstanceUID``.

    Attributes:
        uid: Series Instance UID.
        instances: The files, in discovery order.
    """

    uid: str
    instances: tuple[Instance, ...]

    @property
    def header(self) -> Dataset:
        """The first instance's header (series-level attributes)."""
        return self.instances[0].header

    @property
    def modality(self) -> str:
        """``Modality`` (PT, MR, SEG, RTSTRUCT, ...)."""
        return str(self.header.get("Modality", "")).upper()

    @property
    def description(self) -> str:
        """``SeriesDescription`` (empty when absent)."""
        return str(self.header.get("SeriesDescription", "") or "")

    @property
    def label(self) -> str:
        """How messages name the series: ``series <SeriesNumber> "<SeriesDescription>"``."""
        return f'series {self.header.get("SeriesNumber", "?")} "{self.description}"'

    @property
    def patient_id(self) -> str:
        """``PatientID``; never written to any output."""
        value = str(self.header.get("PatientID", "") or "").strip()
        if not value:
            raise series_error(self.label, "PatientID", "missing; fdopa groups series by patient")
        return value

    @property
    def study_uid(self) -> str:
        """``StudyInstanceUID`` (empty when absent)."""
        return str(self.header.get("StudyInstanceUID", "") or "")

    @property
    def study_date(self) -> date | None:
        """``StudyDate`` (else ``SeriesDate``), or None."""
        for keyword in ("StudyDate", "SeriesDate"):
            value = dicom_date(self.header, keyword)
            if value is not None:
                return value
        return None

    @property
    def n_frames(self) -> int:
        """``NumberOfFrames`` of the first instance (1 for classic single-frame images)."""
        return int(self.header.get("NumberOfFrames", 1) or 1)

    def common(self, keyword: str, *, required: bool = True) -> Any:
        """A value that every instance shares.

        Raises:
            InputError: If the tag is missing (and ``required``) or differs between instances.
        """
        values = {_hashable(i.header.get(keyword)) for i in self.instances}
        if len(values) > 1:
            raise series_error(
                self.label, keyword, f"differs between instances: {sorted(map(str, values))[:4]}"
            )
        value = self.instances[0].header.get(keyword)
        if required and (value is None or value == ""):
            raise series_error(self.label, keyword, "missing")
        return value


def _hashable(value: Any) -> Any:
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return tuple(str(v) for v in value)
    if isinstance(value, pydicom.sequence.Sequence):
        return str(value)
    return value


def dicom_date(header: Dataset, keyword: str) -> date | None:
    """A DA attribute as a date (None when absent or not a DICOM date)."""
    value = header.get(keyword)
    if not value:
        return None
    try:
        return pydicom.valuerep.DA(str(value))
    except ValueError:
        return None


def dicom_datetime(
    header: Dataset,
    date_keyword: str,
    time_keyword: str,
    label: str,
    *,
    fallback_date: date | None = None,
) -> datetime | None:
    """Combine a DA and a TM attribute into a naive datetime (None when the time is absent).

    Args:
        header: DICOM dataset.
        date_keyword: Date attribute (e.g. ``AcquisitionDate``).
        time_keyword: Time attribute (e.g. ``AcquisitionTime``).
        label: The series, for messages.
        fallback_date: Date used when ``date_keyword`` is absent.

    Raises:
        InputError: If a present value cannot be parsed.
    """
    time_value = header.get(time_keyword)
    if not time_value:
        return None
    try:
        clock = pydicom.valuerep.TM(str(time_value).replace(":", ""))
    except ValueError as err:
        raise series_error(label, time_keyword, f"not a DICOM time: {time_value!r}") from err
    day = dicom_date(header, date_keyword) or fallback_date
    if day is None:
        raise series_error(label, date_keyword, f"missing (needed with {time_keyword})")
    return datetime.combine(day, clock.replace(tzinfo=None))


def scan_folder(folder: str | Path) -> tuple[list[DicomSeries], int]:
    """Find every DICOM series under a folder (any nesting).

    Args:
        folder: The DICOM export.

    Returns:
        ``(series, skipped)``: the series sorted by patient, study and series number, and the
        number of files that were not DICOM instances of a series.

    Raises:
        FileNotFoundError: If ``folder`` is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (the DICOM export)")
    groups: dict[str, list[Instance]] = {}
    skipped = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            skipped += 1
            continue
        except Exception as err:  # a damaged file is skipped like any other non-DICOM file
            log.warning("%s: skipped, not readable as DICOM (%s)", path, err)
            skipped += 1
            continue
        uid = header.get("SeriesInstanceUID")
        if not uid or "SOPClassUID" not in header:
            skipped += 1
            continue
        groups.setdefault(str(uid), []).append(Instance(path, header))
    series = [DicomSeries(uid, tuple(instances)) for uid, instances in groups.items()]

    def key(s: DicomSeries) -> tuple:
        header = s.header
        number = header.get("SeriesNumber")
        return (
            str(header.get("PatientID", "")),
            s.study_uid,
            int(number) if number not in (None, "") else 0,
            s.uid,
        )

    return sorted(series, key=key), skipped


def _vector(header: Dataset, keyword: str, size: int, label: str) -> np.ndarray:
    value = header.get(keyword)
    if value is None or len(value) != size:
        raise series_error(
            label, keyword, "missing" if value is None else f"expected {size} numbers"
        )
    try:
        return np.array([float(v) for v in value])
    except (TypeError, ValueError) as err:
        raise series_error(label, keyword, f"not numbers: {value!r}") from err


def slice_order(
    instances: list[Instance] | tuple[Instance, ...], label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Sort the slices of one volume along its normal and compute its affine.

    Args:
        instances: Single-frame instances of one volume (one PET frame, one MR series).
        label: The series, for messages.

    Returns:
        ``(order, affine)``: indices of ``instances`` from the first to the last slice, and
        the 4×4 voxel-to-RAS affine of the array ``data[column, row, slice]``.

    Raises:
        InputError: On missing geometry tags, mixed orientations, pixel spacings or matrix
            sizes, duplicated or missing slices, or a gantry-tilted (sheared) stack.
    """
    headers = [i.header for i in instances]
    orientations = np.array([_vector(h, "ImageOrientationPatient", 6, label) for h in headers])
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOL:
        raise series_error(
            label,
            "ImageOrientationPatient",
            "mixed orientations in one series; export each orientation as its own series",
        )
    spacings = np.array([_vector(h, "PixelSpacing", 2, label) for h in headers])
    if np.abs(spacings - spacings[0]).max() > 1e-4 * spacings[0].max():
        raise series_error(label, "PixelSpacing", "differs between slices of one volume")
    sizes = {(int(h.get("Rows", 0)), int(h.get("Columns", 0))) for h in headers}
    if len(sizes) > 1:
        raise series_error(label, "Rows", f"matrix sizes differ between slices: {sorted(sizes)}")
    row, column = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, column)
    if abs(np.linalg.norm(normal) - 1.0) > 1e-3 or abs(row @ column) > 1e-3:
        raise series_error(
            label, "ImageOrientationPatient", "direction cosines are not orthonormal"
        )
    positions = np.array([_vector(h, "ImagePositionPatient", 3, label) for h in headers])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    distance, positions = distance[order], positions[order]
    steps = np.diff(distance)
    if len(steps) and steps.min() < 1e-3:
        raise series_error(
            label,
            "ImagePositionPatient",
            "two slices at the same position (duplicated instances or several frames)",
        )
    if len(steps):
        step = float(np.median(steps))
        worst = int(np.argmax(np.abs(steps - step)))
        if abs(steps[worst] - step) > SPACING_TOL * step:
            raise series_error(
                label,
                "ImagePositionPatient",
                f"slice spacing not uniform: {steps[worst]:.3g} mm after slice {worst + 1} "
                f"of {len(order)} where the others are {step:.3g} mm (missing slices?)",
            )
        travel = positions[-1] - positions[0]
        shear = np.linalg.norm(travel - (travel @ normal) * normal) / (travel @ normal)
        if shear > TILT_TOL:
            tilt = float(np.degrees(np.arctan(shear)))
            raise series_error(
                label,
                "GantryDetectorTilt",
                f"gantry-tilted stack (slices sheared by {tilt:.2f}°) is not supported; "
                "resample it to an orthogonal grid first (e.g. with dcm2niix)",
            )
    else:
        thickness = headers[0].get("SpacingBetweenSlices") or headers[0].get("SliceThickness")
        step = float(thickness) if thickness else 1.0
    # PixelSpacing = (between rows, between columns); array axis 0 runs along a row (columns).
    affine = np.eye(4)
    affine[:3, 0] = row * spacings[0, 1]
    affine[:3, 1] = column * spacings[0, 0]
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[0]
    return order, LPS_TO_RAS @ affine


def pixel_values(instance: Instance, label: str) -> np.ndarray:
    """Rescaled pixel values (``RescaleSlope`` × stored + ``RescaleIntercept``) of one frame.

    Returns:
        ``(columns, rows)`` float64 array (array axis 0 along a row).

    Raises:
        InputError: If the pixel data cannot be decoded.
    """
    dataset = pydicom.dcmread(instance.path)
    try:
        stored = dataset.pixel_array
    except (AttributeError, NotImplementedError, RuntimeError, ValueError) as err:
        syntax = dataset.file_meta.get("TransferSyntaxUID", "?")
        raise series_error(
            label,
            "PixelData",
            f"cannot decode {instance.path.name} (transfer syntax {syntax}): "
            f"{err}; export uncompressed DICOM",
        ) from err
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    return (stored.astype(np.float64) * slope + intercept).T


def read_volume(
    instances: list[Instance] | tuple[Instance, ...], label: str
) -> tuple[np.ndarray, np.ndarray, list[Instance]]:
    """Read one 3-D volume from single-frame instances.

    Returns:
        ``(data, affine, ordered)``: float64 rescaled voxels ``(X, Y, Z)``, the RAS affine and
        the instances in slice order (for per-slice scale factors).
    """
    order, affine = slice_order(instances, label)
    ordered = [instances[i] for i in order]
    data = np.stack([pixel_values(i, label) for i in ordered], axis=-1)
    return data, affine, ordered


def read_multiframe(instance: Instance, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a multi-frame (enhanced) image as one volume through highdicom.

    Returns:
        ``(data, affine)``: float64 voxels and the RAS affine.

    Raises:
        InputError: If the frames do not form one regularly spaced volume.
    """
    import highdicom as hd

    try:
        image = hd.imread(str(instance.path))
        volume = image.get_volume()
    except (ValueError, RuntimeError, AttributeError, NotImplementedError) as err:
        raise series_error(
            label,
            "PerFrameFunctionalGroupsSequence",
            f"the frames do not form one regular volume ({err})",
        ) from err
    data = np.asarray(volume.array, dtype=np.float64)
    if data.ndim != 3:
        raise series_error(
            label, "NumberOfFrames", f"expected one 3-D volume, got shape {data.shape}"
        )
    return data, LPS_TO_RAS @ np.asarray(volume.affine, float)


def seconds_between(later: datetime, earlier: datetime) -> float:
    """Seconds from ``earlier`` to ``later``, rounded to the microsecond."""
    return round((later - earlier) / timedelta(seconds=1), 6)
