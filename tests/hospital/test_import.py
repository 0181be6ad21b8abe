"""``fdopa import`` against the synthetic truth: SUV round trip, frame timing, indices, FLAIR."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from fdopa.data.cohort import load_cohort
from fdopa.kinetics import compute_indices
from fdopa.layout import SubjectPaths

FAMILIES = ("siemens", "ge", "philips")
RATIOS = ("tsr", "tbr_max", "tbr_mean")


def _pair(dicom_export, imported, family):
    subject = dicom_export.subjects[family]
    return (
        subject,
        SubjectPaths(dicom_export.cohort, subject.pid),
        SubjectPaths(imported.root, subject.new_id),
    )


def _native(image, subject):
    """Imported voxels on the source grid (block-averaging the in-plane upsampling back)."""
    data = image.get_fdata()
    if subject.upsampled:
        x, y = data.shape[0] // 2, data.shape[1] // 2
        data = data.reshape(x, 2, y, 2, *data.shape[2:]).mean(axis=(1, 3))
    return data


def test_every_subject_imported(imported, dicom_export):
    assert [o.error for o in imported.outcomes] == [None] * 3
    by_id = {o.participant_id: o for o in imported.outcomes}
    assert by_id[dicom_export.subjects["siemens"].new_id].dynamic == 27
    assert by_id[dicom_export.subjects["ge"].new_id].dynamic == 12
    assert by_id[dicom_export.subjects["philips"].new_id].dynamic == 0
    assert {o.flair for o in imported.outcomes} == {"registered"}
    assert not list(imported.root.parent.glob(".*")), "a staging folder was left behind"


@pytest.mark.parametrize("family", FAMILIES)
def test_suv_round_trip(dicom_export, imported, family):
    subject, source, new = _pair(dicom_export, imported, family)
    truth = nib.load(source.static_pet)
    image = nib.load(new.static_pet)
    expected_affine = truth.affine.copy()
    if subject.upsampled:
        expected_affine[:3, :2] /= 2
        expected_affine[:3, 3] -= truth.affine[:3, :2] @ np.full(2, 0.25)
    np.testing.assert_allclose(image.affine, expected_affine, atol=1e-4)
    error = np.abs(_native(image, subject) - truth.get_fdata()).max()
    assert error <= 1e-4 * truth.get_fdata().max()
    if source.dynamic_pet.exists():
        frames = nib.load(source.dynamic_pet).get_fdata()[..., slice(0, subject.frames)]
        back = _native(nib.load(new.dynamic_pet), subject)
        assert back.shape == frames.shape
        per_frame = np.abs(back - frames).max(axis=(0, 1, 2))
        assert (per_frame <= 1e-4 * frames.max(axis=(0, 1, 2))).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_frame_timing_and_sidecar(dicom_export, imported, family):
    subject, source, new = _pair(dicom_export, imported, family)
    pairs = [(source.static_sidecar, new.static_sidecar)]
    if source.dynamic_pet.exists():
        pairs.append((source.dynamic_sidecar, new.dynamic_sidecar))
    for truth_path, new_path in pairs:
        truth, got = json.loads(truth_path.read_text()), json.loads(new_path.read_text())
        n = len(got["FrameTimesStart"])
        assert n == len(truth["FrameTimesStart"][slice(0, subject.frames)])
        truth = {k: v[:n] if isinstance(v, list) else v for k, v in truth.items()}
        assert got["FrameTimesStart"] == pytest.approx(truth["FrameTimesStart"], abs=1e-6)
        assert got["FrameDuration"] == pytest.approx(truth["FrameDuration"], abs=1e-6)
        assert got["DecayCorrectionFactor"] == pytest.approx(
            truth["DecayCorrectionFactor"], rel=1e-9
        )
        assert got["InjectedRadioactivity"] == pytest.approx(truth["InjectedRadioactivity"])
        assert got["BodyWeight"] == pytest.approx(truth["BodyWeight"])
        assert (got["Units"], got["Modality"], got["TracerRadionuclide"]) == ("g/mL", "PT", "F18")


@pytest.mark.parametrize("family", FAMILIES)
def test_index_ratios_agree(dicom_export, imported, family):
    subject, source, new = _pair(dicom_export, imported, family)
    labels = np.asarray(nib.load(source.labels).dataobj)
    affine = nib.load(source.static_pet).affine
    truth = compute_indices(nib.load(source.static_pet).get_fdata(), labels, affine, "guideline")
    got = compute_indices(_native(nib.load(new.static_pet), subject), labels, affine, "guideline")
    for key in RATIOS:
        assert getattr(got, key) == pytest.approx(getattr(truth, key), rel=1e-3), key


@pytest.mark.parametrize("family", FAMILIES)
def test_flair_registration_error(dicom_export, imported, family):
    """Mean error over every labelled PET voxel of the FLAIR → PET transform vs the known motion."""
    subject, source, new = _pair(dicom_export, imported, family)
    transform = sitk.ReadTransform(str(new.flair_to_pet))
    labels = np.asarray(nib.load(source.labels).dataobj)
    affine = nib.load(source.static_pet).affine
    world = np.argwhere(labels > 0) @ affine[:3, :3].T + affine[:3, 3]
    flip = np.array([-1.0, -1.0, 1.0])
    estimate = np.array([np.array(transform.TransformPoint(tuple(p * flip))) * flip for p in world])
    truth = world @ subject.motion[:3, :3].T + subject.motion[:3, 3]
    assert np.linalg.norm(estimate - truth, axis=1).mean() < 1.5
    flair = _native(nib.load(new.flair), subject)
    original = nib.load(source.flair).get_fdata()
    brain = labels > 0
    assert np.corrcoef(flair[brain], original[brain])[0, 1] > 0.9
    qc = new.flair_to_pet.with_name(f"{subject.new_id}_desc-flair2pet_qc.png")
    assert qc.stat().st_size > 10_000


def test_no_patient_data_written(dicom_export, imported):
    names = [s.patient.name.split("^")[1] for s in dicom_export.subjects.values()]
    ids = [s.patient.patient_id for s in dicom_export.subjects.values()]
    for path in imported.root.rglob("*"):
        assert not any(word in str(path) for word in names + ids)
        if path.is_file() and path.suffix in (".json", ".tsv", ".tfm"):
            text = path.read_text()
            assert not any(word in text for word in names + ids), path


def test_participants_and_cohort_loader(dicom_export, imported):
    table = pd.read_csv(imported.root / "participants.tsv", sep="\t")
    expected = sorted(s.new_id for s in dicom_export.subjects.values())
    assert table["participant_id"].tolist() == expected
    siemens = dicom_export.subjects["siemens"]
    row = table.set_index("participant_id").loc[siemens.new_id]
    assert row["weight_kg"] == pytest.approx(siemens.patient.weight_kg)
    assert row["injected_mbq"] == pytest.approx(siemens.patient.dose_mbq)
    assert (row["dynamic"], row["flair"], row["age"]) == (1, 1, 9.0)
    subjects = load_cohort(imported.root, channels=("pet", "flair"), require_labels=False)
    assert [s.participant_id for s in subjects] == expected
    assert {s.pet_units for s in subjects} == {"g/mL"}
