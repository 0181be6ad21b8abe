"""Tumour masks from NIfTI, DICOM SEG and RTSTRUCT land exactly on the PET grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from dicom_writer import FAMILIES, Patient, upsample_in_plane, write_pet, write_rtstruct, write_seg

from fdopa.hospital.masks import read_tumour_mask
from fdopa.kinetics import InputError


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A small PET written as DICOM, its grid, and a tumour with a hole and two parts."""
    folder = tmp_path_factory.mktemp("masks")
    shape = (20, 22, 12)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = (-40.0, -44.0, -20.0)
    grid = np.indices(shape)
    centre = np.array([9, 11, 6])[:, None, None, None]
    distance = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    tumour = (distance <= 4.5) & (distance > 1.5)
    tumour[2:4, 2:4, 3:5] = True
    other = np.zeros(shape, bool)
    other[14:17, 15:18, 6:8] = True
    patient = Patient("MASKS")
    pet = write_pet(
        folder / "pet",
        1.0 + tumour.astype(float),
        affine,
        [600.0],
        [1200.0],
        patient,
        FAMILIES["siemens"],
    )
    return folder, shape, affine, tumour, other, patient, pet


def _nifti(path, data, affine):
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine), path)
    return path


def test_nifti_on_the_pet_grid_and_on_a_finer_one(scan):
    folder, shape, affine, tumour, *_ = scan
    same = _nifti(folder / "same.nii.gz", tumour, affine)
    np.testing.assert_array_equal(read_tumour_mask(same, shape, affine), tumour)
    fine, fine_affine = upsample_in_plane(tumour.astype(np.uint8), affine)
    finer = _nifti(folder / "fine.nii.gz", fine, fine_affine)
    np.testing.assert_array_equal(read_tumour_mask(finer, shape, affine), tumour)


def test_dicom_seg(scan):
    folder, shape, affine, tumour, _, _, pet = scan
    seg = write_seg(folder / "seg" / "seg.dcm", pet, tumour, affine)
    np.testing.assert_array_equal(read_tumour_mask(seg, shape, affine), tumour)
    np.testing.assert_array_equal(read_tumour_mask(seg.parent, shape, affine), tumour)


def test_rtstruct_contours_fill_exactly(scan):
    folder, shape, affine, tumour, other, patient, _ = scan
    path = write_rtstruct(
        folder / "rt" / "rs.dcm", patient, {"Brainstem": other, "GTV": tumour}, affine
    )
    np.testing.assert_array_equal(read_tumour_mask(path, shape, affine), tumour)
    np.testing.assert_array_equal(read_tumour_mask(path, shape, affine, roi="brainstem"), other)


def test_ambiguous_or_empty_masks_are_refused(scan):
    folder, shape, affine, tumour, other, patient, _ = scan
    two = write_rtstruct(
        folder / "rt2" / "rs.dcm", patient, {"GTV1": tumour, "GTV2": other}, affine
    )
    with pytest.raises(
        InputError, match=r"ROI: several: \['GTV1', 'GTV2'\]; choose one with --roi"
    ):
        read_tumour_mask(two, shape, affine)
    with pytest.raises(InputError, match="no single ROI named 'PTV'"):
        read_tumour_mask(two, shape, affine, roi="PTV")
    far = affine.copy()
    far[:3, 3] += 500.0
    empty = _nifti(folder / "far.nii.gz", tumour, far)
    with pytest.raises(InputError, match="no tumour voxel on the PET grid"):
        read_tumour_mask(empty, shape, affine)
    with pytest.raises(InputError, match="no DICOM SEG or RTSTRUCT found"):
        read_tumour_mask(folder / "pet", shape, affine)
    with pytest.raises(FileNotFoundError, match="the tumour mask"):
        read_tumour_mask(folder / "missing.nii.gz", shape, affine)
