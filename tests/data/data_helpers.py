"""Helpers of the data tests: rewrite NIfTI files of a cohort copy."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def rewrite_nifti(
    path: Path, data: np.ndarray | None = None, affine: np.ndarray | None = None
) -> None:
    """Overwrite a NIfTI file with new data and/or affine (keeping the other)."""
    image = nib.load(path)
    data = np.asarray(image.dataobj) if data is None else data
    affine = image.affine if affine is None else affine
    nib.save(nib.Nifti1Image(data, affine), path)


def flip_x(path: Path) -> None:
    """Store an image left-right flipped (LAS) while keeping every voxel's world position."""
    image = nib.load(path)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = image.shape[0] - 1  # voxel i of the new file is voxel (n - 1 - i) of the old
    rewrite_nifti(path, np.asarray(image.dataobj)[::-1].copy(), image.affine @ flip)
