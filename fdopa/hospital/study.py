"""One planned study's images: its PET in SUV with PET-BIDS sidecars, and its FLAIR volume.

What :mod:`fdopa.hospital.importer` writes for a participant is read here:

1. the study's PT series are split into frames (:func:`fdopa.hospital.suv.split_frames`); a
   series with several frames — or several one-frame series that do not overlap — is the
   dynamic scan, a one-frame series spanning other frames (or the only one) the static scan;
   without a static series the static image is the duration-weighted mean of the dynamic frames
   over the static window (10–30 min after injection by default); series without attenuation
   correction are ignored when corrected ones exist;
2. every frame becomes SUVbw decay-corrected to the injection
   (:func:`fdopa.hospital.suv.frame_suv`), in the closest RAS+ voxel order, with a PET-BIDS
   sidecar (``Units: g/mL``, ``FrameTimesStart`` and ``FrameDuration`` after the injection,
   ``DecayCorrectionFactor``, dose, weight, tracer);
3. the FLAIR series is read as one volume with its RAS affine (classic single-frame or
   enhanced multi-frame).

Inputs are only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np

from fdopa.data.synthetic.imaging import window_mean
from fdopa.data.synthetic.tracer import Framing, decay_correction_factors
from fdopa.hospital.dicom import DicomSeries, read_multiframe, read_volume, series_error
from fdopa.hospital.plan import StudyPlan
from fdopa.hospital.suv import (
    Injection,
    PetFrame,
    SuvVolume,
    frame_suv,
    read_injection,
    split_frames,
)
from fdopa.kinetics.io import AFFINE_TOL_MM
from fdopa.physics import F18_HALF_LIFE_S

__all__ = ["PetImages", "read_flair", "read_pet"]


# --- PET -----------------------------------------------------------------------------------------


@dataclass
class PetImages:
    """The SUV images of one study, ready to write."""

    static: np.ndarray
    affine: np.ndarray
    static_sidecar: dict[str, Any]
    dynamic: np.ndarray | None
    dynamic_sidecar: dict[str, Any] | None
    injection: Injection
    route: str
    static_window: str


def _has_attenuation_correction(series: DicomSeries) -> bool:
    corrected = series.header.get("CorrectedImage") or []
    return "ATTN" in [str(v).upper() for v in corrected]


def _same_injection(items: list[tuple[DicomSeries, Injection]]) -> Injection:
    first_series, first = items[0]
    for series, other in items[1:]:
        for keyword, a, b in (
            ("RadionuclideTotalDose", first.dose_bq, other.dose_bq),
            ("PatientWeight", first.weight_kg, other.weight_kg),
            ("RadiopharmaceuticalStartDateTime", first.time, other.time),
        ):
            if a != b:
                raise series_error(
                    series.label, keyword, f"{b} differs from {a} of {first_series.label}"
                )
    return first


def _contains(outer: PetFrame, inner: PetFrame) -> bool:
    outer_end = outer.start.timestamp() + outer.duration_s
    return (
        outer.start <= inner.start
        and inner.start.timestamp() + inner.duration_s <= outer_end + 1e-6
    )


def _series_type(series: DicomSeries) -> str:
    value = series.header.get("SeriesType") or []
    return str(value[0]).upper() if len(value) else ""


def _classify(
    frames: dict[str, list[PetFrame]], series: dict[str, DicomSeries]
) -> tuple[PetFrame | None, list[PetFrame]]:
    """The static frame (or None) and the dynamic frames (possibly empty).

    A series of several frames is the dynamic scan. One-frame series typed ``DYNAMIC``
    (``SeriesType``) are frames of one; without such types, a one-frame series spanning two
    others is the static scan and the remaining ones (two or more) are the dynamic frames.
    """
    multi = [uid for uid, f in frames.items() if len(f) > 1]
    singles = [f[0] for f in frames.values() if len(f) == 1]
    typed = [f for f in singles if _series_type(f.series) == "DYNAMIC"]
    if len(multi) > 1:
        names = ", ".join(series[uid].label for uid in multi)
        raise series_error(
            names,
            "NumberOfTimeSlices",
            "several dynamic PT series in one study; keep one in the export",
        )
    if multi:
        dynamic, statics = frames[multi[0]], singles
    elif len(typed) >= 2:
        dynamic, statics = typed, [f for f in singles if all(f is not d for d in typed)]
    else:
        spans = [f for f in singles if sum(_contains(f, g) for g in singles if g is not f) >= 2]
        rest = [f for f in singles if all(f is not s for s in spans)]
        dynamic, statics = (rest, spans) if len(rest) >= 2 else ([], spans + rest)
    if len(statics) > 1:
        names = ", ".join(f.series.label for f in statics)
        raise series_error(
            names,
            "SeriesInstanceUID",
            "several static PT series in one study; keep one in the export",
        )
    return (statics[0] if statics else None), sorted(dynamic, key=lambda f: f.start)


def _check_grid(volume: SuvVolume, reference: SuvVolume, label: str, reference_label: str) -> None:
    if (
        volume.data.shape != reference.data.shape
        or np.abs(volume.affine - reference.affine).max() > AFFINE_TOL_MM
    ):
        raise series_error(
            label,
            "ImagePositionPatient",
            f"voxel grid differs from that of {reference_label}; reconstruct both on one grid",
        )


def _sidecar(
    injection: Injection,
    starts: list[float],
    durations: list[float],
    series: DicomSeries,
    route: str,
) -> dict[str, Any]:
    """PET-BIDS sidecar of images in SUVbw decay-corrected to the injection."""
    header = series.header
    framing = Framing(tuple(starts), tuple(durations))
    nuclide = injection.radionuclide or ""
    return {
        "Modality": "PT",
        "Manufacturer": str(header.get("Manufacturer", "")),
        "ManufacturersModelName": str(header.get("ManufacturerModelName", "")),
        "TracerName": injection.radiopharmaceutical or "FDOPA",
        "TracerRadionuclide": "F18"
        if "18" in nuclide or abs(injection.half_life_s - F18_HALF_LIFE_S) < 30
        else nuclide,
        "Units": "g/mL",
        "SUVType": "body weight",
        "InjectedRadioactivity": round(injection.dose_bq / 1e6, 6),
        "InjectedRadioactivityUnits": "MBq",
        "BodyWeight": injection.weight_kg,
        "BodyWeightUnits": "kg",
        "TimeZero": injection.time.strftime("%H:%M:%S.%f"),
        "InjectionStart": 0,
        "ScanStart": starts[0],
        "RadionuclideHalfLife": injection.half_life_s,
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "FrameTimesStart": starts,
        "FrameDuration": durations,
        "DecayCorrectionFactor": decay_correction_factors(framing, injection.half_life_s).tolist(),
        "AttenuationCorrection": str(header.get("AttenuationCorrectionMethod", "")),
        "ReconMethodName": str(header.get("ReconstructionMethod", "")),
        "fdopa_import": {
            "SeriesNumber": str(header.get("SeriesNumber", "")),
            "SeriesDescription": series.description,
            "DICOMUnits": str(header.get("Units", "")),
            "DICOMDecayCorrection": str(header.get("DecayCorrection", "")),
            "SUVFrom": route,
        },
    }


def read_pet(plan: StudyPlan, window: tuple[float, float]) -> PetImages:
    """Read, classify and convert a study's PT series to SUV images and sidecars.

    Raises:
        InputError: Naming the series and tag (see :mod:`fdopa.hospital.suv`).
    """
    usable = [s for s in plan.pet if _has_attenuation_correction(s)] or list(plan.pet)
    pairs = [(s, read_injection(s)) for s in usable]
    injection = _same_injection(pairs)
    frames = {s.uid: split_frames(s, injection) for s in usable}
    series = {s.uid: s for s in usable}
    static_frame, dynamic_frames = _classify(frames, series)

    def convert(frame: PetFrame) -> SuvVolume:
        return frame_suv(frame, injection, min(f.start for f in frames[frame.series.uid]))

    dynamic = [convert(f) for f in dynamic_frames]
    for frame, volume in zip(dynamic_frames[1:], dynamic[1:], strict=True):
        _check_grid(volume, dynamic[0], frame.series.label, dynamic_frames[0].series.label)
    dynamic_sidecar = stack = None
    if dynamic:
        starts = [v.start_s for v in dynamic]
        durations = [v.duration_s for v in dynamic]
        try:
            Framing(tuple(starts), tuple(durations))
        except ValueError as err:
            raise series_error(
                dynamic_frames[0].series.label, "ActualFrameDuration", str(err)
            ) from err
        stack = np.stack([v.data for v in dynamic], axis=-1).astype(np.float32)
        dynamic_sidecar = _sidecar(
            injection, starts, durations, dynamic_frames[0].series, dynamic[0].route
        )
    if static_frame is not None:
        static = convert(static_frame)
        if dynamic:
            _check_grid(
                static, dynamic[0], static_frame.series.label, dynamic_frames[0].series.label
            )
        sidecar = _sidecar(
            injection, [static.start_s], [static.duration_s], static_frame.series, static.route
        )
        data, affine, route = static.data.astype(np.float32), static.affine, static.route
        described = f"{static.start_s:g}–{static.start_s + static.duration_s:g} s (series)"
    else:
        assert stack is not None
        try:
            data = window_mean(stack, np.asarray(starts), np.asarray(durations), window)
        except ValueError as err:
            raise series_error(
                dynamic_frames[0].series.label,
                "ActualFrameDuration",
                f"no static series, and {err}; give --static-window on frame edges",
            ) from err
        sidecar = _sidecar(
            injection,
            [window[0]],
            [window[1] - window[0]],
            dynamic_frames[0].series,
            dynamic[0].route,
        )
        affine, route = dynamic[0].affine, dynamic[0].route
        described = f"{window[0]:g}–{window[1]:g} s (mean of dynamic frames)"
    # Closest RAS+ voxel order: an exact axis permutation and flip, no interpolation.
    ornt = nib.orientations.io_orientation(affine)
    canonical = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape[:3])
    data = nib.orientations.apply_orientation(data, ornt)
    if stack is not None:
        stack = nib.orientations.apply_orientation(stack, ornt)
    return PetImages(data, canonical, sidecar, stack, dynamic_sidecar, injection, route, described)


# --- FLAIR ---------------------------------------------------------------------------------------


def read_flair(series: DicomSeries) -> tuple[np.ndarray, np.ndarray]:
    """The FLAIR volume and its RAS affine (classic single-frame or enhanced multi-frame)."""
    if series.n_frames > 1:
        if len(series.instances) != 1:
            raise series_error(
                series.label, "NumberOfFrames", "several multi-frame instances in one series"
            )
        return read_multiframe(series.instances[0], series.label)
    data, affine, _ = read_volume(series.instances, series.label)
    return data, affine
