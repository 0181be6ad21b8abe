"""Model-grid mapping against nibabel's resampling (an independent implementation)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from fdopa.data.resample import map_to_grid, model_grid


def _volume(shape=(12, 10, 8), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.mark.parametrize("order", [0, 1])
def test_interpolation_matches_nibabel(order):
    source_affine = np.diag([3.0, 3.0, 3.0, 1.0])
    source_affine[:3, 3] = (-10, 5, 2)
    volume = _volume()
    target_affine, shape = model_grid(source_affine, volume.shape, (4.0, 4.0, 4.0))
    assert shape == (9, 8, 6)  # extents 36, 30, 24 mm in 4 mm voxels
    ours = map_to_grid(volume, source_affine, target_affine, shape, order)
    expected = resample_from_to(
        nib.Nifti1Image(volume, source_affine), (shape, target_affine), order=order, mode="nearest"
    ).get_fdata()
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_axis_flips_and_permutations_are_copied_exactly():
    volume = _volume()
    las = np.array([[0, -2.0, 0, 30], [2.0, 0, 0, -4], [0, 0, 2.0, 7], [0, 0, 0, 1]])
    target_affine, shape = model_grid(las, volume.shape, (2.0, 2.0, 2.0))
    assert shape == (10, 12, 8)
    assert np.all(np.diag(target_affine)[:3] > 0)
    forward = map_to_grid(volume, las, target_affine, shape, order=1)
    np.testing.assert_array_equal(forward, np.transpose(volume, (1, 0, 2))[::-1])
    back = map_to_grid(forward, target_affine, las, volume.shape, order=0)
    np.testing.assert_array_equal(back, volume)
    stack = map_to_grid(np.stack([volume, 2 * volume]), las, target_affine, shape, order=1)
    np.testing.assert_array_equal(stack[1], 2 * forward)
