"""Fixtures of the kinetics tests: run every analytic test on both implementations.

``indices_fn`` is :func:`reference_indices` or the fast :func:`compute_indices` behind the
reference's return shape (``{"indices": dict, "tacs": dict}``), so one table of analytic cases
checks both. ``regions_fn`` does the same for the derived regions (boolean masks).
"""

from types import SimpleNamespace

import numpy as np
import pytest

from fdopa.kinetics import compute_indices, derive_regions, reference_indices
from fdopa.kinetics.regions import derive_region_set


def fast_indices(static, labels, affine, preset, **kwargs):
    """The fast path, returned in the layout of :func:`reference_indices`."""
    result = compute_indices(static, labels, affine, preset, **kwargs)
    return {
        "indices": result.to_dict(),
        "tacs": {} if result.tacs is None else result.tacs.to_dict(),
    }


def fast_regions(labels, affine, preset):
    """The fast regions with boolean masks, like :func:`derive_regions`."""
    regions = derive_region_set(labels, affine, preset)
    masks = {}
    for name in ("tumour", "striatum", "reference"):
        masks[name] = np.zeros(labels.shape, dtype=bool)
        masks[name][getattr(regions, name)] = True
    return SimpleNamespace(**{**vars(regions), **masks})


@pytest.fixture(params=["reference", "fast"])
def indices_fn(request):
    """Index function of one implementation (both run every test that uses it)."""
    return reference_indices if request.param == "reference" else fast_indices


@pytest.fixture(params=["reference", "fast"])
def regions_fn(request):
    """Region function of one implementation."""
    return derive_regions if request.param == "reference" else fast_regions
