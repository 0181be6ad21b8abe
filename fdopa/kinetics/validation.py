"""Validation of the inputs of the PET indices, shared by every implementation.

Every check raises :class:`InputError`, which names its *source* (an argument such as
``static``, or a file path) and the offending *field* (``shape``, ``voxels``, ``labels``, a
sidecar key such as ``FrameTimesStart``), so that a message reads
``<source>: <field>: <problem>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fdopa.labels import LABEL_VALUES

__all__ = [
    "FRAME_TOL_S",
    "InputError",
    "UnanalysableRegion",
    "check_analysable",
    "check_frame_timing",
    "check_labels",
    "check_positive_image",
    "check_volume",
    "finite_array",
    "validate_inputs",
]

FRAME_TOL_S = 1e-3
"""Tolerance (s) of the frame-overlap check."""


class InputError(ValueError):
    """Invalid input to the indices, naming its source and field.

    Attributes:
        source: The file path or argument name the value came from.
        field: The offending field (``shape``, ``affine``, ``voxels``, ``labels``,
            ``FrameTimesStart``, ``FrameDuration``, a preset field, ...).
        problem: What is wrong, in words.
    """

    def __init__(self, source: object, field: str, problem: str) -> None:
        self.source, self.field, self.problem = str(source), field, problem
        super().__init__(f"{source}: {field}: {problem}")

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        """Pickle with the three constructor arguments (for worker processes)."""
        return type(self), (self.source, self.field, self.problem)


class UnanalysableRegion(InputError):
    """A region whose mean uptake is not positive (:func:`check_analysable`).

    Raised for the ``voxels`` field. Where the image itself has passed
    :func:`check_positive_image`, it is the label map that put the region where the scan has
    no uptake (an automatic delineation gone wrong), which a predictor flags instead of failing.

    Attributes:
        region: ``reference`` or ``tumour``.
        mean: The region's mean uptake.
    """

    def __init__(self, source: object, region: str, mean: float) -> None:
        self.region, self.mean = region, float(mean)
        super().__init__(
            source,
            "voxels",
            f"not an analysable PET: the {region} region's mean uptake is {mean:.3g} (must be"
            " > 0); an all-zero, negated or wrongly scaled image gives no T/S, TBR or MTV. "
            "Check the image and its units",
        )

    def __reduce__(self) -> tuple[Any, tuple[str, str, float]]:  # type: ignore[override]
        """Pickle with the three constructor arguments (for worker processes)."""
        return type(self), (self.source, self.region, self.mean)


def finite_array(value: object, source: object, field: str = "voxels") -> np.ndarray:
    """Convert to an ndarray and reject non-numeric values, NaN and Inf.

    Args:
        value: Array-like.
        source: Argument name or file path, for the error message.
        field: Field name for the error message.

    Returns:
        The array (not copied when already an ndarray).

    Raises:
        InputError: On a non-numeric dtype or a NaN/Inf value.
    """
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(source, field, f"expected numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise InputError(source, field, f"{np.count_nonzero(~np.isfinite(array))} NaN/Inf values")
    return array


def check_volume(
    array: np.ndarray, source: object, ndim: int, spatial_shape: tuple[int, ...] | None = None
) -> None:
    """Check the number of axes and, optionally, the spatial (first three) shape of an image.

    Args:
        array: Image array.
        source: Argument name or file path.
        ndim: Required number of axes (3 for static and labels, 4 for dynamic).
        spatial_shape: Required shape of the first three axes.

    Raises:
        InputError: Naming the ``shape`` field.
    """
    if array.ndim != ndim:
        kind = "a 3-D image" if ndim == 3 else "a 4-D image (frames on the 4th axis)"
        raise InputError(source, "shape", f"expected {kind}, got shape {array.shape}")
    if spatial_shape is not None and array.shape[:3] != tuple(spatial_shape):
        raise InputError(
            source, "shape", f"spatial shape {array.shape[:3]} differs from {tuple(spatial_shape)}"
        )


def check_labels(labels: object, source: object) -> np.ndarray:
    """Check that a label map holds only the values 0–3; return it as int16.

    Args:
        labels: Label map (integer-valued floats accepted).
        source: Argument name or file path.

    Returns:
        The labels as an int16 array.

    Raises:
        InputError: Naming the ``labels`` field, with the offending values.
    """
    array = finite_array(labels, source, "labels")
    bad = ~np.isin(array, LABEL_VALUES)
    if bad.any():
        values = np.unique(array[bad])[:10].tolist()
        raise InputError(source, "labels", f"values {values} not in the label map {LABEL_VALUES}")
    return array.astype(np.int16)


def check_analysable(means: dict[str, float | None], source: object) -> None:
    """Refuse a PET whose reference or tumour mean uptake is not positive.

    Such an image (all zero, negated, or scaled by a negative factor) gives no meaningful
    ratio or threshold: T/S, TBR and the MTV threshold (a fraction of the reference mean) would
    be numbers without meaning. An empty region is not judged here (its indices are missing).

    Args:
        means: Region name (``reference``, ``tumour``) → mean of the static image in it, None
            for an empty region.
        source: The static image's file path or argument name.

    Raises:
        UnanalysableRegion: Naming ``source``, the ``voxels`` field and the region.
    """
    for region, mean in means.items():
        if mean is not None and not mean > 0:
            raise UnanalysableRegion(source, region, mean)


def check_positive_image(image: np.ndarray, source: object) -> None:
    """Refuse a static PET whose mean over the whole image is ≤ 0 (all zero or negated).

    The image-level form of :func:`check_analysable`, for callers that have no label map yet
    (prediction checks it before running the network).

    Raises:
        InputError: Naming ``source`` and the ``voxels`` field.
    """
    mean = float(np.mean(image))
    if not mean > 0:
        raise InputError(
            source,
            "voxels",
            f"not an analysable PET: the image's mean uptake is {mean:.3g} (must be > 0); an "
            "all-zero, negated or wrongly scaled image gives no T/S, TBR or MTV. Check the "
            "image and its units",
        )


def check_frame_timing(
    frame_start_s: object,
    frame_duration_s: object,
    n_frames: int,
    *,
    start_source: object = "frame_start_s",
    duration_source: object = "frame_duration_s",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate frame timing against a 4-D image (docs/indices.md#frame-timing).

    Args:
        frame_start_s: ``FrameTimesStart`` (s).
        frame_duration_s: ``FrameDuration`` (s).
        n_frames: Number of frames of the dynamic image.
        start_source: Where the starts came from (argument name or sidecar path).
        duration_source: Where the durations came from.

    Returns:
        ``(starts, durations)`` as float64 arrays.

    Raises:
        InputError: Naming the sidecar field ``FrameTimesStart`` or ``FrameDuration``.
    """
    timing = []
    for value, source, field in (
        (frame_start_s, start_source, "FrameTimesStart"),
        (frame_duration_s, duration_source, "FrameDuration"),
    ):
        if value is None:
            raise InputError(source, field, "required with a dynamic image")
        array = finite_array(value, source, field).astype(float)
        if array.ndim != 1 or array.size != n_frames:
            raise InputError(
                source, field, f"expected {n_frames} values (dynamic frames), got {array.size}"
            )
        timing.append(array)
    starts, durations = timing
    if (durations <= 0).any():
        raise InputError(duration_source, "FrameDuration", "durations must be > 0")
    if (starts < 0).any():
        raise InputError(start_source, "FrameTimesStart", "starts must be >= 0")
    if (np.diff(starts) <= 0).any():
        raise InputError(start_source, "FrameTimesStart", "starts must be strictly increasing")
    ends = starts[:-1] + durations[:-1]
    overlap = np.flatnonzero(starts[1:] < ends - FRAME_TOL_S)
    if overlap.size:
        i = int(overlap[0])
        raise InputError(
            start_source,
            "FrameTimesStart/FrameDuration",
            f"frames overlap: frame {i} ends at {ends[i]} s, frame {i + 1} starts at "
            f"{starts[i + 1]} s",
        )
    return starts, durations


def validate_inputs(
    static: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    dynamic: np.ndarray | None = None,
    frame_start_s: np.ndarray | None = None,
    frame_duration_s: np.ndarray | None = None,
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None
]:
    """Check shapes, values and frame timing; return the arrays in canonical dtypes.

    Args:
        static: 3-D static image.
        labels: 3-D label map, values in {0, 1, 2, 3} (integer-valued floats accepted).
        affine: 4×4 voxel-to-world matrix.
        dynamic: Optional 4-D image, frames on the last axis.
        frame_start_s: Frame starts (s), required with ``dynamic`` (sidecar FrameTimesStart).
        frame_duration_s: Frame durations (s), required with ``dynamic`` (FrameDuration).

    Returns:
        ``(static float64, labels int16, affine float64, dynamic, starts float64,
        durations float64)``; the dynamic array is not copied.

    Raises:
        InputError: Naming the offending argument and field on any violation.
    """
    static_a = finite_array(static, "static").astype(float, copy=False)
    check_volume(static_a, "static", 3)
    labels_a = np.asarray(labels)
    check_volume(labels_a, "labels", 3, static_a.shape)
    labels_a = check_labels(labels_a, "labels")
    affine_a = finite_array(affine, "affine", "affine").astype(float, copy=False)
    if affine_a.shape != (4, 4) or abs(np.linalg.det(affine_a[:3, :3])) == 0:
        raise InputError(
            "affine", "affine", f"expected an invertible 4x4 matrix, got shape {affine_a.shape}"
        )
    if dynamic is None:
        if frame_start_s is not None or frame_duration_s is not None:
            raise InputError("frame_start_s/frame_duration_s", "timing", "given without dynamic")
        return static_a, labels_a, affine_a, None, None, None
    dynamic_a = finite_array(dynamic, "dynamic")
    check_volume(dynamic_a, "dynamic", 4, static_a.shape)
    starts, durations = check_frame_timing(frame_start_s, frame_duration_s, dynamic_a.shape[3])
    return static_a, labels_a, affine_a, dynamic_a, starts, durations
