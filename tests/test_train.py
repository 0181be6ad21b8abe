"""End-to-end training through the real configs and `fdopa.pipeline` on the tiny fixture cohort."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_train

from fdopa.pipeline import build, train


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
@pytest.mark.parametrize("experiment", ["pretrain", "scratch"])
def test_fast_dev_run_of_each_experiment(experiment, paediatric_cohort, tmp_path):
    _run(paediatric_cohort, tmp_path, f"+experiment={experiment}", "debug=fdr")


def test_finetune_without_adult_checkpoint_says_how_to_make_one(paediatric_cohort, tmp_path):
    cfg = compose_train(
        _overrides(paediatric_cohort, tmp_path, "+experiment=finetune"), output_dir=tmp_path / "r"
    )
    with pytest.raises(FileNotFoundError, match=r"python train.py \+experiment=pretrain"):
        build(cfg)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_pretrain_publishes_a_checkpoint_that_finetune_loads(paediatric_cohort, tmp_path):
    short = (
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
    )
    _run(paediatric_cohort, tmp_path, "+experiment=pretrain", *short, name="pretrain")
    published = tmp_path / "runs" / "pretrain" / "adult_pretrained.ckpt"
    assert published.is_file()
    state = torch.load(published, map_location="cpu", weights_only=True)["state_dict"]

    cfg = compose_train(
        _overrides(paediatric_cohort, tmp_path, "+experiment=finetune", "debug=fdr"),
        output_dir=tmp_path / "finetune",
    )
    _, module, _ = build(cfg)
    encoder = {k: v for k, v in module.state_dict().items() if k.startswith("net.encoder.")}
    assert encoder
    for key, value in encoder.items():
        assert torch.equal(value, state[key]), key
    train(cfg)


@pytest.mark.slow
def test_resume_restores_epoch_and_step(paediatric_cohort, tmp_path):
    short = ("+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1")
    _run(paediatric_cohort, tmp_path, "trainer.max_epochs=1", *short, name="first")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    first = torch.load(last, map_location="cpu", weights_only=True)
    assert (first["epoch"], first["global_step"]) == (0, 2)
    _run(paediatric_cohort, tmp_path, "trainer.max_epochs=2", f"ckpt_path={last}", *short,
         name="second")  # fmt: skip
    resumed = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (1, 4)


@pytest.mark.slow
def test_same_seed_same_result_on_cpu(paediatric_cohort, tmp_path):
    short = (
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
    )
    first = _run(paediatric_cohort, tmp_path, *short, name="a")
    second = _run(paediatric_cohort, tmp_path, *short, name="b")
    assert first is not None
    assert first == second
