"""What a bundle's ``config.json`` holds: the network, the preprocessing and the inference.

:class:`BundleConfig` is validated on construction and round-trips through
:meth:`~BundleConfig.to_dict` / :meth:`~BundleConfig.from_dict`. Only the network builders in
:data:`BUILDERS` can be named: a bundle never makes the reader import an arbitrary callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from fdopa.data.scaling import DEFAULT_SUV_SCALE, NORMALISATIONS
from fdopa.data.transforms import check_channels
from fdopa.labels import LABEL_NAMES
from fdopa.models.inference import OVERLAP_MODES
from fdopa.models.postprocess import PostProcess

__all__ = ["BUILDERS", "FORMAT_VERSION", "BundleConfig", "BundleError"]

FORMAT_VERSION = 1
"""Version of the bundle layout written by this fdopa."""


def _build_unet(**kwargs: Any) -> nn.Module:
    from fdopa.models.network import build_unet

    return build_unet(**kwargs)


BUILDERS: dict[str, Callable[..., nn.Module]] = {"fdopa.models.network.build_unet": _build_unet}
"""Network builders a bundle may name (the ``_target_`` of ``model.net`` in the run config)."""


class BundleError(ValueError):
    """A bundle that is missing, incomplete, tampered with, or of an unknown format."""


def _ints(values: Sequence[Any], name: str) -> tuple[int, int, int]:
    out = tuple(int(v) for v in values)
    if len(out) != 3 or min(out) < 1:
        raise BundleError(f"{name}: expected 3 positive sizes, got {list(values)}")
    return out[0], out[1], out[2]


@dataclass(frozen=True)
class BundleConfig:
    """Network, preprocessing and inference settings of an exported model.

    Attributes:
        builder: Key of :data:`BUILDERS` that builds the network.
        network: Keyword arguments of the builder (``in_channels``, ``classes``, ...).
        channels: Input channels in order (``pet``, optionally ``flair``).
        normalisation: PET normalisation (``suv``, ``zscore``, ``brain_ratio``, ``none``).
        suv_scale: SUV mapped to 1 by the ``suv`` normalisation.
        spacing_mm: Voxel size (mm) of the training data along the RAS axes.
        patch_size: Sliding-window patch (voxels).
        overlap: Fraction of a patch shared with its neighbours.
        batch_size: Patches per forward pass.
        overlap_mode: Blending of overlapping patches (``hann``, ``gaussian`` or ``average``).
        classes: Class names in label order (the label map).
        training_grid_shape: Typical RAS grid shape of the training volumes (information).
        channel_dropout: Channel → probability it was blanked with in training; a channel
            listed with p > 0 may be left out at prediction (fed as zeros, its mean).
        tta: Default of the left-right flip test-time augmentation.
        postprocess: Default label clean-up (:class:`fdopa.models.postprocess.PostProcess`
            keywords: ``keep_brain_component``, ``min_tumour_ml``).

    Raises:
        BundleError: On an unknown builder, channel, normalisation or blending, or when the
            network's channels and classes contradict ``channels`` and ``classes``.
    """

    builder: str
    network: Mapping[str, Any]
    channels: tuple[str, ...]
    spacing_mm: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    normalisation: str = "suv"
    suv_scale: float = DEFAULT_SUV_SCALE
    overlap: float = 0.5
    batch_size: int = 4
    overlap_mode: str = "hann"
    classes: tuple[str, ...] = LABEL_NAMES
    training_grid_shape: tuple[int, int, int] | None = field(default=None)
    channel_dropout: Mapping[str, float] = field(default_factory=dict)
    tta: bool = False
    postprocess: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.builder not in BUILDERS:
            raise BundleError(f"network.builder: {self.builder!r} is not one of {list(BUILDERS)}")
        try:
            channels = check_channels(self.channels)
        except ValueError as err:
            raise BundleError(f"preprocessing.{err}") from err
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "network", dict(self.network))
        dropout = {str(k): float(v) for k, v in dict(self.channel_dropout or {}).items()}
        if not set(dropout) <= set(channels) or not all(0 <= v <= 1 for v in dropout.values()):
            raise BundleError(
                f"preprocessing.channel_dropout: {dropout} must map channels {list(channels)} "
                "to probabilities in [0, 1]"
            )
        object.__setattr__(self, "channel_dropout", dropout)
        try:
            rules = PostProcess(**dict(self.postprocess or {}))
        except (TypeError, ValueError) as err:
            raise BundleError(f"inference.postprocess: {err}") from err
        object.__setattr__(self, "postprocess", asdict(rules))
        object.__setattr__(self, "tta", bool(self.tta))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "patch_size", _ints(self.patch_size, "inference.patch_size"))
        spacing = tuple(float(v) for v in self.spacing_mm)
        if len(spacing) != 3 or min(spacing) <= 0:
            raise BundleError(f"preprocessing.spacing_mm: expected 3 sizes > 0, got {spacing}")
        object.__setattr__(self, "spacing_mm", spacing)
        if self.training_grid_shape is not None:
            shape = _ints(self.training_grid_shape, "preprocessing.training_grid_shape")
            object.__setattr__(self, "training_grid_shape", shape)
        if self.normalisation not in NORMALISATIONS:
            raise BundleError(
                f"preprocessing.normalisation: {self.normalisation!r} not in {NORMALISATIONS}"
            )
        if self.overlap_mode not in OVERLAP_MODES:
            raise BundleError(
                f"inference.overlap_mode: {self.overlap_mode!r} not one of {OVERLAP_MODES}"
            )
        expected = {"in_channels": len(channels), "classes": len(self.classes)}
        for key, value in expected.items():
            if self.network.get(key) != value:
                raise BundleError(
                    f"network.kwargs.{key}: {self.network.get(key)!r} contradicts the "
                    f"{len(channels)} channel(s) and {len(self.classes)} classes"
                )

    @property
    def optional_channels(self) -> tuple[str, ...]:
        """Channels the model was trained to do without (blanked with p > 0 in training)."""
        return tuple(c for c in self.channels if self.channel_dropout.get(c, 0.0) > 0)

    def build_network(self) -> nn.Module:
        """A freshly initialised network of this configuration (no weights loaded)."""
        return BUILDERS[self.builder](**self.network)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``config.json``."""
        return {
            "format_version": FORMAT_VERSION,
            "network": {"builder": self.builder, "kwargs": dict(self.network)},
            "preprocessing": {
                "channels": list(self.channels),
                "orientation": "RAS",
                "spacing_mm": list(self.spacing_mm),
                "normalisation": self.normalisation,
                "suv_scale": self.suv_scale,
                "training_grid_shape": (
                    None if self.training_grid_shape is None else list(self.training_grid_shape)
                ),
                "channel_dropout": dict(self.channel_dropout),
            },
            "inference": {
                "patch_size": list(self.patch_size),
                "overlap": self.overlap,
                "batch_size": self.batch_size,
                "overlap_mode": self.overlap_mode,
                "tta": self.tta,
                "postprocess": dict(self.postprocess),
            },
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], source: object = "config.json") -> BundleConfig:
        """Read the :meth:`to_dict` form back.

        Args:
            payload: Parsed ``config.json``.
            source: Named in error messages.

        Raises:
            BundleError: On another format version, a missing key or an invalid value.
        """
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{source}: format_version {version!r}; this fdopa reads {FORMAT_VERSION}"
            )
        try:
            network, pre, inference = (
                payload["network"],
                payload["preprocessing"],
                payload["inference"],
            )
            if pre["orientation"] != "RAS":
                raise BundleError(f"preprocessing.orientation: {pre['orientation']!r}, not RAS")
            return cls(
                builder=network["builder"],
                network=network["kwargs"],
                channels=tuple(pre["channels"]),
                spacing_mm=tuple(pre["spacing_mm"]),
                normalisation=pre["normalisation"],
                suv_scale=float(pre["suv_scale"]),
                training_grid_shape=pre.get("training_grid_shape"),
                channel_dropout=pre.get("channel_dropout") or {},
                patch_size=tuple(inference["patch_size"]),
                overlap=float(inference["overlap"]),
                batch_size=int(inference["batch_size"]),
                overlap_mode=inference["overlap_mode"],
                tta=bool(inference.get("tta", False)),
                postprocess=inference.get("postprocess") or {},
                classes=tuple(payload["classes"]),
            )
        except KeyError as err:
            raise BundleError(f"{source}: missing key {err}") from err
        except (TypeError, ValueError) as err:
            raise BundleError(f"{source}: {err}") from err
