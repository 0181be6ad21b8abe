"""Header variants of DICOM PET: the supported ones round-trip, the bad ones fail in one line.

One small export holds a good patient, header variants that must import exactly (decay
correction NONE, timing from FrameReferenceTime only, Philips SUV factor only, sagittal slices,
a dynamic series without a static one) and broken patients that must each fail with one line
naming the series and the tag, leaving nothing behind while the others are imported.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_writer import FAMILIES, Patient, write_pet

from fdopa.cli import main
from fdopa.hospital.importer import ImportOptions, import_dicom
from fdopa.hospital.plan import pseudonym
from fdopa.layout import SubjectPaths

KEY = "variants"
SERIES = 'series 2 "PET Brain static"'
WINDOW = ([600.0], [1200.0])


def _volume() -> tuple[np.ndarray, np.ndarray]:
    grid = np.indices((16, 18, 14)).astype(float)
    centre = np.array([8.0, 9.0, 6.0])[:, None, None, None]
    blob = np.exp(-((grid - centre) ** 2).sum(axis=0) / 30.0)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = (-30.0, -40.0, -20.0)
    return (0.5 + 3.0 * blob).astype(np.float32), affine


def _edit(folder: Path, change) -> None:
    """Apply ``change(dataset, index)`` to every file of a folder (sorted) and save it.

    A change returning ``"delete"`` removes the file instead.
    """
    for index, path in enumerate(sorted(folder.rglob("*.dcm"))):
        dataset = pydicom.dcmread(path)
        if change(dataset, index) == "delete":
            path.unlink()
        else:
            dataset.save_as(path)


def _drop(keyword):
    def change(ds, _):
        if keyword in ("RadionuclideTotalDose", "RadiopharmaceuticalStartDateTime"):  # nested
            delattr(ds.RadiopharmaceuticalInformationSequence[0], keyword)
        else:
            delattr(ds, keyword)

    return change


def _set(keyword, value, only=None):
    def change(ds, index):
        if only is None or index == only:
            setattr(ds, keyword, value)

    return change


def _tilt(ds, _):
    position = [float(v) for v in ds.ImagePositionPatient]
    position[1] += 0.27 * position[2]  # 15° shear of the slice stack
    ds.ImagePositionPatient = position


def _gap(middle: bool):
    def change(ds, index):
        if index == 6:
            return "delete"
        if not middle:
            ds.NumberOfSlices = 13
        return None

    return change


#: PatientID → (edit, expected tag in the message)
BROKEN = {
    "NODOSE": (_drop("RadionuclideTotalDose"), "RadionuclideTotalDose (0018,1074)"),
    "NOWEIGHT": (_drop("PatientWeight"), "PatientWeight (0010,1030)"),
    "CNTS": (_set("Units", "CNTS"), "Units (0054,1001)"),
    "MIXED": (
        _set("ImageOrientationPatient", [0, 1, 0, 0, 0, -1], only=5),
        "ImageOrientationPatient (0020,0037)",
    ),
    "MISSING": (_gap(middle=True), "NumberOfSlices (0054,0081)"),
    "GAP": (_gap(middle=False), "ImagePositionPatient (0020,0032)"),
    "NORADIO": (
        _drop("RadiopharmaceuticalInformationSequence"),
        "RadiopharmaceuticalInformationSequence (0054,0016)",
    ),
    "CONTRA": (_set("DecayCorrection", "NONE"), "CorrectedImage (0028,0051)"),
    "TILT": (_tilt, "GantryDetectorTilt (0018,1120)"),
    "NOINJ": (
        _drop("RadiopharmaceuticalStartDateTime"),
        "RadiopharmaceuticalStartTime (0018,1072)",
    ),
}


def _write_good(folder: Path, patient_id: str, family: str = "siemens", **kwargs) -> Patient:
    volume, affine = _volume()
    patient = Patient(patient_id, weight_kg=27.0, dose_mbq=108.0)
    spec = kwargs.pop("spec", FAMILIES[family])
    write_pet(
        folder / patient_id,
        volume,
        affine,
        *WINDOW,
        patient,
        spec,
        number=2,
        description="PET Brain static",
        **kwargs,
    )
    return patient


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> SimpleNamespace:
    """The export and its import into a new cohort."""
    folder = tmp_path_factory.mktemp("variants") / "export"
    _write_good(folder, "GOOD")
    _write_good(folder, "NONE", spec=replace(FAMILIES["siemens"], decay="NONE"))
    _write_good(folder, "FRT")
    _edit(
        folder / "FRT",
        lambda ds, _: (delattr(ds, "AcquisitionTime"), delattr(ds, "AcquisitionDate")),
    )
    _write_good(folder, "PHSUV", "philips")
    _edit(folder / "PHSUV", lambda ds, _: ds.__delitem__(0x70531009))
    volume, affine = _volume()
    sagittal = np.transpose(volume, (1, 2, 0))  # slices along x
    sagittal_affine = affine[:, [1, 2, 0, 3]]
    write_pet(
        folder / "SAG",
        sagittal,
        sagittal_affine,
        *WINDOW,
        Patient("SAG", weight_kg=27.0, dose_mbq=108.0),
        FAMILIES["siemens"],
        number=2,
        description="PET Brain static",
        reorient=False,
    )
    frames = np.stack([volume * s for s in (0.5, 1.0, 2.0)], axis=-1)
    write_pet(
        folder / "DYNONLY",
        frames,
        affine,
        [0.0, 600.0, 1200.0],
        [600.0] * 3,
        Patient("DYNONLY", weight_kg=27.0, dose_mbq=108.0),
        FAMILIES["siemens"],
        number=2,
        description="PET Brain dynamic",
    )
    for patient_id, (change, _) in BROKEN.items():
        _write_good(folder, patient_id)
        _edit(folder / patient_id, change)
    root = tmp_path_factory.mktemp("variants_out") / "cohort"
    outcomes = {o.participant_id: o for o in import_dicom(folder, root, ImportOptions(key=KEY))}
    return SimpleNamespace(
        folder=folder, root=root, outcomes=outcomes, volume=volume, affine=affine
    )


def _outcome(export, patient_id):
    return export.outcomes[pseudonym(patient_id, KEY)]


@pytest.mark.parametrize("patient_id", ["GOOD", "NONE", "FRT", "PHSUV", "SAG"])
def test_supported_variants_round_trip(export, patient_id):
    assert _outcome(export, patient_id).error is None
    paths = SubjectPaths(export.root, pseudonym(patient_id, KEY))
    image = nib.load(paths.static_pet)
    np.testing.assert_allclose(image.affine, export.affine, atol=1e-4)
    assert np.abs(image.get_fdata() - export.volume).max() <= 1e-4 * export.volume.max()
    sidecar = json.loads(paths.static_sidecar.read_text())
    assert sidecar["FrameTimesStart"] == pytest.approx(
        [600.0], abs=1e-3 if patient_id == "FRT" else 1e-6
    )
    assert sidecar["FrameDuration"] == [1200.0]


def test_static_from_dynamic_frames(export):
    paths = SubjectPaths(export.root, pseudonym("DYNONLY", KEY))
    static = nib.load(paths.static_pet).get_fdata()
    np.testing.assert_allclose(
        static, 1.5 * export.volume, rtol=1e-4, atol=1e-4 * export.volume.max()
    )
    assert json.loads(paths.static_sidecar.read_text())["FrameTimesStart"] == [600.0]
    assert json.loads(paths.dynamic_sidecar.read_text())["FrameTimesStart"] == [0.0, 600.0, 1200.0]


@pytest.mark.parametrize("patient_id", sorted(BROKEN))
def test_broken_headers_fail_in_one_line(export, patient_id):
    error = _outcome(export, patient_id).error
    assert error is not None and "\n" not in error
    assert BROKEN[patient_id][1] in error
    assert SERIES in error
    assert not (export.root / pseudonym(patient_id, KEY)).exists()


def test_dose_in_mbq_is_refused(tmp_path):
    _write_good(tmp_path / "in", "MBQ2")
    _edit(
        tmp_path / "in",
        lambda ds, _: setattr(
            ds.RadiopharmaceuticalInformationSequence[0], "RadionuclideTotalDose", 108.0
        ),
    )
    (outcome,) = import_dicom(tmp_path / "in", tmp_path / "out", ImportOptions(key=KEY))
    assert "RadionuclideTotalDose (0018,1074): 108 Bq is implausibly small" in outcome.error
    assert not (tmp_path / "out").exists(), "a cohort without any subject was created"


def test_cli_summary_exit_codes_and_adding_to_a_cohort(export, tmp_path, capsys):
    out = tmp_path / "cohort"
    good = tmp_path / "good"
    shutil.copytree(export.folder / "GOOD", good / "GOOD")
    assert main(["import", str(good), "--out", str(out), "--key", KEY]) == 0
    assert main(["import", str(export.folder / "NONE"), "--out", str(out), "--key", KEY]) == 0
    table = (out / "participants.tsv").read_text()
    assert pseudonym("GOOD", KEY) in table and pseudonym("NONE", KEY) in table
    capsys.readouterr()
    assert main(["import", str(export.folder / "CNTS"), "--out", str(out), "--key", KEY]) == 1
    printed = capsys.readouterr()
    assert "FAILED" in printed.out and "0/1" in printed.out
    assert main(["import", str(good), "--out", str(out), "--key", KEY]) == 1  # already there
    assert main(["import", str(good), "--out", str(out), "--key", KEY, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("sub-")) == sorted(
        [pseudonym("GOOD", KEY), pseudonym("NONE", KEY)]
    )
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["import", str(good), "--out", str(foreign)]) == 2
    assert "not an fdopa cohort" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"


def test_mapping_file(export, tmp_path):
    mapping = tmp_path / "map.csv"
    mapping.write_text("PatientID,participant_id,grade\nGOOD,sub-h001,LGG\nNONE,h002,HGG\n")
    outcomes = import_dicom(export.folder / "GOOD", tmp_path / "a", ImportOptions(mapping=mapping))
    assert [o.participant_id for o in outcomes] == ["sub-h001"]
    table = (tmp_path / "a" / "participants.tsv").read_text().splitlines()
    header = table[0].split("\t")
    assert table[1].split("\t")[header.index("grade")] == "LGG"
    outcomes = import_dicom(export.folder / "SAG", tmp_path / "b", ImportOptions(mapping=mapping))
    assert "PatientID (0010,0020)" in outcomes[0].error


def test_patient_with_two_pet_studies(tmp_path):
    volume, affine = _volume()
    for visit in ("first", "second"):  # same PatientID, a new StudyInstanceUID each
        write_pet(
            tmp_path / "in" / visit,
            volume,
            affine,
            *WINDOW,
            Patient("TWICE", weight_kg=27.0, dose_mbq=108.0),
            FAMILIES["siemens"],
            number=2,
        )
    outcomes = import_dicom(tmp_path / "in", tmp_path / "a", ImportOptions(key=KEY))
    ids = sorted(o.participant_id for o in outcomes)
    assert [o.error for o in outcomes] == [None, None]
    assert len(set(ids)) == 2 and all(i.startswith(pseudonym("TWICE", KEY) + "s") for i in ids)
    mapping = tmp_path / "map.tsv"
    mapping.write_text("PatientID\tparticipant_id\nTWICE\tsub-t01\n")
    outcomes = import_dicom(tmp_path / "in", tmp_path / "b", ImportOptions(mapping=mapping))
    assert all(
        "2 PET studies map to sub-t01; add StudyInstanceUID or StudyDate" in o.error
        for o in outcomes
    )
    assert not (tmp_path / "b").exists()
