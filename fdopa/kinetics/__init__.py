"""FDOPA PET indices, static and dynamic (docs/indices.md) — pure numpy/scipy/nibabel, no torch.

:func:`compute_indices` (arrays) and :func:`indices_from_files` (NIfTI + sidecar) are the fast
implementation and return an :class:`IndexResult`. The reference implementation
(:func:`reference_indices`) is deliberately plain: it is the yardstick of the fast one and
writes the ground truth of the synthetic cohort.
"""

from fdopa.kinetics.compute import compute_indices, indices_from_files, indices_from_inputs
from fdopa.kinetics.io import PetInputs, load_inputs
from fdopa.kinetics.names import DYNAMIC_KEYS, EXTRA_KEYS, INDEX_KEYS, TAC_REGIONS
from fdopa.kinetics.presets import PRESETS, Preset, get_preset, parse_overrides
from fdopa.kinetics.reference import reference_indices, sphere_kernel, suv_peak
from fdopa.kinetics.reference_regions import Regions, derive_regions
from fdopa.kinetics.result import CSV_COLUMNS, IndexResult, TacTable
from fdopa.kinetics.validation import InputError, validate_inputs

__all__ = [
    "CSV_COLUMNS",
    "DYNAMIC_KEYS",
    "EXTRA_KEYS",
    "INDEX_KEYS",
    "PRESETS",
    "TAC_REGIONS",
    "IndexResult",
    "InputError",
    "PetInputs",
    "Preset",
    "Regions",
    "TacTable",
    "compute_indices",
    "derive_regions",
    "get_preset",
    "indices_from_files",
    "indices_from_inputs",
    "load_inputs",
    "parse_overrides",
    "reference_indices",
    "sphere_kernel",
    "suv_peak",
    "validate_inputs",
]
