"""Sweeps and scale-out: W&B sweep specs, the offline Optuna search and DDP, through train.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import CONF_DIR, compose_train
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fdopa.pipeline import train

ROOT = CONF_DIR.parent
SWEEPS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))
GROUPS = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def _spec(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _experiment(spec: dict) -> str:
    return next(arg for arg in spec["command"] if str(arg).startswith("+experiment="))


def _check_key(cfg, key: str, values: list) -> None:
    if key in GROUPS:
        for value in values:
            assert (CONF_DIR / key / f"{value}.yaml").is_file(), f"{key}={value}"
    else:
        assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key


def _values(param: dict) -> list:
    return param.get("values") or [param["min"], param["max"]]


@pytest.mark.parametrize("sweep", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_swept_key_exists_and_the_metric_is_logged(sweep, tmp_path):
    spec = _spec(sweep)
    cfg = compose_train([_experiment(spec)], output_dir=tmp_path)
    for key, param in spec["parameters"].items():
        _check_key(cfg, key, _values(param))
    assert spec["metric"]["name"] == cfg.optimized_metric == cfg.callbacks.model_checkpoint.monitor
    assert spec["command"][-1] == "${args_no_hyphens}"


def test_optuna_search_sweeps_the_same_keys_as_the_wandb_sweep(tmp_path):
    cfg = compose_train(
        ["+experiment=finetune", "hparams_search=finetune_optuna"], output_dir=tmp_path
    )
    search = OmegaConf.load(CONF_DIR / "hparams_search" / "finetune_optuna.yaml")
    optuna = dict(search.hydra.sweeper.params)
    wandb_keys = set(_spec(ROOT / "experiments/sweeps/finetune.yaml")["parameters"])
    assert set(optuna) == wandb_keys
    for key, expression in optuna.items():
        values = (
            re.findall(r"[\w.-]+", expression.split("(", 1)[1]) if "choice" in expression else []
        )
        _check_key(cfg, key, values)


def _fake_adult_checkpoint(path: Path, tmp_path: Path) -> Path:
    """A checkpoint with the default network's weights under ``net.``, as pretraining writes."""
    cfg = compose_train([], output_dir=tmp_path)
    net = instantiate(cfg.model.net)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def _train(args: list[str], tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _local(cohort: Path, tmp_path: Path) -> list[str]:
    return [
        f"data.root={cohort}",
        "data.synth=null",
        "data.n_folds=4",
        f"paths.root_dir={tmp_path}",
        "model.log_images=0",
    ]


@pytest.mark.slow
def test_the_wandb_agent_command_trains_with_every_sampled_value(paediatric_cohort, tmp_path):
    # The overrides the agent appends to `python train.py` (`${args_no_hyphens}`), composed and
    # trained in this process: train.py itself runs in the Optuna and DDP tests below.
    spec = _spec(ROOT / "experiments/sweeps/finetune.yaml")
    sampled = {key: _values(param)[-1] for key, param in spec["parameters"].items()}
    command = [_experiment(spec), *(f"{key}={value}" for key, value in sampled.items())]
    ckpt = _fake_adult_checkpoint(tmp_path / "adult.ckpt", tmp_path)
    local = [*_local(paediatric_cohort, tmp_path), "debug=fdr", f"finetune.pretrained={ckpt}"]
    cfg = compose_train([*command, *local], output_dir=tmp_path / "run")
    choices = HydraConfig.get().runtime.choices
    for key, value in sampled.items():
        got = choices[key] if key in GROUPS else OmegaConf.select(cfg, key)
        assert got == value, key
    value = train(cfg)
    assert value is not None and 0.0 <= value <= 1.0


@pytest.mark.slow
def test_optuna_multirun_of_two_trials_reports_its_best_value(paediatric_cohort, tmp_path):
    ckpt = _fake_adult_checkpoint(tmp_path / "adult.ckpt", tmp_path)
    _train(
        [
            "-m",
            "+experiment=finetune",
            "hparams_search=finetune_optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=2",
            "debug=fdr",
            f"finetune.pretrained={ckpt}",
            *_local(paediatric_cohort, tmp_path),
        ],
        tmp_path,
    )
    (results,) = tmp_path.rglob("optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    assert 0.0 <= float(best["best_value"]) <= 1.0
    assert set(best["best_params"]) == set(
        _spec(ROOT / "experiments/sweeps/finetune.yaml")["parameters"]
    )


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_runs_a_fast_dev_run(paediatric_cohort, tmp_path):
    result = _train(
        [
            "+experiment=scratch",
            "trainer=ddp",
            "debug=fdr",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.sync_batchnorm=false",
            *_local(paediatric_cohort, tmp_path),
        ],
        tmp_path,
    )
    # Lightning logs one line per process as it joins the process group.
    output = result.stdout + result.stderr
    for rank in (0, 1):
        assert f"Initializing distributed: GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in output
