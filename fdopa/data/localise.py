"""Find the head in a PET scan before segmenting it: a classical mask, no network.

A scanner's image covers much more than the brain (face, neck, shoulders, empty air, a padded
matrix); the network only needs the brain with some context. The head is found on the native
grid from the uptake alone, in a way that does not depend on the image's units:

1. the *data extent*: the bounding box of the non-zero voxels (a matrix padded with zeros is
   cut back to the acquired field of view);
2. the image is summed over blocks of about :data:`COARSE_MM`, smoothed (Gaussian, sigma
   :data:`SMOOTH_MM`, zeros beyond the borders) and thresholded at :data:`HEAD_FRACTION` of
   its robust maximum (99.5th percentile of the data extent); the largest connected component
   is kept;
3. where the component is longer than the brain can be (:data:`BRAIN_EXTENT_MM`: neck,
   shoulders) along the array axis closest to superior, it is cut to that length below the
   vertex (its top end in world coordinates; the hottest voxels may be salivary glands, not
   striatum); along any other axis still too long, the box is cut to that length around the
   centre of the hottest :data:`HOT_FRACTION` of the component;
4. the box grows by :data:`MARGIN_MM` on each side, clipped to the head's acquired data (the
   bounding box of the non-zero regions that touch the head: a zero-padded matrix and activity
   separated from the head by zeros do not move it).

The localisation fails with a reason when the largest component is smaller than a brain
(:data:`MIN_HEAD_ML`: ``no_head``) or fills nearly all of a field of view larger than a head
(:data:`MAX_FILL` of it: ``localisation_failed``, no contrast between head and surroundings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

__all__ = ["HeadBox", "full_box", "locate_head"]

METHOD = "threshold"
SMOOTH_MM = 6.0
"""Sigma (mm) of the Gaussian smoothing before thresholding."""
COARSE_MM = 4.0
"""Block size (mm, whole voxels) on which the head mask is computed."""
HEAD_FRACTION = 0.2
"""Threshold of the head mask, as a fraction of the smoothed image's 99.5th percentile."""
HOT_FRACTION = 0.02
"""Share of the component's hottest voxels whose centre anchors a box cut to the brain extent."""
BRAIN_EXTENT_MM = 200.0
"""Longest extent (mm) of a brain along any axis, child or adult, kept before the margin."""
MARGIN_MM = 16.0
"""Context (mm) added around the located head on each side."""
MIN_HEAD_ML = 200.0
"""Smallest head component (mL): below this there is no brain in the image."""
MAX_FILL = 0.9
"""Largest share of the data extent the head may fill when that extent exceeds a head."""


@dataclass(frozen=True)
class HeadBox:
    """Where the head lies on the native grid.

    Attributes:
        start: First voxel of the crop per native axis.
        stop: One past the last voxel per native axis.
        shape: Native spatial shape.
        method: How the box was found (``threshold``; ``full`` when not cropped).
        head_ml: Volume of the head component (mL).
        failure: ``no_head`` or ``localisation_failed`` (None when found).
    """

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    shape: tuple[int, int, int]
    method: str = METHOD
    head_ml: float = 0.0
    failure: str | None = None

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """The crop as native-grid slices."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))  # type: ignore[return-value]

    @property
    def size(self) -> tuple[int, int, int]:
        """Spatial shape of the crop."""
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))  # type: ignore[return-value]

    def affine(self, affine: np.ndarray) -> np.ndarray:
        """The affine of the cropped grid, given the native one."""
        shifted = np.array(affine, dtype=float)
        shifted[:3, 3] = affine[:3, :3] @ np.asarray(self.start, float) + affine[:3, 3]
        return shifted

    def to_dict(self) -> dict[str, Any]:
        """JSON fields: ``start``, ``stop`` (native voxels), ``native_shape``, ``method``,..."""
        return {
            "start": list(self.start),
            "stop": list(self.stop),
            "native_shape": list(self.shape),
            "method": self.method,
            "head_ml": round(self.head_ml, 3),
            "failure": self.failure,
        }


def full_box(shape: tuple[int, ...]) -> HeadBox:
    """The whole native grid as a box (no localisation, method ``full``)."""
    size = tuple(int(n) for n in shape[:3])
    return HeadBox((0, 0, 0), size, size, method="full")  # type: ignore[arg-type]


def _box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last index of a non-empty mask per axis."""
    hits = [np.flatnonzero(mask.any(axis=tuple({0, 1, 2} - {axis}))) for axis in range(3)]
    return np.array([h[0] for h in hits]), np.array([h[-1] + 1 for h in hits])


def _blocks(volume: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Sums of ``volume`` over blocks of ``factor`` voxels (a last, shorter block per axis)."""
    for axis, f in enumerate(factor):
        if f > 1:
            volume = np.add.reduceat(volume, np.arange(0, volume.shape[axis], f), axis=axis)
    return volume


def locate_head(pet: np.ndarray, affine: np.ndarray) -> HeadBox:
    """Locate the head of a static PET on its native grid (see the module docstring).

    The mask is computed on block sums of about :data:`COARSE_MM` (whole voxels), the box edges
    at the acquired data's end on the native voxels.

    Args:
        pet: 3-D static PET, any units proportional to activity.
        affine: Its voxel-to-world affine.

    Returns:
        The :class:`HeadBox`; on failure it spans the data extent and names the failure.
    """
    shape = tuple(int(n) for n in pet.shape)
    zooms = voxel_sizes(affine)
    nonzero = pet != 0
    if not nonzero.any():
        return HeadBox((0, 0, 0), shape, shape, failure="no_head")  # type: ignore[arg-type]
    low, high = _box(nonzero)
    data = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    region = np.asarray(pet[data], dtype=np.float32)
    full = HeadBox(tuple(low.tolist()), tuple(high.tolist()), shape)  # type: ignore[arg-type]
    factor = np.maximum(1, np.floor(COARSE_MM / zooms + 1e-6)).astype(int)
    coarse_zooms = zooms * factor
    smooth = ndimage.gaussian_filter(
        _blocks(region, factor), SMOOTH_MM / coarse_zooms, mode="constant"
    )
    top = float(np.percentile(smooth, 99.5))
    if top <= 0:
        return HeadBox(full.start, full.stop, shape, failure="no_head")
    components, _ = ndimage.label(smooth > HEAD_FRACTION * top)
    sizes = np.bincount(components.ravel())[1:]
    head_ml = float(sizes.max(initial=0)) * float(np.prod(coarse_zooms)) / 1000.0
    if head_ml < MIN_HEAD_ML:
        return HeadBox(full.start, full.stop, shape, head_ml=head_ml, failure="no_head")
    head = components == int(np.argmax(sizes)) + 1
    extent_mm = np.asarray(region.shape) * zooms
    if head.mean() > MAX_FILL and np.any(extent_mm > BRAIN_EXTENT_MM + 2 * MARGIN_MM):
        return HeadBox(full.start, full.stop, shape, head_ml=head_ml, failure="localisation_failed")
    start, stop = _box(head)
    longest = np.floor(BRAIN_EXTENT_MM / coarse_zooms).astype(int)
    up = int(np.argmax(np.abs(affine[2, :3])))  # the array axis closest to superior
    if stop[up] - start[up] > longest[up]:  # head and neck: keep the part below the vertex
        if affine[2, up] > 0:
            start[up] = stop[up] - longest[up]
        else:
            stop[up] = start[up] + longest[up]
        slab = np.zeros_like(head)
        keep = tuple(slice(a, b) if axis == up else slice(None)
                     for axis, (a, b) in enumerate(zip(start, stop, strict=True)))  # fmt: skip
        slab[keep] = head[keep]
        head = slab
        start, stop = _box(head)
    if np.any(stop - start > longest):
        values = smooth[head]
        hot = np.argwhere(head)[values >= np.quantile(values, 1.0 - HOT_FRACTION)]
        centre = np.round(hot.mean(axis=0)).astype(int)
        cut = stop - start > longest
        start = np.where(cut, np.clip(centre - longest // 2, start, stop - longest), start)
        stop = np.where(cut, start + longest, stop)
    # The margin stops where the head's acquired data end: at the zeros of a padded matrix.
    parts, _ = ndimage.label(_blocks(np.abs(region), factor) > 0)
    touching = np.unique(parts[head])
    acquired = _box(np.isin(parts, touching[touching > 0]))
    window = tuple(
        slice(a * f, min(b * f, n))
        for a, b, f, n in zip(*acquired, factor, region.shape, strict=True)
    )
    acquired_low, acquired_high = _box(region[window] != 0)
    acquired_low += acquired[0] * factor
    acquired_high += acquired[0] * factor
    margin = np.ceil(MARGIN_MM / zooms).astype(int)
    start = np.maximum(start * factor - margin, acquired_low) + low
    stop = np.minimum(stop * factor + margin, acquired_high) + low
    return HeadBox(tuple(start.tolist()), tuple(stop.tolist()), shape, head_ml=head_ml)  # type: ignore[arg-type]
