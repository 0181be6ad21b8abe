"""Entry points of the fast PET indices: arrays → :class:`IndexResult`, files → result.

:func:`compute_indices` is the function the evaluation callback, inference and the CLI call;
:func:`fdopa.kinetics.reference_indices` is its independent, slower yardstick and the two agree
to round-off (tested).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from fdopa.kinetics.dynamic import dynamic_indices
from fdopa.kinetics.io import PetInputs, load_inputs
from fdopa.kinetics.names import DYNAMIC_KEYS
from fdopa.kinetics.presets import Preset, get_preset
from fdopa.kinetics.regions import derive_region_set
from fdopa.kinetics.result import Fields, IndexResult, TacTable
from fdopa.kinetics.static import static_indices
from fdopa.kinetics.validation import validate_inputs

__all__ = ["compute_indices", "indices_from_files", "indices_from_inputs"]

logger = logging.getLogger(__name__)


def indices_from_inputs(
    inputs: PetInputs, preset: Preset | str, participant_id: str = "", source: object = "static"
) -> IndexResult:
    """Compute every index of already validated inputs (see :func:`compute_indices`).

    Args:
        inputs: Validated arrays (from :func:`fdopa.kinetics.io.load_inputs` or
            :func:`compute_indices`).
        preset: A :class:`Preset` or the name of one.
        participant_id: Written to the result.
        source: The static image's file path or argument name, for error messages.

    Returns:
        The :class:`IndexResult`.

    Raises:
        InputError: If the PET is not analysable (reference or tumour mean ≤ 0).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    begin = time.perf_counter()
    regions = derive_region_set(inputs.labels, inputs.affine, preset)
    fields = Fields()
    hot = static_indices(inputs.static, regions, preset, fields, source)
    tacs: TacTable | None = None
    starts, durations = inputs.frame_start_s, inputs.frame_duration_s
    if inputs.dynamic is None or starts is None or durations is None:
        fields.absent(DYNAMIC_KEYS, "no_dynamic")
    else:
        masks = {
            "tumour": regions.tumour,
            "tumour_hot": hot,
            "striatum": regions.striatum,
            "reference": regions.reference,
        }
        tacs = dynamic_indices(inputs.dynamic, masks, starts, durations, preset, fields)
    centroid = regions.tumour_centroid_mm or (None, None, None)
    for key, value in (
        ("tumour_side", regions.tumour_side),
        ("midline_x_mm", regions.midline_x_mm),
        ("tumour_centroid_x_mm", centroid[0]),
        ("tumour_centroid_y_mm", centroid[1]),
        ("tumour_centroid_z_mm", centroid[2]),
        ("striatum_rule", regions.striatum_rule),
        ("tumour_tac", preset.tumour_tac),
    ):
        fields.set(key, value)
    result = IndexResult.from_fields(participant_id, preset.name, fields, tacs)
    logger.debug("indices of %r in %.3f s", participant_id, time.perf_counter() - begin)
    return result


def compute_indices(
    static: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    preset: Preset | str,
    dynamic: np.ndarray | None = None,
    frame_start_s: np.ndarray | None = None,
    frame_duration_s: np.ndarray | None = None,
    participant_id: str = "",
    source: object = "static",
) -> IndexResult:
    """Compute the PET indices of one scan.

    Args:
        static: 3-D static image (SUV or stored units).
        labels: 3-D label map (values 0–3) on the same grid.
        affine: 4×4 voxel-to-RAS-world matrix of that grid.
        preset: A :class:`Preset` or ``"guideline"`` / ``"genoa2024"``.
        dynamic: Optional 4-D image, frames on the last axis, same spatial grid.
        frame_start_s: Frame starts (s; sidecar FrameTimesStart), required with ``dynamic``.
        frame_duration_s: Frame durations (s; sidecar FrameDuration), required with ``dynamic``.
        participant_id: Written to the result.
        source: How error messages name ``static`` (its file path, when it came from one).

    Returns:
        The :class:`IndexResult` (with its TACs when ``dynamic`` is given).

    Raises:
        InputError: On invalid inputs, naming the argument and field, and for a PET that is
            not analysable: a reference or tumour mean ≤ 0 (all zero, negated, wrongly scaled).
        ValueError: On an unknown preset.

    Examples:
        >>> import numpy as np
        >>> labels = np.zeros((20, 20, 20), np.int16); labels[2:18, 2:18, 2:18] = 1
        >>> labels[4:7, 8:11, 8:11] = 2; labels[13:16, 8:11, 8:11] = 2
        >>> labels[14:17, 3:6, 8:11] = 3
        >>> static = labels.astype(float)
        >>> result = compute_indices(static, labels, np.diag([4.0, 4, 4, 1]), "guideline")
        >>> result.tsr, result.missing["ttp_min"]
        (1.5, 'no_dynamic')
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    inputs = PetInputs(
        *validate_inputs(static, labels, affine, dynamic, frame_start_s, frame_duration_s)
    )
    return indices_from_inputs(inputs, preset, participant_id, source)


def indices_from_files(
    static_path: str | Path,
    labels_path: str | Path,
    preset: Preset | str,
    *,
    dynamic_path: str | Path | None = None,
    sidecar_path: str | Path | None = None,
    participant_id: str | None = None,
) -> IndexResult:
    """Load and validate NIfTI images (and the dynamic sidecar), then compute the indices.

    Args:
        static_path: 3-D static PET.
        labels_path: Label map (values 0–3) on the same grid.
        preset: A :class:`Preset` or the name of one.
        dynamic_path: Optional 4-D PET.
        sidecar_path: JSON sidecar of the 4-D PET (``FrameTimesStart``, ``FrameDuration``);
            defaults to the dynamic image's name with ``.json``.
        participant_id: Defaults to the ``sub-XXX`` prefix of the static file name.

    Returns:
        The :class:`IndexResult`.

    Raises:
        InputError: On invalid files, naming the file and the field (also for a PET that is
            not analysable: reference or tumour mean ≤ 0).
        FileNotFoundError: If a file does not exist.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    inputs = load_inputs(static_path, labels_path, dynamic_path, sidecar_path)
    if participant_id is None:
        participant_id = Path(static_path).name.split("_")[0].split(".")[0]
    return indices_from_inputs(inputs, preset, participant_id, static_path)
