"""Agreement statistics against published values, pingouin/scipy called directly, and truths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats

from fdopa.evaluation.agreement import (
    AGREEMENT_COLUMNS,
    agreement_table,
    icc,
    paired_agreement,
    paired_values,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges. Published: BMS 11.24,
# JMS 32.49, EMS 1.02; ICC(2,1) = 0.29, ICC(3,1) = 0.71.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)


def _mean_squares(table: np.ndarray) -> tuple[float, float, float]:
    n, k = table.shape
    grand = table.mean()
    bms = k * ((table.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    jms = n * ((table.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    total = ((table - grand) ** 2).sum()
    ems = (total - bms * (n - 1) - jms * (k - 1)) / ((n - 1) * (k - 1))
    return bms, jms, ems


def _pingouin(table: np.ndarray) -> pd.DataFrame:
    n, k = table.shape
    long = pd.DataFrame(
        {"t": np.repeat(np.arange(n), k), "r": np.tile(np.arange(k), n), "x": table.ravel()}
    )
    saved = dict(pingouin.options)
    pingouin.options["round.column.CI95"] = None
    try:
        return pingouin.intraclass_corr(long, "t", "r", "x").set_index("Type")
    finally:
        pingouin.options.update(saved)


def test_icc_reproduces_the_shrout_fleiss_worked_example():
    bms, jms, ems = _mean_squares(SHROUT_FLEISS)
    assert (round(bms, 2), round(jms, 2), round(ems, 2)) == (11.24, 32.49, 1.02)
    n, k = SHROUT_FLEISS.shape
    icc21 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc31 = (bms - ems) / (bms + (k - 1) * ems)
    result = icc(SHROUT_FLEISS)
    assert result["icc_a1"] == pytest.approx(icc21, abs=1e-12)
    assert result["icc_c1"] == pytest.approx(icc31, abs=1e-12)
    assert (round(result["icc_a1"], 2), round(result["icc_c1"], 2)) == (0.29, 0.71)


@pytest.mark.parametrize("seed", [0, 1])
def test_icc_and_ci_equal_pingouin_at_full_precision(seed):
    rng = np.random.default_rng(seed)
    truth = rng.normal(2.0, 0.5, 12)
    table = np.column_stack([truth + rng.normal(0, 0.1, 12), truth + 0.05 + rng.normal(0, 0.1, 12)])
    expected = _pingouin(table)
    result = icc(table)
    for key, kind in (("icc_a1", "ICC(A,1)"), ("icc_c1", "ICC(C,1)")):
        low, high = expected.at[kind, "CI95"]
        assert result[key] == pytest.approx(expected.at[kind, "ICC"], abs=1e-6)
        assert result[f"{key}_low"] == pytest.approx(low, abs=1e-6)
        assert result[f"{key}_high"] == pytest.approx(high, abs=1e-6)
    assert result["icc_a1_high"] - result["icc_a1_low"] > 0.01  # not rounded to 2 decimals
    assert pingouin.options["round.column.CI95"] == 2  # options restored


def test_paired_agreement_equals_scipy_and_numpy():
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.5, 2.0, 15)
    other = ref * rng.normal(1.05, 0.05, 15)
    out = paired_agreement(ref, other)
    diff = other - ref
    assert out["n"] == 15
    assert out["bias"] == pytest.approx(diff.mean(), abs=1e-12)
    assert out["loa_low"] == pytest.approx(diff.mean() - 1.96 * diff.std(ddof=1), abs=1e-12)
    assert out["loa_high"] == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1), abs=1e-12)
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(other, ref).pvalue, abs=1e-12)
    assert out["spearman"] == pytest.approx(stats.spearmanr(ref, other).statistic, abs=1e-12)
    assert out["mape"] == pytest.approx(100 * np.mean(np.abs(diff) / ref), abs=1e-12)
    assert out["icc_a1"] == pytest.approx(
        _pingouin(np.column_stack([ref, other])).at["ICC(A,1)", "ICC"], abs=1e-6
    )


def test_identical_inputs_give_icc_one_and_zero_bias():
    values = [0.8, 1.1, 1.4, 0.9, 2.0]
    out = paired_agreement(values, values)
    assert out["icc_a1"] == out["icc_c1"] == out["icc_a1_low"] == out["icc_a1_high"] == 1.0
    assert out["bias"] == out["loa_low"] == out["loa_high"] == out["mape"] == 0.0
    assert out["wilcoxon_p"] == 1.0
    assert out["spearman"] == pytest.approx(1.0)


def test_a_known_shift_gives_that_bias():
    ref = np.array([1.0, 1.5, 0.7, 2.2, 1.1, 0.9])
    out = paired_agreement(ref, ref + 0.25)
    assert out["bias"] == pytest.approx(0.25, abs=1e-12)
    assert out["loa_low"] == pytest.approx(0.25, abs=1e-12)
    assert out["loa_high"] == pytest.approx(0.25, abs=1e-12)
    assert out["icc_c1"] == pytest.approx(1.0, abs=1e-12)
    bms, jms, _ = _mean_squares(np.column_stack([ref, ref + 0.25]))
    assert out["icc_a1"] == pytest.approx(bms / (bms + 2 * jms / ref.size), abs=1e-12)
    assert out["mape"] == pytest.approx(100 * np.mean(0.25 / ref), abs=1e-12)


@pytest.mark.parametrize(
    ("ref", "other", "n"),
    [
        ([], [], 0),
        ([1.0], [1.2], 1),
        ([1.0, 2.0], [1.1, 2.1], 2),
        ([1.0, np.nan, 2.0], [1.0, 3.0, None], 1),
    ],
)
def test_fewer_than_three_pairs_give_nan_icc_and_spearman(ref, other, n):
    out = paired_agreement(ref, np.array(other, dtype=float))
    assert out["n"] == n
    for key in ("icc_a1", "icc_a1_low", "icc_a1_high", "icc_c1", "spearman"):
        assert math.isnan(out[key]), key
    assert math.isnan(out["loa_low"]) == (n < 2)
    assert math.isnan(out["bias"]) == (n == 0)


def test_constant_values_and_zero_references():
    constant = paired_agreement([2.0] * 4, [2.0] * 4)
    assert math.isnan(constant["icc_a1"]) and math.isnan(constant["spearman"])
    assert constant["bias"] == 0.0 and constant["mape"] == 0.0
    zero = paired_agreement([0.0, 1.0, 2.0], [0.5, 1.5, 2.0])
    assert zero["mape"] == pytest.approx(100 * np.mean([0.5, 0.0]))  # reference 0 left out


def test_agreement_table_has_exactly_the_columns_and_counts_missing_sides():
    reference = pd.DataFrame(
        {
            "participant_id": list("abcd"),
            "tsr": [1.0, 1.2, None, 0.8],
            "mtv_ml": [1.0, 2.0, 3.0, 4.0],
        }
    )
    method = pd.DataFrame(
        {
            "participant_id": list("abcd"),
            "tsr": [1.0, None, 0.9, 0.8],
            "mtv_ml": [1.0, 2.0, 3.0, 4.0],
        }
    )
    table = agreement_table(reference, method, ["tsr", "mtv_ml", "dsr"])
    assert tuple(table.columns) == AGREEMENT_COLUMNS
    assert table["n"].tolist() == [2, 4, 0]
    pairs, counts = paired_values(reference, method, "tsr")
    assert pairs["participant_id"].tolist() == ["a", "d"]
    assert counts == {"n_missing_reference": 1, "n_missing_method": 1, "n_missing_both": 0}
