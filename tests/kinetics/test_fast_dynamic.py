"""Fast dynamic indices: frame windows, least squares, Patlak on two-tissue kinetics, genoa2024.

The analytic TTP / slope / DSR / pattern cases run on both implementations in
``test_reference_dynamic.py``; this file checks the fast path's own building blocks and the
kinetic truth of the synthetic tracer model.
"""

import numpy as np
import pytest

from fdopa.data.synthetic.tracer import Framing, KineticParams, simulate_tacs
from fdopa.kinetics import compute_indices, get_preset
from fdopa.kinetics.dynamic import least_squares, patlak_fit, slope_window

# irregular framing with a gap and no frame starting at exactly 120 s
STARTS = np.array([0.0, 20, 40, 70, 100, 118, 126, 190, 300, 420, 600, 780, 1000, 1200, 1500])
DURATIONS = np.array([20.0, 20, 30, 30, 18, 8, 60, 100, 120, 180, 180, 180, 200, 300, 300])
GENOA = {"slope_window": "from_start_s"}  # the genoa2024 window, first frame ≥ 120 s


@pytest.mark.parametrize(
    ("overrides", "starts", "expected"),
    [
        ({"slope_window": "from_start_s"}, STARTS, range(6, 15)),  # 126 s: first at/after 120
        (GENOA, np.where(STARTS == 126, 120.0 - 1e-7, STARTS), range(6, 15)),  # jitter: 120 s
        (GENOA, np.where(STARTS == 118, 119.6, STARTS), range(5, 15)),  # within 0.5 s of 120
        (GENOA, np.where(STARTS == 118, 119.0, STARTS), range(6, 15)),  # 1 s early: excluded
        ({"slope_window": "from_start_s", "slope_start_s": 1600.0}, STARTS, range(0)),
        ({"slope_window": "from_start_s", "slope_start_s": 0.0}, STARTS, range(15)),
        ({}, STARTS, range(10, 15)),  # mid-times 11.5 … 27.5 min within 10–30 min
        ({"slope_window_min": (2.0, 11.5)}, STARTS, range(5, 11)),  # 11.5 min mid, inclusive
        ({"slope_window_min": (2.0, 11.48)}, STARTS, range(5, 10)),  # 1.2 s short: excluded
        ({"slope_window_min": (40.0, 50.0)}, STARTS, range(0)),
    ],
)
def test_slope_window(overrides, starts, expected):
    frames = slope_window(starts, DURATIONS, get_preset("guideline", **overrides))
    assert frames.tolist() == list(expected)


def test_least_squares_matches_polyfit():
    rng = np.random.default_rng(0)
    x, curves = rng.uniform(0, 30, 12), rng.normal(size=(3, 12))
    slopes, intercepts = least_squares(x, curves)
    for row, slope, intercept in zip(curves, slopes, intercepts, strict=True):
        assert (slope, intercept) == pytest.approx(tuple(np.polyfit(x, row, 1)), rel=1e-12)


def test_patlak_reasons():
    mid = (STARTS + DURATIONS / 2) / 60
    curves = np.ones((2, mid.size))
    assert patlak_fit(mid, curves, np.ones(mid.size), 30.0, 0.01) == (
        "patlak_has_fewer_than_2_frames"
    )
    reference = np.where(mid > 20, -1.0, 1.0)
    assert patlak_fit(mid, curves, reference, 10.0, 0.01) == "reference_tac_nonpositive"


def _scan(tacs, starts, durations):
    """Phantom with each region filled with its TAC: tumour right, striatum left (contra)."""
    labels = np.zeros((24, 12, 12), dtype=np.int16)
    labels[1:23, 1:11, 1:11] = 1
    labels[6:8, 5:7, 5:7] = 2
    labels[16:18, 5:7, 5:7] = 2
    labels[19:21, 2:4, 5:7] = 3
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[0, 3] = -46.0
    dynamic = np.zeros((*labels.shape, starts.size))
    dynamic[labels == 1] = tacs["reference"]
    dynamic[labels == 2] = tacs["striatum"]
    dynamic[16:18, 5:7, 5:7] = 50.0  # ipsilateral striatum: never used
    dynamic[labels == 3] = tacs["tumour"]
    static = dynamic.mean(axis=3)
    return static, labels, affine, dynamic


@pytest.mark.parametrize(
    ("tumour", "framing"),
    [
        (KineticParams(0.16, 0.16, 0.02), "6x10,4x30,7x60,10x120"),  # HGG
        (KineticParams(0.04, 0.04, 0.012), "6x10,4x30,7x60,10x120"),  # LGG
        (KineticParams(0.25, 0.4, 0.015), "12x5,4x30,7x60,4x120,2x300,1x120"),  # fast washout
    ],
)
def test_patlak_ki_ref_on_two_tissue_kinetics(tumour, framing):
    """Ki_ref = Ki · k2'/K1' exactly when the reference's k2' equals the target's k2 + k3.

    With C_R the one-tissue reference, ∫C_p = (C_R + k2'∫C_R)/K1', so the target
    C_T = Ki∫C_p + k2/(k2+k3)·C_1 gives C_T/C_R = Ki·k2'/K1' · ∫C_R/C_R + const whenever
    C_1/C_R is constant, i.e. k2' = k2 + k3. Frame averaging and the trapezoid integral are
    the only approximations.
    """
    striatum = KineticParams(0.05, 0.05, 0.06)
    for target, ki in ((tumour, "ki_ref_tumour"), (striatum, "ki_ref_striatum")):
        reference = KineticParams(0.03, target.k2 + target.k3, 0.0)
        frames = Framing.from_spec(framing)
        sim = simulate_tacs({"target": target, "reference": reference}, frames)
        tacs = {"tumour": sim["frames"]["target"], "striatum": sim["frames"]["target"],
                "reference": sim["frames"]["reference"]}  # fmt: skip
        starts, durations = np.array(frames.starts_s), np.array(frames.durations_s)
        static, labels, affine, dynamic = _scan(tacs, starts, durations)
        out = compute_indices(static, labels, affine, "guideline", dynamic=dynamic,
                              frame_start_s=starts, frame_duration_s=durations)  # fmt: skip
        expected = target.ki * reference.k2 / reference.K1
        assert getattr(out, ki) == pytest.approx(expected, rel=0.01)


def test_genoa2024_conventions():
    """Frame-start TTP, slope from the first frame starting ≥ 120 s, max/max T/N."""
    mid = (STARTS + DURATIONS / 2) / 60
    peak = 8
    tumour = 2.0 + 0.1 * mid
    tumour[:6] = 40.0 + np.arange(6)  # frames starting before 120 s: outside the genoa window
    tumour[peak] = 100.0
    tacs = {"tumour": tumour, "striatum": 1.0 + 0.05 * mid, "reference": np.ones(mid.size)}
    static, labels, affine, dynamic = _scan(tacs, STARTS, DURATIONS)
    brain = labels == 1
    static[brain] = 1.0
    static[brain & (np.arange(labels.shape[1]) % 2 == 1)[None, :, None]] = 1.5
    timing = {"dynamic": dynamic, "frame_start_s": STARTS, "frame_duration_s": DURATIONS}
    genoa = compute_indices(static, labels, affine, "genoa2024", **timing)
    guideline = compute_indices(static, labels, affine, "guideline", **timing)
    assert genoa.ttp_min == pytest.approx(STARTS[peak] / 60, rel=1e-12)
    assert guideline.ttp_min == pytest.approx(mid[peak], rel=1e-12)
    assert genoa.slope_window_frames == 9
    assert genoa.slope_window_start_min == pytest.approx(mid[6])
    window = np.arange(6, STARTS.size)
    expected = np.polyfit(mid[window], tumour[window], 1)[0] * 60
    assert genoa.slope_tumour_per_h == pytest.approx(expected, rel=1e-9)
    assert genoa.dsr == pytest.approx(expected / 3.0, rel=1e-9)
    tumour_max = static[labels == 3].max()
    assert genoa.reference_suvmax == 1.5 and 1.0 < genoa.reference_suvmean < 1.5
    assert genoa.tbr_max == pytest.approx(tumour_max / 1.5, rel=1e-12)
    assert guideline.tbr_max == pytest.approx(tumour_max / guideline.reference_suvmean)


def test_brain_only_label_map_with_dynamic_reports_missing_not_crash():
    # An untrained network predicts neither tumour nor striatum; the 4D indices must be missing.
    import numpy as np

    from fdopa.kinetics import compute_indices, get_preset, reference_indices

    labels = np.zeros((12, 12, 12), np.uint8)
    labels[2:10, 2:10, 2:10] = 1
    static = np.ones(labels.shape, np.float32)
    dynamic = np.ones((*labels.shape, 3), np.float32)
    timing = {"frame_start_s": np.array([0.0, 60, 120]), "frame_duration_s": np.full(3, 60.0)}
    preset = get_preset("guideline")
    fast = compute_indices(static, labels, np.eye(4), preset, dynamic=dynamic, **timing).to_dict()
    slow = reference_indices(static, labels, np.eye(4), preset, dynamic=dynamic, **timing)
    assert fast["missing"]["slope_tumour_per_h"] == "tumour_empty"
    assert fast["missing"]["ki_ref_striatum"] == "striatum_empty"
    assert fast["missing"] == slow["indices"]["missing"]
