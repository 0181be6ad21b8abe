"""The clinical-validity figures against analytic truth (masks, ICC of a shift, frames)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fdopa.evaluation.validity import child_row, dice, peak_frame, summarise

VOXEL_ML = 0.064  # 4 mm voxels


def _cube(shape=(12, 12, 12), lo=(2, 2, 2), size=4) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, a + size) for a in lo)] = True
    return mask


def test_dice_of_identical_shifted_and_empty_masks():
    cube = _cube()
    assert dice(cube, cube) == 1.0
    # A 4-voxel cube shifted by one voxel keeps 3·4·4 of its 64 voxels: Dice = 2·48 / 128.
    assert dice(cube, _cube(lo=(3, 2, 2))) == pytest.approx(0.75)
    assert dice(cube, _cube(lo=(7, 7, 7))) == 0.0
    assert math.isnan(dice(np.zeros(5, bool), np.zeros(5, bool)))


def test_peak_frame_is_the_nearest_mid_time():
    mids = [0.5, 1.5, 3.0, 6.0]
    assert peak_frame(2.9, mids) == 2
    assert peak_frame(None, mids) is None
    assert peak_frame(1.0, None) is None


def _labels(tumour: np.ndarray) -> np.ndarray:
    labels = np.ones(tumour.shape, np.uint8)
    labels[:, :, :2] = 0
    labels[0:2, 8:10, 8:10] = 2
    labels[tumour] = 3
    return labels


def _result(pid: str, **values) -> SimpleNamespace:
    """What child_row reads of an IndexResult (a static scan: no TTP, no TACs)."""
    return SimpleNamespace(participant_id=pid, ttp_min=None, tacs=None, **values)


def _rows(shift: float) -> pd.DataFrame:
    """Six children: auto = reference, except T/S which is reference + ``shift``."""
    rows = []
    rng = np.random.default_rng(3)
    for i in range(6):
        values = {"tsr": 1.0 + i, "tbr_max": 2.0 + rng.random(), "tbr_mean": 1.5 + i / 10,
                  "mtv_ml": 2.0 + 3 * i}  # fmt: skip
        auto = {**values, "tsr": values["tsr"] + shift}
        tumour = _cube(size=2 + i % 3)
        participant = {"participant_id": f"sub-{i}", "grade": "LGG" if i % 2 else "HGG",
                       "location": "pons"}  # fmt: skip
        rows.append(
            child_row(participant, _labels(tumour), _labels(tumour), VOXEL_ML,
                      _result(f"sub-{i}", **auto), _result(f"sub-{i}", **values))
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_identical_delineations_give_perfect_figures():
    summary = summarise(_rows(shift=0.0))
    for name in ("brain", "striatum", "tumour"):
        assert summary["dice"][name]["mean"] == 1.0
        assert summary["dice"][name]["sd"] == 0.0
    assert summary["icc_a1"] == pytest.approx(dict.fromkeys(summary["icc_a1"], 1.0))
    assert summary["mtv_median_abs_error_pct"] == 0.0
    assert summary["missed"] == [] and summary["n_one_sided"]["tsr"] == 0
    assert set(summary["tumour_dice_by_grade"]) == {"LGG", "HGG"}
    # tumour cubes of 2, 3, 4 voxels a side: 0.512, 1.728, 4.096 mL, all below 5 mL
    assert set(summary["tumour_dice_by_size"]) == {"< 5 mL"}


def test_icc_of_a_constant_shift_is_analytic():
    # Two raters, auto = ref + c: MSE = 0, MSR = 2 s², MSC = n c² / 2, so
    # ICC(A,1) = 2 s² / (2 s² + c²) with s² the sample variance of the reference.
    c = 0.5
    rows = _rows(shift=c)
    s2 = float(np.var(rows["ref_tsr"], ddof=1))
    assert summarise(rows)["icc_a1"]["tsr"] == pytest.approx(2 * s2 / (2 * s2 + c**2))


def test_missed_tumour_one_sided_index_mtv_error_and_ttp():
    rows = _rows(shift=0.0)
    # child 0: the automatic tumour lies elsewhere (missed), flagged by QC, no automatic T/S
    missed = _labels(_cube(lo=(7, 7, 7), size=2))
    rows.loc[0, ["dice_tumour", "missed", "qc_flag", "auto_tsr"]] = [
        dice(missed == 3, _labels(_cube(size=2)) == 3), True, True, np.nan,
    ]  # fmt: skip
    # child 1: automatic MTV 10 % high; child 2: 30 % low
    rows.loc[1, "auto_mtv_ml"] = 1.1 * rows.loc[1, "ref_mtv_ml"]
    rows.loc[2, "auto_mtv_ml"] = 0.7 * rows.loc[2, "ref_mtv_ml"]
    # four dynamic children: peak frames off by 0, 1, 2 and missing on the automatic side
    rows["dynamic"] = [True, True, True, True, False, False]
    rows["ref_ttp_frame"] = [5, 5, 5, 5, None, None]
    rows["auto_ttp_frame"] = [5, 6, 3, None, None, None]
    summary = summarise(rows)
    assert summary["missed"] == summary["missed_flagged"] == ["sub-0"]
    assert summary["dice"]["tumour"]["mean"] == pytest.approx(5 / 6)
    assert summary["n_one_sided"]["tsr"] == 1
    # errors over the six children (all MTV >= 1 mL): 0, 10, 30, 0, 0, 0 % → median 0
    assert summary["mtv_median_abs_error_pct"] == pytest.approx(0.0)
    rows.loc[3:5, "auto_mtv_ml"] = rows.loc[3:5, "ref_mtv_ml"] * 1.2  # 0, 10, 30, 20, 20, 20 %
    assert summarise(rows)["mtv_median_abs_error_pct"] == pytest.approx(20.0)
    assert summary["ttp_n"] == 4
    assert summary["ttp_within_one_frame_pct"] == pytest.approx(50.0)
