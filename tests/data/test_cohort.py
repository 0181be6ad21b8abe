"""Cohort reader: the fixture cohort, and one broken file per validation rule."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from data_helpers import rewrite_nifti

from fdopa.data.cohort import CohortError, canonical_shape, load_cohort
from fdopa.kinetics.cohort_indices import cohort_participants
from fdopa.layout import SubjectPaths

PID = "sub-pd003"


def test_reads_fixture_cohort(paediatric_cohort, paediatric_config):
    subjects = load_cohort(paediatric_cohort, channels=("pet", "flair"))

    assert [s.participant_id for s in subjects] == paediatric_config.participant_ids()
    for s in subjects:
        assert s.static_pet.is_file() and s.labels.is_file() and s.flair.is_file()
        assert s.labels.parent.parent == paediatric_cohort / "derivatives" / "labels"
        assert (s.dynamic_pet is None) == (s.dynamic_sidecar is None)
        assert s.participant["participant_id"] == s.participant_id
        assert s.participant["grade"] in {"HGG", "LGG"}
        assert s.pet_units == "g/mL"
        assert s.shape == (44, 52, 44)  # 176 x 208 x 176 mm at 4 mm
    dynamic = [s for s in subjects if s.dynamic_pet is not None]
    assert len(dynamic) == 4  # dynamic_fraction 0.5 of 8
    assert all(s.dynamic_pet.is_file() and s.dynamic_sidecar.is_file() for s in dynamic)
    table = pd.read_csv(paediatric_cohort / "participants.tsv", sep="\t")
    expected_dynamic = set(table.loc[table["dynamic"] == 1, "participant_id"])
    assert {s.participant_id for s in dynamic} == expected_dynamic


def test_labels_from_another_derivative(paediatric_cohort):
    subjects = load_cohort(paediatric_cohort, labels_from="derivatives/manual")
    assert all(
        s.labels == SubjectPaths(paediatric_cohort, s.participant_id).manual_labels
        for s in subjects
    )


def test_missing_labels_allowed_for_prediction(cohort_copy):
    SubjectPaths(cohort_copy, PID).labels.unlink()
    subjects = {s.participant_id: s for s in load_cohort(cohort_copy, require_labels=False)}
    assert subjects[PID].labels is None
    assert all(s.labels is not None for pid, s in subjects.items() if pid != PID)


def test_canonical_shape_permutes_axes():
    # stored as (z, x, y) -> RAS+ shape (x, y, z)
    affine = np.array([[0, 2, 0, 0], [0, 0, 3, 0], [4, 0, 0, 0], [0, 0, 0, 1]], float)
    image = nib.Nifti1Image(np.zeros((5, 6, 7), np.float32), affine)
    assert canonical_shape(image) == (6, 7, 5)


# --- every validation rule: (break the copy, load kwargs, substrings of the message) --------


def _drop_column(root: Path) -> None:
    path = root / "participants.tsv"
    pd.read_csv(path, sep="\t").drop(columns="grade").to_csv(path, sep="\t", index=False)


def _repeat_row(root: Path) -> None:
    path = root / "participants.tsv"
    table = pd.read_csv(path, sep="\t")
    pd.concat([table, table.iloc[[2]]]).to_csv(path, sep="\t", index=False)


def _unprefixed_id(root: Path) -> None:
    path = root / "participants.tsv"
    table = pd.read_csv(path, sep="\t")
    table.loc[2, "participant_id"] = PID.removeprefix("sub-")
    table.to_csv(path, sep="\t", index=False)


def _label_five(root: Path) -> None:
    path = SubjectPaths(root, PID).labels
    data = np.asarray(nib.load(path).dataobj).copy()
    data[20, 20, 20] = 5
    rewrite_nifti(path, data)


def _shift_pet(root: Path) -> None:
    path = SubjectPaths(root, PID).static_pet
    affine = nib.load(path).affine.copy()
    affine[0, 3] += 2.0
    rewrite_nifti(path, affine=affine)


def _crop_flair(root: Path) -> None:
    path = SubjectPaths(root, PID).flair
    rewrite_nifti(path, np.asarray(nib.load(path).dataobj)[:-1])


def _first_dynamic(root: Path) -> SubjectPaths:
    table = pd.read_csv(root / "participants.tsv", sep="\t")
    return SubjectPaths(root, table.loc[table["dynamic"] == 1, "participant_id"].iloc[0])


BROKEN = {
    "no participants.tsv": (
        lambda r: (r / "participants.tsv").unlink(), {}, ["participants.tsv", "missing"]),
    "no column": (_drop_column, {"required_columns": ("grade",)}, ["participants.tsv", "grade"]),
    "repeated id": (_repeat_row, {}, ["participants.tsv", "participant_id", PID]),
    "id without sub-": (_unprefixed_id, {}, ["participants.tsv", "participant_id", "'pd003'"]),
    "no static PET": (
        lambda r: SubjectPaths(r, PID).static_pet.unlink(), {},
        [f"{PID}_desc-static_pet.nii.gz", "static PET"]),
    "no labels": (
        lambda r: SubjectPaths(r, PID).labels.unlink(), {}, [f"{PID}_dseg.nii.gz", "label map"]),
    "no FLAIR": (
        lambda r: SubjectPaths(r, PID).flair.unlink(), {"channels": ("pet", "flair")},
        [f"{PID}_FLAIR.nii.gz", "FLAIR"]),
    "label value 5": (_label_five, {}, [f"{PID}_dseg.nii.gz", "label values [5]"]),
    "PET affine": (
        _shift_pet, {}, [f"{PID}_desc-static_pet.nii.gz", f"{PID}_dseg.nii.gz", "affine", "2 mm"]),
    "FLAIR shape": (
        _crop_flair, {}, [f"{PID}_FLAIR.nii.gz", f"{PID}_desc-static_pet.nii.gz", "shape"]),
    "no dynamic sidecar": (
        lambda r: _first_dynamic(r).dynamic_sidecar.unlink(), {}, ["_pet.json", "sidecar"]),
}  # fmt: skip


@pytest.mark.parametrize("case", BROKEN)
def test_validation_error_names_file_and_field(cohort_copy, case):
    breaker, kwargs, expected = BROKEN[case]
    breaker(cohort_copy)
    with pytest.raises(CohortError) as error:
        load_cohort(cohort_copy, **kwargs)
    for text in expected:
        assert text in str(error.value)


@pytest.mark.parametrize("breaker", [_repeat_row, _unprefixed_id])
def test_indices_read_participants_by_the_same_rules(cohort_copy, breaker):
    breaker(cohort_copy)
    with pytest.raises(CohortError, match=r"participants\.tsv: participant_id"):
        cohort_participants(cohort_copy)


def test_every_problem_reported_at_once(cohort_copy):
    SubjectPaths(cohort_copy, "sub-pd001").labels.unlink()
    _label_five(cohort_copy)
    sidecar = SubjectPaths(cohort_copy, "sub-pd002").static_sidecar
    sidecar.write_text("{not json")
    with pytest.raises(CohortError, match="3 problem") as error:
        load_cohort(cohort_copy)
    message = str(error.value)
    assert "sub-pd001_dseg.nii.gz" in message and f"{PID}_dseg.nii.gz" in message
    assert sidecar.name in message


def test_units_read_from_static_sidecar(cohort_copy):
    sidecar = SubjectPaths(cohort_copy, PID).static_sidecar
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "Units": "Bq/mL"}))
    SubjectPaths(cohort_copy, "sub-pd001").static_sidecar.unlink()
    units = {s.participant_id: s.pet_units for s in load_cohort(cohort_copy)}
    assert units[PID] == "Bq/mL" and units["sub-pd001"] is None and units["sub-pd002"] == "g/mL"


def test_unknown_channel(paediatric_cohort):
    with pytest.raises(ValueError, match="channels"):
        load_cohort(paediatric_cohort, channels=("pet", "ct"))
