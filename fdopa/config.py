"""Compose the project's Hydra configs outside ``@hydra.main`` (tests, benchmarks, notebooks).

The configs live in ``conf/`` at the repository root, beside the package, as in a clone or an
editable install.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_train(
    overrides: Sequence[str] = (), *, output_dir: str | Path | None = None
) -> DictConfig:
    """Compose ``conf/train.yaml`` with overrides, as ``train.py`` would.

    The Hydra runtime config is registered as under ``@hydra.main``, so
    ``${hydra:runtime.output_dir}`` interpolations resolve (to ``output_dir`` when given).

    Args:
        overrides: Hydra overrides, e.g. ``["+experiment=finetune", "logger=csv"]``.
        output_dir: Run directory that ``paths.output_dir`` resolves to.

    Returns:
        The composed config without its ``hydra`` node.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg
