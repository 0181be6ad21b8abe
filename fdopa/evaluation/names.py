"""Index names shared by the clinical evaluation, the score and the report (import-light)."""

from __future__ import annotations

__all__ = ["DEFAULT_INDICES", "SCORE_INDICES"]

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
