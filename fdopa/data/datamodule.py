"""Lightning data module: a cohort as label-balanced training patches and whole volumes.

Training draws patches through a TorchIO :class:`~torchio.Queue` whose
:class:`~torchio.LabelSampler` centres patches on each label with the configured probability;
validation and test yield whole canonical volumes one at a time (sliding-window inference is the
model's job). Every batch is a plain ``dict`` (see :func:`collate`). With a ``synth``
configuration the embedded synthetic cohort is generated on first use, so a fresh clone trains
with no other step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import torchio as tio
from torch.utils.data import DataLoader, DistributedSampler

from fdopa.config import may_generate
from fdopa.data.cohort import CohortSubject, load_cohort
from fdopa.data.scaling import DEFAULT_SUV_SCALE, SUV_UNITS
from fdopa.data.splits import make_folds, split, write_splits
from fdopa.data.synthetic import SynthConfig, differing_options, generate_cohort
from fdopa.data.synthetic.generate import DESCRIPTION
from fdopa.data.transforms import RandomChannelDropout, build_preprocessing, check_channels
from fdopa.labels import BACKGROUND, BRAIN, LABEL_NAMES, STRIATUM, TUMOUR
from fdopa.layout import LABELS_DIR

log = logging.getLogger(__name__)

#: Default probability of a training patch being centred on each label.
DEFAULT_LABEL_PROBABILITIES: dict[int, float] = {
    BACKGROUND: 0.1,
    BRAIN: 0.3,
    STRIATUM: 0.3,
    TUMOUR: 0.3,
}
#: Subject key of the unnormalised (but reoriented) static PET in whole-volume subjects.
RAW_PET = "pet_raw"


def collate(
    subjects: Sequence[tio.Subject], channels: Sequence[str], whole_volume: bool
) -> dict[str, Any]:
    """Turn TorchIO subjects (patches or whole volumes) into the batch contract.

    Args:
        subjects: Preprocessed subjects, each holding the ``channels`` images and ``label``
            (and, for whole volumes, :data:`RAW_PET`).
        channels: Input channel names, stacked in this order.
        whole_volume: Add the whole-volume keys.

    Returns:
        ``image`` float32 (B, C, X, Y, Z), ``label`` int64 (B, 1, X, Y, Z), ``participant_id``
        list[str]; whole volumes add ``pet`` float32 (B, 1, X, Y, Z) in stored units,
        ``affine`` float64 (B, 4, 4), ``dynamic_path`` and ``sidecar_path`` list[str]
        (``''`` without a dynamic image).
    """
    batch: dict[str, Any] = {
        "image": torch.stack([torch.cat([s[c].data.float() for c in channels]) for s in subjects]),
        "label": torch.stack([s["label"].data.long() for s in subjects]),
        "participant_id": [str(s["participant_id"]) for s in subjects],
    }
    if whole_volume:
        batch["pet"] = torch.stack([s[RAW_PET].data.float() for s in subjects])
        batch["affine"] = torch.stack([torch.as_tensor(s[RAW_PET].affine) for s in subjects])
        batch["dynamic_path"] = [str(s["dynamic_path"]) for s in subjects]
        batch["sidecar_path"] = [str(s["sidecar_path"]) for s in subjects]
    return batch


def to_tio_subject(
    subject: CohortSubject, channels: Sequence[str], whole_volume: bool
) -> tio.Subject:
    """A lazily loaded TorchIO subject of the requested channels, the label map and paths."""
    paths = {"pet": subject.static_pet, "flair": subject.flair}
    images: dict[str, Any] = {c: tio.ScalarImage(paths[c]) for c in channels}
    if whole_volume:
        images[RAW_PET] = tio.ScalarImage(subject.static_pet)
    return tio.Subject(
        **images,
        label=tio.LabelMap(subject.labels),
        participant_id=subject.participant_id,
        dynamic_path=str(subject.dynamic_pet or ""),
        sidecar_path=str(subject.dynamic_sidecar or ""),
    )


class _QueueEpochSampler(DistributedSampler):
    """Sequential sampler over this rank's queue that forwards ``set_epoch`` to the queue.

    Under DDP the queue already holds only this rank's subjects (its ``subject_sampler``), so
    the outer loader must not split it again. Being a ``DistributedSampler`` keeps Lightning
    from injecting one; Lightning's per-epoch ``set_epoch`` reaches the subject sampler.
    """

    def __init__(self, queue: tio.Queue, subject_sampler: DistributedSampler) -> None:
        super().__init__(queue, num_replicas=1, rank=0, shuffle=False)
        self.subject_sampler = subject_sampler

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch here and on the subject sampler (reshuffles subjects across ranks)."""
        super().set_epoch(epoch)
        self.subject_sampler.set_epoch(epoch)


def _plain(value: Any) -> Any:
    """Hydra containers to plain Python: mappings to dicts, sequences to tuples."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_plain(v) for v in value)
    return value


class FdopaDataModule(L.LightningDataModule):
    """A cohort, split by participant, as training patches and validation volumes.

    Args:
        root: Cohort root (``participants.tsv`` and the files of the cohort layout).
        labels_from: Label-map folder relative to ``root``.
        channels: Input channels in order (``pet``, ``flair``).
        synth: :class:`~fdopa.data.synthetic.SynthConfig` keywords; when given, ``root`` lies
            inside ``synth_dir`` and does not exist, :meth:`prepare_data` generates the cohort
            there.
        synth_dir: The only folder under which a cohort may be generated (the embedded-data
            configs: ``${paths.data_dir}/synthetic``); ``None``: never generate. A ``root``
            elsewhere is a user's cohort: never generated, never compared with ``synth``.
        n_folds: Number of participant-level folds.
        fold: Validation (and test) fold of this run.
        split_seed: Seed of the fold assignment.
        stratify: ``participants.tsv`` column balanced across folds, or ``None``.
        patch_size: Training patch size (voxels).
        samples_per_volume: Patches drawn from each loaded training volume.
        queue_length: Maximum number of patches held by the queue.
        label_probabilities: Probability of a patch being centred on each label (default
            :data:`DEFAULT_LABEL_PROBABILITIES`).
        batch_size: Training batch size (validation and test use 1).
        num_workers: Worker processes loading and transforming subjects.
        normalisation: PET normalisation, ``suv``, ``zscore``, ``brain_ratio`` or ``none``.
        suv_scale: SUV mapped to 1 by the ``suv`` normalisation.
        augment: Training augmentation (applied after preprocessing), or ``None``.
        run_dir: Directory that receives ``splits.csv``, or ``None``.
        max_subjects: Use only the first participants (by id), or ``None`` for all.
        channel_dropout: Channel name → probability of blanking it in a training volume
            (:class:`~fdopa.data.transforms.RandomChannelDropout`, after augmentation), so
            the model also works without that channel; ``None`` or ``{}``: never.
        spacing_mm: Voxel size (mm) of the model grid: every volume is cut to its located head
            and mapped to that grid as the predictor does
            (:class:`~fdopa.data.model_view.ToModelGrid`), so cohorts of scanner images of any
            field of view and voxel size train together; ``None``: volumes as stored (one grid).
        synth_jobs: Worker processes generating the synthetic cohort (-1: one per core).
        cache_preprocessed: Keep each volume in memory once preprocessed (the deterministic
            reorientation, mapping to the model grid and normalisation), so that every later
            epoch only augments it; ``False``: read and preprocess every volume every epoch
            (in the loader's workers, with less memory).
    """

    def __init__(
        self,
        root: str,
        labels_from: str = LABELS_DIR,
        channels: Sequence[str] = ("pet",),
        synth: Mapping[str, Any] | None = None,
        synth_dir: str | None = None,
        n_folds: int = 5,
        fold: int = 0,
        split_seed: int = 0,
        stratify: str | None = "grade",
        patch_size: Sequence[int] = (32, 32, 32),
        samples_per_volume: int = 8,
        queue_length: int = 64,
        label_probabilities: Mapping[int, float] | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        normalisation: str = "suv",
        suv_scale: float = DEFAULT_SUV_SCALE,
        augment: tio.Transform | None = None,
        run_dir: str | None = None,
        max_subjects: int | None = None,
        channel_dropout: Mapping[str, float] | None = None,
        spacing_mm: Sequence[float] | None = None,
        synth_jobs: int = -1,
        cache_preprocessed: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.labels_from = labels_from
        self.channels = check_channels(_plain(channels))
        self.synth = SynthConfig(**_plain(synth)) if synth is not None else None
        self.generates = may_generate(root, synth, synth_dir)
        self.n_folds, self.fold, self.split_seed = n_folds, fold, split_seed
        self.stratify = stratify
        self.patch_size = tuple(int(n) for n in patch_size)
        self.samples_per_volume, self.queue_length = samples_per_volume, queue_length
        probabilities = _plain(label_probabilities or DEFAULT_LABEL_PROBABILITIES)
        self.label_probabilities = {int(k): float(v) for k, v in probabilities.items()}
        self.batch_size, self.num_workers = batch_size, num_workers
        self.spacing_mm = None if spacing_mm is None else tuple(float(v) for v in spacing_mm)
        self.preprocess = build_preprocessing(
            self.channels, normalisation, suv_scale=suv_scale, spacing_mm=self.spacing_mm
        )
        self.normalisation = normalisation
        self.suv_scale = suv_scale
        self.augment = augment
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.max_subjects = max_subjects
        self.synth_jobs = synth_jobs
        self.cache_preprocessed = cache_preprocessed
        self._preprocessed: dict[tuple[str, bool], tio.Subject] = {}
        dropout = {str(k): float(v) for k, v in _plain(channel_dropout or {}).items()}
        unknown = sorted(set(dropout) - set(self.channels))
        if unknown or (dropout and set(dropout) >= set(self.channels)):
            raise ValueError(
                f"data.channel_dropout: {unknown or sorted(dropout)} must name some, not all, of "
                f"data.channels {list(self.channels)}"
            )
        self.channel_dropout = {k: v for k, v in dropout.items() if v > 0}
        self.folds: pd.DataFrame | None = None
        self.train_subjects: list[CohortSubject] = []
        self.val_subjects: list[CohortSubject] = []

    @property
    def num_channels(self) -> int:
        """Number of input channels."""
        return len(self.channels)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in label order (the label map)."""
        return LABEL_NAMES

    def prepare_data(self) -> None:
        """Generate the synthetic cohort into ``root`` when configured and absent.

        Raises:
            FileNotFoundError: If ``root`` is a user's cohort (not inside ``synth_dir``) and
                does not exist.
            ValueError: If ``root`` holds a synthetic cohort made with other options.
        """
        if not self.generates or self.synth is None:
            if not self.root.is_dir():
                raise FileNotFoundError(
                    f"data.root: {self.root}: no such cohort folder; point data.root at the "
                    "folder holding participants.tsv"
                )
            return
        if not self.root.exists():
            log.info("generating the synthetic %s cohort into %s", self.synth.cohort, self.root)
            generate_cohort(self.synth, self.root, n_jobs=self.synth_jobs, progress=True)
            return
        differing = differing_options(self.synth, self.root)
        if differing is None:
            log.warning("%s: exists but is not a generated cohort; using it as it is", self.root)
            return
        if differing:
            raise ValueError(
                f"{self.root / DESCRIPTION}: cohort generated with other options "
                f"{differing} than data.synth; delete {self.root} or choose another root"
            )
        log.info("reusing the synthetic cohort in %s", self.root)

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the cohort, make the folds and write ``splits.csv`` (once).

        Raises:
            fdopa.layout.CohortError: If the cohort is invalid.
            ValueError: On non-SUV images with ``normalisation=suv``, a patch larger than a
                volume, or an impossible fold configuration.
        """
        if self.folds is not None:
            return
        required = (self.stratify,) if self.stratify else ()
        subjects = load_cohort(
            self.root,
            labels_from=self.labels_from,
            channels=self.channels,
            required_columns=required,
        )
        subjects = sorted(subjects, key=lambda s: s.participant_id)[: self.max_subjects]
        self._check(subjects)
        folds = make_folds(
            pd.DataFrame([s.participant for s in subjects]),
            self.n_folds,
            self.split_seed,
            self.stratify,
        )
        train_ids, val_ids = split(folds, self.fold)
        by_id = {s.participant_id: s for s in subjects}
        self.train_subjects = [by_id[i] for i in train_ids]
        self.val_subjects = [by_id[i] for i in val_ids]
        if self.run_dir is not None and (self.trainer is None or self.trainer.is_global_zero):
            write_splits(folds, self.fold, self.run_dir)
        self.folds = folds
        log.info(
            "fold %d/%d: %d train, %d val participants",
            self.fold,
            self.n_folds,
            len(train_ids),
            len(val_ids),
        )

    def _check(self, subjects: Sequence[CohortSubject]) -> None:
        for subject in subjects:
            if self.normalisation == "suv" and subject.pet_units not in (None, *SUV_UNITS):
                raise ValueError(
                    f"{subject.static_pet}: sidecar Units {subject.pet_units!r} is not SUV; "
                    f"normalisation 'suv' needs one of {sorted(SUV_UNITS)} (or use 'brain_ratio')"
                )
            if self.spacing_mm is None and any(
                p > n for p, n in zip(self.patch_size, subject.shape, strict=True)
            ):
                raise ValueError(
                    f"patch_size: {self.patch_size} exceeds the volume {subject.shape} of "
                    f"{subject.static_pet}"
                )

    def _dataset(self, subjects: Sequence[CohortSubject], train: bool) -> tio.SubjectsDataset:
        random: list[tio.Transform] = []
        if train and self.augment is not None:
            random.append(self.augment)
        if train and self.channel_dropout:
            random.append(RandomChannelDropout(self.channel_dropout))
        if self.cache_preprocessed:
            steps = random
            start, cached = time.perf_counter(), len(self._preprocessed)
            tio_subjects = [self._cached(s, whole_volume=not train) for s in subjects]
            if len(self._preprocessed) > cached:
                log.info("preprocessed %d volumes into memory in %.1f s (data.cache_preprocessed)",
                         len(self._preprocessed) - cached, time.perf_counter() - start)  # fmt: skip
        else:
            steps = [self.preprocess, *random]
            tio_subjects = [to_tio_subject(s, self.channels, not train) for s in subjects]
        transform = None if not steps else steps[0] if len(steps) == 1 else tio.Compose(steps)
        return tio.SubjectsDataset(tio_subjects, transform=transform)

    def _cached(self, subject: CohortSubject, whole_volume: bool) -> tio.Subject:
        """``subject`` read and preprocessed once (``cache_preprocessed``), then from memory."""
        key = (subject.participant_id, whole_volume)
        if key not in self._preprocessed:
            loaded = to_tio_subject(subject, self.channels, whole_volume)
            self._preprocessed[key] = self.preprocess(loaded)
        return self._preprocessed[key]

    def train_dataloader(self) -> DataLoader:
        """Label-balanced patches from a :class:`torchio.Queue` (DDP-aware)."""
        dataset = self._dataset(self.train_subjects, train=True)
        subject_sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            subject_sampler = DistributedSampler(dataset, shuffle=True, seed=self.split_seed)
        queue = tio.Queue(
            dataset,
            max_length=self.queue_length,
            samples_per_volume=self.samples_per_volume,
            sampler=tio.LabelSampler(self.patch_size, "label", self.label_probabilities),
            subject_sampler=subject_sampler,
            num_workers=self.num_workers,
            shuffle_subjects=subject_sampler is None,
        )
        return DataLoader(
            queue,
            batch_size=self.batch_size,
            num_workers=0,  # TorchIO: the queue is filled by its own workers
            sampler=_QueueEpochSampler(queue, subject_sampler) if subject_sampler else None,
            collate_fn=partial(collate, channels=self.channels, whole_volume=False),
        )

    def _volume_loader(self, subjects: Sequence[CohortSubject]) -> DataLoader:
        return DataLoader(
            self._dataset(subjects, train=False),
            batch_size=1,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate, channels=self.channels, whole_volume=True),
        )

    def val_dataloader(self) -> DataLoader:
        """Whole preprocessed volumes of the validation fold, one per batch."""
        return self._volume_loader(self.val_subjects)

    def test_dataloader(self) -> DataLoader:
        """Whole volumes of the held-out fold (the validation fold of this run)."""
        return self._volume_loader(self.val_subjects)
