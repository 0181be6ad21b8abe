"""Train a segmentation model: `python train.py +experiment=pretrain|finetune|scratch [k=v …]`.

Thin on purpose: Hydra composes ``conf/train.yaml`` and the overrides, and
:func:`fdopa.pipeline.train` does the work and returns the optimised metric (for sweepers).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric`` of the finished run."""
    from fdopa.pipeline import train

    return train(cfg)


if __name__ == "__main__":
    main()
