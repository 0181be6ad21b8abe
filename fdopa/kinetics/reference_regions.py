"""Reference implementation, part 1: the regions (docs/indices.md#reference-regions).

Input validation lives in :mod:`fdopa.kinetics.validation` (re-exported here).

Geometry is always in RAS world millimetres through the affine, so a flipped or oblique storage
order gives the same regions. Distances are between voxel centres (Euclidean, in mm, computed
with :func:`scipy.ndimage.distance_transform_edt` and ``sampling=zooms``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

from fdopa.kinetics.presets import Preset
from fdopa.kinetics.validation import validate_inputs

__all__ = ["Regions", "derive_regions", "validate_inputs"]

logger = logging.getLogger(__name__)

_GEOM_TOL_MM = 1e-6  # tolerance for the margin and slab comparisons


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
    """Derive tumour, contralateral striatum and background reference.

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
        labels: Integer label map (values 0–3), already validated.
        affine: 4×4 voxel-to-world matrix.
        preset: Index preset.

    Returns:
        The derived :class:`Regions`.
    """
    affine = np.asarray(affine, dtype=float)
    zooms = voxel_sizes(affine)
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
