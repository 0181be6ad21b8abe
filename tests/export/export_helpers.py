"""Helpers of tests/export: a tiny random bundle, short training overrides, Dice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fdopa.export.bundle import Bundle, read_bundle, write_bundle
from fdopa.export.bundle_config import BundleConfig
from fdopa.export.metadata import build_metadata

TINY_NETWORK = {
    "encoder_name": "resnet18",
    "in_channels": 1,
    "classes": 4,
    "encoder_depth": 5,
    "decoder_channels": [32, 16, 16, 8, 8],
    "encoder_weights": None,
}
TINY_TUMOUR_RANGE = [1.0, 80.0]


def tiny_config(**changes) -> BundleConfig:
    """A 4 mm, 32³-patch configuration of the tiny network (overlap 0.25: 8 patches a volume)."""
    settings = {
        "overlap": 0.25,
        "builder": "fdopa.models.network.build_unet",
        "network": TINY_NETWORK,
        "channels": ("pet",),
        "spacing_mm": (4.0, 4.0, 4.0),
        "patch_size": (32, 32, 32),
        "training_grid_shape": (44, 52, 44),
        **changes,
    }
    return BundleConfig(**settings)


def write_tiny_bundle(out: Path, seed: int = 0, **changes) -> tuple[Bundle, torch.nn.Module]:
    """A bundle of a randomly initialised tiny network (``changes`` to its config), and that
    network."""
    config = tiny_config(**changes)
    torch.manual_seed(seed)
    net = config.build_network()
    training = {"n_train": 0, "tumour_ml_range": TINY_TUMOUR_RANGE}
    metadata = build_metadata(config, training=training, validation={})
    return write_bundle(out, net, config, metadata), net


def write_flair_bundle(out: Path, dropout: dict[str, float]) -> Bundle:
    """A PET + FLAIR bundle of the tiny network (FLAIR ``dropout`` in training; TTA and a
    post-processing on), read back from disk."""
    config = tiny_config(
        channels=("pet", "flair"), network={**TINY_NETWORK, "in_channels": 2},
        channel_dropout=dropout, tta=True,
        postprocess={"min_tumour_ml": 0.5, "tumour_threshold": 0.7},
    )  # fmt: skip
    training = {"n_train": 0, "tumour_ml_range": TINY_TUMOUR_RANGE}
    write_bundle(out, config.build_network(), config, build_metadata(config, training=training,
                 validation={}))  # fmt: skip
    return read_bundle(out)


def train_overrides(cohort: Path, root: Path) -> list[str]:
    """A short CPU training on the fixture cohort: 8 folds (one validation subject)."""
    return [
        f"data.root={cohort}",
        "data.synth=null",
        "data.n_folds=8",
        "data.batch_size=2",
        "data.samples_per_volume=4",
        "data.queue_length=8",
        f"paths.root_dir={root}",
        "logger=csv",
        "callbacks.model_summary=null",
        "augment=none",
        "trainer=cpu",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=2",
        "+trainer.enable_progress_bar=false",
        "model.net.decoder_channels=[32,16,16,8,8]",
        "model.log_images=0",
    ]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (NaN when both are empty, as the validation metric skips)."""
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * int((a & b).sum()) / total
