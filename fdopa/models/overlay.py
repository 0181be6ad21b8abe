"""Validation overlay pictures: PET | PET + reference labels | PET + predicted labels.

Rendered with numpy alone (no figure), so a picture costs a few milliseconds. Colours follow
the label map: brain grey-blue, striatum green, tumour red; background stays clear.
"""

from __future__ import annotations

import numpy as np

from fdopa.labels import TUMOUR, label_rgb


def tumour_slice(label: np.ndarray, tumour: int = TUMOUR) -> int:
    """Axial (last-axis) slice with the most tumour voxels; the middle slice without tumour."""
    counts = (label == tumour).sum(axis=(0, 1))
    return int(counts.argmax()) if counts.any() else label.shape[-1] // 2


def overlay_panels(
    pet: np.ndarray,
    label: np.ndarray,
    pred: np.ndarray,
    alpha: float = 0.45,
    z: int | None = None,
) -> np.ndarray:
    """Three side-by-side RGB panels of one axial slice.

    Args:
        pet: PET volume ``(X, Y, Z)`` in any units (scaled to its 99.5th percentile).
        label: Reference label map ``(X, Y, Z)``.
        pred: Predicted label map ``(X, Y, Z)``.
        alpha: Opacity of the label colours.
        z: Axial slice; by default the one through the most reference tumour.

    Returns:
        ``uint8`` image ``(Y, 3 * X, 3)``, anterior up (RAS volumes).
    """
    z = tumour_slice(label) if z is None else z
    pet_slice = pet[:, :, z].astype(np.float32)
    top = float(np.percentile(pet_slice, 99.5)) or 1.0
    grey = np.clip(pet_slice / top, 0.0, 1.0)[..., None] * 255.0 * np.ones(3, dtype=np.float32)

    def blend(labels: np.ndarray) -> np.ndarray:
        colours = 255.0 * label_rgb(labels[:, :, z])
        mask = (labels[:, :, z] > 0)[..., None]
        return np.where(mask, (1 - alpha) * grey + alpha * colours, grey)

    panels = [grey, blend(label), blend(pred)]
    # (X, Y) → rows = Y from anterior (high y) to posterior, columns = X.
    image = np.concatenate([np.transpose(p, (1, 0, 2))[::-1] for p in panels], axis=1)
    return np.ascontiguousarray(image.round().astype(np.uint8))
