"""Preprocessing and PET-specific augmentation built on TorchIO.

Preprocessing is deterministic and shared by training, validation and inference: canonical
(RAS+) orientation, then the configured intensity normalisation of the PET channel and a z-score
of the FLAIR channel. Augmentation pipelines are TorchIO transforms instantiated from
``conf/augment/*.yaml``; this module adds the PET-specific ones TorchIO lacks: a global
intensity scaling, a change of one region's uptake, and the blanking of whole channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torchio as tio
from scipy import ndimage
from torchio.transforms.augmentation import RandomTransform
from torchio.transforms.intensity_transform import IntensityTransform
from torchio.transforms.preprocessing.intensity import NormalizationTransform

from fdopa.data.model_view import ToModelGrid
from fdopa.data.scaling import DEFAULT_SUV_SCALE, NORMALISATIONS
from fdopa.labels import BRAIN
from fdopa.layout import CHANNELS
from fdopa.physics import FWHM_TO_SIGMA

#: Gain of the ``brain_ratio`` normalisation: the brain's uptake spreads by about a third of
#: its level (SD over mean 0.32–0.37, interquartile range over 96 synthetic children), so the
#: ratio less 1, times 3, spans what a z-score does.
BRAIN_RATIO_GAIN = 3.0


def foreground(tensor: torch.Tensor) -> torch.Tensor:
    """Foreground mask of an image: the voxels above the image mean (head/brain, not air).

    Args:
        tensor: Image data of shape (C, X, Y, Z).

    Returns:
        Boolean mask of the same shape.
    """
    return tensor > tensor.float().mean()


class BrainRatio(NormalizationTransform):
    """The PET as its ratio to the brain's median uptake: ``(x / median − 1) · gain``.

    The median over the :func:`foreground` is the healthy brain's level: a hot tumour or the
    striatum, a few per cent of the brain's voxels, hardly move it, where they widen the
    standard deviation of a z-score (a 37 mL high-grade tumour nearly doubled it, halving the
    striatum's contrast in z units). Uptake ratios, what a reader judges, are kept: healthy
    brain 0, a striatum at twice the brain's uptake ``gain``. Like the z-score it is blind to
    the PET's scale.

    Args:
        gain: Factor after the ratio less 1 (default :data:`BRAIN_RATIO_GAIN`).
        masking_method: Voxels whose median is the reference (default :func:`foreground`).
        **kwargs: See :class:`torchio.transforms.Transform` (``include``, ...).

    Examples:
        >>> import torch, torchio as tio
        >>> pet = torch.zeros(1, 4, 4, 4)
        >>> pet[:, 1:3, 1:3, 1:3] = torch.tensor([2.0, 2, 2, 2, 2, 2, 4, 8]).reshape(1, 2, 2, 2)
        >>> out = BrainRatio()(tio.ScalarImage(tensor=pet)).data
        >>> [float(v) for v in out[0, 2, 2, 1:3]], float(out[0, 1, 1, 1]), float(out[0, 0, 0, 0])
        ([3.0, 9.0], 0.0, -3.0)
    """

    def __init__(
        self,
        gain: float = BRAIN_RATIO_GAIN,
        masking_method: Callable[[torch.Tensor], torch.Tensor] = foreground,
        **kwargs,
    ) -> None:
        super().__init__(masking_method=masking_method, **kwargs)
        if not gain > 0:
            raise ValueError(f"gain: must be positive, got {gain}")
        self.gain = float(gain)
        self.args_names = ["gain", "masking_method"]

    def apply_normalization(
        self, subject: tio.Subject, image_name: str, mask: torch.Tensor
    ) -> None:
        """Divide ``image_name`` by the median of its ``mask`` voxels, subtract 1, scale."""
        image = subject.get_scalar_image(image_name)
        data = image.data.float()
        median = float(np.median(data[mask].numpy())) if bool(mask.any()) else 0.0
        if not median > 0:
            raise RuntimeError(f"brain_ratio: no uptake in the foreground of {image_name!r} "
                               f"({image.path}); its median is {median:g}")  # fmt: skip
        image.set_data((data / median - 1.0) * self.gain)


class IntensityScale(IntensityTransform):
    """Multiply intensity images by a fixed factor (label maps are left untouched).

    Args:
        factor: Multiplicative factor (> 0).
        **kwargs: See :class:`torchio.transforms.Transform` (``include``, ``exclude``, ...).

    Raises:
        ValueError: If ``factor`` is not positive.

    Examples:
        >>> import torch, torchio as tio
        >>> image = tio.ScalarImage(tensor=torch.ones(1, 2, 2, 2))
        >>> float(IntensityScale(0.5)(image).data.max())
        0.5
    """

    def __init__(self, factor: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if not factor > 0:
            raise ValueError(f"factor: must be positive, got {factor}")
        self.factor = float(factor)
        self.args_names = ["factor"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Scale every included intensity image in place (on the transform's copy)."""
        for image in self.get_images(subject):
            image.set_data(image.data.float() * self.factor)
        return subject


class RandomIntensityScale(RandomTransform, IntensityTransform):
    """Scale PET intensities by one global factor drawn log-uniformly.

    Mimics between-scanner and between-protocol calibration differences (dose, uptake time,
    reconstruction): the factor is ``exp(U(log a, log b))``, so ``(0.8, 1.25)`` scales up and
    down equally often. One factor is drawn per call and applied to every included intensity
    image; label maps are never touched. The applied :class:`IntensityScale` (with its factor)
    is recorded in the subject's history, and seeding ``torch`` reproduces it.

    Args:
        scale_range: Range ``(a, b)`` of the factor, ``0 < a <= b``; a single number ``d``
            means ``(1 / d, d)``.
        **kwargs: See :class:`torchio.transforms.Transform`; use ``include=["pet"]`` to
            restrict it to the PET channel.

    Raises:
        ValueError: If the range is not positive and ordered.

    Examples:
        >>> import torch, torchio as tio
        >>> _ = torch.manual_seed(0)
        >>> subject = tio.Subject(pet=tio.ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
        >>> out = RandomIntensityScale((0.8, 1.25), include=["pet"])(subject)
        >>> factor = out.get_applied_transforms()[-1].factor
        >>> bool(torch.allclose(out["pet"].data, torch.full((1, 2, 2, 2), factor)))
        True
    """

    def __init__(self, scale_range: float | Sequence[float] = (0.8, 1.25), **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(scale_range, int | float):
            scale_range = (1.0 / scale_range, scale_range)
        low, high = (float(v) for v in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range: need 0 < a <= b, got {tuple(scale_range)}")
        self.scale_range = (low, high)

    def get_params(self) -> float:
        """Draw the factor, log-uniform in :attr:`scale_range` (torch RNG)."""
        low, high = self.scale_range
        return math.exp(self.sample_uniform(math.log(low), math.log(high)))

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Apply :class:`IntensityScale` with a freshly drawn factor."""
        transform = IntensityScale(self.get_params(), **self._get_base_args())
        return transform(subject)


class RandomRegionalUptake(RandomTransform, IntensityTransform):
    """Change the uptake of labelled regions (striatum, tumour) by a random factor each.

    FDOPA uptake varies widely between patients — in the striatum with age and medication, in
    the tumour with grade — while the anatomy does not. A network trained on a few dozen
    children can learn to draw a hot region larger the hotter it is; this augmentation is meant
    to break that shortcut (on the default recipe it did not: experiments/README.md).

    For each region (a label value of ``label``), a factor ``f`` is drawn log-uniformly and the
    region's mean excess over healthy brain (its mean minus the median of label
    :data:`~fdopa.labels.BRAIN`), times ``f - 1``, is added with the region's mask blurred by a
    Gaussian of ``fwhm_mm`` (the scanner's resolution): deep inside, the excess becomes ``f``
    times larger; at the edge the change fades as a blurred image's does; the noise is left as
    it was. The label map is never touched.

    Args:
        factors: Label value → range ``(a, b)`` of its factor, ``0 < a <= b``.
        fwhm_mm: Resolution (mm) with which the change spreads beyond the region's mask.
        label: Name of the label map image in the subject.
        **kwargs: See :class:`torchio.transforms.Transform`; use ``include=["pet"]``.

    Raises:
        ValueError: If a range is not positive and ordered, or ``fwhm_mm`` is negative.

    Examples:
        >>> import torch, torchio as tio
        >>> labels = torch.zeros(1, 9, 9, 9, dtype=torch.uint8); labels[0, 1:8, 1:8, 1:8] = 1
        >>> labels[0, 3:6, 3:6, 3:6] = 2
        >>> subject = tio.Subject(pet=tio.ScalarImage(tensor=1.0 + labels.float()),
        ...                       label=tio.LabelMap(tensor=labels))
        >>> out = RandomRegionalUptake({2: (2.0, 2.0)}, fwhm_mm=0.0, include=["pet"])(subject)
        >>> float(out["pet"].data[0, 4, 4, 4])  # excess 1 over brain doubled
        4.0
    """

    def __init__(
        self,
        factors: Mapping[int, Sequence[float]],
        fwhm_mm: float = 6.0,
        label: str = "label",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.factors: dict[int, tuple[float, float]] = {}
        for value, bounds in dict(factors).items():
            low, high = (float(v) for v in bounds)
            if not 0 < low <= high:
                raise ValueError(f"factors: need 0 < a <= b for label {value}, got {bounds}")
            self.factors[int(value)] = (low, high)
        if fwhm_mm < 0:
            raise ValueError(f"fwhm_mm: must be >= 0, got {fwhm_mm}")
        self.fwhm_mm = float(fwhm_mm)
        self.label = label

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Add each region's scaled excess to every included image (torch RNG)."""
        labels = subject[self.label].data[0].numpy()
        brain = labels == BRAIN
        sigma = self.fwhm_mm * FWHM_TO_SIGMA / np.asarray(subject[self.label].spacing)
        draws = {
            value: math.exp(self.sample_uniform(math.log(low), math.log(high)))
            for value, (low, high) in self.factors.items()
        }
        # Each present region's mask and blurred spread, once for all included images.
        regions = []
        for value, factor in draws.items():
            region = labels == value
            if region.any() and brain.any():
                spread = ndimage.gaussian_filter(region.astype(np.float32), sigma, mode="nearest")
                regions.append((factor, torch.from_numpy(region), spread))
        inside_brain = torch.from_numpy(brain)
        for image in self.get_images(subject):
            data = image.data.float()
            change = np.zeros(labels.shape, np.float32)
            for factor, region, spread in regions:
                excess = float(data[0][region].mean()) - float(data[0][inside_brain].median())
                change += (factor - 1.0) * excess * spread
            image.set_data(data + torch.from_numpy(change))
        return subject


class RandomChannelDropout(RandomTransform):
    """Blank whole input channels at random, so one model also works without them.

    Each named channel is replaced, with its own probability, by zeros — after
    :func:`build_preprocessing` that is its mean (the FLAIR z-score) and exactly what
    :class:`~fdopa.export.Predictor` feeds when the channel is not given. At most all but one of
    the subject's channels are blanked (the PET is never named in practice).

    Args:
        probabilities: Channel name → probability of blanking it (0 ≤ p ≤ 1).
        **kwargs: See :class:`torchio.transforms.Transform`.

    Raises:
        ValueError: If a probability lies outside [0, 1].

    Examples:
        >>> import torch, torchio as tio
        >>> subject = tio.Subject(flair=tio.ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
        >>> float(RandomChannelDropout({"flair": 1.0})(subject)["flair"].data.sum())
        0.0
    """

    def __init__(self, probabilities: dict[str, float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.probabilities = {str(k): float(v) for k, v in dict(probabilities).items()}
        bad = {k: v for k, v in self.probabilities.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"data.channel_dropout: probabilities must lie in [0, 1], got {bad}")

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Zero each named image present in ``subject`` with its probability (torch RNG)."""
        for name, probability in self.probabilities.items():
            if name in subject and float(torch.rand(1)) < probability:
                image = subject[name]
                image.set_data(torch.zeros_like(image.data, dtype=torch.float32))
        return subject


def pet_normalisation(name: str, *, suv_scale: float = DEFAULT_SUV_SCALE) -> tio.Transform | None:
    """The PET intensity normalisation called ``name`` (applied to the ``pet`` image only).

    Args:
        name: ``suv`` (divide the SUV image by ``suv_scale``), ``zscore`` (zero mean, unit
            sample standard deviation over the :func:`foreground`), ``brain_ratio``
            (:class:`BrainRatio`) or ``none``.
        suv_scale: SUV value mapped to 1 by ``suv``.

    Returns:
        The transform, or ``None`` for ``none``.

    Raises:
        ValueError: If ``name`` is unknown or ``suv_scale`` is not positive.
    """
    if name == "suv":
        if not suv_scale > 0:
            raise ValueError(f"suv_scale: must be positive, got {suv_scale}")
        return IntensityScale(1.0 / suv_scale, include=["pet"])
    if name == "zscore":
        return tio.ZNormalization(masking_method=foreground, include=["pet"])
    if name == "brain_ratio":
        return BrainRatio(include=["pet"])
    if name == "none":
        return None
    raise ValueError(f"normalisation: unknown {name!r}; choose one of {NORMALISATIONS}")


def build_preprocessing(
    channels: Sequence[str] = ("pet",),
    normalisation: str = "suv",
    *,
    suv_scale: float = DEFAULT_SUV_SCALE,
    spacing_mm: Sequence[float] | None = None,
) -> tio.Compose:
    """Deterministic preprocessing: canonical orientation, then intensity normalisation.

    With ``spacing_mm`` every image is first cut to the head and mapped to the model grid of
    that voxel size (:class:`fdopa.data.model_view.ToModelGrid`, located on ``pet``, the
    mapping of prediction). Every image (channels, label map, any extra copy) is reoriented
    to RAS+; the PET channel gets :func:`pet_normalisation`, the FLAIR channel a z-score over
    its foreground. Images not named ``pet`` or ``flair`` (for instance an unnormalised PET
    copy) keep their intensities.

    Args:
        channels: Input channels, a subset of :data:`CHANNELS`.
        normalisation: PET normalisation name, one of :data:`NORMALISATIONS`.
        suv_scale: SUV scale of the ``suv`` normalisation.
        spacing_mm: Model-grid voxel size (mm), or ``None`` to keep the stored grids.

    Returns:
        The composed transform.

    Raises:
        ValueError: On an unknown channel or normalisation.
    """
    check_channels(channels)
    steps: list[tio.Transform] = [tio.ToCanonical()]
    if spacing_mm is not None:
        steps.insert(0, ToModelGrid(spacing_mm))
    pet = pet_normalisation(normalisation, suv_scale=suv_scale)
    if "pet" in channels and pet is not None:
        steps.append(pet)
    if "flair" in channels:
        steps.append(tio.ZNormalization(masking_method=foreground, include=["flair"]))
    return tio.Compose(steps)


def check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    """Validate input channel names.

    Args:
        channels: Requested channels.

    Returns:
        The channels as a tuple.

    Raises:
        ValueError: If empty, duplicated, or not in :data:`CHANNELS`.
    """
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if not channels or unknown or len(set(channels)) != len(channels):
        raise ValueError(f"channels: need distinct names from {CHANNELS}, got {list(channels)}")
    return channels
