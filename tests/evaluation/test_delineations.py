"""The semi-automatic delineation on a phantom with a known answer, and per-method indices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import AFFINE, phantom

from fdopa.evaluation.delineations import cohort_method_indices, semi_automatic_labels
from fdopa.kinetics import compute_indices, derive_regions, get_preset


def test_semi_automatic_tumour_is_the_thresholded_dilated_manual_tumour():
    labels, pet = phantom()
    manual = labels.copy()
    manual[13:17, 2:6, 11] = 1  # the operator missed the last slice of the tumour
    preset = get_preset("guideline")
    reference = derive_regions(manual, AFFINE, preset).reference
    assert np.isclose(pet[reference].mean(), 1.0)  # threshold 1.6 × 1.0
    semi = semi_automatic_labels(pet, manual, AFFINE, preset, dilation_mm=4.0)
    hot = pet >= 1.6
    within = np.zeros_like(hot)
    within[12:18, 1:7, 7:13] = True  # one 4 mm voxel around the manual tumour (face/edge)
    expected = hot & (labels == 1) | (labels == 3)
    assert ((semi == 3) <= (expected & within)).all()
    assert (semi == 3)[labels == 3].all()  # the missed slice is recovered
    assert ((semi == 3) & (labels == 1)).any()  # and the hot rim added
    assert (semi[labels == 2] == 2).all() and (semi[labels == 0] == 0).all()
    assert set(np.unique(semi[(manual == 3) & (semi != 3)])) <= {1}
    no_margin = semi_automatic_labels(pet, labels, AFFINE, preset, dilation_mm=0.0)
    np.testing.assert_array_equal(no_margin == 3, labels == 3)
    strict = semi_automatic_labels(pet, labels, AFFINE, preset, threshold=3.5)
    assert not (strict == 3).any()
    assert compute_indices(pet, strict, AFFINE, preset).missing["tsr"] == "tumour_empty"


def test_semi_automatic_needs_a_manual_tumour():
    labels, pet = phantom()
    with pytest.raises(ValueError, match="no tumour"):
        semi_automatic_labels(pet, np.where(labels == 3, 1, labels), AFFINE)


def test_cohort_method_indices_of_the_fixture_cohort(paediatric_cohort):
    ids = ["sub-pd001", "sub-pd003"]
    methods = cohort_method_indices(
        paediatric_cohort, "guideline", participants=ids, auto_labels="derivatives/manual"
    )
    assert list(methods) == ["automatic", "reference", "manual", "semi-automatic"]
    for table in methods.values():
        assert table["participant_id"].tolist() == ids
        assert table["error"].isna().all()
    pd.testing.assert_frame_equal(methods["automatic"], methods["manual"])
    semi = methods["semi-automatic"]
    # Every semi-automatic tumour voxel passed 1.6 × the manual labels' reference mean; MTV uses
    # the reference of the new labels, a little different, so MTV ≈ the tumour volume.
    np.testing.assert_allclose(semi["mtv_ml"], semi["tumour_ml"], rtol=0.05)
    only = cohort_method_indices(paediatric_cohort, participants=ids, methods=["reference"])
    assert list(only) == ["reference"]


def test_automatic_labels_in_the_flat_predict_layout_relative_to_the_current_folder(
    paediatric_cohort, tmp_path, monkeypatch
):
    """``fdopa predict --cohort`` writes ``<static PET stem>_dseg.nii.gz`` into one folder."""
    import shutil

    from fdopa.layout import SubjectPaths

    ids = ["sub-pd001", "sub-pd002"]
    flat = tmp_path / "predicted"
    flat.mkdir()
    for pid in ids:
        paths = SubjectPaths(paediatric_cohort, pid)
        stem = paths.static_pet.name.removesuffix(".nii.gz")
        shutil.copy(paths.labels, flat / f"{stem}_dseg.nii.gz")
    monkeypatch.chdir(tmp_path)
    methods = cohort_method_indices(
        paediatric_cohort,
        participants=ids,
        auto_labels="predicted",
        methods=["automatic", "reference"],
    )
    assert methods["automatic"]["error"].isna().all()
    # the copies of the reference labels give exactly the reference indices
    pd.testing.assert_frame_equal(methods["automatic"], methods["reference"])
