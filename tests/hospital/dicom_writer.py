"""A DICOM writer for the tests: synthetic SUV images → PT (and MR) series as scanners write them.

Independent of ``fdopa.hospital`` on purpose: the geometry is written from the NIfTI affine
(reoriented to the usual LPS axial order), the values are turned into Bq/mL by the inverse of
the SUV and decay definitions, stored as int16 with a per-slice ``RescaleSlope``.

Scanner families (:data:`FAMILIES`):

* ``siemens``: one multi-frame dynamic series (``ImageIndex``), ``DecayCorrection START``,
  ``BQML``, slices feet → head, ``RadiopharmaceuticalStartDateTime``;
* ``ge``: one series per frame, ``DecayCorrection ADMIN``, ``BQML``, slices head → feet,
  ``RadiopharmaceuticalStartTime`` only (date from ``SeriesDate``);
* ``philips``: one multi-frame series, ``START``, ``Units CNTS`` with the Philips activity
  concentration (7053,1009) and SUV (7053,1000) scale factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DS

PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
F18_HALF_LIFE = 6586.2
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
INJECTION = datetime(2024, 3, 5, 9, 58, 30, 250000)


@dataclass(frozen=True)
class Family:
    """How one scanner family writes a PET study."""

    name: str
    decay: str  # START, ADMIN or NONE
    units: str = "BQML"  # BQML or CNTS (with the Philips factors)
    one_series_per_frame: bool = False
    reverse_slices: bool = False
    datetime_tag: bool = True  # RadiopharmaceuticalStartDateTime, else StartTime only
    activity_scale: float = 0.0  # Philips (7053,1009), counts → Bq/mL


FAMILIES: dict[str, Family] = {
    "siemens": Family("siemens", "START"),
    "ge": Family("ge", "ADMIN", one_series_per_frame=True, reverse_slices=True, datetime_tag=False),
    "philips": Family("philips", "START", units="CNTS", activity_scale=3.7),
}


@dataclass
class Patient:
    """Who and when: the header values of one study (all invented)."""

    patient_id: str
    name: str = "DOE^JANE"
    weight_kg: float = 31.5
    dose_mbq: float = 126.0
    injection: datetime = INJECTION
    study_uid: str = field(default_factory=generate_uid)
    mr_study_uid: str = field(default_factory=generate_uid)
    frame_of_reference: str = field(default_factory=generate_uid)

    @property
    def dose_bq(self) -> float:
        return self.dose_mbq * 1e6


def _ds(value: float) -> DS:
    return DS(value, auto_format=True)


def _date(when: datetime) -> str:
    return when.strftime("%Y%m%d")


def _time(when: datetime) -> str:
    return when.strftime("%H%M%S.%f")


def lps_grid(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient to the closest L-P-S voxel order; return the data and its LPS affine."""
    current = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(("L", "P", "S"))
    transform = nib.orientations.ornt_transform(current, target)
    spatial = data.shape[:3]
    out = nib.orientations.apply_orientation(data, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, spatial)
    return out, LPS @ new_affine


def _int16_slices(volume: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Per-slice int16 pixels (rows, columns) and rescale slopes of a (X, Y, Z) volume."""
    pixels, slopes = [], []
    for k in range(volume.shape[2]):
        plane = volume[:, :, k]
        top = float(np.abs(plane).max())
        slope = top / 32767.0 if top > 0 else 1.0
        pixels.append(np.round(plane / slope).astype(np.int16).T.copy())
        slopes.append(slope)
    return pixels, slopes


def _base(
    patient: Patient,
    modality: str,
    sop_class: str,
    series_uid: str,
    number: int,
    description: str,
    when: datetime,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientID = patient.patient_id
    ds.PatientName = patient.name
    ds.PatientSex = "F"
    ds.PatientAge = "009Y"
    ds.PatientBirthDate = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.PatientWeight = _ds(patient.weight_kg)
    ds.StudyInstanceUID = patient.study_uid
    ds.StudyDate = _date(patient.injection)
    ds.StudyTime = _time(patient.injection)
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.SeriesDate = _date(when)
    ds.SeriesTime = _time(when)
    ds.FrameOfReferenceUID = patient.frame_of_reference
    ds.Manufacturer = "fdopa test writer"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _geometry(ds: Dataset, lps_affine: np.ndarray, k: int, rows: int, columns: int) -> None:
    zooms = np.sqrt((lps_affine[:3, :3] ** 2).sum(axis=0))
    row_cos, col_cos = lps_affine[:3, 0] / zooms[0], lps_affine[:3, 1] / zooms[1]
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_cos, *col_cos)]
    ds.ImagePositionPatient = [_ds(v) for v in (lps_affine @ np.array([0, 0, k, 1.0]))[:3]]
    ds.PixelSpacing = [_ds(zooms[1]), _ds(zooms[0])]
    ds.SliceThickness = _ds(zooms[2])
    ds.Rows, ds.Columns = rows, columns


def decay_factor(start_s: float, duration_s: float) -> float:
    """Uncorrected frame mean → activity at injection (decay within the frame included)."""
    lam = math.log(2) / F18_HALF_LIFE
    x = lam * duration_s
    return math.exp(lam * start_s) * x / -math.expm1(-x)


def frame_reference_ms(start_s: float, duration_s: float, series_start_s: float) -> float:
    """DICOM FrameReferenceTime: when the decaying activity equals the frame mean (ms)."""
    lam = math.log(2) / F18_HALF_LIFE
    x = lam * duration_s
    return 1000.0 * (start_s - series_start_s + math.log(x / -math.expm1(-x)) / lam)


def write_pet(
    folder: Path,
    suv: np.ndarray,
    affine: np.ndarray,
    starts_s,
    durations_s,
    patient: Patient,
    family: Family,
    *,
    number: int = 3,
    description: str = "PET FDOPA",
    reorient: bool = True,
) -> list[Path]:
    """Write SUV frames (X, Y, Z[, F]) as DICOM PT instances of ``family``.

    ``reorient=False`` keeps the array's own axes: the third one is then the slice axis
    (e.g. sagittal slices for an affine whose third column runs left-right).

    Returns:
        The written files.
    """
    frames = suv[..., None] if suv.ndim == 3 else suv
    frames, lps_affine = lps_grid(frames, affine) if reorient else (frames, LPS @ affine)
    starts, durations = list(map(float, starts_s)), list(map(float, durations_s))
    n_frames, n_slices = frames.shape[3], frames.shape[2]
    lam = math.log(2) / F18_HALF_LIFE
    series_uids = [generate_uid()] * n_frames
    if family.one_series_per_frame:
        series_uids = [generate_uid() for _ in range(n_frames)]
    written = []
    for f in range(n_frames):
        series_start = starts[f] if family.one_series_per_frame else starts[0]
        series_time = patient.injection + timedelta(seconds=series_start)
        if family.decay == "START":
            decay = math.exp(-lam * series_start)  # corrected to the series start
        elif family.decay == "ADMIN":
            decay = 1.0
        else:
            decay = 1.0 / decay_factor(starts[f], durations[f])
        bqml = frames[..., f] * patient.dose_bq / (patient.weight_kg * 1000.0) * decay
        stored = bqml / family.activity_scale if family.units == "CNTS" else bqml
        pixels, slopes = _int16_slices(stored)
        acquired = patient.injection + timedelta(seconds=starts[f])
        for k in range(n_slices):
            ds = _base(
                patient,
                "PT",
                PET_STORAGE,
                series_uids[f],
                number + (f if family.one_series_per_frame else 0),
                description,
                series_time,
            )
            ds.SOPInstanceUID = generate_uid()
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            index = f * n_slices + k if not family.one_series_per_frame else k
            ds.InstanceNumber = index + 1
            if not family.one_series_per_frame:
                ds.ImageIndex = index + 1
            ds.NumberOfSlices = n_slices
            ds.NumberOfTimeSlices = 1 if family.one_series_per_frame else n_frames
            ds.SeriesType = ["DYNAMIC" if n_frames > 1 else "STATIC", "IMAGE"]
            ds.Units = family.units
            ds.DecayCorrection = family.decay
            ds.CorrectedImage = ["ATTN", "SCAT"] + (["DECY"] if family.decay != "NONE" else [])
            ds.AcquisitionDate = _date(acquired)
            ds.AcquisitionTime = _time(acquired)
            ds.ActualFrameDuration = round(durations[f] * 1000)
            ds.FrameReferenceTime = _ds(frame_reference_ms(starts[f], durations[f], series_start))
            ds.DecayFactor = _ds(
                decay_factor(starts[f], durations[f]) / math.exp(lam * series_start)
            )
            info = Dataset()
            info.Radiopharmaceutical = "Fluorodopa F^18^"
            info.RadionuclideTotalDose = _ds(patient.dose_bq)
            info.RadionuclideHalfLife = _ds(F18_HALF_LIFE)
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
                "C-111A1",
                "SRT",
                "^18^Fluorine",
            )
            info.RadionuclideCodeSequence = Sequence([code])
            if family.datetime_tag:
                info.RadiopharmaceuticalStartDateTime = patient.injection.strftime(
                    "%Y%m%d%H%M%S.%f"
                )
            else:
                info.RadiopharmaceuticalStartTime = _time(patient.injection)
            ds.RadiopharmaceuticalInformationSequence = Sequence([info])
            position = n_slices - 1 - k if family.reverse_slices else k
            _geometry(ds, lps_affine, position, frames.shape[1], frames.shape[0])
            pixel, slope = pixels[position], slopes[position]
            ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(0.0)
            if family.units == "CNTS":
                block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
                suv_factor = (
                    family.activity_scale * (patient.weight_kg * 1000.0) / patient.dose_bq / decay
                )
                block.add_new(0x00, "DS", _ds(suv_factor))
                block.add_new(0x09, "DS", _ds(family.activity_scale))
            ds.PixelData = pixel.tobytes()
            name = f"{family.name}_s{ds.SeriesNumber:03d}_{ds.InstanceNumber:05d}.dcm"
            written.append(_save(ds, folder / name))
    return written


def write_mr(
    folder: Path,
    volume: np.ndarray,
    affine: np.ndarray,
    patient: Patient,
    *,
    number: int = 7,
    description: str = "AX FLAIR 3D",
) -> list[Path]:
    """Write a 3-D volume as a classic single-frame MR series (slices in L-P-S order)."""
    data, lps_affine = lps_grid(volume, affine)
    pixels, slopes = _int16_slices(data)
    uid = generate_uid()
    when = patient.injection - timedelta(days=2)
    written = []
    for k in range(data.shape[2]):
        ds = _base(patient, "MR", MR_STORAGE, uid, number, description, when)
        ds.StudyInstanceUID = patient.mr_study_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ScanningSequence = ["SE", "IR"]
        ds.InversionTime = _ds(2500.0)
        _geometry(ds, lps_affine, k, data.shape[1], data.shape[0])
        ds.RescaleSlope, ds.RescaleIntercept = _ds(slopes[k]), _ds(0.0)
        ds.PixelData = pixels[k].tobytes()
        written.append(_save(ds, folder / f"mr_s{number:03d}_{k + 1:05d}.dcm"))
    return written


def rigid(rotation_deg, translation_mm, centre) -> np.ndarray:
    """A 4×4 world (RAS) rigid motion about ``centre``."""
    from scipy.spatial.transform import Rotation

    matrix = np.eye(4)
    rotation = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    matrix[:3, :3] = rotation
    matrix[:3, 3] = np.asarray(centre) - rotation @ np.asarray(centre) + np.asarray(translation_mm)
    return matrix


def upsample_in_plane(volume: np.ndarray, affine: np.ndarray, factor: int = 2):
    """Replicate each voxel ``factor``×``factor`` in-plane: the same image on a finer grid."""
    fine = np.repeat(np.repeat(volume, factor, axis=0), factor, axis=1)
    new = affine.copy()
    new[:3, :2] = affine[:3, :2] / factor
    new[:3, 3] = affine[:3, 3] + (affine[:3, :2] @ np.full(2, -(factor - 1) / (2 * factor)))
    return fine, new


def write_seg(
    path: Path, pet_files: list[Path], mask: np.ndarray, affine: np.ndarray, label: str = "GTV"
) -> Path:
    """Write a binary DICOM SEG (highdicom) of ``mask`` (on the PET's RAS grid) over a PET series
    written by :func:`write_pet` (axial, slices in position order)."""
    import highdicom as hd
    from pydicom import dcmread
    from pydicom.sr.codedict import codes

    mask_lps, _ = lps_grid(mask.astype(np.uint8), affine)
    sources = sorted(
        (dcmread(p) for p in pet_files), key=lambda d: float(d.ImagePositionPatient[2])
    )
    frames = np.stack([mask_lps[:, :, k].T for k in range(mask_lps.shape[2])])
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=generate_uid(),
        series_number=20,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="fdopa tests",
        manufacturer_model_name="writer",
        software_versions="0",
        device_serial_number="0",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def write_rtstruct(
    path: Path, patient: Patient, rois: dict[str, np.ndarray], affine: np.ndarray
) -> Path:
    """Write an RTSTRUCT whose ROIs are the axial iso-0.5 contours of boolean masks."""
    import contourpy

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.PatientID, ds.PatientName = patient.patient_id, patient.name
    ds.StudyInstanceUID, ds.SeriesInstanceUID = patient.study_uid, generate_uid()
    ds.SeriesNumber, ds.StructureSetLabel = 30, "tumour"
    structures, contours = [], []
    for number, (name, mask) in enumerate(rois.items(), start=1):
        mask_lps, lps_affine = lps_grid(mask.astype(float), affine)
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        roi.ReferencedFrameOfReferenceUID = patient.frame_of_reference
        structures.append(roi)
        items = []
        for k in range(mask_lps.shape[2]):
            plane = np.pad(mask_lps[:, :, k].T, 1)  # rows = array axis 1, columns = axis 0
            for line in contourpy.contour_generator(z=plane).lines(0.5):
                i, j = line[:-1, 0] - 1, line[:-1, 1] - 1
                points = lps_affine @ np.stack([i, j, np.full_like(i, k), np.ones_like(i)])
                item = Dataset()
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(i)
                item.ContourData = [_ds(v) for v in points[:3].T.ravel()]
                items.append(item)
        contour = Dataset()
        contour.ReferencedROINumber = number
        contour.ContourSequence = Sequence(items)
        contours.append(contour)
    ds.StructureSetROISequence = Sequence(structures)
    ds.ROIContourSequence = Sequence(contours)
    return _save(ds, path)
