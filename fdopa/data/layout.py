"""File names of the PET-BIDS-like cohort layout, shared by readers and writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Input channels a cohort can provide, in the order they may be requested.
CHANNELS: tuple[str, ...] = ("pet", "flair")

#: Derivative folders: reference labels, the manual-delineation variant, noise-free images
#: (same file names as the raw data) and per-subject ground truth of the synthetic cohort.
LABELS_DIR = "derivatives/labels"
MANUAL_DIR = "derivatives/manual"
NOISE_FREE_DIR = "derivatives/noisefree"
TRUTH_DIR = "derivatives/truth"
#: Hospital import: FLAIR → PET transforms and QC pictures; physicians' tumour masks.
REGISTRATION_DIR = "derivatives/registration"
TUMOUR_DIR = "derivatives/tumour"


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
