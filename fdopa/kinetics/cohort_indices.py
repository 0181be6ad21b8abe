"""Indices of every subject of a cohort in the cohort layout.

A subject that fails (missing or invalid file) becomes a row with an ``error`` and never stops
the others. Subjects run in parallel worker processes (joblib) when ``n_jobs`` ≠ 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed

from fdopa.kinetics.compute import indices_from_files
from fdopa.kinetics.presets import Preset
from fdopa.kinetics.result import CSV_COLUMNS, IndexResult
from fdopa.kinetics.validation import InputError
from fdopa.layout import LABELS_DIR, PARTICIPANTS, SubjectPaths, read_participants

__all__ = [
    "COHORT_COLUMNS",
    "SubjectIndices",
    "cohort_participants",
    "iter_cohort_indices",
    "subject_indices",
]

logger = logging.getLogger(__name__)

COHORT_COLUMNS: tuple[str, ...] = (*CSV_COLUMNS, "error")
"""Columns of a cohort indices CSV: the index row, then ``error`` (empty on success)."""


@dataclass(frozen=True)
class SubjectIndices:
    """The outcome for one subject: a result, or the error that prevented it.

    Attributes:
        participant_id: BIDS label with the ``sub-`` prefix.
        preset: Preset name.
        result: The indices, None on failure.
        error: ``<ExceptionType>: <message>`` on failure, else None.
    """

    participant_id: str
    preset: str
    result: IndexResult | None = None
    error: str | None = None

    def to_row(self) -> dict[str, Any]:
        """A row over :data:`COHORT_COLUMNS` (only id, preset and error for a failure)."""
        if self.result is None:
            return {
                "participant_id": self.participant_id,
                "preset": self.preset,
                "error": self.error,
            }
        return {**self.result.to_row(), "error": None}


def cohort_participants(root: str | Path) -> list[str]:
    """Participant labels of a cohort: ``participants.tsv``, else the ``sub-*`` folders.

    Args:
        root: Cohort root.

    Returns:
        Sorted participant labels.

    Raises:
        CohortError: If ``participants.tsv`` breaks a rule of
            :func:`fdopa.layout.read_participants`.
        InputError: If the root lists no participant.
    """
    root = Path(root)
    if (root / PARTICIPANTS).is_file():
        ids = read_participants(root)["participant_id"].tolist()
    else:
        ids = [path.name for path in root.glob("sub-*") if path.is_dir()]
    if not ids:
        raise InputError(root, "participants", "no participants.tsv rows and no sub-* folders")
    return sorted(ids)


def subject_indices(
    root: str | Path, participant_id: str, preset: Preset, labels_from: str | Path = LABELS_DIR
) -> IndexResult:
    """Indices of one subject: static PET, labels and (when present) the 4-D PET and sidecar.

    Args:
        root: Cohort root.
        participant_id: BIDS label with the ``sub-`` prefix.
        preset: Index preset.
        labels_from: Label folder (``<folder>/<id>/<id>_dseg.nii.gz``), relative to ``root``
            unless absolute.

    Returns:
        The subject's :class:`IndexResult`.
    """
    paths = SubjectPaths(Path(root), participant_id)
    labels = Path(root) / labels_from / participant_id / f"{participant_id}_dseg.nii.gz"
    dynamic = paths.dynamic_pet if paths.dynamic_pet.exists() else None
    return indices_from_files(
        paths.static_pet,
        labels,
        preset,
        dynamic_path=dynamic,
        sidecar_path=None if dynamic is None else paths.dynamic_sidecar,
        participant_id=participant_id,
    )


def _guarded(
    root: Path, participant_id: str, preset: Preset, labels_from: str | Path
) -> SubjectIndices:
    """:func:`subject_indices`, with any failure turned into an error message."""
    try:
        result = subject_indices(root, participant_id, preset, labels_from)
    except Exception as err:  # a cohort run reports a failing subject and carries on
        message = " ".join(f"{type(err).__name__}: {err}".split())
        logger.warning("%s: %s", participant_id, message)
        return SubjectIndices(participant_id, preset.name, error=message)
    return SubjectIndices(participant_id, preset.name, result=result)


def iter_cohort_indices(
    root: str | Path,
    preset: Preset,
    *,
    participants: Sequence[str] | None = None,
    labels_from: str | Path = LABELS_DIR,
    n_jobs: int = 1,
) -> Iterator[SubjectIndices]:
    """Compute the indices of every subject, yielding each outcome as it completes.

    Args:
        root: Root of a cohort in the cohort layout.
        preset: Index preset.
        participants: Subjects to run; default :func:`cohort_participants`.
        labels_from: Label folder relative to ``root`` (or absolute).
        n_jobs: Worker processes (joblib; ``-1``: all cores, 1: in this process).

    Yields:
        One :class:`SubjectIndices` per subject, in completion order.
    """
    root = Path(root)
    ids = cohort_participants(root) if participants is None else list(participants)
    jobs = (delayed(_guarded)(root, pid, preset, labels_from) for pid in ids)
    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
