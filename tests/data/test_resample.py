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


def test_linear_interpolation_of_an_oblique_stack_matches_nibabel():
    volume = _volume((14, 12, 10), seed=3)
    angle = np.deg2rad(17.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    source_affine = np.eye(4)
    source_affine[:3, :3] = rotation @ np.diag([2.0, 2.5, 3.0])
    source_affine[:3, 3] = (4.0, -7.0, 1.5)
    target_affine = np.diag([1.7, 1.9, 2.2, 1.0])
    target_affine[:3, 3] = (-6.0, -4.0, -2.0)
    shape = (20, 18, 15)
    stack = map_to_grid(np.stack([volume, 1 - volume]), source_affine, target_affine, shape, 1)
    for channel, data in enumerate((volume, 1 - volume)):
        expected = resample_from_to(
            nib.Nifti1Image(data, source_affine), (shape, target_affine), order=1, mode="nearest"
        ).get_fdata()
        np.testing.assert_allclose(stack[channel], expected, atol=1e-5)


def test_antialiased_downsampling_averages_noise_as_a_gaussian_of_the_footprint_predicts():
    # White noise at 1 mm onto a 3 mm grid: one target voxel spans 3 source voxels per axis,
    # so the source is smoothed with SD (3 - 1) / 2 = 1 voxel. A Gaussian of SD s passes
    # 1 / (2 sqrt(pi) s) of white-noise variance per axis: the SD falls to 0.2821^1.5 = 0.150.
    # Without anti-aliasing every target voxel is one source voxel: the SD stays 1.
    noise = np.random.default_rng(7).standard_normal((90, 90, 90)).astype(np.float32)
    source = np.eye(4)
    target = np.diag([3.0, 3.0, 3.0, 1.0])
    target[:3, 3] = 1.0  # centre of source voxels 0-2
    plain = map_to_grid(noise, source, target, (30, 30, 30), 1)
    smooth = map_to_grid(noise, source, target, (30, 30, 30), 1, antialias=True)
    inner = (slice(3, -3),) * 3
    assert plain[inner].std() == pytest.approx(1.0, abs=0.02)
    assert smooth[inner].std() == pytest.approx((1 / (2 * np.sqrt(np.pi))) ** 1.5, abs=0.006)
    # a linear ramp is left as it is (a symmetric kernel does not bias it), and upsampling
    # (footprint below one voxel) is not smoothed
    ramp = np.broadcast_to(np.arange(90.0, dtype=np.float32)[:, None, None], (90, 90, 90))
    down = map_to_grid(ramp, source, target, (30, 30, 30), 1, antialias=True)
    np.testing.assert_allclose(down[inner][:, 0, 0], 1.0 + 3.0 * np.arange(3, 27), atol=1e-3)
    up = np.diag([0.5, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(
        map_to_grid(noise[:10, :10, :10], source, up, (19, 19, 19), 1, antialias=True),
        map_to_grid(noise[:10, :10, :10], source, up, (19, 19, 19), 1),
    )
