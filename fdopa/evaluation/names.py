"""Names shared by the callback, the score and the report (import-light: the CLI reads them)."""

from __future__ import annotations

__all__ = ["DEFAULT_INDICES", "PREFIX", "SCORE_INDICES", "SCORE_KEY"]

DEFAULT_INDICES: tuple[str, ...] = (
    "tsr",
    "tbr_max",
    "tbr_mean",
    "mtv_ml",
    "tumour_suvpeak",
    "ttp_min",
    "slope_tumour_per_h",
    "dsr",
)
"""Indices compared by default (callback and report): the static key indices, SUVpeak and the
dynamic ones."""

SCORE_INDICES: tuple[str, ...] = ("tsr", "tbr_max", "tbr_mean", "mtv_ml")
"""Key indices of the composite score (static, so every subject has them)."""

PREFIX = "val/clinical"
"""Prefix of every key the clinical evaluation logs."""

SCORE_KEY = f"{PREFIX}/score"
"""The logged composite score: the name ModelCheckpoint monitors in ``checkpoint_clinical``."""
