"""QC pictures of the hospital import: registration edges and derived label maps.

Sagittal, coronal and axial slices drawn in RAS+ orientation (the patient's right on the right,
anterior and superior up) with the voxel aspect of the image, through the centre of the brain
(or of the tumour for label maps); matplotlib's Agg canvas, no pyplot state.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from nibabel.affines import voxel_sizes
from scipy import ndimage

from fdopa.export.qc import slice_centre
from fdopa.labels import label_rgb

__all__ = ["edges_png", "labels_png"]

_EDGE_COLOUR = np.array([1.0, 0.25, 0.1])


def _canonical(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The volume in RAS+ axis order and its voxel sizes."""
    ornt = nib.orientations.io_orientation(affine)
    data = nib.orientations.apply_orientation(volume, ornt)
    flip = nib.orientations.inv_ornt_aff(ornt, volume.shape[:3])
    return data, voxel_sizes(affine @ flip)


def _grey(values: np.ndarray, top: float) -> np.ndarray:
    return np.clip(values / (top or 1.0), 0.0, 1.0)[..., None] * np.ones(3)


def _figure(panels: list[tuple[str, np.ndarray, float]], title: str) -> bytes:
    """Three RGB panels ``(name, image (X, Y, 3), aspect)`` side by side, as PNG bytes."""
    figure = Figure(figsize=(12.0, 4.6))
    FigureCanvasAgg(figure)
    for ax, (name, rgb, aspect) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        ax.imshow(
            np.transpose(rgb, (1, 0, 2)), origin="lower", aspect=aspect, interpolation="nearest"
        )
        ax.set_title(name)
        ax.set_axis_off()
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _planes(volume: np.ndarray, centre: tuple[int, int, int], zooms: np.ndarray) -> list:
    x, y, z = centre
    return [
        ("sagittal", volume[x], zooms[2] / zooms[1]),
        ("coronal", volume[:, y], zooms[2] / zooms[0]),
        ("axial", volume[:, :, z], zooms[1] / zooms[0]),
    ]


def _draw(
    path: str | Path,
    volumes: tuple[np.ndarray, np.ndarray, np.ndarray],
    centre: tuple[int, int, int],
    top: float,
    paint: Callable[[np.ndarray, np.ndarray], np.ndarray],
    title: str,
) -> Path:
    """Three planes of ``(pet, overlay, zooms)``: ``paint(grey RGB, overlay slice)`` → RGB."""
    pet, overlay, zooms = volumes
    panels = [
        (name, paint(_grey(grey, top), over), aspect)
        for (name, grey, aspect), (_, over, _) in zip(
            _planes(pet, centre, zooms), _planes(overlay, centre, zooms), strict=True
        )
    ]
    Path(path).write_bytes(_figure(panels, title))
    return Path(path)


def edges_png(
    path: str | Path, pet: np.ndarray, flair: np.ndarray, affine: np.ndarray, title: str
) -> Path:
    """Draw the FLAIR's edges (orange) over the PET (grey), both on the PET grid.

    Args:
        path: Target PNG (written directly: callers stage it).
        pet: PET volume.
        flair: FLAIR resampled to the PET grid.
        affine: The grid's RAS affine.
        title: Figure title.

    Returns:
        The path.
    """
    pet_c, zooms = _canonical(pet, affine)
    flair_c, _ = _canonical(flair, affine)
    gradient = ndimage.gaussian_gradient_magnitude(flair_c.astype(np.float32), 1.0)
    inside = gradient[flair_c > 0]
    edges = gradient > (np.percentile(inside, 75) if inside.size else np.inf)
    top = float(np.percentile(pet_c[pet_c > 0], 99.5)) if (pet_c > 0).any() else 1.0
    centre = slice_centre((flair_c > 0).astype(int), tumour=-1)

    def paint(base: np.ndarray, edge: np.ndarray) -> np.ndarray:
        return np.where(edge[..., None], _EDGE_COLOUR, base)

    return _draw(path, (pet_c, edges, zooms), centre, top, paint, title)


def labels_png(
    path: str | Path,
    pet: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    title: str,
    alpha: float = 0.4,
) -> Path:
    """Draw a label map (brain blue, striatum green, tumour red) over the PET.

    Args:
        path: Target PNG (written directly: callers stage it).
        pet: PET volume.
        labels: Label map on the PET grid.
        affine: The grid's RAS affine.
        title: Figure title.
        alpha: Opacity of the label colours.

    Returns:
        The path.
    """
    pet_c, zooms = _canonical(pet, affine)
    labels_c, _ = _canonical(labels.astype(np.int16), affine)
    top = float(np.percentile(pet_c[labels_c > 0], 99.5)) if (labels_c > 0).any() else 1.0

    def paint(base: np.ndarray, label: np.ndarray) -> np.ndarray:
        colours = label_rgb(label)
        return np.where((label > 0)[..., None], (1 - alpha) * base + alpha * colours, base)

    return _draw(path, (pet_c, labels_c, zooms), slice_centre(labels_c), top, paint, title)
