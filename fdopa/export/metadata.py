"""What a bundle's ``metadata.json`` holds, and how a predictor reads its input contract.

``metadata.json`` describes the model for the people and pipelines that run it: package
versions, the label map, the input it expects (modality ``PT``, tracer ``FDOPA``, units,
spacing, orientation, patch size), the training data (subjects, cohort, grid, tumour volume
range) and the validation metrics of the exported checkpoint.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
from collections.abc import Mapping
from typing import Any

from fdopa import __version__
from fdopa.data.scaling import SUV_UNITS
from fdopa.export.bundle_config import FORMAT_VERSION, BundleConfig, BundleError
from fdopa.labels import LABEL_MEANINGS, LABEL_NAMES

__all__ = [
    "MODALITY",
    "PACKAGES",
    "TRACER",
    "build_metadata",
    "input_spec",
    "package_versions",
    "tumour_ml_range",
]

MODALITY = "PT"
"""BIDS modality of the input (PET)."""
TRACER = "FDOPA"
"""Tracer the model was trained for."""
PACKAGES: tuple[str, ...] = (
    "torch",
    "numpy",
    "scipy",
    "nibabel",
    "torchio",
    "monai",
    "lightning",
    "segmentation-models-pytorch-3d",
)
"""Packages whose versions are recorded (besides Python and fdopa)."""


def package_versions() -> dict[str, str | None]:
    """Versions of Python, fdopa and :data:`PACKAGES` (None when a package is absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "fdopa": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def input_spec(config: BundleConfig) -> dict[str, Any]:
    """The input contract of a model: what :class:`~fdopa.export.Predictor` checks.

    ``units`` is ``g/mL`` (SUV, body weight) for the ``suv``, ``zscore`` and ``brain_ratio``
    normalisations: the first feeds the network an absolute scale, and with all three the
    indices are reported in SUV and QC checks the SUV scale (a scan in Bq/mL is converted with
    its sidecar's dose and weight; z-scores and ratios are the same from either). ``none``
    accepts any consistent units (``units`` None).
    """
    suv = config.normalisation != "none"
    return {
        "modality": MODALITY,
        "tracer": TRACER,
        "units": "g/mL" if suv else None,
        "accepted_units": sorted(SUV_UNITS) if suv else None,
        "channels": list(config.channels),
        "dimensions": 3,
        "spacing_mm": list(config.spacing_mm),
        "orientation": "RAS",
        "patch_size": list(config.patch_size),
    }


def build_metadata(
    config: BundleConfig,
    *,
    training: Mapping[str, Any],
    validation: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble ``metadata.json``.

    Args:
        config: The bundle's configuration (input spec, classes).
        training: Training data summary; ``tumour_ml_range`` ([min, max] mL, or None) is read
            by the predictor's QC.
        validation: Validation metrics of the exported checkpoint.
        source: Where the weights came from (checkpoint path and sha256, run config).

    Returns:
        The JSON-serialisable metadata.

    Raises:
        BundleError: If the class names contradict the label map.
    """
    if tuple(config.classes) != LABEL_NAMES:
        raise BundleError(
            f"classes {list(config.classes)} contradict the label map {list(LABEL_NAMES)}"
        )
    patch = "×".join(str(n) for n in config.patch_size)
    return {
        "format_version": FORMAT_VERSION,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "label_map": {
            str(value): {"name": name, "meaning": meaning}
            for value, (name, meaning) in enumerate(zip(LABEL_NAMES, LABEL_MEANINGS, strict=True))
        },
        "input": input_spec(config),
        "output": {
            "labels": "label map (values of label_map) on the input's grid (nearest neighbour)",
            "probabilities": "softmax per class on the input's grid (linear interpolation)",
        },
        "files": {
            "model.pt": "state dict of the network (torch.load(weights_only=True))",
            "model.ts": f"TorchScript traced for input (B, {len(config.channels)}, {patch})",
            "model.onnx": "optional ONNX export of the same program",
        },
        "training": dict(training),
        "validation": dict(validation),
        "source": dict(source or {}),
    }


def tumour_ml_range(metadata: Mapping[str, Any]) -> tuple[float, float] | None:
    """The training tumour volume range (mL) recorded in metadata, or None."""
    value = metadata.get("training", {}).get("tumour_ml_range")
    if value is None:
        return None
    low, high = (float(v) for v in value)
    return low, high
