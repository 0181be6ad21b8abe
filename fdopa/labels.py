"""The label map, one convention everywhere: ground truth, predictions, exports.

====  ==========  ==================================================================
value name        meaning
====  ==========  ==================================================================
0     background  outside the brain
1     brain       healthy brain tissue (grey + white matter) not in another label
2     striatum    caudate + putamen, both hemispheres (pallidum excluded)
3     tumour      metabolic tumour volume (the lesion as seen on PET)
====  ==========  ==================================================================

The network predicts all four. This module is the one home of the values, names, meanings,
display colours and the connectivity of a region's parts; it imports numpy only.

Examples:
    >>> LABEL_NAMES[TUMOUR], NUM_LABELS, FOREGROUND
    ('tumour', 4, {'brain': 1, 'striatum': 2, 'tumour': 3})
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BACKGROUND",
    "BRAIN",
    "CONNECTIVITY",
    "FOREGROUND",
    "LABEL_COLOURS",
    "LABEL_MEANINGS",
    "LABEL_NAMES",
    "LABEL_VALUES",
    "NUM_LABELS",
    "STRIATUM",
    "TUMOUR",
    "label_rgb",
]

BACKGROUND, BRAIN, STRIATUM, TUMOUR = 0, 1, 2, 3

LABEL_VALUES: tuple[int, ...] = (BACKGROUND, BRAIN, STRIATUM, TUMOUR)
"""Every value of the label map, in order."""

LABEL_NAMES: tuple[str, ...] = ("background", "brain", "striatum", "tumour")
"""Name of each label, indexed by its value (the network's class names)."""

LABEL_MEANINGS: tuple[str, ...] = (
    "outside the brain",
    "healthy brain tissue (grey + white matter) not in another label",
    "caudate + putamen, both hemispheres",
    "metabolic tumour volume (the lesion as seen on PET)",
)
"""What each label holds, indexed by its value (written into bundles)."""

CONNECTIVITY: np.ndarray = np.ones((3, 3, 3), dtype=bool)
"""Structuring element of a region's connected parts: 26-connectivity, so voxels that touch at a
corner are one part (post-processing's components, QC's striatum parts)."""

NUM_LABELS = len(LABEL_VALUES)
"""Number of labels, background included: the network's output classes."""

FOREGROUND: dict[str, int] = {LABEL_NAMES[v]: v for v in LABEL_VALUES if v != BACKGROUND}
"""Name → value of the foreground labels (the classes scored by Dice)."""

LABEL_COLOURS: np.ndarray = np.array(
    [[0, 0, 0], [70, 110, 220], [40, 200, 70], [235, 40, 40]], dtype=np.float32
)
"""RGB (0–255) of each label: brain grey-blue, striatum green, tumour red (background unused)."""


def label_rgb(labels: np.ndarray) -> np.ndarray:
    """RGB colours (0–1) of a label array; values outside the map take the nearest valid colour.

    Examples:
        >>> (255 * label_rgb(np.array([0, 3, 7]))).round().astype(int).tolist()
        [[0, 0, 0], [235, 40, 40], [235, 40, 40]]
    """
    return LABEL_COLOURS[np.clip(labels, 0, NUM_LABELS - 1)] / 255.0
