"""FdopaDataModule on the fixture cohort: batch contract, patch sampling, volumes, generation."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from data_helpers import flip_x
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DistributedSampler

import fdopa.data.datamodule as datamodule_module
from fdopa.data.cohort import CohortError
from fdopa.data.datamodule import FdopaDataModule
from fdopa.labels import LABEL_NAMES
from fdopa.layout import SubjectPaths

DATA_CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
PATCH = (16, 16, 16)


def make_module(root: Path, **kwargs) -> FdopaDataModule:
    options = {"n_folds": 4, "patch_size": PATCH, "batch_size": 4, **kwargs}
    module = FdopaDataModule(str(root), **options)
    module.prepare_data()
    module.setup("fit")
    return module


def val_batches(module: FdopaDataModule) -> dict[str, dict]:
    return {b["participant_id"][0]: b for b in module.val_dataloader()}


def test_train_batch_contract(paediatric_cohort, tmp_path):
    module = make_module(paediatric_cohort, channels=["pet", "flair"], run_dir=str(tmp_path))
    batch = next(iter(module.train_dataloader()))

    assert set(batch) == {"image", "label", "participant_id"}
    assert batch["image"].shape == (4, 2, *PATCH) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (4, 1, *PATCH) and batch["label"].dtype == torch.int64
    assert set(batch["label"].unique().tolist()) <= {0, 1, 2, 3}
    train_ids = {s.participant_id for s in module.train_subjects}
    assert isinstance(batch["participant_id"], list) and set(batch["participant_id"]) <= train_ids
    assert module.num_channels == 2 and module.class_names == LABEL_NAMES

    splits = pd.read_csv(tmp_path / "splits.csv")
    assert set(splits.loc[splits["split"] == "train", "participant_id"]) == train_ids
    val_ids = {s.participant_id for s in module.val_subjects}
    assert set(splits.loc[splits["split"] == "val", "participant_id"]) == val_ids
    assert not train_ids & val_ids and len(train_ids | val_ids) == 8


def test_patch_centres_follow_label_probabilities(paediatric_cohort):
    wanted = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}
    module = make_module(
        paediatric_cohort,
        label_probabilities=wanted,
        samples_per_volume=60,
        queue_length=120,
        batch_size=20,
    )
    torch.manual_seed(0)
    centre = tuple(n // 2 for n in PATCH)  # TorchIO's centre voxel of an even patch
    counts: Counter[int] = Counter()
    for _ in range(2):  # two epochs: 2 × 6 subjects × 60 patches
        for batch in module.train_dataloader():
            counts.update(batch["label"][:, 0, centre[0], centre[1], centre[2]].tolist())
    total = sum(counts.values())
    assert total == 2 * 6 * 60
    for label, p in wanted.items():  # binomial SD ≤ 0.015 at n = 720
        assert abs(counts[label] / total - p) < 0.06, (label, counts[label] / total)


def test_val_batch_is_the_whole_canonical_volume(paediatric_cohort):
    module = make_module(paediatric_cohort, channels=("flair", "pet"))
    batches = val_batches(module)
    assert set(batches) == {s.participant_id for s in module.val_subjects}
    for subject in module.val_subjects:
        batch = batches[subject.participant_id]
        assert set(batch) == {
            "image",
            "label",
            "participant_id",
            "pet",
            "affine",
            "dynamic_path",
            "sidecar_path",
        }
        stored = nib.as_closest_canonical(nib.load(subject.static_pet))
        data = np.asarray(stored.dataobj, dtype=np.float32)
        assert batch["pet"].shape == (1, 1, *data.shape) and batch["pet"].dtype == torch.float32
        np.testing.assert_array_equal(batch["pet"][0, 0].numpy(), data)
        assert batch["affine"].shape == (1, 4, 4) and batch["affine"].dtype == torch.float64
        np.testing.assert_allclose(batch["affine"][0].numpy(), stored.affine, atol=1e-6)
        assert batch["image"].shape == (1, 2, *data.shape)
        np.testing.assert_allclose(batch["image"][0, 1].numpy(), data / 3.0, rtol=1e-6)  # suv
        flair = np.asarray(nib.as_closest_canonical(nib.load(subject.flair)).dataobj, np.float64)
        fg = flair[flair > flair.mean()]  # z-scored over its foreground
        expected = (flair - fg.mean()) / fg.std(ddof=1)
        np.testing.assert_allclose(batch["image"][0, 0].numpy(), expected, atol=1e-4)
        labels = np.asarray(nib.load(subject.labels).dataobj)
        assert batch["label"].dtype == torch.int64
        np.testing.assert_array_equal(batch["label"][0, 0].numpy(), labels)
        assert batch["dynamic_path"] == [str(subject.dynamic_pet or "")]
        assert batch["sidecar_path"] == [str(subject.dynamic_sidecar or "")]


def test_volumes_of_another_orientation_are_reoriented(cohort_copy):
    pid = "sub-pd002"
    paths = SubjectPaths(cohort_copy, pid)
    original = nib.load(paths.static_pet)
    data, affine = np.asarray(original.dataobj), original.affine
    for path in (paths.static_pet, paths.labels, paths.flair):
        flip_x(path)
    assert nib.aff2axcodes(nib.load(paths.static_pet).affine) == ("L", "A", "S")
    fold = make_module(cohort_copy).folds.set_index("participant_id").loc[pid, "fold"]
    module = make_module(cohort_copy, fold=int(fold), normalisation="zscore")
    batch = val_batches(module)[pid]
    np.testing.assert_array_equal(batch["pet"][0, 0].numpy(), data)
    np.testing.assert_allclose(batch["affine"][0].numpy(), affine, atol=1e-6)
    assert module.test_dataloader().dataset[0]["label"].orientation == ("R", "A", "S")


def test_dynamic_paths_in_val_batches(paediatric_cohort):
    table = pd.read_csv(paediatric_cohort / "participants.tsv", sep="\t")
    seen = {}
    for fold in range(4):
        seen.update(val_batches(make_module(paediatric_cohort, fold=fold)))
    assert set(seen) == set(table["participant_id"])
    for pid, batch in seen.items():
        dynamic = bool(table.set_index("participant_id").loc[pid, "dynamic"])
        paths = SubjectPaths(paediatric_cohort, pid)
        assert batch["dynamic_path"] == [str(paths.dynamic_pet) if dynamic else ""]
        assert batch["sidecar_path"] == [str(paths.dynamic_sidecar) if dynamic else ""]


def test_setup_rejects_non_suv_units_and_big_patches(cohort_copy):
    with pytest.raises(ValueError, match="patch_size"):
        make_module(cohort_copy, patch_size=(48, 48, 48))
    sidecar = SubjectPaths(cohort_copy, "sub-pd004").static_sidecar
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "Units": "Bq/mL"}))
    with pytest.raises(ValueError, match=r"sub-pd004_desc-static_pet.*Bq/mL"):
        make_module(cohort_copy)
    assert make_module(cohort_copy, normalisation="zscore").folds is not None
    SubjectPaths(cohort_copy, "sub-pd004").labels.unlink()
    with pytest.raises(CohortError, match="sub-pd004_dseg"):
        make_module(cohort_copy, normalisation="zscore")


def test_max_subjects(paediatric_cohort):
    module = make_module(paediatric_cohort, max_subjects=5, n_folds=5)
    ids = sorted(s.participant_id for s in module.train_subjects + module.val_subjects)
    assert ids == [f"sub-pd00{i}" for i in range(1, 6)] and len(module.val_subjects) == 1


def test_queue_uses_a_distributed_subject_sampler_under_ddp(paediatric_cohort, tmp_path):
    module = make_module(paediatric_cohort)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = module.train_dataloader()
    finally:
        dist.destroy_process_group()
    queue = loader.dataset
    assert isinstance(queue.subject_sampler, DistributedSampler)
    assert isinstance(loader.sampler, DistributedSampler)  # so Lightning does not replace it
    loader.sampler.set_epoch(3)
    assert queue.subject_sampler.epoch == 3
    assert len(loader.sampler) == len(queue) == 6 * module.samples_per_volume


def test_prepare_data_reuses_an_existing_cohort(paediatric_cohort, paediatric_config, monkeypatch):
    def no_generation(*args, **kwargs):
        raise AssertionError("generate_cohort called for an existing root")

    monkeypatch.setattr(datamodule_module, "generate_cohort", no_generation)
    participants = paediatric_cohort / "participants.tsv"
    mtime = participants.stat().st_mtime_ns
    synth = dataclasses.asdict(paediatric_config)
    synth_dir = str(paediatric_cohort.parent)
    make_module(paediatric_cohort, synth=synth, synth_dir=synth_dir)
    assert participants.stat().st_mtime_ns == mtime
    other = {**synth, "dynamic_fraction": 0.2}
    with pytest.raises(ValueError, match=r"\['dynamic_fraction'\]"):
        FdopaDataModule(str(paediatric_cohort), synth=other, synth_dir=synth_dir).prepare_data()
    # Outside synth_dir it is a user's cohort: used as it is, never compared with data.synth.
    FdopaDataModule(str(paediatric_cohort), synth=other).prepare_data()


def test_a_user_root_is_never_generated(tmp_path, monkeypatch):
    def no_generation(*args, **kwargs):
        raise AssertionError("generate_cohort called for a user's data.root")

    monkeypatch.setattr(datamodule_module, "generate_cohort", no_generation)
    synth = {"cohort": "adult", "n": 2, "grid": "tiny", "seed": 5}
    for synth_dir in (None, str(tmp_path / "data" / "synthetic")):
        module = FdopaDataModule(str(tmp_path / "misspelt"), synth=synth, synth_dir=synth_dir)
        with pytest.raises(FileNotFoundError, match=r"^data.root: .*misspelt: no such cohort"):
            module.prepare_data()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_prepare_data_generates_a_missing_cohort(tmp_path):
    root = tmp_path / "data" / "adult-tiny-n2-seed5"
    synth = {"cohort": "adult", "n": 2, "grid": "tiny", "dynamic_fraction": 0.5, "seed": 5}
    module = FdopaDataModule(
        str(root), synth=synth, synth_dir=str(tmp_path / "data"), n_folds=2, patch_size=PATCH
    )
    module.prepare_data()
    module.setup("fit")
    ids = sorted(s.participant_id for s in module.val_subjects + module.train_subjects)
    assert ids == ["sub-ad001", "sub-ad002"]
    described = json.loads((root / "dataset_description.json").read_text())["fdopa_synth"]
    assert described["seed"] == 5 and described["n"] == 2
    mtime = (root / "participants.tsv").stat().st_mtime_ns
    FdopaDataModule(str(root), synth=synth, synth_dir=str(root)).prepare_data()  # reused
    assert (root / "participants.tsv").stat().st_mtime_ns == mtime


def test_data_config_instantiates(paediatric_cohort, tmp_path):
    cfg = OmegaConf.create(
        {
            "paths": {"data_dir": str(tmp_path / "data"), "output_dir": str(tmp_path / "run")},
            "data": OmegaConf.load(DATA_CONF / "tiny.yaml"),
        }
    )
    module = instantiate(cfg.data)
    assert module.root == tmp_path / "data" / "synthetic" / "paediatric-tiny-n24-seed0"
    assert module.synth.n == 24 and module.synth.grid == "tiny"
    assert module.label_probabilities == {0: 0.1, 1: 0.3, 2: 0.3, 3: 0.3}
    assert module.channels == ("pet",) and module.patch_size == (32, 32, 32)
    assert module.run_dir == tmp_path / "run"
    cfg.data.root, cfg.data.synth = str(paediatric_cohort), None
    module = instantiate(cfg.data, n_folds=4)
    module.setup("fit")
    assert len(module.train_subjects) == 6


def test_channel_dropout_must_name_some_but_not_all_channels(paediatric_cohort):
    root = str(paediatric_cohort)
    module = FdopaDataModule(root, channels=["pet", "flair"], channel_dropout={"flair": 0.5})
    assert module.channel_dropout == {"flair": 0.5}
    for dropout in ({"t1": 0.5}, {"pet": 0.2, "flair": 0.2}):
        with pytest.raises(ValueError, match=r"data\.channel_dropout"):
            FdopaDataModule(root, channels=["pet", "flair"], channel_dropout=dropout)


def test_cached_volumes_are_the_preprocessed_files_read_once(paediatric_cohort, monkeypatch):
    """``cache_preprocessed`` changes where a preprocessed volume comes from, not what it is:
    the training and validation volumes equal those preprocessed from the files each time, no
    file is read again, and the augmentation still draws anew on every read."""
    import torchio as tio

    options = {"channels": ["pet", "flair"], "spacing_mm": (4.0, 4.0, 4.0), "max_subjects": 4,
               "n_folds": 2}  # fmt: skip
    volumes = {}
    for cache in (False, True):
        module = make_module(paediatric_cohort, cache_preprocessed=cache, **options)
        train = module.train_dataloader().dataset.subjects_dataset
        volumes[cache] = [train[i] for i in range(len(train))], val_batches(module)
    for uncached, cached in zip(volumes[False][0], volumes[True][0], strict=True):
        assert uncached["participant_id"] == cached["participant_id"]
        for name in ("pet", "flair", "label"):
            torch.testing.assert_close(uncached[name].data, cached[name].data, rtol=0, atol=0)
    assert volumes[False][1].keys() == volumes[True][1].keys()
    for pid, batch in volumes[True][1].items():
        for key in ("image", "label", "pet", "affine"):
            torch.testing.assert_close(batch[key], volumes[False][1][pid][key], rtol=0, atol=0)

    augment = tio.RandomNoise(std=0.1, p=1.0)
    module = make_module(paediatric_cohort, cache_preprocessed=True, augment=augment, **options)
    module.train_dataloader(), module.val_dataloader()  # read and preprocessed once

    def read_again(*args, **kwargs):
        raise AssertionError("a cached volume was read from its files again")

    monkeypatch.setattr(datamodule_module, "to_tio_subject", read_again)
    train = module.train_dataloader().dataset.subjects_dataset  # a new epoch, from memory
    assert not torch.equal(train[0]["pet"].data, train[0]["pet"].data)  # noise drawn anew
    next(iter(module.val_dataloader()))
