"""Voxel grids of prediction: the input's native grid and the bundle's (RAS, training spacing).

The network was trained on volumes reoriented to RAS+ at one voxel spacing. An input is mapped
to a *model grid* covering the same field of view: its closest canonical (RAS+) orientation,
with voxels of the training spacing; the prediction is mapped back to the native grid. When a
mapping between two grids only permutes and flips axes (a LAS image, or an input already at the
training spacing) the voxels are copied exactly; otherwise they are interpolated with
:func:`scipy.ndimage.affine_transform` (order 0: nearest, 1: linear; borders extended).
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

__all__ = ["SPACING_RTOL", "map_to_grid", "model_grid"]

SPACING_RTOL = 1e-3
"""Relative tolerance under which a voxel size counts as the training spacing (no resampling)."""

_EXACT_TOL = 1e-4
"""Largest deviation (voxels) of a grid mapping from an integer permutation to copy exactly."""


def model_grid(
    affine: np.ndarray, shape: Sequence[int], spacing: Sequence[float]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The RAS+ grid at ``spacing`` covering the field of view of a native grid.

    The native grid is first reoriented to its closest canonical orientation (an exact axis
    permutation and flip); when its voxel sizes already equal ``spacing`` (relative tolerance
    :data:`SPACING_RTOL`) that is the model grid. Otherwise each axis keeps its extent
    (``n × voxel size``, rounded to whole new voxels) and its outer corner.

    Args:
        affine: 4×4 voxel-to-world affine of the native grid.
        shape: Spatial shape of the native grid.
        spacing: Target voxel size (mm) per RAS axis.

    Returns:
        ``(affine, shape)`` of the model grid.

    Examples:
        >>> affine, shape = model_grid(np.diag([-3.0, 3, 3, 1]), (10, 10, 10), (4, 4, 4))
        >>> shape, np.diag(affine).tolist()
        ((8, 8, 8), [4.0, 4.0, 4.0, 1.0])
    """
    ornt = nib.orientations.io_orientation(affine)
    canonical_shape = [0, 0, 0]
    for axis, size in zip(ornt[:, 0].astype(int), shape[:3], strict=True):
        canonical_shape[axis] = int(size)
    flip = nib.orientations.inv_ornt_aff(ornt, tuple(shape[:3]))
    canonical = np.asarray(affine, float) @ flip
    zooms = voxel_sizes(canonical)
    target = np.asarray(spacing, float)
    if np.allclose(zooms, target, rtol=SPACING_RTOL, atol=0.0):
        return canonical, (canonical_shape[0], canonical_shape[1], canonical_shape[2])
    extent = np.asarray(canonical_shape) * zooms
    new_shape = tuple(int(max(1, round(e / s))) for e, s in zip(extent, target, strict=True))
    scaled = canonical.copy()
    scaled[:3, :3] = canonical[:3, :3] @ np.diag(target / zooms)
    corner = canonical @ np.array([-0.5, -0.5, -0.5, 1.0])
    scaled[:3, 3] = corner[:3] + scaled[:3, :3] @ np.full(3, 0.5)
    return scaled, (new_shape[0], new_shape[1], new_shape[2])


def _exact_indices(
    matrix: np.ndarray, source_shape: Sequence[int], target_shape: Sequence[int]
) -> tuple[np.ndarray, ...] | None:
    """Source index arrays when ``matrix`` maps target voxels onto source voxels one to one."""
    rotation, offset = matrix[:3, :3], matrix[:3, 3]
    if not (
        np.allclose(rotation, rotation.round(), atol=_EXACT_TOL)
        and np.allclose(offset, offset.round(), atol=_EXACT_TOL)
    ):
        return None
    rotation, offset = rotation.round().astype(int), offset.round().astype(int)
    if (
        sorted(np.abs(rotation).sum(axis=0).tolist()) != [1, 1, 1]
        or abs(round(np.linalg.det(rotation))) != 1
    ):
        return None
    grids = np.indices(tuple(target_shape[:3]), sparse=True)
    index = [offset[i] + sum(rotation[i, j] * grids[j] for j in range(3)) for i in range(3)]
    for i, size in enumerate(source_shape[:3]):
        low, high = int(np.min(index[i])), int(np.max(index[i]))
        if low < 0 or high >= size:
            return None
    return tuple(np.broadcast_to(i, tuple(target_shape[:3])) for i in index)


def map_to_grid(
    array: np.ndarray,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: Sequence[int],
    order: int,
) -> np.ndarray:
    """Resample a volume (or a stack of volumes on a leading axis) onto another grid.

    Args:
        array: ``(X, Y, Z)`` or ``(C, X, Y, Z)`` on the source grid.
        source_affine: Voxel-to-world affine of the source grid.
        target_affine: Voxel-to-world affine of the target grid.
        target_shape: Spatial shape of the target grid.
        order: Interpolation order: 0 (nearest, for labels) or 1 (linear).

    Returns:
        The resampled array, ``(X', Y', Z')`` or ``(C, X', Y', Z')``, in ``array``'s dtype.

    Raises:
        ValueError: If ``array`` is not 3-D or 4-D or ``order`` is not 0 or 1.

    Examples:
        >>> volume = np.arange(8.0).reshape(2, 2, 2)
        >>> flip = np.diag([-1.0, 1, 1, 1]); flip[0, 3] = 1
        >>> map_to_grid(volume, np.eye(4), flip, (2, 2, 2), order=1)[:, 0, 0].tolist()
        [4.0, 0.0]
    """
    if array.ndim not in (3, 4):
        raise ValueError(f"array: expected 3 or 4 axes, got shape {array.shape}")
    if order not in (0, 1):
        raise ValueError(f"order: expected 0 (nearest) or 1 (linear), got {order}")
    stack = array[None] if array.ndim == 3 else array
    matrix = np.linalg.inv(np.asarray(source_affine, float)) @ np.asarray(target_affine, float)
    exact = _exact_indices(matrix, stack.shape[1:], target_shape)
    if exact is not None:
        out = stack[(slice(None), *exact)]
    else:
        out = np.stack(
            [
                ndimage.affine_transform(
                    volume,
                    matrix[:3, :3],
                    matrix[:3, 3],
                    output_shape=tuple(target_shape[:3]),
                    order=order,
                    mode="nearest",
                )
                for volume in stack
            ]
        )
    out = np.ascontiguousarray(out, dtype=array.dtype)
    return out[0] if array.ndim == 3 else out
