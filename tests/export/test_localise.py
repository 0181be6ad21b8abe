"""Head first: localisation and crop, scanner-sized inputs, Bq/mL input and the QC flags."""

from __future__ import annotations

import json
import pickle

import nibabel as nib
import numpy as np
import pytest

from fdopa.cli import main
from fdopa.data.localise import locate_head
from fdopa.export.predictor import Predictor
from fdopa.export.qc import (
    FOCUS_MARGIN_MM,
    pet_alone_reason,
    striatum_contact_reason,
    striatum_stray_reason,
)
from fdopa.kinetics import InputError
from fdopa.layout import SubjectPaths

PAD = (10, 6, 4)
"""Voxels of zeros before the brain box on each axis (as many again, plus 4, after it)."""


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor(tiny_bundle[0])


@pytest.fixture(scope="module")
def brain_box(paediatric_cohort, predictor):
    """The fixture subject's static PET, affine and its prediction as a brain box."""
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    image = nib.load(paths.static_pet)
    data = image.get_fdata()
    return data, image.affine, predictor.predict(data, image.affine, participant_id="sub-pd001")


def _embed(data, affine, shape):
    """``data`` placed at :data:`PAD` inside a zero array of ``shape``, with the matching affine."""
    out = np.zeros(shape)
    inner = tuple(slice(p, p + n) for p, n in zip(PAD, data.shape, strict=True))
    out[inner] = data
    moved = affine.copy()
    moved[:3, 3] -= affine[:3, :3] @ np.asarray(PAD, float)
    return out, moved, inner


def _same_indices(a, b):
    for key, value in a.to_dict().items():
        expected = b.to_dict()[key]
        if isinstance(value, float):
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-9), key
        else:
            assert value == expected, key


def test_zero_padded_scan_gives_the_labels_and_indices_of_the_brain_box(brain_box, predictor):
    data, affine, box = brain_box
    shape = tuple(n + 2 * p + 4 for n, p in zip(data.shape, PAD, strict=True))
    padded, moved, inner = _embed(data, affine, shape)
    result = predictor.predict(padded, moved, participant_id="sub-pd001")
    np.testing.assert_array_equal(result.labels[inner], box.labels)
    assert result.labels.sum() == box.labels.sum()  # background outside the brain box
    _same_indices(result.indices, box.indices)
    crop = result.to_dict()["crop"]  # recorded in the outputs, in native voxels
    assert crop["method"] == "threshold" and crop["native_shape"] == list(shape)
    assert crop["start"] == [s + p for s, p in zip(box.crop.start, PAD, strict=True)]
    assert crop["stop"] == [s + p for s, p in zip(box.crop.stop, PAD, strict=True)]


def test_no_crop_runs_the_network_on_the_whole_padded_image(brain_box, predictor, tmp_path):
    data, affine, _ = brain_box
    shape = tuple(n + 2 * p + 4 for n, p in zip(data.shape, PAD, strict=True))
    padded, moved, _ = _embed(data, affine, shape)
    pet = tmp_path / "sub-pd001_pet.nii.gz"
    nib.save(nib.Nifti1Image(padded.astype(np.float32), moved), pet)
    argv = ["predict", "--bundle", str(predictor.bundle.path), "--pet", str(pet), "--no-crop"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    crop = json.loads((tmp_path / "out" / "sub-pd001_pet_indices.json").read_text())["crop"]
    assert crop == {"start": [0, 0, 0], "stop": list(shape), "native_shape": list(shape),
                    "method": "full", "head_ml": 0.0, "failure": None}  # fmt: skip


def test_activity_outside_the_head_is_left_out_of_the_crop(brain_box, predictor):
    data, affine, box = brain_box
    shape = tuple(n + 2 * p + 30 for n, p in zip(data.shape, PAD, strict=True))
    noisy, moved, inner = _embed(data, affine, shape)
    rng = np.random.default_rng(0)
    far = (slice(shape[0] - 12, shape[0] - 2), slice(2, 12), slice(2, 12))
    noisy[far] += 3.0 + rng.random((10, 10, 10))  # a hot structure away from the head
    result = predictor.predict(noisy, moved, participant_id="sub-pd001")
    start, stop = np.asarray(result.crop.start), np.asarray(result.crop.stop)
    assert stop[0] <= shape[0] - 12  # the hot structure is not in the box
    assert np.all(start <= np.asarray(box.crop.start) + PAD)  # the head is
    assert np.all(stop >= np.asarray(box.crop.stop) + PAD)
    assert not result.labels[far].any()
    np.testing.assert_array_equal(result.labels[inner], box.labels)
    _same_indices(result.indices, box.indices)


def test_the_classical_head_box_covers_the_labelled_head(paediatric_cohort):
    paths = SubjectPaths(paediatric_cohort, "sub-pd002")
    pet = nib.load(paths.static_pet)
    labels = np.asarray(nib.load(paths.labels).dataobj)
    box = locate_head(pet.get_fdata(), pet.affine)
    assert box.failure is None
    inside = np.zeros(labels.shape, bool)
    inside[box.slices] = True
    assert inside[labels > 0].all()


def _head_and_neck(flip_z: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 240×240×320 mm phantom (2 mm): brain on a neck and shoulders, glands hotter than it.

    Returns the image, its affine and the brain mask (the truth the box must hold).
    """
    x, y, z = np.meshgrid(*(np.arange(n) * 2.0 + 1.0 for n in (120, 120, 160)), indexing="ij")
    x, y = x - 120.0, y - 120.0
    brain = (x / 65) ** 2 + (y / 80) ** 2 + ((z - 240) / 60) ** 2 <= 1
    image = np.where(brain, 1.5, 0.0)
    image[brain & ((np.abs(x) - 15) ** 2 + y**2 + (z - 235) ** 2 <= 12**2)] = 2.5  # striatum
    image[(x**2 + y**2 <= 50**2) & (z < 190) & ~brain] = 1.0  # neck
    image[(np.abs(x) <= 110) & (np.abs(y) <= 60) & (z < 60)] = 1.0  # shoulders
    image[((np.abs(x) - 35) ** 2 + y**2 + (z - 160) ** 2 <= 15**2)] = 4.0  # salivary glands
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    if flip_z:  # stored feet-up: the vertex is at the first slice
        image, brain = image[..., ::-1], brain[..., ::-1]
        affine = affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 159], [0, 0, 0, 1.0]])
    return np.ascontiguousarray(image), affine, np.ascontiguousarray(brain)


@pytest.mark.parametrize("flip_z", [False, True])
def test_the_box_keeps_the_brain_below_the_vertex_when_glands_are_hottest(flip_z):
    image, affine, brain = _head_and_neck(flip_z)
    box = locate_head(image, affine)
    assert box.failure is None
    inside = np.zeros(brain.shape, bool)
    inside[box.slices] = True
    assert inside[brain].all()
    up = box.slices[2]
    kept_mm = (up.stop - up.start) * 2.0
    assert kept_mm <= 200.0 + 2 * 16.0 + 4.0  # brain extent and margins: shoulders left out


def test_bqml_with_dose_and_weight_gives_the_suv_indices(brain_box, predictor, tmp_path):
    data, affine, box = brain_box
    dose_mbq, weight_kg = 150.0, 35.0
    bqml = data * dose_mbq * 1e6 / (weight_kg * 1000.0)  # SUV = C · W / D
    sidecar = {
        "Modality": "PT", "TracerName": "FDOPA", "Units": "Bq/mL", "InjectedRadioactivity":
        dose_mbq, "InjectedRadioactivityUnits": "MBq", "BodyWeight": weight_kg,
        "BodyWeightUnits": "kg",
    }  # fmt: skip
    result = predictor.predict(bqml, affine, pet_sidecar=sidecar, participant_id="sub-pd001")
    np.testing.assert_array_equal(result.labels, box.labels)
    _same_indices(result.indices, box.indices)

    del sidecar["BodyWeight"]
    with pytest.raises(InputError, match="BodyWeight: missing"):
        predictor.predict(bqml, affine, pet_sidecar=sidecar)
    pet = tmp_path / "sub-bq_pet.nii.gz"
    nib.save(nib.Nifti1Image(bqml.astype(np.float32), affine), pet)
    pet.with_name("sub-bq_pet.json").write_text(json.dumps(sidecar))
    bundle = str(predictor.bundle.path)
    assert main(["predict", "--bundle", bundle, "--pet", str(pet), "--out", str(tmp_path)]) == 2


def _assert_unanalysable(result, reason):
    assert result.qc_flag and result.qc_reasons[0].startswith(reason)
    assert result.indices.tsr is None and result.indices.tumour_ml is None
    assert set(result.indices.missing.values()) == {reason}
    row = result.to_row()
    assert row["tumour_suvmax"] is None and row["tbr_max"] is None


def test_qc_flags_no_head_failed_localisation_and_wrong_tracer_scale(brain_box, predictor):
    data, affine, _ = brain_box
    spot = np.zeros(data.shape)
    spot[20:23, 20:23, 20:23] = 5.0  # 1.7 mL: no brain
    result = predictor.predict(spot, affine, participant_id="sub-spot")
    _assert_unanalysable(result, "no_head")
    assert not result.labels.any()

    rng = np.random.default_rng(1)
    field = 1.0 + 0.1 * rng.random((80, 80, 80))  # 320 mm of uniform uptake: no head contrast
    _assert_unanalysable(predictor.predict(field, affine), "localisation_failed")

    sidecar = {"Modality": "PT", "TracerName": "FDOPA", "Units": "g/mL"}
    scaled = predictor.predict(data * 0.01, affine, pet_sidecar=sidecar)
    _assert_unanalysable(scaled, "tracer_scale")
    assert "SUVmax" in scaled.qc_reasons[0]


def test_a_tumour_drawn_where_the_scan_has_no_uptake_is_flagged_not_raised(
    brain_box, predictor, monkeypatch
):
    """A mask error (tumour on zero voxels of a scan with uptake) is a QC case, not bad input."""
    data, affine, box = brain_box
    pet, labels = data.copy(), box.labels.copy()
    labels[labels == 3] = 1
    corner = (slice(0, 3),) * 3
    pet[corner] = 0.0
    labels[corner] = 3  # the whole automatic tumour where the scan has no uptake
    decided = lambda probs, view, probabilities=False: (labels, None)  # noqa: E731
    monkeypatch.setattr(predictor, "decide", decided)
    result = predictor.predict(pet, affine, participant_id="sub-zero")
    _assert_unanalysable(result, "region_without_uptake")
    assert result.qc_reasons == ("region_without_uptake tumour: mean uptake 0",)
    np.testing.assert_array_equal(result.labels, labels)  # kept for the QC picture

    # The same region error from the indices alone is still bad input (exit 2 elsewhere).
    from fdopa.kinetics import compute_indices
    from fdopa.kinetics.validation import UnanalysableRegion

    with pytest.raises(UnanalysableRegion, match="tumour region's mean uptake is 0") as err:
        compute_indices(pet, labels, affine, "guideline")
    assert (err.value.region, err.value.mean, err.value.field) == ("tumour", 0.0, "voxels")
    assert isinstance(err.value, InputError)
    assert pickle.loads(pickle.dumps(err.value)).args == err.value.args  # worker processes


def test_a_tumour_whose_hottest_voxel_touches_the_striatum_is_flagged():
    pet = np.ones((12, 12, 12))
    labels = np.ones((12, 12, 12), np.uint8)
    labels[2:5, 2:5, 2:5] = 2  # striatum
    labels[5:9, 2:5, 2:5] = 3  # tumour next to it
    pet[labels == 3] = 2.0
    pet[8, 3, 3] = 3.0  # the hottest tumour voxel, three voxels from the striatum
    assert striatum_contact_reason(pet, labels) is None
    pet[5, 3, 3] = 4.0  # now at the striatum's edge (26-neighbourhood)
    reason = striatum_contact_reason(pet, labels)
    assert reason.startswith("tumour_max_at_striatum SUVmax 4 at voxel (5, 3, 3)")
    labels[labels == 3] = 1
    assert striatum_contact_reason(pet, labels) is None  # no tumour, nothing to flag


def test_a_striatum_with_a_tenth_outside_its_two_parts_is_flagged():
    labels = np.ones((20, 20, 20), np.uint8)
    assert striatum_stray_reason(labels) is None  # no striatum
    labels[4:7, 4:7, 8:11] = 2  # left striatum, 27 voxels
    assert striatum_stray_reason(labels) is None  # one part (e.g. the other side destroyed)
    labels[13:16, 4:7, 8:11] = 2  # right striatum, 27 voxels
    labels[9, 15, 2] = 2  # a stray voxel: 1 of 55, under a tenth
    assert striatum_stray_reason(labels) is None
    labels[8:10, 14:16, 2:4] = 2  # a stray part of 8 voxels (that voxel among them): 8 of 62
    reason = striatum_stray_reason(labels)
    assert reason.startswith("striatum_stray 13% of the striatum outside its two largest parts")
    labels[8:10, 14:16, 2:4] = 1
    labels[16:18, 7:9, 11:13] = 2  # the same 8 voxels touching the right part at a corner only:
    assert striatum_stray_reason(labels) is None  # one part with it (26-neighbourhood)


def test_a_tumour_no_hotter_than_healthy_brain_is_flagged_with_both_suvpeaks():
    zooms = (4.0, 4.0, 4.0)  # a 1 mL sphere here: the centre voxel and its 18 nearest
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[2:28, 2:28, 2:28] = 1
    labels[5:8, 5:8, 5:8] = 2  # striatum
    labels[18:22, 18:22, 18:22] = 3  # tumour, 4³ voxels: its inner voxels' spheres stay inside
    pet = np.where(labels > 0, 1.0, 0.0)
    pet[labels == 2] = 3.0
    pet[labels == 3] = 2.0
    assert pet_alone_reason(pet, labels, zooms) is None  # SUVpeak 2 against brain's 1

    cold = np.where(labels == 3, 1.0, pet)  # the tumour label on brain-like uptake
    reason = pet_alone_reason(cold, labels, zooms)
    assert reason.startswith("tumour_not_above_brain SUVpeak 1 <= 1 of healthy brain 12 mm")

    # a 3³ focus of 2.5 in healthy brain, 6 voxels (24 mm) from the tumour: its centre's
    # sphere lies inside it, so healthy brain's SUVpeak is 2.5, above the tumour's 2
    focus = pet.copy()
    focus[10:13, 20:23, 20:23] = 2.5
    reason = pet_alone_reason(focus, labels, zooms)
    assert reason.startswith("tumour_not_above_brain SUVpeak 2 <= 2.5 ")
    # the same focus beside the striatum, 4–12 mm from it (within the margin), is taken for
    # the striatum's spill-out, not healthy brain
    assert FOCUS_MARGIN_MM == 12.0
    beside = pet.copy()
    beside[8:11, 5:8, 5:8] = 2.5
    assert pet_alone_reason(beside, labels, zooms) is None

    labels[labels == 3] = 1
    assert pet_alone_reason(pet, labels, zooms) is None  # no tumour: missing_region says it
