"""Helpers shared by tests: compose the real Hydra configs as `train.py` would."""

from fdopa.config import CONF_DIR, compose_train

__all__ = ["CONF_DIR", "compose_train"]
