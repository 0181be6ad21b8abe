"""Exported models: the bundle (writer, reader), the predictor and QC pictures.

Several bundles (a PET + FLAIR and a PET-only one) are chosen between per scan by
:class:`~fdopa.export.choice.BundleChoice`.

``fdopa.export`` imports lazily: ``import fdopa.export`` (and ``fdopa --help``) loads no torch.

Examples:
    >>> from fdopa.export import Predictor
    >>> predictor = Predictor.from_bundle("bundle/", tta=True)  # doctest: +SKIP
    >>> prediction = predictor.predict("pet.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Bundle",
    "BundleChoice",
    "BundleConfig",
    "BundleError",
    "Prediction",
    "Predictor",
    "export_checkpoint",
    "qc_figure",
    "read_bundle",
    "write_bundle",
    "write_prediction",
]

_HOMES = {
    "Bundle": "bundle",
    "read_bundle": "bundle",
    "write_bundle": "bundle",
    "BundleChoice": "choice",
    "BundleConfig": "bundle_config",
    "BundleError": "bundle_config",
    "Prediction": "predictor",
    "Predictor": "predictor",
    "export_checkpoint": "run",
    "qc_figure": "qc",
    "write_prediction": "outputs",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
