"""Loading and checking one scan for prediction against a bundle's input contract.

Every check raises :class:`~fdopa.kinetics.InputError` naming the file (or argument) and the
field, before anything is computed or written:

* the static PET must be 3-D (a trailing single frame is dropped), finite, with an invertible
  affine and a positive mean (an all-zero or negated image is not analysable); a 4-D series
  belongs in ``dynamic``;
* its sidecar (``<image>.json`` beside a file, or ``pet_sidecar``) must not contradict the
  bundle: ``Modality`` (PT), ``TracerName`` (FDOPA), and ``Units`` — required when the bundle
  normalises absolute SUV; an image in Bq/mL is converted to SUV with the dose and weight of its
  sidecar (:func:`bqml_to_suv`). Without any sidecar the units cannot be checked (a warning);
* the dynamic image must be 4-D on the static grid with valid ``FrameTimesStart`` and
  ``FrameDuration`` in its sidecar (its ``Modality`` and ``TracerName`` checked too; its TACs
  keep their units); a FLAIR channel must be 3-D on the static grid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fdopa.kinetics.io import check_same_grid, read_nifti, read_sidecar, sidecar_for
from fdopa.kinetics.validation import (
    InputError,
    check_frame_timing,
    check_positive_image,
    check_volume,
    finite_array,
)

__all__ = [
    "ImageInput",
    "ScanInput",
    "SidecarInput",
    "bqml_to_suv",
    "check_sidecar",
    "image_stem",
    "load_scan",
]

log = logging.getLogger(__name__)

ImageInput = str | Path | np.ndarray
"""An image given as a NIfTI path or as an array (with the static image's affine)."""
SidecarInput = str | Path | Mapping[str, Any]
"""A BIDS sidecar given as a JSON path or as the parsed mapping."""
_ACTIVITY_UNITS = {"bq/ml": 1.0, "bqml": 1.0, "kbq/ml": 1e3}
"""Activity-concentration ``Units`` (lower case) and their Bq/mL per unit."""
_DOSE_UNITS = {"MBq": 1e6, "kBq": 1e3, "Bq": 1.0}
_WEIGHT_UNITS = {"kg": 1.0, "g": 1e-3}


@dataclass(frozen=True, eq=False)
class ScanInput:
    """A validated scan on its native grid.

    Attributes:
        pet: 3-D static PET in stored units, SUV when converted from Bq/mL (float64).
        affine: 4×4 voxel-to-world affine of the native grid.
        stem: Output name stem (the file name without ``.nii[.gz]``, or ``participant_id``).
        flair: Optional 3-D FLAIR on the same grid.
        dynamic: Optional 4-D PET on the same grid, frames last (float32).
        frame_start_s: Frame starts (s), with ``dynamic``.
        frame_duration_s: Frame durations (s), with ``dynamic``.
        source: The PET's file path, or ``"pet"`` for an array (names it in messages).
    """

    pet: np.ndarray
    affine: np.ndarray
    stem: str
    flair: np.ndarray | None = None
    dynamic: np.ndarray | None = None
    frame_start_s: np.ndarray | None = None
    frame_duration_s: np.ndarray | None = None
    source: object = "pet"


def image_stem(path: str | Path) -> str:
    """File name without ``.nii.gz`` / ``.nii`` (``sub-01_pet.nii.gz`` → ``sub-01_pet``)."""
    return Path(path).name.removesuffix(".gz").removesuffix(".nii")


def _sidecar(value: SidecarInput | None, default: Path | None) -> tuple[dict | None, object]:
    """Parsed sidecar and its name for messages; the default file only when it exists."""
    if value is None:
        if default is None or not default.is_file():
            return None, default
        value = default
    if isinstance(value, Mapping):
        return dict(value), "sidecar"
    path = Path(value)
    return read_sidecar(path), path


def check_sidecar(
    sidecar: Mapping[str, Any], source: object, spec: Mapping[str, Any], units: bool = True
) -> None:
    """Refuse a sidecar whose modality, tracer or units contradict the bundle's input spec.

    Args:
        sidecar: BIDS sidecar fields.
        source: Named in errors (the sidecar path).
        spec: The bundle metadata's ``input`` section.
        units: Check ``Units`` (the network's input); a dynamic image's TACs keep any units.

    Raises:
        InputError: Naming ``Modality``, ``TracerName`` or ``Units``.
    """
    modality = sidecar.get("Modality")
    if modality is not None and str(modality).upper() not in (spec["modality"], "PET"):
        raise InputError(source, "Modality", f"{modality!r}, but the model reads PT (PET)")
    tracer = sidecar.get("TracerName")
    core = str(spec["tracer"]).upper().removeprefix("F")  # FDOPA → DOPA: 18F-DOPA, F-DOPA, ...
    if tracer is not None and core not in re.sub("[^A-Z]", "", str(tracer).upper()):
        raise InputError(source, "TracerName", f"{tracer!r}, but the model is for {spec['tracer']}")
    accepted = spec.get("accepted_units")
    if units and accepted:
        units = sidecar.get("Units")
        if units is None:
            raise InputError(source, "Units", f"missing; the model needs {spec['units']} (SUV)")
        if units not in accepted:
            raise InputError(
                source, "Units", f"{units!r} contradicts the model's input units {spec['units']} "
                f"(SUV, one of {list(accepted)}); convert the image to SUV first",
            )  # fmt: skip


def bqml_to_suv(sidecar: Mapping[str, Any], source: object) -> float | None:
    """SUVbw per stored unit of an activity-concentration image, from its sidecar.

    The sidecar keys are those the hospital import writes: ``Units`` (``Bq/mL`` or ``kBq/mL``),
    ``InjectedRadioactivity`` with ``InjectedRadioactivityUnits`` (``MBq`` by default, ``kBq``,
    ``Bq``), ``BodyWeight`` with ``BodyWeightUnits`` (``kg`` by default, ``g``); the image must
    be decay-corrected to the injection (``ImageDecayCorrected`` not false). The conversion is
    the hospital import's (:func:`fdopa.hospital.suv.suv_per_bqml`).

    Args:
        sidecar: BIDS sidecar fields.
        source: Named in errors (the sidecar path).

    Returns:
        The factor, or None when ``Units`` is not an activity concentration.

    Raises:
        InputError: Naming the missing or invalid key.
    """
    per_bqml = _ACTIVITY_UNITS.get(str(sidecar.get("Units", "")).strip().lower())
    if per_bqml is None:
        return None
    from fdopa.hospital.suv import suv_per_bqml  # pydicom: only for activity images

    if sidecar.get("ImageDecayCorrected") is False:
        raise InputError(source, "ImageDecayCorrected", "false; SUV needs decay-corrected Bq/mL")
    values = []
    for key, default, scales in (
        ("InjectedRadioactivity", "MBq", _DOSE_UNITS),
        ("BodyWeight", "kg", _WEIGHT_UNITS),
    ):
        unit = str(sidecar.get(f"{key}Units", default))
        if unit not in scales:
            raise InputError(source, f"{key}Units", f"{unit!r} is not one of {list(scales)}")
        value = sidecar.get(key)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or number <= 0:
            problem = "missing" if value is None else f"must be a number > 0, got {value!r}"
            raise InputError(source, key, f"{problem}; needed to convert Bq/mL to SUV")
        values.append(number * scales[unit])
    dose_bq, weight_kg = values
    return per_bqml * suv_per_bqml(weight_kg, dose_bq)


def _image(
    value: ImageInput, name: str, ndim: int, affine: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, object]:
    """Voxels, affine and message source of a path or array image with ``ndim`` axes.

    3-D images are read as float64 (the indices' precision), 4-D series as float32.
    """
    dtype = np.float64 if ndim == 3 else np.float32
    if isinstance(value, np.ndarray):
        if affine is None:
            raise InputError(name, "affine", "required with an array image")
        data, source = np.asarray(value, dtype=dtype), name
        affine = finite_array(affine, name, "affine").astype(float)
        if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) == 0:
            raise InputError(name, "affine", f"expected an invertible 4×4 matrix, got {affine}")
    else:
        source = Path(value)
        data, affine = read_nifti(source, dtype)
    if ndim == 3 and data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    check_volume(data, source, ndim)
    finite_array(data, source)
    return data, affine, source


def load_scan(
    pet: ImageInput,
    spec: Mapping[str, Any],
    affine: np.ndarray | None = None,
    *,
    dynamic: ImageInput | None = None,
    sidecar: SidecarInput | None = None,
    flair: ImageInput | None = None,
    pet_sidecar: SidecarInput | None = None,
    stem: str | None = None,
) -> ScanInput:
    """Load and check one scan (see the module docstring for every check).

    Args:
        pet: 3-D static PET: a NIfTI path, or an array with ``affine``.
        spec: The bundle metadata's ``input`` section.
        affine: Affine of an array ``pet`` (and of array ``dynamic`` / ``flair``).
        dynamic: Optional 4-D PET on the same grid (path or array).
        sidecar: Sidecar of ``dynamic`` (default: beside a dynamic file).
        flair: Optional FLAIR on the same grid (path or array).
        pet_sidecar: Sidecar of ``pet`` (default: beside a PET file).
        stem: Output name stem (default: the PET file name, else ``"prediction"``).

    Returns:
        The validated :class:`ScanInput`.

    Raises:
        InputError: Naming the file or argument and the field.
        FileNotFoundError: If a file does not exist.
    """
    if sidecar is not None and dynamic is None:
        name = "sidecar" if isinstance(sidecar, Mapping) else sidecar
        raise InputError(name, "FrameTimesStart", "sidecar given without a dynamic image")
    static, static_affine, source = _image(pet, "pet", 3, affine)
    check_positive_image(static, source)
    default_stem = image_stem(source) if isinstance(source, Path) else "prediction"
    found, where = _sidecar(pet_sidecar, sidecar_for(source) if isinstance(source, Path) else None)
    if found is None:
        log.warning("%s: no sidecar; units assumed to be %s", source, spec.get("units") or "any")
    else:
        factor = bqml_to_suv(found, where) if spec.get("accepted_units") else None
        if factor is not None:  # activity concentration → SUV, then checked as SUV
            log.info("%s: %s converted to SUV (x %.4g)", source, found["Units"], factor)
            static = static * factor
            found = {**found, "Units": spec["units"]}
        check_sidecar(found, where, spec)
    extra: dict[str, np.ndarray | None] = {}
    for name, value, ndim in (("flair", flair, 3), ("dynamic", dynamic, 4)):
        if value is None:
            continue
        data, data_affine, data_source = _image(value, name, ndim, static_affine)
        check_same_grid(data_source, data.shape, data_affine, source, static.shape, static_affine)
        extra[name] = data
    starts = durations = None
    if dynamic is not None:
        default = sidecar_for(dynamic) if not isinstance(dynamic, np.ndarray) else None
        timing, where = _sidecar(sidecar, default)
        if timing is None:
            raise InputError(where or "sidecar", "FrameTimesStart", "missing: no dynamic sidecar")
        check_sidecar(timing, where, spec, units=False)
        starts, durations = check_frame_timing(
            timing.get("FrameTimesStart"), timing.get("FrameDuration"), extra["dynamic"].shape[3],
            start_source=where, duration_source=where,
        )  # fmt: skip
    return ScanInput(
        pet=static, affine=static_affine, stem=stem or default_stem, flair=extra.get("flair"),
        dynamic=extra.get("dynamic"), frame_start_s=starts, frame_duration_s=durations,
        source=source,
    )  # fmt: skip
