"""A folder of DICOM → the fdopa cohort layout: SUV PET, sidecars, co-registered FLAIR.

One participant per patient and PET study. For each:

1. its PET and FLAIR are read (:mod:`fdopa.hospital.study`: the PT series classified into the
   static and the dynamic scan and converted to SUVbw decay-corrected to the injection, with
   PET-BIDS sidecars) and the PET written as float32 NIfTI in the closest RAS+ voxel order;
2. a FLAIR series of the same patient (the same study first, else the nearest in date; the
   finest when several) is registered rigidly to the static PET by mutual information
   (:func:`fdopa.hospital.registration.register_rigid`) and resampled to the PET grid as the
   ``flair`` channel; the transform (ITK ``.tfm``) and a QC picture (FLAIR edges over the PET)
   go to ``derivatives/registration/<id>/``.

Which participants a folder holds, the FLAIR of each and their ids (a mapping file or a keyed
pseudonym of the ``PatientID``: no patient name or id is ever written) is planned by
:func:`fdopa.hospital.plan.plan_studies`.

Nothing half-written: a new cohort is built in a hidden sibling folder and renamed into place;
each subject is written into a hidden folder and renamed into the cohort only when complete, so
a failed subject leaves nothing and the others carry on; ``participants.tsv`` is replaced
atomically. Inputs are only read.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from fdopa import __version__
from fdopa.hospital.dicom import scan_folder
from fdopa.hospital.plan import StudyPlan, plan_studies
from fdopa.hospital.qc import edges_png
from fdopa.hospital.registration import ras_matrix, register_rigid, resample
from fdopa.hospital.study import read_flair, read_pet
from fdopa.layout import (
    PARTICIPANTS,
    REGISTRATION_DIR,
    SubjectPaths,
    read_participants,
)
from fdopa.outputs import is_artefact, staged_dir, write_nifti, write_text_atomic

__all__ = ["ImportOptions", "ImportOutcome", "import_dicom"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportOptions:
    """Options of :func:`import_dicom`.

    Attributes:
        mapping: Mapping file (CSV/TSV) from ``PatientID`` to ``participant_id``, or None for
            keyed pseudonyms.
        key: Secret key of the pseudonyms (keep it: the same key gives the same ids).
        static_window_s: Window (s after injection) of a static image made from dynamic frames.
        register: Register the FLAIR to the PET (else resample it by its world coordinates,
            for scanners that acquire both in one frame of reference, e.g. PET/MR).
        overwrite: Replace participants already in the cohort.
    """

    mapping: Path | None = None
    key: str = ""
    static_window_s: tuple[float, float] = (600.0, 1800.0)
    register: bool = True
    overwrite: bool = False


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one participant (a row of the summary table; no patient data).

    Attributes:
        participant_id: BIDS label.
        error: ``<where>: <tag>: <problem>`` on failure, else None.
        static: Description of the static image (frame window), empty on failure.
        dynamic: Number of dynamic frames (0 without).
        flair: ``registered``, ``resampled``, ``none`` (or empty on failure).
        suv: How SUV was obtained.
        seconds: Wall time.
    """

    participant_id: str
    error: str | None = None
    static: str = ""
    dynamic: int = 0
    flair: str = ""
    suv: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the participant was imported."""
        return self.error is None


# --- writing -------------------------------------------------------------------------------------


def _json(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _age(header: Any) -> float | None:
    raw = str(header.get("PatientAge", "") or "")
    match = re.fullmatch(r"(\d{3})([DWMY])", raw)
    if match:
        return round(int(match[1]) / {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[match[2]], 2)
    return None


def write_subject(
    staging: Path, plan: StudyPlan, options: ImportOptions
) -> tuple[dict[str, Any], ImportOutcome]:
    """Read, convert, register and write one participant under ``staging`` (a cohort root).

    Returns:
        ``(row, outcome)``: the ``participants.tsv`` row and the summary row.
    """
    begin = time.perf_counter()
    pid = plan.participant_id
    pet = read_pet(plan, options.static_window_s)
    paths = SubjectPaths(staging, pid)
    write_nifti(paths.static_pet, pet.static, pet.affine)
    _json(paths.static_sidecar, pet.static_sidecar)
    if pet.dynamic is not None and pet.dynamic_sidecar is not None:
        write_nifti(paths.dynamic_pet, pet.dynamic, pet.affine, seconds=True)
        _json(paths.dynamic_sidecar, pet.dynamic_sidecar)
    flair_state = "none"
    if plan.flair is not None:
        volume, flair_affine = read_flair(plan.flair)
        xfm = paths.flair_to_pet
        xfm.parent.mkdir(parents=True, exist_ok=True)
        if options.register:
            result = register_rigid(pet.static, pet.affine, volume, flair_affine)
            transform: sitk.Transform = result.transform
            flair_state = "registered"
            metric = {
                "metric": "Mattes mutual information",
                "value": result.metric,
                "seconds": round(result.seconds, 2),
            }
        else:
            transform, flair_state, metric = sitk.Euler3DTransform(), "resampled", {}
        on_pet = resample(volume, flair_affine, transform, pet.static.shape, pet.affine)
        write_nifti(paths.flair, on_pet, pet.affine)
        sitk.WriteTransform(transform, str(xfm))
        _json(
            xfm.with_suffix(".json"),
            {
                "Description": "ITK transform (LPS): PET world points → FLAIR world points",
                "Type": "rigid" if options.register else "identity",
                "MatrixRAS": np.round(ras_matrix(transform), 8).tolist(),
                "FLAIRSeries": plan.flair.description,
                **metric,
            },
        )
        edges_png(
            xfm.with_name(f"{pid}_desc-flair2pet_qc.png"),
            pet.static,
            on_pet,
            pet.affine,
            f"{pid}: FLAIR edges over PET ({flair_state})",
        )
    header = plan.pet[0].header
    row = {
        "participant_id": pid,
        "age": _age(header),
        "sex": str(header.get("PatientSex", "") or "") or None,
        "weight_kg": pet.injection.weight_kg,
        "injected_mbq": round(pet.injection.dose_bq / 1e6, 3),
        "dynamic": int(pet.dynamic is not None),
        "flair": int(plan.flair is not None),
        "manufacturer": str(header.get("Manufacturer", "") or "") or None,
        **plan.extra,
    }
    n_dynamic = 0 if pet.dynamic is None else pet.dynamic.shape[3]
    outcome = ImportOutcome(
        pid, None, pet.static_window, n_dynamic, flair_state, pet.route, time.perf_counter() - begin
    )
    return row, outcome


def _move_in(staged: Path, target: Path, overwrite: bool) -> None:
    """Rename a complete staged folder into place (an existing one is moved aside first)."""
    if not staged.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        if not overwrite:
            raise FileExistsError(
                f"{target}: already in the cohort (use --overwrite to replace it)"
            )
        old = target.with_name(f".{target.name}.old-{time.time_ns()}")
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _import_one(
    root: Path, plan: StudyPlan, options: ImportOptions
) -> tuple[dict[str, Any] | None, ImportOutcome]:
    """Import one participant into ``root``: all or nothing."""
    if plan.error is not None:
        return None, ImportOutcome(plan.participant_id, plan.error)
    subject_dir = root / plan.participant_id
    if subject_dir.exists() and not options.overwrite:
        return None, ImportOutcome(
            plan.participant_id,
            f"{subject_dir}: already in the cohort (use --overwrite to replace it)",
        )
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.participant_id}.tmp-", dir=root))
    try:
        row, outcome = write_subject(staging, plan, options)
        registration = REGISTRATION_DIR + "/" + plan.participant_id
        _move_in(staging / registration, root / registration, True)
        _move_in(staging / plan.participant_id, subject_dir, options.overwrite)
    except Exception as err:  # one subject's failure is reported and the others carry on
        message = (
            " ".join(str(err).split())
            if isinstance(err, ValueError | OSError)
            else f"{type(err).__name__}: {err}"
        )
        log.debug("%s: %s", plan.participant_id, message)
        return None, ImportOutcome(plan.participant_id, message)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return row, outcome


def _write_participants(root: Path, rows: list[dict[str, Any]]) -> None:
    table = pd.DataFrame(rows)
    path = root / PARTICIPANTS
    if path.is_file():
        old = read_participants(root)
        old = old[~old["participant_id"].isin(table["participant_id"])]
        table = pd.concat([old, table], ignore_index=True)
    table = table.sort_values("participant_id").reset_index(drop=True)
    write_text_atomic(path, table.to_csv(sep="\t", index=False, na_rep="n/a"))


def _description() -> dict[str, Any]:
    return {
        "Name": "fdopa cohort imported from DICOM",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "fdopa", "Version": __version__, "Description": "fdopa import"}],
    }


class _NothingImported(Exception):
    """Every participant failed: the new cohort is not created."""


def iter_import(
    root: Path, plans: list[StudyPlan], options: ImportOptions
) -> Iterator[tuple[dict[str, Any] | None, ImportOutcome]]:
    """Import the planned participants into ``root`` one by one."""
    for plan in plans:
        yield _import_one(root, plan, options)


def import_dicom(
    dicom_dir: str | Path,
    out: str | Path,
    options: ImportOptions | None = None,
    *,
    on_plan: Callable[[int], None] | None = None,
    on_subject: Callable[[ImportOutcome], None] | None = None,
) -> list[ImportOutcome]:
    """Import a DICOM export into a new or an existing cohort.

    Args:
        dicom_dir: The export (any nesting, mixed series, non-DICOM files skipped).
        out: Cohort root: absent or empty (a new cohort), or an fdopa cohort (subjects added).
        options: :class:`ImportOptions`.
        on_plan: Called with the number of participants found (e.g. to size a progress bar).
        on_subject: Called after each participant with its outcome.

    Returns:
        One :class:`ImportOutcome` per participant found (imported or failed).

    Raises:
        FileNotFoundError: If ``dicom_dir`` is missing.
        FileExistsError: If ``out`` is a non-empty folder that is not an fdopa cohort.
        ValueError: On an invalid mapping file, or when the export holds no PET series.
    """
    options = options or ImportOptions()
    series, skipped = scan_folder(dicom_dir)
    log.info("%s: %d series (%d files skipped)", dicom_dir, len(series), skipped)
    plans = plan_studies(series, options.mapping, options.key)
    if not plans:
        raise ValueError(
            f"{dicom_dir}: no PET (Modality PT) series found among {len(series)} series"
        )
    if on_plan is not None:
        on_plan(len(plans))
    outcomes: list[ImportOutcome] = []

    def run(root: Path) -> list[dict[str, Any]]:
        rows = []
        for row, outcome in iter_import(root, plans, options):
            outcomes.append(outcome)
            if row is not None:
                rows.append(row)
            if on_subject is not None:
                on_subject(outcome)
        if rows:
            _write_participants(root, rows)
        return rows

    target = Path(out)
    if target.is_dir() and is_artefact(target, "cohort"):
        run(target.resolve())
        return outcomes
    try:
        with staged_dir(target, kind="cohort") as staging:
            if not run(staging):
                raise _NothingImported
            _json(staging / "dataset_description.json", _description())
    except _NothingImported:
        pass
    return outcomes
