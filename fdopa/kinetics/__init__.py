"""PET indices of SPEC §3 (static and dynamic) — pure numpy/scipy, no torch.

The reference implementation (:func:`reference_indices`) is deliberately plain and is the
yardstick for faster implementations and the ground truth of the synthetic cohort.
"""

from fdopa.kinetics.presets import PRESETS, Preset, get_preset
from fdopa.kinetics.reference import (
    DYNAMIC_KEYS,
    EXTRA_KEYS,
    INDEX_KEYS,
    reference_indices,
    sphere_kernel,
    suv_peak,
)
from fdopa.kinetics.reference_regions import Regions, derive_regions, validate_inputs, voxel_zooms

__all__ = [
    "DYNAMIC_KEYS",
    "EXTRA_KEYS",
    "INDEX_KEYS",
    "PRESETS",
    "Preset",
    "Regions",
    "derive_regions",
    "get_preset",
    "reference_indices",
    "sphere_kernel",
    "suv_peak",
    "validate_inputs",
    "voxel_zooms",
]
