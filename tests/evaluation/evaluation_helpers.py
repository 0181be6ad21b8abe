"""Helpers of tests/evaluation: a labelled PET phantom and a fake module for the callback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def phantom(scale: float = 1.0, depth: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Labels of a 20³ head (4 mm) and a PET: brain 1, striatum 2.5, tumour 3·scale, rim 2.0.

    The tumour is 4 × 4 × ``depth`` voxels (``depth`` ≤ 5).
    """
    labels = np.zeros((20, 20, 20), np.int16)
    labels[2:18, 2:18, 2:18] = 1
    labels[4:7, 8:11, 8:11] = 2
    labels[13:16, 8:11, 8:11] = 2
    labels[13:17, 2:6, 8 : 8 + depth] = 3
    pet = np.where(labels == 1, 1.0, 0.1)
    pet[12:18, 2:7, 7:13] = 2.0  # uptake spills one voxel beyond the tumour label...
    pet[labels == 3] = 3.0 * scale
    pet[labels == 2] = 2.5  # ...but not into the striatum
    pet[labels == 0] = 0.1
    return labels, pet


def volume_batch(
    labels: np.ndarray,
    pet: np.ndarray,
    participant_id: str,
    affine: np.ndarray = AFFINE,
    dynamic_path: str = "",
    sidecar_path: str = "",
) -> dict[str, Any]:
    """One validation item in the data module's contract (collated to batch size 1)."""
    return {
        "image": torch.as_tensor(pet, dtype=torch.float32)[None],
        "label": torch.as_tensor(labels, dtype=torch.int64)[None],
        "pet": torch.as_tensor(pet, dtype=torch.float32)[None],
        "affine": torch.as_tensor(affine, dtype=torch.float64),
        "participant_id": participant_id,
        "dynamic_path": dynamic_path,
        "sidecar_path": sidecar_path,
    }


class ScriptedModule(L.LightningModule):
    """Returns a scripted prediction per epoch and participant and logs a scripted Dice.

    Args:
        predictions: ``predictions[epoch][participant_id]`` → label map.
        dice: ``dice[epoch]`` logged as ``val/dice``.
    """

    def __init__(self, predictions: Sequence[dict[str, np.ndarray]], dice: Sequence[float]):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.predictions, self.dice = predictions, dice

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return (self.weight**2).sum()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        participant = batch["participant_id"][0]
        pred = self.predictions[self.current_epoch][participant]
        self.log("val/dice", self.dice[self.current_epoch], batch_size=1)
        return {"pred": torch.as_tensor(pred, dtype=torch.int64), "participant_id": participant}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(
    module: L.LightningModule,
    items: Sequence[dict[str, Any]],
    callbacks: list,
    epochs: int,
    root: Path,
) -> L.Trainer:
    """Fit on one dummy training batch per epoch, validating on ``items`` (batch size 1).

    Checkpoints are written only by a ModelCheckpoint among ``callbacks``.
    """
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )
    train = DataLoader([torch.zeros(1)], batch_size=1)
    trainer.fit(module, train, DataLoader(list(items), batch_size=1))
    return trainer
