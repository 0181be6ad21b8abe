"""A "manual delineation" variant of a reference label map, with inter-operator variation.

A second operator's contour differs from the reference by smooth boundary shifts of about
1–2 voxels (a random global dilation/erosion plus a spatially smooth local displacement of the
signed distance to the boundary) and, for some operators, by a threshold choice: voxels below a
fraction of the tumour maximum on the noisy PET are left out of the tumour.
"""

from __future__ import annotations

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

from fdopa.data.synthetic.imaging import correlated_noise
from fdopa.labels import BACKGROUND, BRAIN, STRIATUM, TUMOUR


def signed_distance_mm(mask: np.ndarray, zooms: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance (mm) to the mask boundary: negative inside, positive outside."""
    outside = ndimage.distance_transform_edt(~mask, sampling=zooms)
    inside = ndimage.distance_transform_edt(mask, sampling=zooms)
    return (outside - inside).astype(np.float32)


def _perturb(rng: np.random.Generator, mask: np.ndarray, zooms: np.ndarray,
             max_shift_vox: float) -> np.ndarray:  # fmt: skip
    """Move the boundary of ``mask`` by a smooth random amount of up to about ``max_shift_vox``."""
    voxel = float(np.mean(zooms))
    distance = signed_distance_mm(mask, zooms)
    local = correlated_noise(rng, mask.shape, 3.0 * voxel, voxel)
    shift = voxel * (rng.uniform(-0.6, 0.6) * max_shift_vox + 0.5 * max_shift_vox * local)
    return distance < shift + 0.5 * voxel


def manual_delineation(
    rng: np.random.Generator, labels: np.ndarray, pet: np.ndarray, affine: np.ndarray
) -> np.ndarray:
    """A perturbed copy of ``labels`` as a second operator would draw it.

    Args:
        rng: Random generator.
        labels: Reference label map (values 0–3).
        pet: Noisy static PET on the same grid (used for the operator's threshold).
        affine: Voxel-to-world affine (voxel sizes).

    Returns:
        New label map; tumour and striatum stay non-empty and inside the head.
    """
    zooms = voxel_sizes(affine)
    head = labels > 0
    manual = np.where(head, BRAIN, BACKGROUND).astype(np.uint8)
    striatum = _perturb(rng, labels == STRIATUM, zooms, 1.0) & head
    tumour = _perturb(rng, labels == TUMOUR, zooms, 2.0) & head
    if rng.random() < 0.5:
        fraction = rng.uniform(0.30, 0.45)
        trimmed = tumour & (pet >= fraction * pet[tumour].max())
        tumour = trimmed if trimmed.sum() >= 0.5 * tumour.sum() else tumour
    if not tumour.any():
        tumour = labels == TUMOUR
    if not striatum.any():
        striatum = labels == STRIATUM
    manual[striatum] = STRIATUM
    manual[tumour] = TUMOUR
    return manual
