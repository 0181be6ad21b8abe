"""Subject geometry: the 1 mm build grid, output grids, and the random template-to-subject warp.

A subject is built on a fixed 1 mm field of view in RAS world coordinates. Each subject voxel is
mapped back into the template by the inverse of a random rigid motion, an age-dependent scaling
and a smooth elastic displacement; template maps are then sampled there (``pull`` warping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from fdopa.data.synthetic.imaging import psf_blur
from fdopa.kinetics.regions import bounding_box

#: Build field of view: shape of the 1 mm grid and world coordinate (mm) of voxel (0, 0, 0).
BUILD_SHAPE: tuple[int, int, int] = (176, 208, 176)
BUILD_ORIGIN: tuple[float, float, float] = (-88.0, -121.0, -83.0)
#: Centre of rotation and scaling (mm): the template brain's bounding-box centre.
BRAIN_CENTRE: np.ndarray = np.array([0.0, -17.0, 5.0])
#: Output grids: name → voxel size (mm); the build grid is block-averaged by that factor.
GRIDS: dict[str, int] = {"standard": 2, "tiny": 4}

# Paediatric brain-size factors: age bands and the linear scale range in each.
_AGE_SCALE_BANDS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 5.999, 0.83, 0.90),
    (6.0, 12.999, 0.88, 0.96),
    (13.0, 17.999, 0.95, 1.00),
)


def build_affine() -> np.ndarray:
    """Voxel-to-world affine of the 1 mm build grid."""
    affine = np.eye(4)
    affine[:3, 3] = BUILD_ORIGIN
    return affine


def output_affine(factor: int) -> np.ndarray:
    """Affine of the output grid made by block-averaging the build grid by ``factor``."""
    affine = np.diag([float(factor)] * 3 + [1.0])
    affine[:3, 3] = np.asarray(BUILD_ORIGIN) + (factor - 1) / 2
    return affine


@dataclass(frozen=True)
class BoxGrid:
    """The brain-box output grid: the build grid block-averaged by ``factor``.

    Attributes:
        factor: Voxel size (mm) of the output grid.
    """

    factor: int

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-world affine."""
        return output_affine(self.factor)

    @property
    def voxel_mm(self) -> np.ndarray:
        """Voxel size (mm) along each axis."""
        return np.full(3, float(self.factor))

    def resample(self, volume: np.ndarray, fwhm_mm: float = 0.0) -> np.ndarray:
        """A 1 mm build-grid map blurred by a Gaussian PSF of ``fwhm_mm`` (0: none), averaged."""
        return block_mean(psf_blur(volume, fwhm_mm) if fwhm_mm else volume, self.factor)


def grid_factor(grid: str) -> int:
    """Voxel size (mm) of a named output grid.

    Raises:
        ValueError: If ``grid`` is not one of :data:`GRIDS`.
    """
    if grid not in GRIDS:
        raise ValueError(f"grid: unknown output grid {grid!r}; choose one of {sorted(GRIDS)}")
    return GRIDS[grid]


def block_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor``³ blocks of the leading three axes (area resampling)."""
    if factor == 1:
        return volume
    x, y, z = (n // factor for n in volume.shape[:3])
    trimmed = volume[: x * factor, : y * factor, : z * factor]
    blocks = trimmed.reshape(x, factor, y, factor, z, factor, *volume.shape[3:])
    return blocks.mean(axis=(1, 3, 5))


def age_scale(age: float, rng: np.random.Generator) -> float:
    """Linear brain-size factor of a child relative to the adult template.

    Args:
        age: Age in years; 18 and over gives an adult factor near 1.
        rng: Random generator.

    Returns:
        The factor, drawn uniformly inside the band of the age, rising with age within the band.
    """
    for low_age, high_age, low, high in _AGE_SCALE_BANDS:
        if low_age <= age <= high_age:
            centre = np.interp(age, [low_age, high_age], [low, high])
            return float(np.clip(centre + rng.uniform(-0.02, 0.02), low, high))
    return float(rng.uniform(0.96, 1.03))


@dataclass(frozen=True)
class Warp:
    """A random subject warp: rigid motion, (anisotropic) scaling and elastic displacement.

    Attributes:
        rotation_deg: Rotation angles about x, y, z (degrees).
        translation_mm: Translation (mm).
        scale: Per-axis linear scale of the subject relative to the template.
        elastic_mm: Standard deviation of the elastic displacement (mm).
        seed: Seed of the elastic displacement field.
    """

    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    scale: tuple[float, float, float]
    elastic_mm: float
    seed: int

    @classmethod
    def random(cls, rng: np.random.Generator, size_factor: float) -> Warp:
        """Draw a warp: ±8° rotations, ±4 mm shifts, ±3 % anisotropy, 1–2 mm elastic."""
        return cls(
            rotation_deg=tuple(rng.uniform(-8, 8, 3).round(3)),
            translation_mm=tuple(rng.uniform(-4, 4, 3).round(3)),
            scale=tuple((size_factor * rng.uniform(0.97, 1.03, 3)).round(4)),
            elastic_mm=float(rng.uniform(1.0, 2.0)),
            seed=int(rng.integers(2**31)),
        )

    def inverse_affine(self) -> np.ndarray:
        """The warp's affine part, inverted: subject world → template world (mm), 4×4.

        ``q = R⁻¹(p − c − t)/s + c`` with ``c`` the brain centre; the elastic displacement
        (1–2 mm) is left out.
        """
        rotation = Rotation.from_euler("xyz", self.rotation_deg, degrees=True).as_matrix()
        to_template = np.diag(1.0 / np.asarray(self.scale)) @ rotation.T
        inverse = np.eye(4)
        inverse[:3, :3] = to_template
        inverse[:3, 3] = BRAIN_CENTRE - to_template @ (
            BRAIN_CENTRE + np.asarray(self.translation_mm)
        )
        return inverse

    def template_coordinates(self, template_affine: np.ndarray) -> np.ndarray:
        """Template voxel coordinates of every build-grid voxel, shape ``(3, *BUILD_SHAPE)``."""
        # world → template world (:meth:`inverse_affine`); then template world → voxel.
        inverse = self.inverse_affine()
        to_voxel = np.linalg.inv(template_affine)
        linear = to_voxel[:3, :3] @ inverse[:3, :3]
        offset = to_voxel[:3, :3] @ inverse[:3, 3] + to_voxel[:3, 3]
        axes = [
            np.arange(n, dtype=np.float32) + o
            for n, o in zip(BUILD_SHAPE, BUILD_ORIGIN, strict=True)
        ]
        displacement = self._displacement()  # mm in template world space
        coords = np.empty((3, *BUILD_SHAPE), np.float32)
        for i in range(3):
            coords[i] = (
                offset[i]
                + linear[i, 0] * axes[0][:, None, None]
                + linear[i, 1] * axes[1][None, :, None]
                + linear[i, 2] * axes[2][None, None, :]
            )
            for j in range(3):
                if to_voxel[i, j] != 0:
                    coords[i] += np.float32(to_voxel[i, j]) * displacement[j]
        return coords

    def _displacement(self) -> np.ndarray:
        """Smooth elastic displacement (mm): random control points every 16 mm.

        Control points are smoothed and zoomed with cubic splines to a 4 mm grid, then linearly
        to 1 mm (a cubic zoom straight to 1 mm costs seconds and is no smoother to the eye).
        """
        rng = np.random.default_rng(self.seed)
        coarse_shape = tuple(n // 16 + 2 for n in BUILD_SHAPE)
        mid_shape = tuple(n // 4 for n in BUILD_SHAPE)
        field = np.empty((3, *BUILD_SHAPE), np.float32)
        for axis in range(3):
            coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 0.7)
            coarse *= self.elastic_mm / max(coarse.std(), 1e-9)
            mid = ndimage.zoom(
                coarse, [m / c for m, c in zip(mid_shape, coarse_shape, strict=True)], order=3
            )
            fine = ndimage.zoom(
                mid.astype(np.float32),
                [n / m for n, m in zip(BUILD_SHAPE, mid_shape, strict=True)],
                order=1,
            )
            field[axis] = fine[tuple(slice(0, n) for n in BUILD_SHAPE)]
        return field


def pull(volume: np.ndarray, coordinates: np.ndarray, *, order: int = 1) -> np.ndarray:
    """Sample a template-space map at the given template voxel coordinates (zero outside).

    Linear (or nearest) interpolation reads only the voxels next to a point, so a point more
    than one voxel outside the box holding the map's non-zero voxels samples zero: only the
    points inside that box are interpolated, which is exact and several times faster for
    maps confined to a small region (a lesion, the striatum).

    Args:
        volume: The map on the template grid.
        coordinates: Template voxel coordinates, shape ``(3, *out_shape)``.
        order: Spline order, 0 or 1.

    Returns:
        The sampled map, float32, shape ``out_shape``.
    """
    volume = volume.astype(np.float32, copy=False)
    out = np.zeros(coordinates.shape[1:], np.float32)
    box = bounding_box(volume != 0)
    if box is None:
        return out
    inside = np.ones(out.shape, bool)
    for axis, span in enumerate(box):  # within one voxel of the first and the last non-zero
        inside &= coordinates[axis] > span.start - 1
        inside &= coordinates[axis] < span.stop
    out[inside] = ndimage.map_coordinates(
        volume, coordinates[:, inside], order=order, mode="constant", cval=0.0
    )
    return out
