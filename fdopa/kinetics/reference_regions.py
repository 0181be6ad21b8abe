"""Reference implementation, part 1: input validation and the regions of SPEC §3.1.

Geometry is always in RAS world millimetres through the affine, so a flipped or oblique storage
order gives the same regions. Distances are between voxel centres (Euclidean, in mm, computed
with :func:`scipy.ndimage.distance_transform_edt` and ``sampling=zooms``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fdopa.kinetics.presets import Preset

__all__ = ["Regions", "derive_regions", "validate_inputs", "voxel_zooms"]

logger = logging.getLogger(__name__)

LABEL_VALUES = (0, 1, 2, 3)
_GEOM_TOL_MM = 1e-6  # tolerance for the margin and slab comparisons
_FRAME_TOL_S = 1e-3  # tolerance for the frame-overlap check


@dataclass(frozen=True, eq=False)
class Regions:
    """Boolean masks and geometry derived from a label map.

    Attributes:
        tumour: Tumour-label voxels.
        striatum: Contralateral striatum (both striata for a midline or absent tumour).
        reference: Background reference region (may be empty).
        reference_rule: ``slab``, ``hemisphere``, ``both_hemispheres``, or None when empty.
        striatum_rule: ``contralateral`` or ``both``.
        tumour_side: ``left``, ``right``, ``midline`` or None (no tumour).
        midline_x_mm: World x of the midline plane, None when the label map is empty.
        tumour_centroid_mm: World (x, y, z) of the tumour centroid, None without tumour.
        zooms: Voxel size (mm) along the three array axes.
        voxel_ml: Volume of one voxel in mL.
    """

    tumour: np.ndarray
    striatum: np.ndarray
    reference: np.ndarray
    reference_rule: str | None
    striatum_rule: str
    tumour_side: str | None
    midline_x_mm: float | None
    tumour_centroid_mm: tuple[float, float, float] | None
    zooms: tuple[float, float, float]
    voxel_ml: float

    def ml(self, mask: np.ndarray) -> float:
        """Return the volume of a mask in mL (voxels × prod(zooms) / 1000)."""
        return float(np.count_nonzero(mask)) * self.voxel_ml


def voxel_zooms(affine: np.ndarray) -> np.ndarray:
    """Return voxel sizes (mm) as the column norms of the affine's 3×3 part.

    For a consistent NIfTI header these equal ``header.get_zooms()[:3]``.

    Args:
        affine: 4×4 voxel-to-world (RAS mm) matrix.

    Returns:
        Array of three positive voxel sizes.
    """
    return np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))


def _world_coordinate(affine: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """World coordinate ``axis`` (0 = x, 2 = z) of every voxel centre, as a full 3-D array."""
    i, j, k = (np.arange(n, dtype=float) for n in shape)
    row = affine[axis]
    return (
        row[0] * i[:, None, None] + row[1] * j[None, :, None] + row[2] * k[None, None, :] + row[3]
    )


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinate of the centroid of a non-empty mask (mean voxel index through affine)."""
    mean_index = np.argwhere(mask).mean(axis=0)
    return affine[:3, :3] @ mean_index + affine[:3, 3]


def _distance_mm(mask: np.ndarray, zooms: np.ndarray) -> np.ndarray:
    """Distance (mm) from every voxel centre to the nearest voxel of ``mask`` (inf if empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=zooms)


def derive_regions(labels: np.ndarray, affine: np.ndarray, preset: Preset) -> Regions:
    """Derive tumour, contralateral striatum and background reference (SPEC §3.1).

    Rules:
        * Midline: world x of the centroid of brain ∪ striatum ∪ tumour.
        * Tumour side: sign of (tumour-centroid x − midline); ``midline`` when closer than
          ``preset.midline_mm``. Voxels lying exactly on the midline plane belong to neither side.
        * Striatum: striatum voxels strictly on the side opposite the tumour; both striata for a
          midline tumour or when there is no tumour.
        * Reference: brain voxels at ≥ ``margin_mm`` from every tumour and every striatum voxel
          (both striata), restricted to (1) the contralateral side within ± ``slab_mm`` (world z)
          of the tumour centroid (``slab``), else (2) the contralateral side (``hemisphere``),
          else (3) both sides (``both_hemispheres``); a rule is accepted when it holds at least
          ``min_ref_ml``; the last rule is used whatever its size. For a midline tumour
          "contralateral" means both sides; without a tumour only ``both_hemispheres`` applies.

    Args:
        labels: Integer label map (SPEC §1 values), already validated.
        affine: 4×4 voxel-to-world matrix.
        preset: Index preset.

    Returns:
        The derived :class:`Regions`.
    """
    affine = np.asarray(affine, dtype=float)
    zooms = voxel_zooms(affine)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    tumour = labels == preset.tumour_label
    striatum_all = np.isin(labels, preset.striatum_labels)
    brain = labels == preset.brain_label
    head = brain | striatum_all | tumour

    x = _world_coordinate(affine, labels.shape, 0)
    midline = float(_centroid_mm(head, affine)[0]) if head.any() else None
    centroid = tuple(float(v) for v in _centroid_mm(tumour, affine)) if tumour.any() else None

    side: str | None = None
    contralateral = np.ones(labels.shape, dtype=bool)
    if centroid is not None and midline is not None:
        offset = centroid[0] - midline
        if abs(offset) < preset.midline_mm:
            side = "midline"
        else:
            side = "right" if offset > 0 else "left"  # RAS: +x is the participant's right
            contralateral = (x - midline) * np.sign(offset) < 0

    striatum = striatum_all & contralateral
    striatum_rule = "contralateral" if side in ("left", "right") else "both"

    far = (_distance_mm(tumour, zooms) >= preset.margin_mm - _GEOM_TOL_MM) & (
        _distance_mm(striatum_all, zooms) >= preset.margin_mm - _GEOM_TOL_MM
    )
    candidates: list[tuple[str, np.ndarray]] = []
    if centroid is not None:
        z = _world_coordinate(affine, labels.shape, 2)
        in_slab = np.abs(z - centroid[2]) <= preset.slab_mm + _GEOM_TOL_MM
        candidates.append(("slab", brain & far & contralateral & in_slab))
        candidates.append(("hemisphere", brain & far & contralateral))
    candidates.append(("both_hemispheres", brain & far))
    rule_order = [name for name, _ in candidates]
    if preset.reference_start in rule_order:
        candidates = candidates[rule_order.index(preset.reference_start) :]

    reference_rule, reference = candidates[-1]
    for rule, mask in candidates:
        if float(np.count_nonzero(mask)) * voxel_ml >= preset.min_ref_ml:
            reference_rule, reference = rule, mask
            break
    else:
        logger.warning(
            "reference region %.3f mL is below min_ref_ml=%.3f even with rule %r",
            float(np.count_nonzero(reference)) * voxel_ml,
            preset.min_ref_ml,
            reference_rule,
        )
    return Regions(
        tumour=tumour,
        striatum=striatum,
        reference=reference,
        reference_rule=reference_rule if reference.any() else None,
        striatum_rule=striatum_rule,
        tumour_side=side,
        midline_x_mm=midline,
        tumour_centroid_mm=centroid,  # type: ignore[arg-type]
        zooms=(float(zooms[0]), float(zooms[1]), float(zooms[2])),
        voxel_ml=voxel_ml,
    )


def _finite_array(value: object, name: str) -> np.ndarray:
    """Convert to an ndarray and reject NaN/Inf and non-numeric values, naming the argument."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return array


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
        ValueError: Naming the offending argument (and sidecar field) on any violation.
    """
    static_a = _finite_array(static, "static").astype(float, copy=False)
    if static_a.ndim != 3:
        raise ValueError(f"static: expected a 3-D array, got shape {static_a.shape}")
    labels_a = _finite_array(labels, "labels")
    if labels_a.shape != static_a.shape:
        raise ValueError(f"labels: shape {labels_a.shape} differs from static {static_a.shape}")
    bad = ~np.isin(labels_a, LABEL_VALUES)
    if bad.any():
        raise ValueError(
            f"labels: values {np.unique(labels_a[bad])[:10].tolist()} not in {LABEL_VALUES}"
        )
    affine_a = _finite_array(affine, "affine").astype(float, copy=False)
    if affine_a.shape != (4, 4) or abs(np.linalg.det(affine_a[:3, :3])) == 0:
        raise ValueError(f"affine: expected an invertible 4x4 matrix, got shape {affine_a.shape}")

    if dynamic is None:
        if frame_start_s is not None or frame_duration_s is not None:
            raise ValueError("frame_start_s/frame_duration_s: given without dynamic")
        return static_a, labels_a.astype(np.int16), affine_a, None, None, None

    dynamic_a = _finite_array(dynamic, "dynamic")
    if dynamic_a.ndim != 4 or dynamic_a.shape[:3] != static_a.shape:
        raise ValueError(
            f"dynamic: expected a 4-D array with spatial shape {static_a.shape}, "
            f"got {dynamic_a.shape}"
        )
    n_frames = dynamic_a.shape[3]
    timing = []
    for value, name in (
        (frame_start_s, "frame_start_s (FrameTimesStart)"),
        (frame_duration_s, "frame_duration_s (FrameDuration)"),
    ):
        if value is None:
            raise ValueError(f"{name}: required with dynamic")
        arr = _finite_array(value, name).astype(float).ravel()
        if np.ndim(value) != 1 or arr.size != n_frames:
            raise ValueError(f"{name}: expected {n_frames} values (dynamic frames), got {arr.size}")
        timing.append(arr)
    starts, durations = timing
    if (durations <= 0).any():
        raise ValueError("frame_duration_s (FrameDuration): durations must be > 0")
    if (starts < 0).any():
        raise ValueError("frame_start_s (FrameTimesStart): starts must be >= 0")
    if (np.diff(starts) <= 0).any():
        raise ValueError("frame_start_s (FrameTimesStart): starts must be strictly increasing")
    if (starts[1:] < starts[:-1] + durations[:-1] - _FRAME_TOL_S).any():
        raise ValueError(
            "frame_start_s (FrameTimesStart) / frame_duration_s (FrameDuration): frames overlap"
        )
    return static_a, labels_a.astype(np.int16), affine_a, dynamic_a, starts, durations
