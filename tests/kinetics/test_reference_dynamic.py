"""Dynamic indices on analytic TACs: TACs, TTP, slope windows, DSR, curve pattern, Patlak.

Every test runs on both implementations (reference and fast; fixture ``indices_fn``).

TACs are written analytically into every voxel of a region, so region means are the TACs
themselves and every index has a closed-form answer.
"""

import time

import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid

from fdopa.kinetics import get_preset

SHAPE = (40, 24, 24)
# irregular framing with a gap (540–560 s) and no frame starting at exactly 120 s
STARTS = np.array(
    [0, 15, 30, 45, 60, 90, 118, 125, 180, 240, 300, 420, 560, 690, 900, 1080, 1260, 1440, 1620]
)
DURATIONS = np.array(
    [15, 15, 15, 15, 30, 28, 7, 55, 60, 60, 120, 120, 130, 210, 180, 180, 180, 180, 180]
)
MID_MIN = (STARTS + DURATIONS / 2) / 60


def make_phantom(tumour=True):
    """Labels (tumour on the right → left striatum contralateral), static, affine, masks."""
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[2:38, 2:22, 2:22] = 1
    labels[10:14, 10:14, 10:14] = 2
    labels[26:30, 10:14, 10:14] = 2
    if tumour:
        labels[31:35, 4:8, 10:14] = 3
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[0, 3] = -39.0
    static = labels.astype(float)
    masks = {
        "brain": labels == 1,
        "left": np.zeros(SHAPE, dtype=bool),
        "right": np.zeros(SHAPE, dtype=bool),
        "tumour": labels == 3,
    }
    masks["left"][10:14, 10:14, 10:14] = True
    masks["right"][26:30, 10:14, 10:14] = True
    return labels, static, affine, masks


def run(fn, tacs, preset="guideline", starts=STARTS, durations=DURATIONS, tumour=True, **overrides):
    """Fill each region with its TAC and compute the indices; right striatum gets junk."""
    labels, static, affine, masks = make_phantom(tumour)
    n = len(starts)
    dynamic = np.zeros((*SHAPE, n))
    dynamic[masks["brain"]] = tacs.get("reference", np.ones(n))
    dynamic[masks["left"]] = tacs.get("striatum", np.ones(n))
    dynamic[masks["right"]] = 1e3 * np.arange(n)  # ipsilateral: must never be used
    dynamic[masks["tumour"]] = tacs.get("tumour", np.ones(n))
    preset = get_preset(preset, **overrides)
    return fn(
        static,
        labels,
        affine,
        preset,
        dynamic=dynamic,
        frame_start_s=starts,
        frame_duration_s=durations,
        participant_id="sub-1",
    )


def test_framing_is_valid_and_irregular():
    assert (STARTS[1:] >= STARTS[:-1] + DURATIONS[:-1]).all()
    assert not np.isclose(STARTS, 120).any() and len(set(np.diff(STARTS))) > 5


@pytest.mark.parametrize(
    ("preset", "first_frame"),
    [("guideline", int(np.argmax(MID_MIN >= 10))), ("genoa2024", 7)],  # genoa: start 125 s
)
def test_linear_tacs_give_exact_slopes_and_dsr(indices_fn, preset, first_frame):
    tumour, striatum = 2.0 + 0.03 * MID_MIN, 1.0 + 0.05 * MID_MIN
    out = run(indices_fn, {"tumour": tumour, "striatum": striatum}, preset)
    indices, tacs = out["indices"], out["tacs"]
    assert indices["slope_tumour_per_h"] == pytest.approx(1.8, rel=1e-9)
    assert indices["slope_striatum_per_h"] == pytest.approx(3.0, rel=1e-9)
    assert indices["dsr"] == pytest.approx(0.6, rel=1e-9)
    last = len(STARTS) - 1 if preset == "genoa2024" else int(np.flatnonzero(MID_MIN <= 30)[-1])
    assert indices["slope_window_frames"] == last - first_frame + 1
    assert indices["slope_window_start_min"] == pytest.approx(MID_MIN[first_frame])
    np.testing.assert_allclose(tacs["frame_mid_min"], MID_MIN, rtol=1e-15)
    np.testing.assert_allclose(tacs["tumour_mean"], tumour, rtol=1e-12)
    np.testing.assert_allclose(tacs["striatum_mean"], striatum, rtol=1e-12)
    np.testing.assert_allclose(tacs["tumour_sd"], 0.0, atol=1e-12)
    assert indices["missing"] == {}


def test_genoa_window_starts_at_first_frame_at_or_after_120s(indices_fn):
    # frames before the 125 s frame carry junk: the slope is exact only if they are excluded
    tumour = np.where(STARTS >= 125, 3.0 - 0.02 * MID_MIN, 50.0)
    out = run(indices_fn, {"tumour": tumour}, "genoa2024")["indices"]
    assert out["slope_tumour_per_h"] == pytest.approx(-1.2, rel=1e-9)
    assert out["slope_window_frames"] == len(STARTS) - 7
    # float jitter below 120 s still counts as "starting at 120 s"
    starts = STARTS.astype(float).copy()
    starts[7] = 120.0 - 1e-7  # frames: [118, 120 − 1e-7), [120 − 1e-7, 180)
    durations = DURATIONS.astype(float).copy()
    durations[6:8] = [2.0 - 1e-7, 60.0 + 1e-7]
    tumour = np.where(starts >= 119, 3.0 - 0.02 * (starts + durations / 2) / 60, 50.0)
    out = run(indices_fn, {"tumour": tumour}, "genoa2024", starts=starts, durations=durations)[
        "indices"
    ]
    assert out["slope_tumour_per_h"] == pytest.approx(-1.2, rel=1e-9)
    assert out["slope_window_frames"] == len(STARTS) - 7


def test_guideline_window_uses_mid_times_with_tolerance(indices_fn):
    # mid-times: 9.33 min (out), 10 min − 1e-9 s (in), …, 30 min + 1e-9 s (in), 30.4 min (out)
    starts = np.array([0.0, 530.0, 590.0, 660.0, 1200.0, 1790.0 + 1e-9, 1812.0])
    durations = np.array([60.0, 60.0, 20.0 - 2e-9, 540.0, 570.0, 20.0, 24.0])
    mid = (starts + durations / 2) / 60
    tumour = np.where((mid > 9.95) & (mid < 30.1), 1.0 + 0.1 * mid, -7.0)
    out = run(indices_fn, {"tumour": tumour}, starts=starts, durations=durations)["indices"]
    assert out["slope_window_frames"] == 4
    assert out["slope_tumour_per_h"] == pytest.approx(6.0, rel=1e-9)


@pytest.mark.parametrize(("preset", "expected"), [("guideline", "mid"), ("genoa2024", "start")])
def test_ttp_mid_or_start(indices_fn, preset, expected):
    peak = 9  # frame 240–300 s
    tumour = np.exp(-(((MID_MIN - MID_MIN[peak]) / 3.0) ** 2))
    out = run(indices_fn, {"tumour": tumour}, preset)["indices"]
    ttp = MID_MIN[peak] if expected == "mid" else STARTS[peak] / 60
    assert out["ttp_min"] == pytest.approx(ttp, rel=1e-12)


def _gamma(t, peak_min):
    return (t / peak_min) * np.exp(1 - t / peak_min) + 0.2


@pytest.mark.parametrize(
    ("tumour", "pattern"),
    [
        (1.0 + 0.05 * MID_MIN, "increasing"),  # rising, peak in the last frame
        (_gamma(MID_MIN, 4.0), "decreasing"),  # early peak, washout
        (np.full(MID_MIN.shape, 2.0), "plateau"),  # flat
        (_gamma(MID_MIN, 14.0), "plateau"),  # declining but peak inside the window
        (np.where(MID_MIN < 5, 90.0, 1.0 + 0.05 * MID_MIN), "plateau"),  # rising, early peak
        (2.0 + 0.002 * MID_MIN, "plateau"),  # rising by ≈ 6 %/h < eps = 10 %/h
    ],
)
def test_curve_pattern(indices_fn, tumour, pattern):
    assert run(indices_fn, {"tumour": tumour})["indices"]["curve_pattern"] == pattern


def test_curve_pattern_absolute_eps(indices_fn):
    tumour = 20.0 + 0.01 * MID_MIN  # 0.6 per hour: 3 %/h relative
    assert run(indices_fn, {"tumour": tumour})["indices"]["curve_pattern"] == "plateau"
    out = run(indices_fn, {"tumour": tumour}, pattern_eps_mode="absolute", pattern_eps=0.5)
    assert out["indices"]["curve_pattern"] == "increasing"


def _reference_tac(t):
    return 10 * (1 - np.exp(-t / 1.5)) * np.exp(-t / 60) + 2 * t * np.exp(-t / 2) + 0.1


@pytest.mark.parametrize(("ki_t", "v_t"), [(0.0123, 0.4), (-0.004, 1.5)])
def test_patlak_exact_on_trapezoid_construction(indices_fn, ki_t, v_t):
    c_r = _reference_tac(MID_MIN)
    integral = cumulative_trapezoid(np.r_[0.0, c_r], np.r_[0.0, MID_MIN])
    ki_s, v_s = 0.031, 0.8
    tumour, striatum = ki_t * integral + v_t * c_r, ki_s * integral + v_s * c_r
    assert (tumour > 0).all()
    out = run(indices_fn, {"tumour": tumour, "striatum": striatum, "reference": c_r})["indices"]
    assert out["ki_ref_tumour"] == pytest.approx(ki_t, rel=1e-9, abs=1e-12)
    assert out["ki_ref_striatum"] == pytest.approx(ki_s, rel=1e-9)
    assert out["v_ref_tumour"] == pytest.approx(v_t, rel=1e-9)
    assert out["patlak_frames"] == int((MID_MIN >= 10).sum())


def test_patlak_realistic_frame_averaged_within_one_percent(indices_fn):
    t = np.linspace(0, 30, 300_001)
    c_r = _reference_tac(t)
    integral = cumulative_trapezoid(c_r, t, initial=0)
    ki, v = 0.02, 0.6
    starts = np.r_[0, 10, 20, 30, 40, 50, 60, 90, 120, 150, 180, 240, 300, 360, 480, 600]
    starts = np.r_[starts, np.arange(720, 1800, 120)]
    durations = np.r_[np.diff(starts), 120]

    def frame_mean(curve):
        out = []
        for s, d in zip(starts / 60, durations / 60, strict=True):
            m = (t >= s) & (t <= s + d)
            out.append(np.trapezoid(curve[m], t[m]) / (t[m][-1] - t[m][0]))
        return np.array(out)

    tacs = {"tumour": frame_mean(ki * integral + v * c_r), "reference": frame_mean(c_r)}
    out = run(indices_fn, tacs, starts=starts, durations=durations)["indices"]
    assert out["ki_ref_tumour"] == pytest.approx(ki, rel=0.01)


def test_hot_tac_and_region_sd(indices_fn):
    labels, static, affine, masks = make_phantom()
    n = len(STARTS)
    static = np.where(labels == 3, 5.0, static)
    hot = np.zeros(SHAPE, dtype=bool)
    hot[33:35, 4:8, 10:14] = True  # 32 of the 64 tumour voxels
    static[hot] = 10.0
    static[33, 4, 10] = 9.0  # still ≥ 90 % of the max (10)
    dynamic = np.ones((*SHAPE, n))
    dynamic[masks["tumour"]] = 1.0 + MID_MIN
    dynamic[hot] = 3.0 * MID_MIN
    dynamic[masks["brain"] & (np.arange(SHAPE[1]) % 2 == 0)[None, :, None]] = 3.0
    out = indices_fn(
        static, labels, affine, "guideline", dynamic=dynamic,
        frame_start_s=STARTS, frame_duration_s=DURATIONS,
    )  # fmt: skip
    tacs, indices = out["tacs"], out["indices"]
    assert indices["tumour_hot_ml"] == pytest.approx(32 * 0.008)
    np.testing.assert_allclose(tacs["tumour_hot_mean"], 3.0 * MID_MIN, rtol=1e-12)
    np.testing.assert_allclose(tacs["tumour_mean"], (1.0 + 4.0 * MID_MIN) / 2, rtol=1e-12)
    np.testing.assert_allclose(tacs["tumour_sd"], np.abs(1.0 - 2.0 * MID_MIN) / 2, rtol=1e-9)
    ref = np.asarray(tacs["reference_mean"])
    assert np.all((ref > 1.0) & (ref < 3.0)) and np.ptp(ref) < 1e-12
    hot_preset = get_preset("guideline", tumour_tac="tumour_hot")
    out = indices_fn(
        static, labels, affine, hot_preset, dynamic=dynamic,
        frame_start_s=STARTS, frame_duration_s=DURATIONS,
    )  # fmt: skip
    assert out["indices"]["slope_tumour_per_h"] == pytest.approx(180.0, rel=1e-9)


def test_dynamic_missing_reasons(indices_fn):
    linear = 1.0 + 0.05 * MID_MIN
    out = run(indices_fn, {"tumour": linear}, tumour=False)["indices"]
    for key in ("ttp_min", "slope_tumour_per_h", "dsr", "curve_pattern", "ki_ref_tumour"):
        assert out[key] is None and out["missing"][key] == "tumour_empty"
    assert out["slope_striatum_per_h"] is not None
    out = run(indices_fn, {"tumour": linear}, "genoa2024", slope_start_s=1700.0)["indices"]
    for key in ("slope_tumour_per_h", "slope_striatum_per_h", "dsr", "curve_pattern"):
        assert out["missing"][key] == "window_has_fewer_than_2_frames"
    assert out["ttp_min"] is not None
    out = run(indices_fn, {"tumour": linear}, patlak_tstar_min=28.0)["indices"]
    assert out["missing"]["ki_ref_tumour"] == "patlak_has_fewer_than_2_frames"
    out = run(indices_fn, {"tumour": linear, "reference": np.zeros(len(STARTS))})["indices"]
    assert out["missing"]["ki_ref_striatum"] == "reference_tac_nonpositive"
    out = run(indices_fn, {"tumour": linear, "striatum": np.ones(len(STARTS))})["indices"]
    assert out["dsr"] is None and out["missing"]["dsr"] == "slope_striatum_per_h_zero"


def test_full_size_volume_is_fast_and_exact(indices_fn):
    shape, n = (91, 109, 91), 27
    labels = np.zeros(shape, dtype=np.int16)
    labels[10:81, 10:100, 10:80] = 1
    labels[30:38, 50:60, 35:45] = 2
    labels[53:61, 50:60, 35:45] = 2
    labels[60:72, 60:75, 40:55] = 3
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-90.0, -126.0, -72.0]
    starts = np.r_[np.arange(0, 120, 20), np.arange(120, 600, 60), np.arange(600, 1800, 92.31)]
    durations = np.r_[np.diff(starts), 30.0]
    mid = (starts + durations / 2) / 60
    dynamic = np.ones((*shape, n), dtype=np.float32)
    dynamic[labels == 3] = (2.0 + 0.5 * mid).astype(np.float32)
    begin = time.perf_counter()
    out = indices_fn(
        dynamic[..., -5:].mean(axis=3), labels, affine, "genoa2024", dynamic=dynamic,
        frame_start_s=starts, frame_duration_s=durations,
    )  # fmt: skip
    assert time.perf_counter() - begin < 30.0
    assert len(starts) == n
    assert out["indices"]["slope_tumour_per_h"] == pytest.approx(30.0, rel=1e-5)
    assert out["indices"]["tumour_side"] == "right"
