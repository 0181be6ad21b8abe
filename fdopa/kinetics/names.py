"""Index output names, shared by every implementation and writer of the indices."""

from __future__ import annotations

__all__ = ["DYNAMIC_KEYS", "EXTRA_KEYS", "INDEX_KEYS", "TAC_REGIONS"]

INDEX_KEYS: tuple[str, ...] = (
    "participant_id",
    "preset",
    "tumour_suvmax",
    "tumour_suvmean",
    "tumour_suvpeak",
    "tumour_ml",
    "striatum_suvmax",
    "striatum_suvmean",
    "reference_suvmean",
    "reference_suvmax",
    "reference_ml",
    "reference_rule",
    "tsr",
    "tbr_max",
    "tbr_mean",
    "mtv_ml",
    "measurable",
    "ttp_min",
    "slope_tumour_per_h",
    "slope_striatum_per_h",
    "dsr",
    "curve_pattern",
    "ki_ref_tumour",
    "ki_ref_striatum",
    "missing",
)
"""Index output names, in order (docs/indices.md#output-fields)."""

DYNAMIC_KEYS: tuple[str, ...] = INDEX_KEYS[INDEX_KEYS.index("ttp_min") : -1]
"""The index output names that need a dynamic image."""

EXTRA_KEYS: tuple[str, ...] = (
    "tumour_side",
    "midline_x_mm",
    "tumour_centroid_x_mm",
    "tumour_centroid_y_mm",
    "tumour_centroid_z_mm",
    "striatum_rule",
    "striatum_ml",
    "tumour_hot_ml",
    "mtv_threshold",
    "tumour_tac",
    "n_frames",
    "slope_window_frames",
    "slope_window_start_min",
    "slope_window_end_min",
    "patlak_frames",
    "v_ref_tumour",
    "v_ref_striatum",
)
"""Extra output fields that follow ``missing``."""

TAC_REGIONS: tuple[str, ...] = ("tumour", "tumour_hot", "striatum", "reference")
"""Regions with a time-activity curve: tumour, hot tumour voxels, contralateral striatum,
background reference."""
