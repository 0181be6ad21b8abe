"""Mean, SD and maximum of many regions of a 3-D or 4-D image in one vectorised pass.

The voxels of every region are gathered from the image at once (one fancy-index read of all
frames), and the per-region sums are segment reductions (:func:`numpy.add.reduceat`) over the
stacked rows. Regions may overlap (the hot tumour voxels are a subset of the tumour): a voxel
in two regions is simply gathered twice. The SD is the population SD (ddof = 0) computed in
two passes (mean first, then squared deviations), which stays exact for flat regions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fdopa.kinetics.regions import Coords

__all__ = ["RegionStats", "region_stats"]


@dataclass(frozen=True, eq=False)
class RegionStats:
    """Statistics of named regions, one row per region and one column per frame.

    Attributes:
        names: Region names, in row order.
        count: Number of voxels of each region.
        mean: Mean per region and frame (NaN for an empty region).
        sd: Population SD per region and frame (NaN for an empty region).
        max: Maximum per region and frame (NaN for an empty region).
    """

    names: tuple[str, ...]
    count: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    max: np.ndarray

    def row(self, name: str, stat: str) -> np.ndarray | None:
        """One statistic (``mean``, ``sd`` or ``max``) of one region, None when it is empty."""
        index = self.names.index(name)
        return None if self.count[index] == 0 else getattr(self, stat)[index]


def region_stats(image: np.ndarray, regions: Mapping[str, Coords]) -> RegionStats:
    """Per-region mean, SD and maximum of every frame of an image.

    Args:
        image: 3-D image (one frame) or 4-D image with frames on the last axis; any memory
            layout and dtype (values are promoted to float64 after the gather).
        regions: Region name → voxel coordinates.

    Returns:
        The :class:`RegionStats` (arrays of shape ``(n_regions, n_frames)``).
    """
    names = tuple(regions)
    count = np.array([regions[name][0].size for name in names], dtype=np.int64)
    n_frames = 1 if image.ndim == 3 else image.shape[3]
    mean, sd, peak = (np.full((len(names), n_frames), np.nan) for _ in range(3))
    filled = count > 0
    if filled.any():
        chosen = [regions[name] for name, keep in zip(names, filled, strict=True) if keep]
        i, j, k = (np.concatenate([c[axis] for c in chosen]) for axis in range(3))
        values = np.asarray(image[i, j, k], dtype=float).reshape(i.size, n_frames)
        sizes = count[filled]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        means = np.add.reduceat(values, starts, axis=0) / sizes[:, None]
        centred = values - np.repeat(means, sizes, axis=0)
        mean[filled] = means
        sd[filled] = np.sqrt(np.add.reduceat(centred * centred, starts, axis=0) / sizes[:, None])
        peak[filled] = np.maximum.reduceat(values, starts, axis=0)
    return RegionStats(names, count, mean, sd, peak)
