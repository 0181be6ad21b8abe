"""Voxel grids of prediction: the input's native grid and the bundle's (RAS, training spacing).

The network was trained on volumes reoriented to RAS+ at one voxel spacing. An input is mapped
to a *model grid* covering the same field of view: its closest canonical (RAS+) orientation,
with voxels of the training spacing; the prediction is mapped back to the native grid. When a
mapping between two grids only permutes and flips axes (a LAS image, or an input already at the
training spacing) the voxels are copied exactly; otherwise they are interpolated, linearly with
:func:`torch.nn.functional.grid_sample` (all channels in one call, 2–3× faster than SciPy on one
thread) and by nearest neighbour with :func:`scipy.ndimage.affine_transform`; beyond the
borders the edge voxels are extended.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from nibabel.affines import voxel_sizes
from scipy import ndimage

__all__ = ["SPACING_RTOL", "antialias_sigma", "map_to_grid", "model_grid"]

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


def antialias_sigma(matrix: np.ndarray) -> np.ndarray:
    """Gaussian SD (source voxels) per source axis that anti-aliases a downsampling.

    One target voxel spans ``f = Σ_j |matrix[i, j]|`` source voxels along source axis ``i``
    (exact for axis permutations and scalings); the SD is ``(f − 1) / 2`` where ``f > 1`` and 0
    otherwise, the rule of :func:`skimage.transform.resize`.

    Args:
        matrix: 4×4 target-voxel-to-source-voxel matrix.

    Returns:
        Three SDs in source voxels.

    Examples:
        >>> antialias_sigma(np.diag([3.0, 1.0, 0.5, 1.0])).tolist()
        [1.0, 0.0, 0.0]
    """
    footprint = np.abs(np.asarray(matrix, float)[:3, :3]).sum(axis=1)
    return np.maximum(0.0, (footprint - 1.0) / 2.0)


def _linear(stack: np.ndarray, matrix: np.ndarray, target_shape: Sequence[int]) -> np.ndarray:
    """Trilinear resampling of ``(C, X, Y, Z)`` by a target-to-source voxel ``matrix``.

    :func:`torch.nn.functional.grid_sample` works in coordinates normalised to [-1, 1] over
    each grid (``align_corners``: -1 and 1 are the centres of the edge voxels), so the voxel
    matrix is conjugated by the two normalisations. Sampling beyond the source repeats its edge
    (``border``), as ``scipy.ndimage.affine_transform(mode="nearest")`` does.
    """
    source = np.asarray(stack.shape[1:], float)
    target = np.asarray(target_shape[:3], float)
    from_target = np.eye(4)  # normalised target -> target voxel
    from_target[:3, :3] = np.diag((target - 1) / 2)
    from_target[:3, 3] = (target - 1) / 2
    to_source = np.eye(4)  # source voxel -> normalised source
    to_source[:3, :3] = np.diag(2 / (source - 1))
    to_source[:3, 3] = -1
    theta = torch.as_tensor((to_source @ matrix @ from_target)[None, :3], dtype=torch.float32)
    # grid_sample reads (N, C, D, H, W) with grid coordinates ordered (W, H, D): hand it the
    # volume as (C, Z, Y, X) so that the coordinates are in (X, Y, Z) order.
    volume = torch.from_numpy(np.ascontiguousarray(stack, np.float32)).permute(0, 3, 2, 1)[None]
    size = (1, stack.shape[0], *(int(n) for n in target_shape[2::-1]))
    grid = F.affine_grid(theta, list(size), align_corners=True)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].permute(0, 3, 2, 1).numpy()


def map_to_grid(
    array: np.ndarray,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: Sequence[int],
    order: int,
    *,
    antialias: bool = False,
) -> np.ndarray:
    """Resample a volume (or a stack of volumes on a leading axis) onto another grid.

    Linear interpolation reads the source at each target voxel's centre only; onto a coarser
    grid that keeps a fraction of the source voxels (one in 27 from 1.3 mm to 4 mm) and their
    full noise. With ``antialias`` the source is first smoothed along each axis it is
    downsampled on (:func:`antialias_sigma`), so a target voxel is close to the average of
    the source voxels it covers, as a scanner reconstructing at that voxel size would give.

    Args:
        array: ``(X, Y, Z)`` or ``(C, X, Y, Z)`` on the source grid.
        source_affine: Voxel-to-world affine of the source grid.
        target_affine: Voxel-to-world affine of the target grid.
        target_shape: Spatial shape of the target grid.
        order: Interpolation order: 0 (nearest, for labels) or 1 (linear).
        antialias: Smooth before downsampling (images only; ignored for ``order`` 0).

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
    sigma = antialias_sigma(matrix) if antialias and order == 1 else np.zeros(3)
    if sigma.any():
        stack = np.stack(
            [ndimage.gaussian_filter(v.astype(np.float32), sigma, mode="nearest") for v in stack]
        )
    exact = _exact_indices(matrix, stack.shape[1:], target_shape)
    if exact is not None:
        out = stack[(slice(None), *exact)]
    elif order == 1 and min(stack.shape[1:]) > 1:
        out = _linear(stack, matrix, target_shape)
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
