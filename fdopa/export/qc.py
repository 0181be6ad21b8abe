"""The QC picture of a prediction: labels over the PET in three planes, and the TACs.

Sagittal, coronal and axial slices through the tumour centroid (the brain's centre without a
tumour), drawn in RAS+ orientation (neurological: the patient's right on the right, anterior and
superior up) with the voxel aspect of the image; the TACs of tumour, hot tumour, contralateral
striatum and reference when the scan is dynamic. Drawn with matplotlib's Agg canvas, no pyplot
state.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fdopa.export.predictor import Prediction
from fdopa.export.resample import voxel_sizes
from fdopa.kinetics import TAC_REGIONS
from fdopa.models.overlay import LABEL_COLOURS

__all__ = ["qc_figure", "slice_centre"]

ALPHA = 0.4
"""Opacity of the label colours."""


def slice_centre(labels: np.ndarray, tumour: int = 3) -> tuple[int, int, int]:
    """Voxel of the tumour centroid; of the labelled voxels without tumour; else the centre."""
    for mask in (labels == tumour, labels > 0):
        if mask.any():
            return tuple(round(float(c)) for c in np.argwhere(mask).mean(axis=0))  # type: ignore[return-value]
    return tuple(n // 2 for n in labels.shape)  # type: ignore[return-value]


def _rgba(pet_slice: np.ndarray, label_slice: np.ndarray, top: float) -> np.ndarray:
    grey = np.clip(pet_slice / top, 0.0, 1.0)[..., None] * np.ones(3)
    colours = LABEL_COLOURS[np.clip(label_slice, 0, len(LABEL_COLOURS) - 1)] / 255.0
    mask = (label_slice > 0)[..., None]
    return np.where(mask, (1 - ALPHA) * grey + ALPHA * colours, grey)


def qc_figure(prediction: Prediction, path: str | Path, dpi: int = 100) -> Path:
    """Draw the QC picture of a prediction to a PNG file.

    Args:
        prediction: The prediction (native PET, labels, affine, indices, QC verdict).
        path: Target PNG.
        dpi: Resolution.

    Returns:
        The written path.
    """
    ornt = nib.orientations.io_orientation(prediction.affine)
    pet = nib.orientations.apply_orientation(prediction.pet, ornt)
    labels = nib.orientations.apply_orientation(prediction.labels, ornt).astype(int)
    flip = nib.orientations.inv_ornt_aff(ornt, prediction.pet.shape)
    zooms = voxel_sizes(prediction.affine @ flip)
    x, y, z = slice_centre(labels)
    brain = pet[labels > 0] if (labels > 0).any() else pet
    top = float(np.percentile(brain, 99.5)) or 1.0
    # (name, PET slice, label slice, horizontal and vertical voxel sizes); rows = 2nd axis.
    planes = (
        ("sagittal", pet[x], labels[x], zooms[1], zooms[2]),
        ("coronal", pet[:, y], labels[:, y], zooms[0], zooms[2]),
        ("axial", pet[:, :, z], labels[:, :, z], zooms[0], zooms[1]),
    )
    tacs = prediction.indices.tacs
    figure = Figure(figsize=(4.0 * (3 + (tacs is not None)), 4.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3 + (tacs is not None))
    for ax, (name, pet_slice, label_slice, dx, dy) in zip(axes, planes, strict=False):
        ax.imshow(
            np.transpose(_rgba(pet_slice, label_slice, top), (1, 0, 2)),
            origin="lower", aspect=dy / dx, interpolation="nearest",
        )  # fmt: skip
        ax.set_title(name)
        ax.set_axis_off()
    if tacs is not None:
        ax = axes[-1]
        for region in TAC_REGIONS:
            mean = tacs.mean.get(region)
            if mean is not None:
                ax.plot(tacs.frame_mid_min, mean, marker="o", ms=3, label=region)
        ax.set_xlabel("time after injection (min)")
        ax.set_ylabel("mean uptake (image units)")
        ax.legend(fontsize=8)
        ax.set_title("time-activity curves")
    result = prediction.indices
    shown = (("T/S", result.tsr), ("TBRmax", result.tbr_max), ("tumour mL", result.tumour_ml))
    summary = ", ".join(f"{label} {value:.2f}" for label, value in shown if value is not None)
    verdict = "QC: review — " + "; ".join(prediction.qc_reasons) if prediction.qc_flag else "QC: ok"
    figure.suptitle(f"{prediction.stem}   {summary}\n{verdict}", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=dpi, format="png")
    return path
