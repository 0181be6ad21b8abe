"""File names of the PET-BIDS-like cohort layout and of a training run's folder.

The one home of every name that readers and writers share:

* the cohort: ``participants.tsv``, the raw images of each subject and the derivative folders
  (:class:`SubjectPaths`), and :func:`read_participants`, the one reader of the participants
  table;
* a training run's folder: its resolved config (:data:`RUN_CONFIG`), checkpoints, clinical
  tables and splits.

It imports the standard library and pandas (for the participants table) only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = [
    "CHANNELS",
    "CHECKPOINTS_DIR",
    "CLINICAL_DIR",
    "LABELS_DIR",
    "MANUAL_DIR",
    "NOISE_FREE_DIR",
    "PARTICIPANTS",
    "PARTICIPANT_ID",
    "REGISTRATION_DIR",
    "RUN_CONFIG",
    "SPLITS_FILE",
    "TRUTH_DIR",
    "TUMOUR_DIR",
    "CohortError",
    "SubjectPaths",
    "read_participants",
]

#: Input channels a cohort can provide, in the order they may be requested.
CHANNELS: tuple[str, ...] = ("pet", "flair")

#: The participants table at the cohort root.
PARTICIPANTS = "participants.tsv"
#: A participant label: ``sub-`` and letters and digits (BIDS).
PARTICIPANT_ID = re.compile(r"^sub-[A-Za-z0-9]+$")

#: Derivative folders: reference labels, the manual-delineation variant, noise-free images
#: (same file names as the raw data) and per-subject ground truth of the synthetic cohort.
LABELS_DIR = "derivatives/labels"
MANUAL_DIR = "derivatives/manual"
NOISE_FREE_DIR = "derivatives/noisefree"
TRUTH_DIR = "derivatives/truth"
#: Hospital import: FLAIR → PET transforms and QC pictures; physicians' tumour masks.
REGISTRATION_DIR = "derivatives/registration"
TUMOUR_DIR = "derivatives/tumour"

#: A training run's folder: the resolved config (what ``fdopa export`` reads), the checkpoints,
#: the clinical evaluation's per-epoch tables and the participants' fold assignment.
RUN_CONFIG = "config_resolved.yaml"
CHECKPOINTS_DIR = "checkpoints"
CLINICAL_DIR = "clinical"
SPLITS_FILE = "splits.csv"


class CohortError(ValueError):
    """A cohort does not follow the cohort layout; the message names the file and the problem."""


def read_participants(
    root: str | Path, required: Sequence[str] = ("participant_id",)
) -> pd.DataFrame:
    """Read ``participants.tsv``: the one reader of the participants table.

    Rules (every violation is a :class:`CohortError` naming the file and the column):

    * the file exists and is a tab-separated table with a header row;
    * ``participant_id`` and every ``required`` column are present;
    * ``participant_id`` is read as text, and every id is ``sub-`` followed by letters and
      digits (BIDS), with no id repeated (one row per participant; sessions are not rows);
    * other columns keep pandas' types, with ``n/a`` and empty cells read as missing.

    Args:
        root: Cohort root.
        required: Columns that must be present besides ``participant_id``.

    Returns:
        The table, in file order.

    Raises:
        CohortError: If a rule above is broken.
    """
    path = Path(root) / PARTICIPANTS
    if not path.is_file():
        raise CohortError(f"{path}: missing participants table ({PARTICIPANTS})")
    try:
        table = pd.read_csv(path, sep="\t", dtype={"participant_id": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise CohortError(f"{path}: not a tab-separated table ({error})") from error
    missing = [c for c in dict.fromkeys(("participant_id", *required)) if c not in table.columns]
    if missing:
        raise CohortError(f"{path}: missing column(s) {missing}")
    ids = table["participant_id"]
    bad = [str(p) for p in ids if not isinstance(p, str) or not PARTICIPANT_ID.match(p)]
    if bad:
        raise CohortError(
            f"{path}: participant_id {bad[0]!r} is not sub-<letters and digits> "
            f"({len(bad)} such row(s))"
        )
    repeated = ids[ids.duplicated()].tolist()
    if repeated:
        raise CohortError(f"{path}: participant_id repeated: {sorted(set(repeated))}")
    return table


@dataclass(frozen=True)
class SubjectPaths:
    """Paths of one subject's files under a cohort root.

    Attributes:
        root: Cohort root directory.
        participant_id: BIDS participant label including the ``sub-`` prefix.
    """

    root: Path
    participant_id: str

    def _pet(self, root: Path) -> Path:
        return root / self.participant_id / "pet"

    @property
    def static_pet(self) -> Path:
        """3D static PET image."""
        return self._pet(self.root) / f"{self.participant_id}_desc-static_pet.nii.gz"

    @property
    def static_sidecar(self) -> Path:
        """JSON sidecar of the static image."""
        return self.static_pet.with_name(f"{self.participant_id}_desc-static_pet.json")

    @property
    def dynamic_pet(self) -> Path:
        """Optional 4D dynamic PET image."""
        return self._pet(self.root) / f"{self.participant_id}_pet.nii.gz"

    @property
    def dynamic_sidecar(self) -> Path:
        """JSON sidecar of the dynamic image (frame timing)."""
        return self.dynamic_pet.with_name(f"{self.participant_id}_pet.json")

    @property
    def flair(self) -> Path:
        """Optional co-registered FLAIR-like MRI channel."""
        return self.root / self.participant_id / "anat" / f"{self.participant_id}_FLAIR.nii.gz"

    @property
    def labels(self) -> Path:
        """Reference label map (values 0–3)."""
        return self.root / LABELS_DIR / self.participant_id / f"{self.participant_id}_dseg.nii.gz"

    @property
    def manual_labels(self) -> Path:
        """Manual-delineation variant of the label map (synthetic cohort)."""
        return self.root / MANUAL_DIR / self.participant_id / f"{self.participant_id}_dseg.nii.gz"

    @property
    def noise_free(self) -> SubjectPaths:
        """The same subject's noise-free images (synthetic cohort), mirroring the raw layout."""
        return SubjectPaths(self.root / NOISE_FREE_DIR, self.participant_id)

    @property
    def truth(self) -> Path:
        """Ground-truth JSON (synthetic cohort)."""
        return self.root / TRUTH_DIR / self.participant_id / f"{self.participant_id}_truth.json"

    @property
    def flair_to_pet(self) -> Path:
        """Rigid FLAIR registration of the hospital import (ITK: PET points → FLAIR points)."""
        pid = self.participant_id
        return self.root / REGISTRATION_DIR / pid / f"{pid}_from-FLAIR_to-PET_xfm.tfm"
