"""Static indices on analytic phantoms: regions, ratios, MTV, SUVpeak, presets, validation.

Every test that computes indices or regions runs on both implementations (reference and fast;
fixtures ``indices_fn`` / ``regions_fn`` of ``conftest.py``).

Phantom: 40 × 24 × 24 voxels, brain box symmetric about the world midline x = 0, one striatum
block each side (left = 2.0, right = 3.0), tumour 4.0, brain 1.0 unless a test says otherwise.
"""

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from fdopa.kinetics import (
    DYNAMIC_KEYS,
    EXTRA_KEYS,
    INDEX_KEYS,
    PRESETS,
    get_preset,
    sphere_kernel,
)

SHAPE = (40, 24, 24)
TUMOUR_X = {"right": slice(31, 35), "left": slice(5, 9), "midline": slice(18, 22)}


def make_phantom(tumour="right", zooms=(2.0, 2.0, 2.0), flip_x=False):
    """Labels, static image and affine; index i runs left → right in world space."""
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[2:38, 2:22, 2:22] = 1
    labels[10:14, 10:14, 10:14] = 2  # left striatum (x < 0)
    labels[26:30, 10:14, 10:14] = 2  # right striatum
    static = np.where(labels > 0, 1.0, 0.0)
    static[10:14, 10:14, 10:14] = 2.0
    static[26:30, 10:14, 10:14] = 3.0
    if tumour is not None:
        labels[TUMOUR_X[tumour], 4:8, 10:14] = 3
        static[TUMOUR_X[tumour], 4:8, 10:14] = 4.0
    affine = np.diag([*zooms, 1.0])
    affine[0, 3] = -19.5 * zooms[0]  # voxel centre i = 19.5 is x = 0
    if flip_x:  # store left-right reversed (LAS): same world picture
        labels, static = labels[::-1].copy(), static[::-1].copy()
        affine[0, 0], affine[0, 3] = -zooms[0], 19.5 * zooms[0]
    return labels, static, affine


def world(affine, shape=SHAPE):
    """World coordinates of every voxel centre, shape (n_voxels, 3), C order."""
    index = np.indices(shape).reshape(3, -1).T
    return index @ affine[:3, :3].T + affine[:3, 3]


def brute_reference(labels, affine, rule, slab_mm=15.0, margin_mm=10.0):
    """Reference mask by explicit pairwise distances (independent of the EDT)."""
    xyz = world(affine)
    flat = labels.ravel()
    midline = xyz[flat > 0, 0].mean()
    centroid = xyz[flat == 3].mean(axis=0)
    brain = flat == 1
    d_tumour = cdist(xyz[brain], xyz[flat == 3]).min(axis=1)
    d_striatum = cdist(xyz[brain], xyz[flat == 2]).min(axis=1)
    keep = (d_tumour >= margin_mm - 1e-6) & (d_striatum >= margin_mm - 1e-6)
    if rule in ("slab", "hemisphere"):
        keep &= (xyz[brain, 0] - midline) * np.sign(centroid[0] - midline) < 0
    if rule == "slab":
        keep &= np.abs(xyz[brain, 2] - centroid[2]) <= slab_mm + 1e-6
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.flatnonzero(brain)[keep]] = True
    return mask.reshape(labels.shape)


def brute_peak(image, mask, zooms, volume_ml=1.0):
    """SUVpeak by looping over centres and testing every image voxel against the radius."""
    radius = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    grid = np.indices(image.shape).reshape(3, -1).T
    values = image.ravel()
    best = -np.inf
    for centre in np.argwhere(mask):
        inside = (((grid - centre) * np.asarray(zooms)) ** 2).sum(axis=1) <= radius**2
        best = max(best, values[inside].mean())
    return best


# --- presets --------------------------------------------------------------------------------


def test_presets_rules():
    g, n = PRESETS["guideline"], PRESETS["genoa2024"]
    assert (g.tbr_max_rule, g.mtv_rule, g.ttp_rule, g.slope_window) == (
        "max_over_mean",
        "threshold",
        "mid",
        "fixed",
    )
    assert (n.tbr_max_rule, n.mtv_rule, n.ttp_rule, n.slope_window) == (
        "max_over_max",
        "label",
        "start",
        "from_start_s",
    )
    assert g.striatum_labels == n.striatum_labels == (2,)
    assert (g.midline_mm, g.slab_mm, g.margin_mm, g.min_ref_ml) == (5.0, 15.0, 10.0, 2.0)
    assert (g.mtv_threshold, g.measurable_ml, g.suvpeak_ml, g.hot_fraction) == (1.6, 0.5, 1.0, 0.9)
    assert g.slope_window_min == (10.0, 30.0) and n.slope_start_s == 120.0
    assert g.patlak_tstar_min == 10.0
    custom = get_preset("genoa2024", slab_mm=20, slope_window_min=[5, 25])
    assert custom.slab_mm == 20 and custom.slope_window_min == (5.0, 25.0)
    assert PRESETS["genoa2024"].slab_mm == 15.0
    json.dumps(custom.as_dict())


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("nope", {}, "nope"),
        ("guideline", {"slab": 3}, "slab"),
        ("guideline", {"mtv_rule": "otsu"}, "mtv_rule"),
        ("guideline", {"hot_fraction": 1.5}, "hot_fraction"),
        ("guideline", {"striatum_labels": (3,)}, "striatum_labels"),
        ("guideline", {"slope_window_min": (30, 10)}, "slope_window_min"),
    ],
)
def test_get_preset_errors(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        get_preset(name, **overrides)


# --- regions and ratios ---------------------------------------------------------------------


@pytest.mark.parametrize("flip_x", [False, True])
@pytest.mark.parametrize(
    ("tumour", "side", "striatum_max", "striatum_mean", "striatum_ml"),
    [
        ("right", "right", 2.0, 2.0, 0.512),  # contralateral = left
        ("left", "left", 3.0, 3.0, 0.512),  # contralateral = right
        ("midline", "midline", 3.0, 2.5, 1.024),  # both striata
    ],
)
def test_contralateral_striatum(
    indices_fn, tumour, side, striatum_max, striatum_mean, striatum_ml, flip_x
):
    labels, static, affine = make_phantom(tumour, flip_x=flip_x)
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    assert out["tumour_side"] == side
    assert out["midline_x_mm"] == pytest.approx(0.0, abs=1e-9)
    assert out["striatum_rule"] == ("both" if side == "midline" else "contralateral")
    assert out["striatum_suvmax"] == striatum_max
    assert out["striatum_suvmean"] == pytest.approx(striatum_mean)
    assert out["striatum_ml"] == pytest.approx(striatum_ml)
    assert out["tsr"] == pytest.approx(4.0 / striatum_max)
    assert out["tumour_ml"] == pytest.approx(64 * 0.008)


def test_output_keys_order_and_types(indices_fn):
    labels, static, affine = make_phantom("right")
    out = indices_fn(static, labels, affine, "guideline", participant_id="sub-007")
    indices = out["indices"]
    assert list(indices) == list(INDEX_KEYS) + list(EXTRA_KEYS)
    assert indices["participant_id"] == "sub-007" and indices["preset"] == "guideline"
    assert out["tacs"] == {}
    for key, value in indices.items():
        assert value is None or type(value) in (float, int, str, bool, dict), key
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("zooms", [(2.0, 2.0, 2.0), (2.0, 2.5, 3.0)])
@pytest.mark.parametrize("tumour", ["right", "left"])
def test_reference_slab_matches_brute_force(regions_fn, tumour, zooms):
    labels, _, affine = make_phantom(tumour, zooms=zooms)
    regions = regions_fn(labels, affine, PRESETS["guideline"])
    expected = brute_reference(labels, affine, "slab")
    assert regions.reference_rule == "slab"
    assert expected.sum() * np.prod(zooms) / 1000 >= 2.0
    np.testing.assert_array_equal(regions.reference, expected)


def test_constant_regions_give_exact_ratios(indices_fn):
    labels, static, affine = make_phantom("right")
    # brain intensity varies with y so that reference mean and max differ
    ramp = 1.0 + 0.05 * np.arange(SHAPE[1])[None, :, None]
    static = np.where(labels == 1, ramp, static)
    reference = brute_reference(labels, affine, "slab")
    ref_mean, ref_max = static[reference].mean(), static[reference].max()
    assert ref_max > ref_mean
    g = indices_fn(static, labels, affine, "guideline")["indices"]
    n = indices_fn(static, labels, affine, "genoa2024")["indices"]
    for out in (g, n):
        assert (out["tumour_suvmax"], out["tumour_suvmean"]) == (4.0, 4.0)
        assert out["reference_suvmean"] == pytest.approx(ref_mean, rel=1e-12)
        assert out["reference_suvmax"] == pytest.approx(ref_max, rel=1e-12)
        assert out["reference_ml"] == pytest.approx(reference.sum() * 0.008)
        assert out["reference_rule"] == "slab"
        assert out["tsr"] == pytest.approx(2.0)
        assert out["tbr_mean"] == pytest.approx(4.0 / ref_mean)
        assert out["missing"] == dict.fromkeys(DYNAMIC_KEYS, "no_dynamic")
    assert g["tbr_max"] == pytest.approx(4.0 / ref_mean)
    assert n["tbr_max"] == pytest.approx(4.0 / ref_max)


def test_reference_fallbacks(indices_fn, regions_fn):
    labels, static, affine = make_phantom("right")
    slab = brute_reference(labels, affine, "slab", slab_mm=1.0)
    hemisphere = brute_reference(labels, affine, "hemisphere")
    both = brute_reference(labels, affine, "both")
    slab_ml, hemi_ml, both_ml = (m.sum() * 0.008 for m in (slab, hemisphere, both))
    assert 0 < slab_ml < hemi_ml < both_ml
    cases = [
        ((slab_ml + hemi_ml) / 2, "hemisphere", hemisphere),
        ((hemi_ml + both_ml) / 2, "both_hemispheres", both),
        (both_ml + 1.0, "both_hemispheres", both),  # still too small: last rule, warned
    ]
    for min_ref_ml, rule, mask in cases:
        preset = get_preset("guideline", slab_mm=1.0, min_ref_ml=min_ref_ml)
        regions = regions_fn(labels, affine, preset)
        assert regions.reference_rule == rule
        np.testing.assert_array_equal(regions.reference, mask)
        out = indices_fn(static, labels, affine, preset)["indices"]
        assert out["reference_rule"] == rule
        assert out["reference_ml"] == pytest.approx(mask.sum() * 0.008)


def test_midline_tumour_reference_uses_both_sides(regions_fn):
    labels, _, affine = make_phantom("midline")
    regions = regions_fn(labels, affine, PRESETS["guideline"])
    x = world(affine)[:, 0].reshape(SHAPE)
    assert regions.reference_rule == "slab"
    assert regions.reference[x < 0].any() and regions.reference[x > 0].any()


def test_mtv_threshold_and_measurable(indices_fn):
    labels, static, affine = make_phantom("right")
    tumour = np.argwhere(labels == 3)  # 64 voxels, reference = brain = 1.0 exactly
    for n_hot, measurable in ((62, False), (63, True)):
        image = static.copy()
        image[tuple(tumour.T)] = 1.5  # below 1.6 × 1.0
        image[tuple(tumour[:n_hot].T)] = np.where(np.arange(n_hot) % 2, 1.6, 2.5)
        out = indices_fn(image, labels, affine, "guideline")["indices"]
        assert out["reference_suvmean"] == 1.0
        assert out["mtv_threshold"] == pytest.approx(1.6)
        assert out["mtv_ml"] == pytest.approx(n_hot * 0.008)
        assert out["measurable"] is measurable
        genoa = indices_fn(image, labels, affine, "genoa2024")["indices"]
        assert genoa["mtv_ml"] == pytest.approx(64 * 0.008) and genoa["measurable"] is True
        assert genoa["mtv_threshold"] is None


# --- SUVpeak --------------------------------------------------------------------------------


def kernel_count(zooms, volume_ml=1.0):
    radius = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    span = range(-8, 9)
    return sum(
        1
        for a in span
        for b in span
        for c in span
        if (a * zooms[0]) ** 2 + (b * zooms[1]) ** 2 + (c * zooms[2]) ** 2 <= radius**2
    )


def test_sphere_kernel_count():
    for zooms in ((2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (2.0, 2.5, 3.0)):
        assert sphere_kernel(zooms, 1.0).sum() == kernel_count(zooms)
    # 1 mL at 1 mm: close to 1000 voxels
    assert abs(kernel_count((1.0, 1.0, 1.0)) - 1000) < 40


def test_suvpeak_uniform_hotspot_and_small_tumour(indices_fn):
    labels = np.ones(SHAPE, dtype=np.int16)
    labels[0] = 0
    labels[14:23, 6:15, 6:15] = 3  # 9³ voxels = 18 mm cube, contains a 1 mL sphere
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    static = np.where(labels == 3, 4.0, 1.0)
    n = kernel_count((2.0, 2.0, 2.0))
    assert indices_fn(static, labels, affine, "guideline")["indices"]["tumour_suvpeak"] == 4
    static[18, 10, 10] = 10.0
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    assert out["tumour_suvpeak"] == pytest.approx((4.0 * (n - 1) + 10.0) / n, rel=1e-12)
    # tumour of one voxel: the sphere mixes it with its surroundings
    labels = np.where(labels == 3, 1, labels)
    labels[18, 10, 10] = 3
    static = np.where(labels > 0, 1.0, 0.0)
    static[18, 10, 10] = 5.0
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    assert out["tumour_suvpeak"] == pytest.approx((5.0 + (n - 1)) / n, rel=1e-12)


@pytest.mark.parametrize("zooms", [(2.0, 2.0, 2.0), (2.0, 2.5, 3.0)])
def test_suvpeak_random_image_and_border(indices_fn, zooms):
    rng = np.random.default_rng(3)
    labels = np.ones(SHAPE, dtype=np.int16)
    labels[30:40, 5:12, 0:6] = 3  # touches the image border (x and z)
    static = rng.gamma(4.0, 0.5, SHAPE)
    affine = np.diag([*zooms, 1.0])
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    expected = brute_peak(static, labels == 3, zooms)
    assert out["tumour_suvpeak"] == pytest.approx(expected, rel=1e-12)


# --- missing and validation -----------------------------------------------------------------


def test_empty_tumour_reports_missing(indices_fn):
    labels, static, affine = make_phantom(None)
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    for key in ("tumour_suvmax", "tumour_suvmean", "tumour_suvpeak", "tumour_ml"):
        assert out[key] is None and out["missing"][key] == "tumour_empty"
    for key in ("tsr", "tbr_max", "tbr_mean", "mtv_ml", "measurable"):
        assert out[key] is None and out["missing"][key] == "tumour_empty"
    assert out["tumour_side"] is None and out["striatum_rule"] == "both"
    assert out["striatum_suvmax"] == 3.0 and out["striatum_suvmean"] == pytest.approx(2.5)
    assert out["reference_rule"] == "both_hemispheres" and out["reference_suvmean"] == 1.0


def test_empty_striatum_and_reference(indices_fn):
    labels, static, affine = make_phantom("right")
    labels[labels == 2] = 1
    labels[labels == 1] = 0  # only the tumour remains
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    assert out["tumour_suvmax"] == 4.0
    assert out["missing"]["striatum_suvmax"] == "striatum_empty"
    assert out["missing"]["tsr"] == "striatum_empty"
    for key in ("reference_suvmean", "reference_ml", "reference_rule", "tbr_max", "mtv_ml"):
        assert out[key] is None and out["missing"][key] == "reference_empty"


def test_zero_denominator_is_missing(indices_fn):
    labels, static, affine = make_phantom("right")
    static[labels == 2] = 0.0
    out = indices_fn(static, labels, affine, "guideline")["indices"]
    assert out["tsr"] is None and out["missing"]["tsr"] == "striatum_suvmax_zero"


def _bad_inputs():
    labels, static, affine = make_phantom("right")
    dyn = np.ones((*SHAPE, 3))
    starts, durs = np.array([0.0, 60.0, 120.0]), np.array([60.0, 60.0, 60.0])
    ok = {"dynamic": dyn, "frame_start_s": starts, "frame_duration_s": durs}
    nan_static = static.copy()
    nan_static[0, 0, 0] = np.nan
    bad_labels = labels.copy()
    bad_labels[0, 0, 0] = 4
    return [
        ((static[:-1], labels, affine), {}, "labels"),
        ((static, bad_labels, affine), {}, "labels"),
        ((static, labels + 0.5, affine), {}, "labels"),
        ((nan_static, labels, affine), {}, "static"),
        ((static, labels, affine[:3]), {}, "affine"),
        ((static, labels, affine), {**ok, "dynamic": dyn[..., 0]}, "dynamic"),
        ((static, labels, affine), {**ok, "dynamic": dyn[:-1]}, "dynamic"),
        ((static, labels, affine), {**ok, "dynamic": dyn * np.inf}, "dynamic"),
        ((static, labels, affine), {**ok, "frame_start_s": starts[:2]}, "FrameTimesStart"),
        ((static, labels, affine), {**ok, "frame_start_s": None}, "FrameTimesStart"),
        ((static, labels, affine), {**ok, "frame_duration_s": durs * [1, 0, 1]}, "FrameDuration"),
        ((static, labels, affine), {**ok, "frame_start_s": starts[[0, 2, 1]]}, "increasing"),
        ((static, labels, affine), {**ok, "frame_duration_s": durs * [1, 1.5, 1]}, "overlap"),
        ((static, labels, affine), {**ok, "frame_start_s": starts * np.nan}, "FrameTimesStart"),
        ((static, labels, affine), {"frame_start_s": starts}, "without dynamic"),
    ]


@pytest.mark.parametrize(("args", "kwargs", "match"), _bad_inputs())
def test_invalid_inputs_raise(indices_fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        indices_fn(*args, "guideline", **kwargs)
