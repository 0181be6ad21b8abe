"""Fixtures of the hospital tests: synthetic subjects written as DICOM by three scanner families.

``dicom_export`` turns three subjects of the session's ``paediatric_cohort`` (tiny 4 mm grid)
into one DICOM folder — a dynamic subject as ``siemens`` (multi-frame, START), a dynamic subject
as ``ge`` (one series per frame — its first 12 frames only, to keep the test fast —, ADMIN,
slices head → feet, in-plane voxels halved), a static
subject as ``philips`` (CNTS with the Philips scale factors) — each with its FLAIR moved by a
known rigid motion and written as an oblique MR series. ``imported`` is that folder after
``fdopa import``. Both are read-only.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from dicom_writer import FAMILIES, Patient, rigid, upsample_in_plane, write_mr, write_pet

from fdopa.hospital.importer import ImportOptions, import_dicom
from fdopa.hospital.plan import pseudonym
from fdopa.layout import SubjectPaths

KEY = "test-key"
MOTIONS = {
    "siemens": ((10.0, -6.0, 4.0), (15.0, -12.0, 8.0)),
    "ge": ((-7.0, 9.0, -10.0), (-10.0, 14.0, -15.0)),
    "philips": ((5.0, 10.0, -8.0), (-15.0, -9.0, 12.0)),
}


def _pick(root: Path) -> dict[str, str]:
    """Family → participant: two dynamic subjects and one static one."""
    import pandas as pd

    table = pd.read_csv(root / "participants.tsv", sep="\t")
    dynamic = sorted(table.loc[table["dynamic"] == 1, "participant_id"])
    static = sorted(table.loc[table["dynamic"] == 0, "participant_id"])
    return {"siemens": dynamic[0], "ge": dynamic[1], "philips": static[0]}


def write_subject_dicom(
    folder: Path,
    root: Path,
    pid: str,
    family: str,
    patient: Patient,
    *,
    upsample: bool = False,
    frames: int | None = None,
) -> np.ndarray:
    """Write one synthetic subject's PET (+ dynamic) and moved FLAIR; return the motion."""
    paths = SubjectPaths(root, pid)
    static = nib.load(paths.static_pet)
    sidecar = json.loads(paths.static_sidecar.read_text())
    data, affine = static.get_fdata(), static.affine
    if upsample:
        data, affine = upsample_in_plane(data, affine)
    spec = FAMILIES[family]
    write_pet(
        folder / "static",
        data,
        affine,
        sidecar["FrameTimesStart"],
        sidecar["FrameDuration"],
        patient,
        spec,
        number=2,
        description="PET Brain static",
    )
    if paths.dynamic_pet.exists():
        dynamic = nib.load(paths.dynamic_pet)
        data4d, frame_affine = dynamic.get_fdata(), dynamic.affine
        if upsample:
            data4d, frame_affine = upsample_in_plane(data4d, frame_affine)
        timing = json.loads(paths.dynamic_sidecar.read_text())
        keep = slice(0, frames)
        write_pet(
            folder / "dynamic",
            data4d[..., keep],
            frame_affine,
            timing["FrameTimesStart"][keep],
            timing["FrameDuration"][keep],
            patient,
            spec,
            number=10,
            description="PET Brain dynamic",
        )
    flair = nib.load(paths.flair)
    rotation, translation = MOTIONS[family]
    motion = rigid(rotation, translation, centre=(0.0, -17.0, 5.0))
    write_mr(folder / "mr", flair.get_fdata(), motion @ flair.affine, patient)
    return motion


@pytest.fixture(scope="session")
def dicom_export(tmp_path_factory, paediatric_cohort) -> SimpleNamespace:
    """A DICOM export of three subjects (see the module docstring).

    Attributes: ``folder``, ``cohort`` (the synthetic source), ``subjects`` (family →
    ``SimpleNamespace(pid, patient, motion, new_id, upsampled, frames)``; ``frames`` is the
    number of dynamic frames written, None for all).
    """
    folder = tmp_path_factory.mktemp("dicom") / "export"
    subjects = {}
    for i, (family, pid) in enumerate(_pick(paediatric_cohort).items()):
        row = json.loads(SubjectPaths(paediatric_cohort, pid).static_sidecar.read_text())
        patient = Patient(
            f"PAT{i:05d}",
            name=f"DOE^CHILD{i}",
            weight_kg=row["BodyWeight"],
            dose_mbq=row["InjectedRadioactivity"],
        )
        upsampled = family == "ge"
        frames = 12 if family == "ge" else None
        motion = write_subject_dicom(
            folder / f"patient{i}",
            paediatric_cohort,
            pid,
            family,
            patient,
            upsample=upsampled,
            frames=frames,
        )
        subjects[family] = SimpleNamespace(
            pid=pid,
            patient=patient,
            motion=motion,
            new_id=pseudonym(patient.patient_id, KEY),
            upsampled=upsampled,
            frames=frames,
        )
    (folder / "README.txt").write_text("not DICOM\n")
    return SimpleNamespace(folder=folder, cohort=paediatric_cohort, subjects=subjects)


@pytest.fixture(scope="session")
def imported(tmp_path_factory, dicom_export) -> SimpleNamespace:
    """``dicom_export`` imported into a new cohort: ``root`` and the ``outcomes``."""
    root = tmp_path_factory.mktemp("imported") / "cohort"
    outcomes = import_dicom(dicom_export.folder, root, ImportOptions(key=KEY))
    return SimpleNamespace(root=root, outcomes=outcomes)
