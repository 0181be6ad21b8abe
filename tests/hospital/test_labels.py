"""``fdopa labels``: the atlas-derived label map against the synthetic truth."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from dicom_writer import upsample_in_plane

from fdopa.cli import main
from fdopa.hospital.labels import derive_labels
from fdopa.hospital.masks import read_tumour_mask
from fdopa.hospital.registration import ras_matrix
from fdopa.kinetics import compute_indices
from fdopa.layout import SubjectPaths


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _save(path, data, affine):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine), path)
    return path


@pytest.mark.slow
def test_labels_from_the_true_tumour_alone(paediatric_cohort, tmp_path):
    """Deformable atlas labels via the FLAIR: Dice and index agreement on the 4 mm grid."""
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    truth = np.asarray(nib.load(paths.labels).dataobj)
    pet = nib.load(paths.static_pet)
    mask = _save(tmp_path / "tumour.nii.gz", truth == 3, pet.affine)
    out = tmp_path / "out" / "sub-pd001_dseg.nii.gz"
    args = [
        "labels",
        "--pet",
        str(paths.static_pet),
        "--flair",
        str(paths.flair),
        "--tumour",
        str(mask),
    ]
    assert main([*args, "--out", str(out)]) == 0
    labels = np.asarray(nib.load(out).dataobj)
    np.testing.assert_array_equal(labels == 3, truth == 3)
    assert dice(labels == 2, truth == 2) >= 0.70
    assert dice(labels == 1, truth == 1) >= 0.90
    assert (tmp_path / "out" / "sub-pd001_dseg_qc.png").stat().st_size > 10_000
    a = compute_indices(pet.get_fdata(), truth, pet.affine, "guideline")
    b = compute_indices(pet.get_fdata(), labels, pet.affine, "guideline")
    for key in ("tsr", "tbr_max", "tbr_mean"):
        assert getattr(b, key) == pytest.approx(getattr(a, key), rel=0.10), key
    assert main([*args, "--out", str(out)]) == 2  # exists, no --overwrite


def test_labels_via_the_pet_without_flair(paediatric_cohort):
    """Without a FLAIR the atlas is registered to the PET (FDOPA-like template), affine only."""
    paths = SubjectPaths(paediatric_cohort, "sub-pd002")
    truth = np.asarray(nib.load(paths.labels).dataobj)
    pet = nib.load(paths.static_pet)
    result = derive_labels(pet.get_fdata(), pet.affine, truth == 3, None, deformable=False)
    assert result.guide == "pet" and result.metric[1] is None
    np.testing.assert_array_equal(result.labels == 3, truth == 3)
    assert dice(result.labels == 2, truth == 2) >= 0.60
    assert dice(result.labels == 1, truth == 1) >= 0.90


def test_cohort_labels_from_masks_on_another_grid(dicom_export, imported, tmp_path, capsys):
    """The cohort form: a mask on the source 4 mm grid for the subject imported on 2×2×4 mm."""
    root = tmp_path / "cohort"
    shutil.copytree(imported.root, root)
    subject = dicom_export.subjects["ge"]
    source = SubjectPaths(dicom_export.cohort, subject.pid)
    truth = np.asarray(nib.load(source.labels).dataobj)
    affine = nib.load(source.static_pet).affine
    _save(tmp_path / "masks" / f"{subject.new_id}_tumour.nii.gz", truth == 3, affine)
    command = [
        "labels",
        "--cohort",
        str(root),
        "--tumours",
        str(tmp_path / "masks"),
        "--affine-only",
    ]
    assert main(command) == 1  # the two others have no mask
    printed = capsys.readouterr().out
    assert printed.count("FAILED") == 2 and "no single tumour mask" in printed
    out = root / "derivatives/labels" / subject.new_id / f"{subject.new_id}_dseg.nii.gz"
    labels = np.asarray(nib.load(out).dataobj)
    fine_truth, _ = upsample_in_plane(truth, affine)
    np.testing.assert_array_equal(labels == 3, fine_truth == 3)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert dice(labels == 1, fine_truth == 1) >= 0.85
    assert dice(labels == 2, fine_truth == 2) >= 0.55
    assert main(command) == 1
    assert "already exists" in capsys.readouterr().out


def test_mask_drawn_on_the_flair_as_exported(dicom_export, imported, tmp_path):
    """A mask in the moved FLAIR's world comes back onto the PET through the import's transform."""
    subject = dicom_export.subjects["siemens"]
    source, new = (
        SubjectPaths(dicom_export.cohort, subject.pid),
        SubjectPaths(imported.root, subject.new_id),
    )
    truth = np.asarray(nib.load(source.labels).dataobj) == 3
    affine = nib.load(source.static_pet).affine
    mask = _save(tmp_path / "on_flair.nii.gz", truth, subject.motion @ affine)
    to_mask = ras_matrix(sitk.ReadTransform(str(new.flair_to_pet)))
    got = read_tumour_mask(mask, truth.shape, affine, to_mask=to_mask)
    assert dice(got, truth) >= 0.9
    assert dice(read_tumour_mask(mask, truth.shape, affine), truth) < 0.5  # without it: misplaced


def test_labels_arguments(tmp_path, capsys):
    assert main(["labels", "--pet", str(tmp_path / "pet.nii.gz")]) == 2
    assert "--tumour and --out: required with --pet" in capsys.readouterr().err
    assert main(["labels", "--cohort", str(tmp_path), "--tumour", "x"]) == 2
    assert main(["labels", "--cohort", str(tmp_path / "none")]) == 2
