"""Which participants a DICOM folder holds: PET studies per patient, their FLAIR and their ids.

One participant per patient and PET study (:func:`plan_studies`). Its FLAIR is an MR series
named like one (``FLAIR``, ``DARK FLUID``, ``T2 IR``) of the same patient: from the same study
first, else the nearest in date, the finest when several. Participant ids come from a mapping
file (``PatientID``, ``participant_id``, optional ``StudyInstanceUID`` / ``StudyDate``, further
columns copied to ``participants.tsv``; :func:`read_mapping`) or are a keyed pseudonym of the
``PatientID`` (HMAC-SHA256, :func:`pseudonym`). A study that cannot be imported (no or an
ambiguous mapping row, two studies on one id) is planned as a failure with its reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fdopa.hospital.dicom import DicomSeries
from fdopa.kinetics.validation import InputError
from fdopa.layout import PARTICIPANT_ID

__all__ = ["StudyPlan", "plan_studies", "pseudonym", "read_mapping"]

_FLAIR = re.compile(r"FLAIR|DARK[ _-]?FLUID|\bT2[ _-]?IR\b", re.IGNORECASE)


@dataclass
class StudyPlan:
    """One participant to import: a patient's PET study and the FLAIR chosen for it.

    Attributes:
        participant_id: BIDS label with ``sub-``.
        pet: The study's PT series.
        flair: The FLAIR series, or None.
        extra: ``participants.tsv`` columns from the mapping file.
        error: Why the study cannot be imported (planned as a failure), or None.
    """

    participant_id: str
    pet: list[DicomSeries]
    flair: DicomSeries | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _is_flair(series: DicomSeries) -> bool:
    header = series.header
    text = " ".join(
        str(header.get(k, "")) for k in ("SeriesDescription", "ProtocolName", "SequenceName")
    )
    return series.modality == "MR" and bool(_FLAIR.search(text))


def pseudonym(patient_id: str, key: str, study_uid: str | None = None) -> str:
    """Keyed pseudonym ``sub-<10 hex>`` (``s<4 hex>`` appended per study when given)."""
    digest = hmac.new(key.encode(), patient_id.encode(), hashlib.sha256).hexdigest()[:10]
    if study_uid is None:
        return f"sub-{digest}"
    study = hmac.new(key.encode(), study_uid.encode(), hashlib.sha256).hexdigest()[:4]
    return f"sub-{digest}s{study}"


def read_mapping(path: Path) -> pd.DataFrame:
    """Read a mapping file: ``PatientID``, ``participant_id`` (+ optional study columns).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: On a missing column, a repeated key or an invalid participant id.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the --mapping file)")
    table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str).fillna(
        ""
    )
    for column in ("PatientID", "participant_id"):
        if column not in table.columns:
            raise InputError(path, column, "column missing (needed: PatientID, participant_id)")
    table["participant_id"] = [
        p if p.startswith("sub-") else f"sub-{p}" for p in table["participant_id"]
    ]
    bad = [p for p in table["participant_id"] if not PARTICIPANT_ID.match(p)]
    if bad:
        raise InputError(path, "participant_id", f"{bad[0]!r} is not sub-<letters and digits>")
    keys = [c for c in ("PatientID", "StudyInstanceUID", "StudyDate") if c in table.columns]
    if table.duplicated(keys).any() or table["participant_id"].duplicated().any():
        raise InputError(path, "participant_id", f"repeated {'/'.join(keys)} or participant_id")
    return table


def _mapping_row(table: pd.DataFrame, study: DicomSeries) -> dict[str, Any] | None:
    rows = table[table["PatientID"] == study.patient_id]
    if "StudyInstanceUID" in rows.columns:
        rows = rows[rows["StudyInstanceUID"].isin(["", study.study_uid])]
    if "StudyDate" in rows.columns and study.study_date is not None:
        rows = rows[rows["StudyDate"].isin(["", study.study_date.strftime("%Y%m%d")])]
    return None if len(rows) != 1 else rows.iloc[0].to_dict()


def _voxel_volume(series: DicomSeries) -> float:
    header = series.header
    spacing = [float(v) for v in header.get("PixelSpacing", [1.0, 1.0])]
    thickness = float(header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0)
    return spacing[0] * spacing[1] * thickness


def _choose_flair(candidates: list[DicomSeries], study: DicomSeries) -> DicomSeries | None:
    if not candidates:
        return None
    same = [s for s in candidates if s.study_uid == study.study_uid]
    if not same and study.study_date is not None:

        def gap(s: DicomSeries) -> int:
            return abs((s.study_date - study.study_date).days) if s.study_date else 10**6

        nearest = min(gap(s) for s in candidates)
        same = [s for s in candidates if gap(s) == nearest]
    pool = same or candidates
    return min(pool, key=lambda s: (_voxel_volume(s), -len(s.instances)))


def plan_studies(series: list[DicomSeries], mapping: Path | None, key: str) -> list[StudyPlan]:
    """Group the series into participants (one per patient and PET study).

    Args:
        series: Every series of the folder (:func:`fdopa.hospital.dicom.scan_folder`).
        mapping: Mapping file (:func:`read_mapping`), or None for keyed pseudonyms.
        key: Secret key of the pseudonyms (:func:`pseudonym`).

    Raises:
        ValueError: On an invalid mapping file.
    """
    table = read_mapping(mapping) if mapping is not None else None
    by_patient: dict[str, list[DicomSeries]] = {}
    plans: list[StudyPlan] = []
    for item in series:
        if item.modality not in ("PT", "MR"):
            continue
        try:
            by_patient.setdefault(item.patient_id, []).append(item)
        except InputError as err:
            if item.modality == "PT":
                label = f"(series without PatientID #{len(plans) + 1})"
                plans.append(StudyPlan(label, [], error=str(err)))
    unmapped = 0
    for patient, items in by_patient.items():
        studies: dict[str, list[DicomSeries]] = {}
        for item in items:
            if item.modality == "PT":
                studies.setdefault(item.study_uid, []).append(item)
        flairs = [s for s in items if _is_flair(s)]
        for study_uid, pet in studies.items():
            extra: dict[str, Any] = {}
            if table is not None:
                row = _mapping_row(table, pet[0])
                if row is None:
                    unmapped += 1
                    plans.append(
                        StudyPlan(
                            f"(unmapped study #{unmapped})",
                            pet,
                            error="PatientID (0010,0020): not (or not uniquely) in --mapping",
                        )
                    )
                    continue
                pid = row.pop("participant_id")
                extra = {
                    k: v
                    for k, v in row.items()
                    if k not in ("PatientID", "StudyInstanceUID", "StudyDate") and v != ""
                }
            else:
                pid = pseudonym(patient, key, study_uid if len(studies) > 1 else None)
            plans.append(StudyPlan(pid, pet, _choose_flair(flairs, pet[0]), extra))
    counts = Counter(plan.participant_id for plan in plans)
    for plan in plans:
        if counts[plan.participant_id] > 1 and plan.error is None:
            plan.error = (
                f"participant_id: {counts[plan.participant_id]} PET studies map to "
                f"{plan.participant_id}; add StudyInstanceUID or StudyDate to --mapping"
            )
    return plans
