"""The fast indices equal the reference implementation to 1e-9 on random phantoms and subjects.

Random phantoms vary the grid, voxel size, storage orientation (flips, oblique affines),
structure sizes and positions, preset fields and frame timing; the fixture subjects add
realistic anatomy, noise and the "manual" label variant.
"""

import numpy as np
import pytest
from scipy import ndimage

from fdopa.kinetics import (
    EXTRA_KEYS,
    INDEX_KEYS,
    compute_indices,
    get_preset,
    indices_from_files,
    load_inputs,
    reference_indices,
)
from fdopa.layout import SubjectPaths


def assert_same(fast, reference, rel=1e-9):
    """Every index, extra, missing reason and TAC of a fast result equals the reference."""
    indices, tacs = reference["indices"], reference["tacs"]
    got = fast.to_dict()
    assert list(got) == list(INDEX_KEYS + EXTRA_KEYS)
    for key, expected in indices.items():
        if isinstance(expected, float) and not isinstance(expected, bool):
            assert got[key] == pytest.approx(expected, rel=rel, abs=1e-12), key
        else:
            assert got[key] == expected, key
    assert (fast.tacs is None) == (tacs == {})
    if fast.tacs is not None:
        for key, expected in tacs.items():
            value = fast.tacs.to_dict()[key]
            assert (value is None) == (expected is None), key
            if expected is not None:
                np.testing.assert_allclose(value, expected, rtol=rel, atol=1e-12, err_msg=key)


def _blob(rng, shape, centre, radius):
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    return (((grid - centre) / radius) ** 2).sum(axis=-1) <= 1 + rng.normal(0, 0.2, shape)


def random_phantom(seed):
    """A random head: ellipsoid brain, two striata, an optional tumour, noisy 4-D PET."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(20, 34, size=3))
    centre = np.array(shape) / 2
    labels = np.zeros(shape, dtype=np.int16)
    labels[_blob(rng, shape, centre, np.array(shape) * 0.42)] = 1
    for side in (-1, 1):
        offset = np.array([side * shape[0] * 0.15, 0, 0])
        labels[_blob(rng, shape, centre + offset, rng.uniform(1.5, 3, size=3))] = 2
    if rng.random() < 0.9:
        place = centre + rng.uniform(-0.3, 0.3, size=3) * np.array(shape)
        labels[_blob(rng, shape, place, rng.uniform(1, 4, size=3))] = 3
    zooms = rng.uniform(1.5, 4.0, size=3)
    rotation, _ = np.linalg.qr(np.eye(3) + rng.normal(0, 0.15 * (seed % 2), (3, 3)))
    rotation *= np.sign(np.diag(rotation)) * rng.choice([-1, 1], size=3)
    affine = np.eye(4)
    affine[:3, :3] = rotation * zooms
    affine[:3, 3] = rng.uniform(-80, 80, size=3)
    n_frames = int(rng.integers(6, 16))
    gaps = rng.uniform(0, 20, n_frames) * (rng.random(n_frames) < 0.3)
    durations = rng.uniform(10, 200, n_frames)
    starts = np.cumsum(np.r_[0, durations[:-1] + gaps[:-1]]) + rng.uniform(0, 30)
    uptake = np.where(labels > 0, labels.astype(float), 0.2)[..., None]
    trend = 1 + rng.normal(0, 0.5, n_frames) * np.linspace(0, 1, n_frames)
    dynamic = uptake * trend + ndimage.gaussian_filter(rng.gamma(2.0, 0.5, (*shape, n_frames)), 1)
    static = dynamic[..., n_frames // 2 :].mean(axis=3)
    overrides = {
        "margin_mm": float(rng.uniform(0, 12)),
        "slab_mm": float(rng.uniform(2, 20)),
        "min_ref_ml": float(rng.choice([0.0, 2.0, 20.0])),
        "midline_mm": float(rng.choice([1.0, 5.0, 15.0])),
        "reference_start": str(rng.choice(["slab", "hemisphere", "both_hemispheres"])),
        "tsr_rule": str(rng.choice(["max_over_max", "mean_over_mean"])),
        "tumour_tac": str(rng.choice(["tumour", "tumour_hot"])),
        "slope_window_min": (float(starts[1] / 60), float((starts[-1] + durations[-1]) / 60)),
        "slope_start_s": float(rng.uniform(0, starts[-1])),
        "patlak_tstar_min": float(starts[n_frames // 3] / 60),
        "pattern_eps_mode": str(rng.choice(["relative", "absolute"])),
    }
    return static, labels, affine, dynamic, starts, durations, overrides


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("name", ["guideline", "genoa2024"])
def test_random_phantoms(seed, name):
    static, labels, affine, dynamic, starts, durations, overrides = random_phantom(seed)
    preset = get_preset(name, **overrides)
    timing = {"frame_start_s": starts, "frame_duration_s": durations}
    with_dynamic = {"dynamic": dynamic, **timing} if seed % 3 else {}
    reference = reference_indices(static, labels, affine, preset, **with_dynamic)
    fast = compute_indices(static, labels, affine, preset, **with_dynamic)
    assert_same(fast, reference)


def test_random_phantoms_cover_the_rules():
    """The random phantoms above reach every side, reference rule and missing reason."""
    seen = set()
    for seed in range(20):
        static, labels, affine, *_, overrides = random_phantom(seed)
        out = compute_indices(static, labels, affine, get_preset("guideline", **overrides))
        seen |= {out.tumour_side, out.reference_rule, *out.missing.values()}
    assert {"left", "right", "midline", None, "slab", "hemisphere", "both_hemispheres"} <= seen
    assert "tumour_empty" in seen


@pytest.mark.slow
@pytest.mark.parametrize("name", ["guideline", "genoa2024"])
def test_fixture_subjects(paediatric_cohort, name):
    ids = sorted(p.name for p in paediatric_cohort.glob("sub-*"))
    for participant_id in ids:
        paths = SubjectPaths(paediatric_cohort, participant_id)
        dynamic = paths.dynamic_pet if paths.dynamic_pet.exists() else None
        for labels in (paths.labels, paths.manual_labels):
            inputs = load_inputs(paths.static_pet, labels, dynamic)
            reference = reference_indices(
                inputs.static, inputs.labels, inputs.affine, name, dynamic=inputs.dynamic,
                frame_start_s=inputs.frame_start_s, frame_duration_s=inputs.frame_duration_s,
                participant_id=participant_id,
            )  # fmt: skip
            fast = indices_from_files(paths.static_pet, labels, name, dynamic_path=dynamic)
            assert_same(fast, reference)
