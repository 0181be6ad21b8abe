"""End-to-end training through the real configs and `fdopa.pipeline` on the tiny fixture cohort."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers import compose_train

from fdopa.layout import RUN_CONFIG
from fdopa.pipeline import build, publish_checkpoint, train

#: Short epochs: two training batches, one validation volume.
LIMITS = ("+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1")
SHORT = ("trainer.max_epochs=1", *LIMITS)


def _overrides(cohort: Path, root: Path, *extra: str) -> list[str]:
    """Train on the session's fixture cohort, everything written under ``root``, CSV logger."""
    return [
        f"data.root={cohort}",
        "data.synth=null",
        "data.n_folds=4",
        f"paths.root_dir={root}",
        "logger=csv",
        "callbacks.model_summary=null",
        *extra,
    ]


def _run(cohort: Path, root: Path, *extra: str, name: str = "run") -> float | None:
    cfg = compose_train(_overrides(cohort, root, *extra), output_dir=root / name)
    return train(cfg)


@pytest.mark.slow
def test_fast_dev_run_of_scratch_trains_the_recipe_from_random_weights(paediatric_cohort, tmp_path):
    # pretrain and finetune train end to end in test_pretrain_publishes_a_checkpoint_….
    value = _run(paediatric_cohort, tmp_path, "+experiment=scratch", "debug=fdr")
    assert value is not None and 0.0 <= value <= 1.0  # val/dice of the one validation batch
    resolved = yaml.safe_load((tmp_path / "run" / RUN_CONFIG).read_text())
    assert resolved["task_name"] == "scratch"
    assert resolved["finetune"]["pretrained"] is None
    assert resolved["model"]["net"]["in_channels"] == 2  # PET + FLAIR


def test_finetune_without_adult_checkpoint_says_how_to_make_one(paediatric_cohort, tmp_path):
    cfg = compose_train(
        _overrides(paediatric_cohort, tmp_path, "+experiment=finetune"), output_dir=tmp_path / "r"
    )
    with pytest.raises(FileNotFoundError, match=r"python train.py \+experiment=pretrain"):
        build(cfg)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_pretrain_publishes_a_checkpoint_that_finetune_loads(paediatric_cohort, tmp_path):
    _run(paediatric_cohort, tmp_path, "+experiment=pretrain", *SHORT, name="pretrain")
    published = tmp_path / "runs" / "pretrain" / "adult_pretrained.ckpt"
    assert published.is_file()
    state = _weights(published)

    cfg = compose_train(
        _overrides(paediatric_cohort, tmp_path, "+experiment=finetune", "debug=fdr"),
        output_dir=tmp_path / "finetune",
    )
    _, module, _ = build(cfg)
    encoder = {k: v for k, v in module.state_dict().items() if k.startswith("net.encoder.")}
    assert encoder
    for key, value in encoder.items():
        assert torch.equal(value, state[key]), key
    # the recipe's PET scaling travels with the checkpoint; another one is refused at once
    saved = torch.load(published, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert saved["pet_scaling"] == {"normalisation": "brain_ratio"}
    suv = compose_train(
        _overrides(paediatric_cohort, tmp_path, "+experiment=finetune", "data.normalisation=suv"),
        output_dir=tmp_path / "suv",
    )
    with pytest.raises(ValueError, match=r"data\.normalisation=brain_ratio, this run uses data\.n"):
        build(suv)
    value = train(cfg)
    assert value is not None and 0.0 <= value <= 1.0


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def short_run(paediatric_cohort, tmp_path_factory) -> tuple[float | None, Path]:
    """One short epoch of the default config: its metric and its last checkpoint (read-only)."""
    root = tmp_path_factory.mktemp("short")
    value = _run(paediatric_cohort, root, *SHORT, name="first")
    return value, root / "first" / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_resume_restores_epoch_and_step(short_run, paediatric_cohort, tmp_path):
    _, last = short_run
    first = torch.load(last, map_location="cpu", weights_only=True)
    assert (first["epoch"], first["global_step"]) == (0, 2)
    _run(paediatric_cohort, tmp_path, "trainer.max_epochs=2", f"ckpt_path={last}", *LIMITS,
         name="second")  # fmt: skip
    resumed = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (1, 4)


@pytest.mark.slow
def test_same_seed_same_result_on_cpu(short_run, paediatric_cohort, tmp_path):
    first, first_ckpt = short_run
    second = _run(paediatric_cohort, tmp_path, *SHORT, name="b")
    assert first is not None
    assert first == second
    weights = _weights(tmp_path / "b" / "checkpoints" / "last.ckpt")
    first_weights = _weights(first_ckpt)
    assert weights.keys() == first_weights.keys()
    for key, value in weights.items():
        assert torch.equal(value, first_weights[key]), key


def test_publishing_keeps_the_checkpoint_it_replaces(tmp_path):
    first, second = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    first.write_bytes(b"adult, 12 epochs")
    second.write_bytes(b"a two-batch test run")
    target = tmp_path / "runs" / "pretrain" / "adult_pretrained.ckpt"
    publish_checkpoint(first, target)
    assert target.read_bytes() == b"adult, 12 epochs"
    assert not (target.parent / "adult_pretrained.previous.ckpt").exists()
    publish_checkpoint(second, target)
    assert target.read_bytes() == b"a two-batch test run"
    assert (target.parent / "adult_pretrained.previous.ckpt").read_bytes() == b"adult, 12 epochs"
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "adult_pretrained.ckpt", "adult_pretrained.previous.ckpt"
    ]  # fmt: skip


def test_data_only_generates_the_cohort_and_reads_no_checkpoint(tmp_path, capsys):
    # What `make demo` runs beside the pretraining: the fine-tuning cohort, before the adult
    # checkpoint that fine-tuning needs exists, and no run folder left behind.
    from fdopa.cli.train import train_cli

    overrides = [
        "+experiment=finetune", "data_only=true", "data.synth.n=1", "data.synth.dynamic_fraction=0",
        "data.synth_jobs=1", f"paths.root_dir={tmp_path}",
    ]  # fmt: skip
    assert train_cli(overrides) == 0, capsys.readouterr().err
    cohorts = list((tmp_path / "data" / "synthetic").iterdir())
    assert [p.name for p in cohorts] == ["paediatric-mixed-tiny-n1-seed0"]
    assert len(list(cohorts[0].glob("sub-*/pet/*_pet.nii.gz"))) == 1
    assert not (tmp_path / "runs").exists()
    capsys.readouterr()
    # The same root with another option: refused in one line, the cohort left as it was.
    assert train_cli([*overrides, "data.synth.seed=1", f"data.root={cohorts[0]}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other options ['seed']" in err[0], err
    assert len(list(cohorts[0].glob("sub-*/pet/*_pet.nii.gz"))) == 1
