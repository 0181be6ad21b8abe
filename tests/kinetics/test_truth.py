"""Noise-free synthetic subjects: the fast indices read from files equal the generator's truth.

The truth JSON holds the indices of both presets computed on the noise-free images with the
true labels (``derivatives/noisefree`` and ``derivatives/labels``, written with the raw names),
and the guideline TACs of the noise-free 4-D image.
"""

import json

import numpy as np
import pytest

from fdopa.data.layout import SubjectPaths
from fdopa.kinetics import PRESETS, indices_from_files

pytestmark = pytest.mark.slow


def _subjects(root):
    return [SubjectPaths(root, p.name) for p in sorted(root.glob("sub-*"))]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_noise_free_indices_equal_truth(paediatric_cohort, name):
    subjects = _subjects(paediatric_cohort)
    n_dynamic = 0
    for paths in subjects:
        truth = json.loads(paths.truth.read_text())
        clean = paths.noise_free
        dynamic = clean.dynamic_pet if clean.dynamic_pet.exists() else None
        n_dynamic += dynamic is not None
        result = indices_from_files(clean.static_pet, paths.labels, name, dynamic_path=dynamic)
        expected = truth["indices"][name]
        got = result.to_dict()
        assert list(got) == list(expected)
        assert got["missing"] == expected["missing"]
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-12), (paths, key)
            else:
                assert got[key] == value, (paths, key)
        if dynamic is not None and name == "guideline":
            tacs = result.tacs.to_dict()
            for key, value in truth["tacs_image"].items():
                np.testing.assert_allclose(tacs[key], value, rtol=1e-6, atol=1e-12, err_msg=key)
    assert len(subjects) == 8 and n_dynamic == 4
