"""Anatomical clean-up of a predicted label map (0 background, 1 brain, 2 striatum, 3 tumour).

Two rules, each optional, applied in this order:

* **inside the brain**: only the largest 26-connected component of the labelled voxels (the
  brain with everything in it) is kept; islands elsewhere — including tumour voxels outside
  the brain — become background;
* **no tiny tumour fragments**: tumour components (26-connected) smaller than ``min_tumour_ml``
  become healthy brain, except the largest one, so a small tumour is never erased entirely.

The rules only relabel voxels; they never add tumour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fdopa.labels import BRAIN, TUMOUR

__all__ = ["PostProcess", "postprocess_labels"]

_FULL = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class PostProcess:
    """Which clean-up rules to apply (see the module docstring).

    Attributes:
        keep_brain_component: Keep only the largest connected labelled component.
        min_tumour_ml: Tumour components below this volume (mL) become brain, the largest
            excepted; 0 disables the rule.
    """

    keep_brain_component: bool = False
    min_tumour_ml: float = 0.0

    def __post_init__(self) -> None:
        if not self.min_tumour_ml >= 0:
            raise ValueError(f"min_tumour_ml: must be >= 0, got {self.min_tumour_ml}")

    @property
    def active(self) -> bool:
        """Whether any rule is on."""
        return self.keep_brain_component or self.min_tumour_ml > 0


def postprocess_labels(labels: np.ndarray, voxel_ml: float, rules: PostProcess) -> np.ndarray:
    """Apply the clean-up ``rules`` to a label map.

    Args:
        labels: Integer label map (3-D).
        voxel_ml: Volume of one voxel in mL.
        rules: The rules.

    Returns:
        A new label map of the same shape and dtype.

    Examples:
        >>> labels = np.zeros((9, 9, 9), np.uint8)
        >>> labels[1:6, 1:6, 1:6] = 1
        >>> labels[2:4, 2:4, 2:4] = 3
        >>> labels[5, 5, 1] = 3           # a one-voxel fragment inside the brain
        >>> labels[8, 8, 8] = 3           # an island outside the brain
        >>> out = postprocess_labels(labels, 0.064, PostProcess(True, 0.1))
        >>> int((out == 3).sum()), int(out[8, 8, 8]), int(out[5, 5, 1])
        (8, 0, 1)
    """
    out = np.array(labels, copy=True)
    if rules.keep_brain_component:
        components, n = ndimage.label(out > 0, structure=_FULL)
        if n > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            out[components != int(np.argmax(sizes))] = 0
    if rules.min_tumour_ml > 0:
        components, n = ndimage.label(out == TUMOUR, structure=_FULL)
        if n > 1:
            sizes = np.bincount(components.ravel())[1:]
            small = np.flatnonzero(sizes * voxel_ml < rules.min_tumour_ml) + 1
            small = small[small != int(np.argmax(sizes)) + 1]
            out[np.isin(components, small)] = BRAIN
    return out
