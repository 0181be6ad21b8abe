"""Registration with SimpleITK: arrays ↔ ITK images, rigid FLAIR → PET by mutual information.

ITK works in DICOM patient coordinates (LPS); NIfTI affines are RAS. :func:`to_sitk` and
:func:`from_sitk` convert both the voxel order (ITK arrays are ``[z, y, x]``) and the
coordinates, so that a point keeps its world position. A transform returned here maps points
of the *fixed* image's world (the PET) to the *moving* image's world (the FLAIR), as ITK's
resampling needs; :func:`ras_matrix` gives it as a 4×4 RAS matrix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from nibabel.affines import voxel_sizes

from fdopa.hospital.dicom import LPS_TO_RAS

__all__ = [
    "RigidResult",
    "from_sitk",
    "mi_method",
    "normalised_intensity",
    "ras_matrix",
    "register_rigid",
    "resample",
    "to_sitk",
]


REGISTRATION_THREADS = 1
"""Threads of every registration: fixed, so that results do not depend on the machine."""


def to_sitk(array: np.ndarray, affine: np.ndarray, pixel: int = sitk.sitkFloat32) -> sitk.Image:
    """A 3-D (or 4-D, components last) array on a RAS grid as an ITK image at the same place."""
    lps = LPS_TO_RAS @ np.asarray(affine, float)
    spacing = voxel_sizes(lps)
    vector = array.ndim == 4
    axes = (2, 1, 0, 3) if vector else (2, 1, 0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, axes)), isVector=vector)
    image = sitk.Cast(image, sitk.sitkVectorFloat32 if vector else pixel)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    return image


def from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxels of an ITK image in NIfTI order ``(x, y, z[, component])``."""
    array = sitk.GetArrayFromImage(image)
    return np.transpose(array, (2, 1, 0, 3) if array.ndim == 4 else (2, 1, 0))


def ras_matrix(transform: sitk.Transform) -> np.ndarray:
    """A linear ITK transform (Euler, similarity, affine) as a 4×4 RAS → RAS matrix."""
    linear = sitk.AffineTransform(3)
    linear.SetMatrix(transform.GetMatrix())
    linear.SetTranslation(transform.GetTranslation())
    linear.SetCenter(transform.GetCenter())
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(linear.GetMatrix()).reshape(3, 3)
    centre = np.asarray(linear.GetCenter())
    matrix[:3, 3] = np.asarray(linear.GetTranslation()) + centre - matrix[:3, :3] @ centre
    return LPS_TO_RAS @ matrix @ LPS_TO_RAS


def resample(
    moving: np.ndarray,
    moving_affine: np.ndarray,
    transform: sitk.Transform,
    shape: tuple[int, ...],
    affine: np.ndarray,
    *,
    nearest: bool = False,
) -> np.ndarray:
    """Resample ``moving`` onto the grid ``(shape, affine)`` through ``transform``.

    Args:
        moving: 3-D array (or 4-D, components last) on ``moving_affine``.
        moving_affine: Its RAS affine.
        transform: Maps the target grid's world points to the moving image's world.
        shape: Target spatial shape.
        affine: Target RAS affine.
        nearest: Nearest-neighbour (labels) instead of linear interpolation.

    Returns:
        float32 array on the target grid (0 outside the moving image).
    """
    reference = to_sitk(np.zeros(tuple(shape[:3]), np.float32), affine)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    image = to_sitk(moving.astype(np.float32, copy=False), moving_affine)
    out = sitk.Resample(image, reference, transform, interpolator, 0.0)
    return from_sitk(out).astype(np.float32, copy=False)


@dataclass(frozen=True)
class RigidResult:
    """A rigid registration.

    Attributes:
        transform: ITK Euler transform, fixed (PET) world → moving (FLAIR) world, LPS.
        metric: Final Mattes mutual information (negative: lower is better).
        seconds: Wall time.
    """

    transform: sitk.Euler3DTransform
    metric: float
    seconds: float

    @property
    def matrix(self) -> np.ndarray:
        """The transform as a 4×4 RAS matrix."""
        return ras_matrix(self.transform)


def mi_method(
    shrink: list[int],
    smooth_mm: list[float],
    fraction: float,
    seed: int,
    mask: sitk.Image | None = None,
) -> sitk.ImageRegistrationMethod:
    """A Mattes mutual-information registration (32 bins, linear interpolation), multi-level.

    It runs on :data:`REGISTRATION_THREADS` threads whatever the machine, for reproducibility.

    Args:
        shrink: Shrink factor per level.
        smooth_mm: Gaussian smoothing σ (mm) per level.
        fraction: Share of the fixed voxels drawn (randomly, seeded) for the metric.
        seed: Seed of that draw (>= 0; every seed, 0 included, gives the same draw each run).
        mask: Fixed-image mask of the voxels the metric may use.

    Returns:
        The method, without optimizer and initial transform.

    Raises:
        ValueError: If ``seed`` is negative.
    """
    if seed < 0:
        raise ValueError(f"registration seed: must be >= 0, got {seed}")
    method = sitk.ImageRegistrationMethod()
    # ITK splits the metric's sample over its threads, so the result depends on their number:
    # a fixed count gives the same transform (and labels) on every machine.
    method.SetNumberOfThreads(REGISTRATION_THREADS)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    # ITK reads the seed 0 as "seed from the wall clock" (sitk.sitkWallClock), which made the
    # draw, the transform and the labels change from run to run: hence the offset.
    method.SetMetricSamplingPercentage(fraction, seed + 1)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(smooth_mm)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def regular_steps(
    method: sitk.ImageRegistrationMethod,
    *,
    learning_rate: float,
    min_step: float,
    iterations: int,
    relaxation: float,
) -> None:
    """Give ``method`` a regular-step gradient descent scaled by the physical shift.

    Args:
        method: A method from :func:`mi_method`.
        learning_rate: First step length (mm of the largest voxel shift).
        min_step: Step length at which it stops.
        iterations: Most iterations per level.
        relaxation: Factor by which the step shrinks when the gradient turns back.
    """
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=learning_rate,
        minStep=min_step,
        numberOfIterations=iterations,
        relaxationFactor=relaxation,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()


def normalised_intensity(array: np.ndarray) -> np.ndarray:
    """Intensities scaled to their 99.5th percentile (robust to hot spots), clipped at 0."""
    array = np.nan_to_num(np.asarray(array, np.float32))
    top = float(np.percentile(array[array > 0], 99.5)) if (array > 0).any() else 1.0
    return np.clip(array / (top or 1.0), 0.0, None)


def register_rigid(
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    moving: np.ndarray,
    moving_affine: np.ndarray,
    *,
    seed: int = 0,
) -> RigidResult:
    """Rigid (6 degrees of freedom) registration of ``moving`` to ``fixed`` by mutual information.

    Mattes mutual information (32 bins, 20 % of the voxels drawn with a fixed seed), three
    levels (shrink 4, 2, 1; smoothing 2, 1, 0 mm), regular-step gradient descent with scales
    from the physical shift, started from the alignment of the intensity centres of mass.

    Args:
        fixed: The PET (3-D).
        fixed_affine: Its RAS affine.
        moving: The FLAIR (3-D, any grid and orientation).
        moving_affine: Its RAS affine.
        seed: Seed of the metric's voxel sample.

    Returns:
        The :class:`RigidResult`.
    """
    begin = time.perf_counter()
    fixed_image = to_sitk(normalised_intensity(fixed), fixed_affine)
    moving_image = to_sitk(normalised_intensity(moving), moving_affine)
    initial = sitk.CenteredTransformInitializer(
        fixed_image,
        moving_image,
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    method = mi_method([4, 2, 1], [2.0, 1.0, 0.0], 0.2, seed)
    regular_steps(method, learning_rate=2.0, min_step=1e-3, iterations=300, relaxation=0.6)
    method.SetInitialTransform(initial, inPlace=False)
    result = method.Execute(fixed_image, moving_image)
    if isinstance(result, sitk.CompositeTransform):
        result = result.GetNthTransform(0)
    euler = sitk.Euler3DTransform(result)
    return RigidResult(euler, float(method.GetMetricValue()), time.perf_counter() - begin)
