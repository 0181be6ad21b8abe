"""Every experiment and config group composes, and the experiments are the deltas they claim."""

from __future__ import annotations

import re

import pytest
from helpers import CONF_DIR, compose_train
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fdopa.labels import LABEL_NAMES, NUM_LABELS

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUPS = ("data", "model", "loss", "augment", "finetune", "trainer", "logger", "callbacks", "debug")


def test_the_three_experiments_exist():
    assert {"pretrain", "finetune", "scratch"} <= set(EXPERIMENTS)


def test_train_yaml_has_no_experiment_default():
    defaults = OmegaConf.load(CONF_DIR / "train.yaml").defaults
    assert not any("experiment" in str(entry) for entry in defaults)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment, tmp_path):
    cfg = compose_train([f"+experiment={experiment}"], output_dir=tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["task_name"] == experiment
    assert resolved["paths"]["output_dir"] == str(tmp_path)


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group, tmp_path):
    options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    assert options, f"conf/{group} is empty"
    needs = {"data=cohort": ["data.root=/cohorts/mine"]}  # options with mandatory user values
    for option in options:
        choice = f"{group}={option}"
        cfg = compose_train([choice, *needs.get(choice, [])], output_dir=tmp_path)
        OmegaConf.to_container(cfg, resolve=True)


def test_experiments_are_deltas(tmp_path):
    pretrain = compose_train(["+experiment=pretrain"], output_dir=tmp_path)
    finetune = compose_train(["+experiment=finetune"], output_dir=tmp_path)
    scratch = compose_train(["+experiment=scratch"], output_dir=tmp_path)
    assert pretrain.data.synth.cohort == "adult"
    assert finetune.data.synth.cohort == scratch.data.synth.cohort == "paediatric"
    assert (
        pretrain.publish_checkpoint
        == finetune.finetune.pretrained
        == pretrain.paths.pretrained_ckpt
    )
    assert scratch.finetune.get("pretrained") is None
    assert finetune.finetune.schedule != "none"
    # The control is fine-tuning with the transfer-learning choices undone, by construction:
    # scratch.yaml starts from finetune.yaml and changes only the finetune group and the names.
    scratch_yaml = _yaml("experiment/scratch.yaml")
    assert scratch_yaml.pop("defaults") == ["finetune", {"override /finetune": "none"}]
    assert set(scratch_yaml) == {"task_name", "tags"}
    drop = ("finetune", "task_name", "tags")
    same = {k: v for k, v in OmegaConf.to_container(finetune).items() if k not in drop}
    other = {k: v for k, v in OmegaConf.to_container(scratch).items() if k not in drop}
    assert same == other


def _yaml(name: str) -> dict:
    """A config file of ``conf/`` as plain containers (no composition)."""
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / name))


def _leaves(node: dict, prefix: str = "") -> dict[str, object]:
    """``{dotted.key: value}`` of a nested mapping; lists are values."""
    out: dict[str, object] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        out.update(_leaves(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_set_only_what_differs_from_their_base(experiment, tmp_path):
    """No experiment restates a default: every key and group choice it sets changes something."""
    own = _yaml(f"experiment/{experiment}.yaml")
    defaults = own.pop("defaults", [])
    parents = [entry for entry in defaults if isinstance(entry, str)]
    base = compose_train([f"+experiment={p}" for p in parents], output_dir=tmp_path)
    choices = {}  # the base's group choices: train.yaml's, then the parents' overrides
    for source in ["train.yaml", *(f"experiment/{p}.yaml" for p in parents)]:
        for entry in _yaml(source).get("defaults", []):
            if isinstance(entry, dict):
                choices.update({k.removeprefix("override /"): v for k, v in entry.items()})
    for entry in (e for e in defaults if isinstance(e, dict)):
        for key, option in entry.items():
            group = key.removeprefix("override /")
            assert choices[group] != option, f"{experiment}: {key}: {option} is already the base"
    flat = _leaves(OmegaConf.to_container(base))
    for key, value in _leaves(own).items():
        assert flat.get(key, "<absent>") != value, f"{experiment}: {key}={value} restates the base"


def test_one_epoch_budget_for_every_experiment(tmp_path):
    budget = OmegaConf.load(CONF_DIR / "trainer" / "default.yaml").max_epochs
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        assert "max_epochs" not in path.read_text(), path
    for experiment in EXPERIMENTS:
        cfg = compose_train([f"+experiment={experiment}"], output_dir=tmp_path)
        assert cfg.trainer.max_epochs == budget == 12
        assert cfg.model.scheduler.T_max == budget
    # The debug presets keep their own short budgets, with an experiment too.
    fdr = compose_train(["+experiment=finetune", "debug=overfit"], output_dir=tmp_path)
    assert fdr.trainer.max_epochs == 30


def test_the_model_predicts_the_label_map():
    model = OmegaConf.load(CONF_DIR / "model" / "unet.yaml")
    assert model.num_classes == NUM_LABELS == 4
    assert tuple(model.class_names) == LABEL_NAMES == ("background", "brain", "striatum", "tumour")


def test_one_metric_name_everywhere(tmp_path):
    cfg = compose_train(["+experiment=finetune"], output_dir=tmp_path)
    assert cfg.callbacks.model_checkpoint.monitor == cfg.optimized_metric == "val/dice"


def test_no_config_downloads_weights(tmp_path):
    for path in CONF_DIR.rglob("*.yaml"):
        assert not re.search(r"encoder_weights:\s*[\"']?imagenet", path.read_text()), path
    cfg = compose_train([], output_dir=tmp_path)
    assert cfg.model.net.encoder_weights is None


def test_wandb_logger_is_offline_by_default(tmp_path):
    cfg = compose_train(["+experiment=pretrain"], output_dir=tmp_path)
    assert cfg.logger.wandb.offline is True


def test_trainer_is_gpu_ready_but_cpu_safe(tmp_path):
    cfg = compose_train([], output_dir=tmp_path)
    assert cfg.trainer.accelerator == "auto"
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


RECIPE_EXPERIMENTS = ("pretrain", "finetune", "scratch", "pretrain_pet", "finetune_pet")
"""The recipe's experiments on the 4 mm grid: both stages, the control and the PET-only pair."""


def test_the_recipe_trains_on_pet_and_flair_and_the_pet_only_pair_on_pet(tmp_path):
    cfg = {
        name: compose_train([f"+experiment={name}"], output_dir=tmp_path)
        for name in RECIPE_EXPERIMENTS
    }
    for name in ("pretrain", "finetune", "scratch"):
        assert list(cfg[name].data.channels) == ["pet", "flair"]
        assert cfg[name].data.channel_dropout is None  # the FLAIR required
    pet, pet_ft = cfg["pretrain_pet"], cfg["finetune_pet"]
    assert list(pet.data.channels) == list(pet_ft.data.channels) == ["pet"]
    # The PET-only adult checkpoint is its own file: publishing it leaves the PET + FLAIR one.
    assert pet.publish_checkpoint == pet_ft.finetune.pretrained == pet.paths.pretrained_pet_ckpt
    assert pet.publish_checkpoint != cfg["pretrain"].publish_checkpoint
    assert pet.data.synth.cohort == "adult" and pet_ft.data.synth.cohort == "paediatric"


def test_the_4mm_grid_trains_on_batches_of_2_and_the_2mm_grid_on_4(tmp_path):
    for name in RECIPE_EXPERIMENTS:
        cfg = compose_train([f"+experiment={name}"], output_dir=tmp_path)
        assert cfg.data.patch_size == [32, 32, 32] and cfg.data.batch_size == 2
    two_mm = compose_train(["+experiment=finetune", "data=standard"], output_dir=tmp_path)
    assert two_mm.data.patch_size == [64, 64, 64] and two_mm.data.batch_size == 4


def test_mixed_data_is_its_own_cohort_on_the_model_grid(tmp_path):
    from fdopa.data.synthetic import SynthConfig

    tiny = compose_train([], output_dir=tmp_path).data
    mixed = compose_train(["data=mixed"], output_dir=tmp_path).data
    assert mixed.root != tiny.root and tiny.spacing_mm is None
    module = instantiate(mixed)
    assert module.spacing_mm == (4.0, 4.0, 4.0)
    config = SynthConfig(**OmegaConf.to_container(mixed.synth, resolve=True))
    assert config.scanner_subjects().sum() == round(0.5 * config.n)
