"""Helpers of tests/models: tiny networks and data in the data module's batch contract."""

from __future__ import annotations

import functools

import lightning as L
import torch
from monai.losses import DiceCELoss
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fdopa.models.module import SegmentationModule
from fdopa.models.network import build_unet

TINY_DECODER = (32, 16, 16, 8, 8)


def tiny_unet(classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_unet("resnet18", in_channels=1, classes=classes, decoder_channels=TINY_DECODER)


def make_module(net: nn.Module, **kwargs) -> SegmentationModule:
    defaults = {
        "loss": DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True),
        "optimizer": functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=1e-5),
        "log_images": 0,
    }
    return SegmentationModule(net, **{**defaults, **kwargs})


class PatchDataset(Dataset):
    """Random training patches in the batch contract (image, label, participant_id)."""

    def __init__(self, n: int = 4, patch: int = 32, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 1, patch, patch, patch, generator=generator)
        self.labels = torch.randint(0, 4, (n, 1, patch, patch, patch), generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "participant_id": f"sub-{i:03d}"}


class VolumeDataset(Dataset):
    """Whole volumes in the validation contract, one per item (collated to batch size 1)."""

    def __init__(self, images, labels, spacing: float = 4.0) -> None:
        self.images, self.labels = images, labels
        self.affine = torch.diag(
            torch.tensor([spacing, spacing, spacing, 1.0], dtype=torch.float64)
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self.images[i],
            "label": self.labels[i],
            "pet": self.images[i][:1].abs(),
            "affine": self.affine,
            "participant_id": f"sub-{i:03d}",
            "dynamic_path": "",
            "sidecar_path": "",
        }


def patch_loader(n: int = 4, batch_size: int = 2) -> DataLoader:
    return DataLoader(PatchDataset(n), batch_size=batch_size)


def cpu_trainer(**kwargs) -> L.Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(**{**defaults, **kwargs})
