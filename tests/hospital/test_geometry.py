"""Voxel geometry of MR series: classic oblique slices and enhanced multi-frame give one volume."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
from dicom_writer import Patient, rigid, write_mr
from pydicom.uid import generate_uid

from fdopa.hospital.dicom import scan_folder
from fdopa.hospital.study import read_flair


def _canonical(data, affine):
    ornt = nib.orientations.io_orientation(affine)
    flip = nib.orientations.inv_ornt_aff(ornt, data.shape)
    return nib.orientations.apply_orientation(data, ornt), affine @ flip


def test_oblique_classic_and_enhanced_mr_read_the_same_volume(tmp_path):
    import highdicom as hd

    rng = np.random.default_rng(0)
    volume = rng.uniform(0, 100, (12, 14, 10)).astype(np.float32)
    affine = rigid((5.0, -3.0, 8.0), (1.0, 2.0, 3.0), (0.0, 0.0, 0.0)) @ np.diag(
        [2.0, 2.5, 3.0, 1.0]
    )
    files = write_mr(tmp_path / "classic", volume, affine, Patient("GEOM"))
    legacy = [pydicom.dcmread(f) for f in files]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy, generate_uid(), 99, generate_uid(), 1
    )
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "mr.dcm")
    (classic,), _ = scan_folder(tmp_path / "classic")
    (multi,), _ = scan_folder(tmp_path / "enhanced")
    assert (classic.n_frames, multi.n_frames) == (1, 10)
    data, got_affine = _canonical(*read_flair(classic))
    truth, truth_affine = _canonical(volume, affine)
    np.testing.assert_allclose(got_affine, truth_affine, atol=1e-4)
    assert np.abs(data - truth).max() <= 1e-4 * truth.max()
    data2, affine2 = _canonical(*read_flair(multi))
    np.testing.assert_allclose(affine2, truth_affine, atol=1e-4)
    np.testing.assert_allclose(data2, data, atol=1e-9)
