"""SUVbw and frame timing of DICOM PET series, from their headers alone.

``SUVbw = C · W / D``: ``C`` the activity concentration (Bq/mL) decay-corrected to the injection,
``W`` the body weight (g), ``D`` the injected activity (Bq). What the headers must say:

* ``Units`` (0054,1001): ``BQML``; ``CNTS`` / ``PROPCPS`` only with a Philips scale factor —
  (7053,1009) activity concentration (counts → Bq/mL) or (7053,1000) SUV (counts → SUVbw);
  ``GML`` is already SUVbw;
* ``DecayCorrection`` (0054,1102): ``START`` (to the series reference ``SeriesDate`` /
  ``SeriesTime``, or GE's private scan time when the series time is later than the
  acquisition), ``ADMIN`` (to the injection) or ``NONE`` (each frame is then corrected here,
  including the decay within the frame); ``CorrectedImage`` (0028,0051) must agree (``DECY``);
* in ``RadiopharmaceuticalInformationSequence`` (0054,0016): ``RadionuclideTotalDose``,
  ``RadionuclideHalfLife``, ``RadiopharmaceuticalStartDateTime`` (or
  ``RadiopharmaceuticalStartTime`` with ``SeriesDate``); ``PatientWeight`` (0010,1030);
* frames: ``NumberOfTimeSlices`` / ``NumberOfSlices`` / ``ImageIndex`` split a dynamic series;
  each frame starts at its ``AcquisitionDateTime`` (or ``AcquisitionDate`` +
  ``AcquisitionTime``; else from ``FrameReferenceTime``) and lasts ``ActualFrameDuration``.

The Philips SUV factor, when present with another route, must agree with it within 2 %.
Every missing or contradictory field raises one :class:`~fdopa.kinetics.validation.InputError`
naming the series and the tag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pydicom

from fdopa.data.synthetic.tracer import Framing, decay_correction_factors
from fdopa.hospital.dicom import (
    DicomSeries,
    Instance,
    dicom_date,
    dicom_datetime,
    read_volume,
    seconds_between,
    series_error,
)

__all__ = [
    "Injection",
    "PetFrame",
    "SuvVolume",
    "frame_suv",
    "read_injection",
    "split_frames",
    "suv_per_bqml",
]

PHILIPS_CREATOR = "Philips PET Private Group"
PHILIPS_SUV_SCALE = 0x00
"""(7053,1000): multiplies rescaled pixel values into SUVbw."""
PHILIPS_ACTIVITY_SCALE = 0x09
"""(7053,1009): multiplies rescaled counts into Bq/mL."""
GE_CREATOR = "GEMS_PETD_01"
GE_SCAN_DATETIME = 0x0D
"""(0009,100D): GE's scan date and time, the decay reference of post-processed series."""
PHILIPS_TOLERANCE = 0.02
"""Largest relative disagreement between the Philips SUV factor and the header route."""
MIN_DOSE_BQ = 1e4
"""Below this the dose was surely not written in Bq (MBq by mistake)."""


@dataclass(frozen=True)
class Injection:
    """The injection of one PET series.

    Attributes:
        dose_bq: Injected activity (Bq), ``RadionuclideTotalDose``.
        half_life_s: ``RadionuclideHalfLife`` (s).
        time: Injection date and time.
        weight_kg: ``PatientWeight`` (kg).
        radiopharmaceutical: ``Radiopharmaceutical`` (e.g. ``Fluorodopa F^18^``), or None.
        radionuclide: Code meaning of ``RadionuclideCodeSequence``, or None.
    """

    dose_bq: float
    half_life_s: float
    time: datetime
    weight_kg: float
    radiopharmaceutical: str | None
    radionuclide: str | None

    @property
    def decay_constant(self) -> float:
        """λ = ln 2 / half-life (1/s)."""
        return math.log(2.0) / self.half_life_s


@dataclass(frozen=True)
class PetFrame:
    """One time frame of a PET series: its slices and timing.

    Attributes:
        series: The series the frame belongs to.
        instances: Its single-frame instances (one per slice, any order).
        start: Acquisition start.
        duration_s: ``ActualFrameDuration`` in seconds.
    """

    series: DicomSeries
    instances: tuple[Instance, ...]
    start: datetime
    duration_s: float


@dataclass(frozen=True)
class SuvVolume:
    """One frame in SUVbw, decay-corrected to the injection.

    Attributes:
        data: ``(X, Y, Z)`` float32 SUV.
        affine: RAS voxel-to-world affine.
        start_s: Frame start after injection (s).
        duration_s: Frame duration (s).
        route: How SUV was obtained (``headers`` or the Philips tag).
    """

    data: np.ndarray
    affine: np.ndarray
    start_s: float
    duration_s: float
    route: str


def suv_per_bqml(weight_kg: float, dose_bq: float) -> float:
    """SUVbw of 1 Bq/mL decay-corrected to the injection: weight (g) / dose (Bq).

    Examples:
        >>> round(suv_per_bqml(70.0, 185e6) * 5000.0, 4)  # 5 kBq/mL, 70 kg, 185 MBq
        1.8919
    """
    return weight_kg * 1000.0 / dose_bq


def _positive(value: Any, label: str, keyword: str, unit: str) -> float:
    if value is None or value == "":
        raise series_error(label, keyword, "missing")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise series_error(label, keyword, f"not a number: {value!r}") from err
    if not math.isfinite(number) or number <= 0:
        raise series_error(label, keyword, f"must be > 0 {unit}, got {value!r}")
    return number


def read_injection(series: DicomSeries) -> Injection:
    """Dose, half-life, injection time and body weight of a PET series.

    Raises:
        InputError: Naming the missing, non-positive, implausible or inconsistent tag.
    """
    label = series.label
    info_sequence = series.common("RadiopharmaceuticalInformationSequence", required=False)
    if not info_sequence:
        raise series_error(
            label,
            "RadiopharmaceuticalInformationSequence",
            "missing (dose, half-life, injection time)",
        )
    info = info_sequence[0]
    dose = _positive(info.get("RadionuclideTotalDose"), label, "RadionuclideTotalDose", "Bq")
    if dose < MIN_DOSE_BQ:
        raise series_error(
            label,
            "RadionuclideTotalDose",
            f"{dose:g} Bq is implausibly small (written in MBq instead of Bq?)",
        )
    half_life = _positive(info.get("RadionuclideHalfLife"), label, "RadionuclideHalfLife", "s")
    weight = _positive(series.common("PatientWeight", required=False), label, "PatientWeight", "kg")
    if weight > 350:
        raise series_error(
            label, "PatientWeight", f"{weight:g} kg is implausible (written in g instead of kg?)"
        )
    when = None
    if info.get("RadiopharmaceuticalStartDateTime"):
        raw = str(info.RadiopharmaceuticalStartDateTime)
        try:
            when = pydicom.valuerep.DT(raw).replace(tzinfo=None)
        except ValueError as err:
            raise series_error(
                label, "RadiopharmaceuticalStartDateTime", f"not a DICOM date-time: {raw!r}"
            ) from err
    else:
        when = dicom_datetime(
            info,
            "RadiopharmaceuticalStartDate",
            "RadiopharmaceuticalStartTime",
            label,
            fallback_date=_series_date(series),
        )
        if when is None:
            raise series_error(
                label,
                "RadiopharmaceuticalStartTime",
                "missing (and no RadiopharmaceuticalStartDateTime): the injection time is unknown",
            )
        reference = _series_reference(series)
        if (
            reference is not None
            and when > reference
            and "RadiopharmaceuticalStartDate" not in info
        ):
            when -= timedelta(days=1)  # injected before midnight, scanned after
    codes = info.get("RadionuclideCodeSequence")
    nuclide = str(codes[0].get("CodeMeaning", "")) if codes else None
    drug = info.get("Radiopharmaceutical")
    return Injection(dose, half_life, when, weight, str(drug) if drug else None, nuclide or None)


def _series_date(series: DicomSeries) -> date | None:
    return (
        dicom_date(series.header, "SeriesDate")
        or dicom_date(series.header, "AcquisitionDate")
        or dicom_date(series.header, "StudyDate")
    )


def _series_reference(series: DicomSeries) -> datetime | None:
    return dicom_datetime(series.header, "SeriesDate", "SeriesTime", series.label)


def _frame_start(
    instances: Sequence[Instance], series: DicomSeries, duration_s: float, injection: Injection
) -> datetime:
    """Acquisition start: AcquisitionDateTime, AcquisitionDate/Time or FrameReferenceTime."""
    label = series.label
    starts = []
    for instance in instances:
        header = instance.header
        if header.get("AcquisitionDateTime"):
            raw = str(header.AcquisitionDateTime)
            try:
                starts.append(pydicom.valuerep.DT(raw).replace(tzinfo=None))
            except ValueError as err:
                raise series_error(
                    label, "AcquisitionDateTime", f"not a DICOM date-time: {raw!r}"
                ) from err
            continue
        start = dicom_datetime(
            header, "AcquisitionDate", "AcquisitionTime", label, fallback_date=_series_date(series)
        )
        if start is None:
            start = _start_from_reference_time(header, series, duration_s, injection)
        starts.append(start)
    return min(starts)


def _start_from_reference_time(
    header: Any, series: DicomSeries, duration_s: float, injection: Injection
) -> datetime:
    """Frame start from ``FrameReferenceTime`` (ms after the series time).

    That reference time is when the decaying activity equals the frame mean; the part of it
    within the frame, ln(λΔt / (1 − e^{−λΔt})) / λ, is subtracted.
    """
    label = series.label
    offset = header.get("FrameReferenceTime")
    reference = _series_reference(series)
    if offset is None or reference is None:
        raise series_error(
            label,
            "AcquisitionTime",
            "missing, and no FrameReferenceTime with SeriesTime to replace it",
        )
    lam_d = injection.decay_constant * duration_s
    within = math.log(lam_d / -math.expm1(-lam_d)) / injection.decay_constant
    return reference + timedelta(seconds=float(offset) / 1000.0 - within)


def split_frames(series: DicomSeries, injection: Injection) -> list[PetFrame]:
    """Split a PET series into its time frames, sorted by start.

    Raises:
        InputError: On frame counts contradicting ``NumberOfTimeSlices`` / ``NumberOfSlices``,
            a missing ``ActualFrameDuration``, or a frame that starts before the injection.
    """
    label = series.label
    header = series.header
    n_time = int(header.get("NumberOfTimeSlices") or 1)
    n_slices = header.get("NumberOfSlices")
    n_slices = int(n_slices) if n_slices not in (None, "") else None
    if n_time > 1:
        if n_slices is None:
            raise series_error(
                label, "NumberOfSlices", "missing (needed to split a dynamic series)"
            )
        groups: dict[Any, list[Instance]] = {}
        for instance in series.instances:
            index = instance.header.get("ImageIndex")
            if index is not None:
                key: Any = (int(index) - 1) // n_slices
            else:
                key = (
                    str(instance.header.get("AcquisitionTime", "")),
                    str(instance.header.get("FrameReferenceTime", "")),
                )
            groups.setdefault(key, []).append(instance)
        if len(groups) != n_time:
            raise series_error(
                label,
                "NumberOfTimeSlices",
                f"the header announces {n_time} frames, the instances form {len(groups)}",
            )
        members = list(groups.values())
    else:
        members = [list(series.instances)]
    frames = []
    for instances in members:
        if n_slices is not None and len(instances) != n_slices:
            raise series_error(
                label,
                "NumberOfSlices",
                f"a frame has {len(instances)} slices where the header announces {n_slices} "
                "(missing slices?)",
            )
        durations = {i.header.get("ActualFrameDuration") for i in instances}
        if None in durations or "" in durations:
            raise series_error(label, "ActualFrameDuration", "missing")
        if len(durations) > 1:
            raise series_error(
                label,
                "ActualFrameDuration",
                f"differs between slices of one frame: {sorted(map(float, durations))}",
            )
        duration = _positive(durations.pop(), label, "ActualFrameDuration", "ms") / 1000.0
        start = _frame_start(instances, series, duration, injection)
        if start < injection.time - timedelta(microseconds=1):
            raise series_error(
                label,
                "AcquisitionTime",
                f"a frame starts {seconds_between(injection.time, start):g} s before the injection "
                "(RadiopharmaceuticalStartDateTime); check both dates and times",
            )
        frames.append(PetFrame(series, tuple(instances), start, duration))
    return sorted(frames, key=lambda f: f.start)


def _philips(instances: Sequence[Instance], element: int) -> np.ndarray | None:
    """A Philips private scale factor per slice, or None when absent."""
    values = []
    for instance in instances:
        try:
            values.append(
                float(instance.header.get_private_item(0x7053, element, PHILIPS_CREATOR).value)
            )
        except (KeyError, TypeError, ValueError):
            return None
    return np.asarray(values)


def _decay_reference(series: DicomSeries, earliest: datetime) -> datetime:
    """Decay-correction reference of a ``START`` series (QIBA's vendor-neutral rule)."""
    label = series.label
    reference = _series_reference(series)
    if reference is None:
        raise series_error(
            label, "SeriesTime", "missing (the decay-correction reference of DecayCorrection START)"
        )
    if reference <= earliest + timedelta(microseconds=1):
        return reference
    try:
        raw = str(series.header.get_private_item(0x0009, GE_SCAN_DATETIME, GE_CREATOR).value)
        return pydicom.valuerep.DT(raw).replace(tzinfo=None)
    except (KeyError, ValueError):
        raise series_error(
            label,
            "SeriesTime",
            "later than the acquisition start (AcquisitionTime) and no GE scan time (0009,100D): "
            "the decay-correction reference of DecayCorrection START is ambiguous",
        ) from None


def _decay_to_injection(
    frame: PetFrame, injection: Injection, start_s: float, earliest: datetime
) -> float:
    """Factor from the stored decay correction to one at the injection time."""
    series, label = frame.series, frame.series.label
    mode = str(series.common("DecayCorrection", required=False) or "").upper()
    corrected = [str(v).upper() for v in (series.common("CorrectedImage", required=False) or [])]
    if mode not in ("START", "ADMIN", "NONE"):
        raise series_error(
            label, "DecayCorrection", f"{mode or 'missing'}; expected START, ADMIN or NONE"
        )
    if corrected and (mode == "NONE") == ("DECY" in corrected):
        raise series_error(
            label,
            "CorrectedImage",
            f"{'lists' if 'DECY' in corrected else 'lacks'} DECY but DecayCorrection is {mode}: "
            "contradictory",
        )
    if mode == "ADMIN":
        return 1.0
    if mode == "START":
        reference = _decay_reference(series, earliest)
        return math.exp(injection.decay_constant * seconds_between(reference, injection.time))
    framing = Framing((start_s,), (frame.duration_s,))
    return float(decay_correction_factors(framing, injection.half_life_s)[0])


def frame_suv(frame: PetFrame, injection: Injection, earliest: datetime) -> SuvVolume:
    """Read one frame and convert it to SUVbw decay-corrected to the injection.

    Args:
        frame: The frame.
        injection: Its series' injection.
        earliest: Earliest frame start of the series (for the ``START`` reference check).

    Raises:
        InputError: On unsupported units or a missing scale factor (``Units``), decay fields
            (``DecayCorrection``, ``CorrectedImage``, ``SeriesTime``), or a Philips SUV factor
            contradicting the headers.
    """
    label = frame.series.label
    data, affine, ordered = read_volume(frame.instances, label)
    start_s = seconds_between(frame.start, injection.time)
    units = str(frame.series.common("Units", required=False) or "").upper()
    suv_scale = _philips(ordered, PHILIPS_SUV_SCALE)
    if units == "GML":
        suv = data.astype(np.float32)
        return SuvVolume(suv, affine, start_s, frame.duration_s, "headers (Units GML)")
    if units == "BQML":
        to_bqml = np.ones(len(ordered))
    elif units in ("CNTS", "PROPCPS"):
        activity = _philips(ordered, PHILIPS_ACTIVITY_SCALE)
        if activity is None and suv_scale is None:
            raise series_error(
                label,
                "Units",
                f"{units} without a vendor scale factor (Philips (7053,1000) or (7053,1009)); "
                "export the series in BQML",
            )
        if activity is None:
            suv = (data * suv_scale[None, None, :]).astype(np.float32)
            return SuvVolume(
                suv, affine, start_s, frame.duration_s, "Philips SUV scale factor (7053,1000)"
            )
        to_bqml = activity
    else:
        raise series_error(
            label,
            "Units",
            f"{units or 'missing'}; fdopa reads BQML (or CNTS with a Philips scale factor)",
        )
    header_scale = _decay_to_injection(frame, injection, start_s, earliest) * suv_per_bqml(
        injection.weight_kg, injection.dose_bq
    )
    per_slice = to_bqml * header_scale
    if suv_scale is not None:
        worst = float(np.max(np.abs(suv_scale / per_slice - 1.0)))
        if worst > PHILIPS_TOLERANCE:
            raise series_error(
                label,
                "RadionuclideTotalDose",
                f"the Philips SUV scale factor (7053,1000) differs by {100 * worst:.1f} % from the "
                "one "
                "computed from dose, weight and decay: contradictory headers",
            )
    suv = (data * per_slice[None, None, :]).astype(np.float32)
    return SuvVolume(suv, affine, start_s, frame.duration_s, "headers")
