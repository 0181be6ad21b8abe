"""The predictor: validation Dice reproduced, native grids, TTA, QC rules, bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from export_helpers import TINY_TUMOUR_RANGE, dice, write_flair_bundle, write_tiny_bundle
from nibabel.processing import resample_from_to

from fdopa.export.inputs import load_scan
from fdopa.export.metadata import tumour_ml_range
from fdopa.export.predictor import Predictor, tumour_dice
from fdopa.export.qc import review_reasons
from fdopa.kinetics import InputError, compute_indices
from fdopa.kinetics.io import load_inputs
from fdopa.layout import SubjectPaths


@pytest.fixture(scope="module")
def trained_predictor(trained):
    return Predictor.from_bundle(trained.bundle, crop=False)  # the whole volume, as validation


@pytest.fixture(scope="module")
def tiny_predictor(tiny_bundle):
    return Predictor(tiny_bundle[0])


def _save(path, data, affine, sidecar=None):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), path)
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    return path


@pytest.mark.slow
def test_prediction_reproduces_the_validation_dice(trained, trained_predictor):
    paths = SubjectPaths(trained.cohort, trained.val_id)
    prediction = trained_predictor.predict(paths.static_pet)
    reference = np.asarray(nib.load(paths.labels).dataobj)
    reported = trained_predictor.bundle.metadata["validation"]["metrics"]
    values = []
    for value, name in ((1, "brain"), (2, "striatum"), (3, "tumour")):
        values.append(dice(prediction.labels == value, reference == value))
        assert values[-1] == pytest.approx(reported[f"val/dice_{name}"], abs=1e-6), name
    assert np.nanmean(values) == pytest.approx(reported["val/dice"], abs=1e-6)
    assert values[0] > 0.3  # a trained network, not an empty map


@pytest.mark.slow
def test_labels_come_back_on_the_input_grid_for_other_orientations_and_spacings(
    trained, trained_predictor, tmp_path
):
    paths = SubjectPaths(trained.cohort, trained.val_id)
    image = nib.load(paths.static_pet)
    plain = trained_predictor.predict(paths.static_pet).labels

    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = image.shape[0] - 1  # LAS voxel i is RAS voxel n - 1 - i
    las_affine = image.affine @ flip
    flipped = trained_predictor.predict(image.get_fdata()[::-1], las_affine, participant_id="las")
    assert flipped.labels.shape == image.shape
    np.testing.assert_array_equal(flipped.labels, plain[::-1])

    shape3 = tuple(round(n * 4 / 3) for n in image.shape)
    affine3 = image.affine @ np.diag([0.75, 0.75, 0.75, 1.0])
    affine3[:3, 3] -= 0.5 * np.diag(image.affine)[:3] - 0.5 * np.diag(affine3)[:3]
    fine = resample_from_to(image, (shape3, affine3), order=1)
    path = _save(tmp_path / "sub-fine_pet.nii.gz", fine.get_fdata().astype(np.float32), affine3)
    on_3mm = trained_predictor.predict(path)
    written = nib.Nifti1Image(on_3mm.labels, on_3mm.affine)
    assert on_3mm.labels.shape == shape3
    np.testing.assert_allclose(written.affine, nib.load(path).affine, atol=1e-6)
    back = np.asarray(resample_from_to(written, image, order=0).dataobj)
    assert dice(back == 1, plain == 1) > 0.8

    # deciding on the 3 mm grid: the argmax of the linearly resampled probabilities, which
    # differs from the 4 mm labels carried by nearest neighbour along the boundaries only
    from fdopa.models.postprocess import PostProcess

    model_grid = PostProcess(native_grid=False)
    carried = Predictor(trained_predictor.bundle, crop=False, postprocess=model_grid).predict(
        path, probabilities=True
    )
    native = Predictor(
        trained_predictor.bundle, crop=False, postprocess=PostProcess(native_grid=True)
    )
    decided = native.predict(path, probabilities=True)
    np.testing.assert_array_equal(decided.probabilities, carried.probabilities)
    np.testing.assert_array_equal(decided.labels, carried.probabilities.argmax(axis=0))
    changed = decided.labels != carried.labels
    assert 0 < changed.mean() < 0.1
    assert dice(decided.labels == 1, carried.labels == 1) > 0.9  # 2 epochs: brain only


@pytest.mark.slow
def test_array_input_torchscript_tta_and_probabilities(paediatric_cohort, tiny_predictor):
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    image = nib.load(paths.static_pet)
    from_file = tiny_predictor.predict(paths.static_pet, probabilities=True)
    from_array = tiny_predictor.predict(image.get_fdata(), image.affine, participant_id="sub-pd001")
    np.testing.assert_array_equal(from_file.labels, from_array.labels)
    assert from_file.indices == from_array.indices
    np.testing.assert_allclose(from_file.probabilities.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(from_file.probabilities.argmax(axis=0), from_file.labels)

    scripted = Predictor(tiny_predictor.bundle, engine="torchscript").predict(paths.static_pet)
    np.testing.assert_array_equal(scripted.labels, from_file.labels)

    tta = Predictor(tiny_predictor.bundle, tta=True).predict(paths.static_pet)
    assert 0.0 <= tta.tta_disagreement <= 1.0
    assert from_file.tta_disagreement is None

    # the label decision with a tumour threshold, on the same probabilities (same grid here)
    from fdopa.models.postprocess import PostProcess, labels_from_probabilities

    rules = PostProcess(tumour_threshold=0.9)
    strict = Predictor(tiny_predictor.bundle, postprocess=rules).predict(paths.static_pet)
    expected = labels_from_probabilities(from_file.probabilities, 0.9)
    np.testing.assert_array_equal(strict.labels, expected)


def test_dynamic_scan_gives_tacs_and_the_indices_of_the_predicted_labels(
    paediatric_cohort, tiny_predictor
):
    ids = sorted(p.name for p in paediatric_cohort.glob("sub-*"))
    pid = next(i for i in ids if SubjectPaths(paediatric_cohort, i).dynamic_pet.exists())
    paths = SubjectPaths(paediatric_cohort, pid)
    prediction = tiny_predictor.predict(paths.static_pet, dynamic=paths.dynamic_pet)
    assert prediction.indices.tacs is not None
    assert "no_dynamic" not in prediction.indices.missing.values()
    inputs = load_inputs(paths.static_pet, paths.labels, paths.dynamic_pet)
    expected = compute_indices(
        inputs.static, prediction.labels, inputs.affine, "guideline", inputs.dynamic,
        inputs.frame_start_s, inputs.frame_duration_s, participant_id=pid,
    )  # fmt: skip
    assert prediction.indices == expected


def test_qc_flags_volume_outside_training_range_missing_regions_and_tta_disagreement(
    paediatric_cohort, tiny_predictor
):
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    inputs = load_inputs(paths.static_pet, paths.labels)
    indices = compute_indices(inputs.static, inputs.labels, inputs.affine, "guideline")
    low, high = TINY_TUMOUR_RANGE
    assert low <= indices.tumour_ml <= high
    bounds = tumour_ml_range(tiny_predictor.bundle.metadata)  # what the predictor checks
    assert bounds == pytest.approx(TINY_TUMOUR_RANGE)

    def qc_reasons(indices, disagreement, **kwargs):
        return review_reasons(
            indices, disagreement, tta_bound=0.2, tumour_ml_range=bounds, **kwargs
        )

    assert qc_reasons(indices, 0.1) == []
    assert qc_reasons(indices, 0.5) == ["tta_disagreement 0.500 > 0.2"]

    big = inputs.labels.copy()
    big[inputs.labels == 1] = 3
    huge = compute_indices(inputs.static, big, inputs.affine, "guideline")
    (reason,) = [r for r in qc_reasons(huge, None) if "volume" in r]
    assert reason.startswith(f"tumour_volume {huge.tumour_ml:.2f} mL outside the training range")

    empty = inputs.labels.copy()
    empty[empty == 3] = 1
    none = compute_indices(inputs.static, empty, inputs.affine, "guideline")
    assert qc_reasons(none, None) == ["missing_region tumour"]

    # a child's whole reference label map is one plausible brain; a face and neck labelled
    # as brain (a whole-head scan the model never saw) or half a brain is flagged
    voxel_ml = float(np.prod(np.abs(np.diag(inputs.affine)[:3]))) / 1000.0
    child_ml = int((inputs.labels > 0).sum()) * voxel_ml
    assert 900 < child_ml < 2000
    assert qc_reasons(indices, 0.1, labelled_ml=child_ml) == []
    for wrong in (3.0 * child_ml, 0.3 * child_ml):
        assert qc_reasons(indices, 0.1, labelled_ml=wrong) == [
            f"brain_volume {wrong:.0f} mL outside [700, 2200] mL"
        ]
    assert tumour_dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


SIDECAR = {"Modality": "PT", "TracerName": "FDOPA", "Units": "g/mL"}


@pytest.mark.parametrize("normalisation", ["zscore", "brain_ratio"])
def test_scale_blind_bundles_keep_the_suv_contract(paediatric_cohort, tmp_path, normalisation):
    """A network fed z-scores or ratios to the brain is blind to the PET's scale, but the
    indices are reported in SUV and QC checks the SUV scale: a Bq/mL scan is converted with its
    dose and weight, a scan in counts is refused, and an image 1000× too hot is not analysed."""
    bundle, _ = write_tiny_bundle(tmp_path / normalisation, normalisation=normalisation)
    spec = bundle.metadata["input"]
    assert spec["units"] == "g/mL"
    image = nib.load(SubjectPaths(paediatric_cohort, "sub-pd001").static_pet)
    suv, affine = image.get_fdata(), image.affine
    dose_mbq, weight_kg = 150.0, 35.0
    bqml = suv * dose_mbq * 1e6 / (weight_kg * 1000.0)  # SUV = C · W / D
    sidecar = {**SIDECAR, "Units": "Bq/mL", "InjectedRadioactivity": dose_mbq}
    sidecar["BodyWeight"] = weight_kg
    converted = load_scan(bqml, spec, affine, pet_sidecar=sidecar)
    np.testing.assert_allclose(converted.pet, suv, rtol=1e-6)
    with pytest.raises(InputError, match="Units"):
        load_scan(suv, spec, affine, pet_sidecar={**SIDECAR, "Units": "CNTS"})
    predictor = Predictor(bundle)
    hot = predictor.predict(suv * 1000.0, affine, pet_sidecar=SIDECAR, participant_id="sub-pd001")
    assert hot.qc_reasons[0].startswith("tracer_scale")
    assert hot.indices.tsr is None


def _bad_case(name, tmp_path, image):
    """The ``pet`` and keyword arguments of one bad-input case."""
    data, affine = image.get_fdata(), image.affine
    two_frames = np.stack([data, data], axis=-1)
    sidecar, pet, kwargs = dict(SIDECAR), data, {}
    if name == "bq_per_ml":
        sidecar["Units"] = "Bq/mL"
    elif name == "counts":
        sidecar["Units"] = "CNTS"
    elif name == "mr":
        sidecar["Modality"] = "MR"
    elif name == "fdg":
        sidecar["TracerName"] = "[18F]FDG"
    elif name == "no_units":
        del sidecar["Units"]
    elif name == "4d_static":
        pet = two_frames
    elif name.startswith("dynamic"):
        dynamic = data if name == "dynamic_3d" else two_frames
        timing = None if name == "dynamic_no_sidecar" else {"FrameTimesStart": [0, 60]}
        kwargs["dynamic"] = _save(tmp_path / "sub-x_pet.nii.gz", dynamic, affine, timing)
    if name == "array_no_affine":
        return data, {"affine": None}
    return _save(tmp_path / "sub-x_desc-static_pet.nii.gz", pet, affine, sidecar), kwargs


@pytest.mark.parametrize(
    ("name", "field", "problem"),
    [
        ("bq_per_ml", "InjectedRadioactivity", "missing; needed to convert Bq/mL to SUV"),
        ("counts", "Units", "'CNTS' contradicts the model's input units g/mL"),
        ("mr", "Modality", "'MR', but the model reads PT"),
        ("fdg", "TracerName", "'[18F]FDG', but the model is for FDOPA"),
        ("no_units", "Units", "missing; the model needs g/mL"),
        ("4d_static", "shape", "expected a 3-D image"),
        ("dynamic_3d", "shape", "expected a 4-D image"),
        ("dynamic_no_duration", "FrameDuration", "required with a dynamic image"),
        ("dynamic_no_sidecar", "FrameTimesStart", "missing: no dynamic sidecar"),
        ("array_no_affine", "affine", "required with an array image"),
    ],
)
def test_bad_input_raises_a_clear_error(paediatric_cohort, tiny_predictor, tmp_path, name, field,
                                        problem):  # fmt: skip
    image = nib.load(SubjectPaths(paediatric_cohort, "sub-pd001").static_pet)
    pet, kwargs = _bad_case(name, tmp_path, image)
    with pytest.raises(InputError) as raised:
        tiny_predictor.predict(pet, **kwargs)
    assert raised.value.field == field
    assert problem in raised.value.problem


def test_the_pet_alone_rule_runs_only_when_the_network_saw_no_flair(
    paediatric_cohort, tiny_predictor, tmp_path, monkeypatch
):
    import fdopa.export.predictor as predictor_module

    calls = []

    def rule(pet, labels, zooms):
        calls.append(zooms)
        return "tumour_not_above_brain (test)"

    monkeypatch.setattr(predictor_module, "pet_alone_reason", rule)
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    zooms = tuple(float(z) for z in nib.load(paths.static_pet).header.get_zooms()[:3])
    predictor = Predictor(write_flair_bundle(tmp_path / "dropout", {"flair": 0.3}))
    assert (
        "tumour_not_above_brain (test)"
        not in predictor.predict(paths.static_pet, flair=paths.flair).qc_reasons
    )
    assert calls == []
    alone = predictor.predict(paths.static_pet)
    assert alone.qc_flag and alone.qc_reasons[-1] == "tumour_not_above_brain (test)"
    assert calls == [zooms]
    # a PET-only network sees PET alone whatever else is given
    assert tiny_predictor.predict(paths.static_pet, flair=paths.flair).qc_reasons[-1] == (
        "tumour_not_above_brain (test)"
    )


def test_the_striatum_stray_rule_is_asked_with_and_without_flair(
    paediatric_cohort, tmp_path, monkeypatch
):
    import fdopa.export.predictor as predictor_module

    seen = []

    def rule(labels):
        seen.append(labels.shape)
        return "striatum_stray (test)"

    monkeypatch.setattr(predictor_module, "striatum_stray_reason", rule)
    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    predictor = Predictor(write_flair_bundle(tmp_path / "dropout", {"flair": 0.3}))
    for flair in (paths.flair, None):
        prediction = predictor.predict(paths.static_pet, flair=flair)
        assert "striatum_stray (test)" in prediction.qc_reasons
    assert seen == [nib.load(paths.static_pet).shape] * 2


def test_flair_is_optional_only_for_a_bundle_trained_with_flair_dropout(
    paediatric_cohort, tmp_path
):
    from fdopa.export.inputs import load_scan
    from fdopa.models.postprocess import PostProcess

    paths = SubjectPaths(paediatric_cohort, "sub-pd001")
    strict = Predictor(write_flair_bundle(tmp_path / "strict", {}))
    assert strict.required_channels == ("pet", "flair")
    with pytest.raises(ValueError, match="flair"):
        strict.predict(paths.static_pet)

    bundle = write_flair_bundle(tmp_path / "dropout", {"flair": 0.3})
    assert bundle.config.channel_dropout == {"flair": 0.3}  # read back from config.json
    predictor = Predictor(bundle)
    assert predictor.required_channels == ("pet",)
    assert predictor.tta
    assert predictor.postprocess == PostProcess(min_tumour_ml=0.5, tumour_threshold=0.7)
    assert not Predictor(bundle, tta=False, postprocess=PostProcess()).postprocess.active
    spec = predictor.input_spec
    absent, _ = predictor.model_input(load_scan(paths.static_pet, spec))
    given, _ = predictor.model_input(load_scan(paths.static_pet, spec, flair=paths.flair))
    assert not absent[1].any()  # the blank channel of training
    assert float(given[1].std()) > 0.1  # the z-scored FLAIR
    assert np.array_equal(absent[0].numpy(), given[0].numpy())
    prediction = predictor.predict(paths.static_pet)
    assert prediction.labels.shape == nib.load(paths.static_pet).shape
