"""The training pipeline behind ``train.py``: seed, instantiate, fit, test, return the metric.

Everything is built from the composed Hydra config in one place; experiments only change
config keys. The data, model, loss, augmentation and fine-tuning groups meet here and nowhere
else.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from fdopa.config import validate_train_config
from fdopa.layout import RUN_CONFIG
from fdopa.outputs import copy_file_atomic, write_text_atomic

log = logging.getLogger(__name__)


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` child of a config node (callbacks, loggers)."""
    if not node:
        return []
    return [instantiate(child) for child in node.values() if child and "_target_" in child]


def publish_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint to a stable path atomically (temporary name, then rename).

    A checkpoint already published there is first kept as ``<name>.previous<suffix>`` (in
    place of an older one), so a short or mistaken run never silently replaces the only copy
    of, say, the adult checkpoint.
    """
    target = Path(target)
    if target.is_file():
        previous = target.with_name(f"{target.stem}.previous{target.suffix}")
        copy_file_atomic(target, previous)
        log.info("kept the checkpoint published before as %s", previous)
    target = copy_file_atomic(source, target)
    log.info("published %s → %s", source, target)
    return target


def prepare_data(cfg: DictConfig) -> Path:
    """Generate the configured synthetic cohort if absent, or check the one there; nothing else.

    What ``data_only=true`` runs: it reads no checkpoint and writes no run files, so it may
    prepare a cluster job's data beforehand, or the fine-tuning cohort while the pretraining
    that fine-tuning starts from is still running (``make demo``).

    Returns:
        The cohort root.
    """
    validate_train_config(cfg)
    datamodule = instantiate(cfg.data, augment=None, run_dir=None)
    datamodule.prepare_data()
    return datamodule.root


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the datamodule, the module (with pretrained weights) and the trainer.

    Args:
        cfg: Composed ``train.yaml`` config (``paths.output_dir`` resolved).

    Returns:
        ``(datamodule, module, trainer)``.

    Raises:
        fdopa.errors.BadInput: If a config key is mistyped or an input path is missing
            (:func:`fdopa.config.validate_train_config`).
        FileNotFoundError: If ``finetune.pretrained`` names a missing checkpoint.
        fdopa.models.transfer.CheckpointError: If ``finetune.pretrained`` or ``ckpt_path`` is
            not a Lightning checkpoint.
    """
    from fdopa.models.transfer import (
        load_pretrained,
        pet_scaling,
        read_checkpoint,
        require_checkpoint,
    )

    validate_train_config(cfg)
    pretrained = cfg.finetune.get("pretrained")
    if pretrained:  # before the (possibly long) cohort generation
        read_checkpoint(require_checkpoint(pretrained), "finetune.pretrained")
    if cfg.get("ckpt_path"):
        read_checkpoint(cfg.ckpt_path, "ckpt_path")
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    augment = instantiate(cfg.augment) if cfg.get("augment") else None
    datamodule = instantiate(cfg.data, augment=augment, run_dir=str(output_dir))
    with open_dict(cfg):
        cfg.model.net.in_channels = len(cfg.data.channels)
    scaling = pet_scaling(datamodule.normalisation, datamodule.suv_scale)
    model = instantiate(
        cfg.model,
        loss=instantiate(cfg.loss),
        encoder_lr_factor=cfg.finetune.encoder_lr_factor,
        pet_scaling=scaling,
    )
    if pretrained:
        load_pretrained(model.net, pretrained, scaling=scaling)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if cfg.finetune.get("callback"):
        callbacks.append(instantiate(cfg.finetune.callback))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(resolved)
    write_text_atomic(output_dir / RUN_CONFIG, OmegaConf.to_yaml(resolved))
    return datamodule, model, trainer


def train(cfg: DictConfig) -> float | None:
    """Run one training job from a composed config.

    Args:
        cfg: Composed ``train.yaml`` config.

    Returns:
        The best value of ``cfg.optimized_metric`` (what ModelCheckpoint monitored), or its
        last logged value when no checkpoint callback tracked it; ``None`` if never logged
        or with ``data_only`` (:func:`prepare_data` only).
    """
    if cfg.get("data_only"):
        log.info("data_only: the cohort is ready in %s", prepare_data(cfg))
        return None
    os.environ.setdefault("WANDB_MODE", "offline")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    if cfg.get("train", True):
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        except SystemExit:
            if trainer.interrupted:  # Lightning turns Ctrl-C into exit status 1
                raise KeyboardInterrupt from None
            raise
    checkpoint = trainer.checkpoint_callback
    best_path = getattr(checkpoint, "best_model_path", "") or ""
    score = getattr(checkpoint, "best_model_score", None)
    metrics = dict(trainer.callback_metrics)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None)
    if cfg.get("publish_checkpoint") and best_path:
        publish_checkpoint(best_path, cfg.publish_checkpoint)
    if score is None or getattr(checkpoint, "monitor", None) != cfg.optimized_metric:
        score = metrics.get(cfg.optimized_metric)
    value = None if score is None else float(score)
    log.info("%s = %s (best checkpoint: %s)", cfg.optimized_metric, value, best_path or "none")
    return value
