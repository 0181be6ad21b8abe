"""Kaplan–Meier, log-rank and Cox against lifelines called directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test

from fdopa.evaluation.survival import (
    COX_COLUMNS,
    cox_hazard,
    cox_table,
    km_by_cutoff,
    outcome_frame,
)


@pytest.fixture
def cohort() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    tsr = rng.uniform(0.5, 1.6, 30)
    os_months = rng.exponential(30 / np.exp(1.5 * (tsr - 1)))
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(30)],
            "tsr": tsr,
            "os_months": np.round(os_months, 2),
            "os_event": (rng.random(30) < 0.8).astype(int),
            "pfs_months": np.round(os_months * 0.6, 2),
            "pfs_event": np.ones(30, int),
        }
    )


@pytest.mark.parametrize("endpoint", ["os", "pfs"])
def test_km_split_and_log_rank_equal_lifelines(cohort, endpoint):
    split = km_by_cutoff(cohort, "tsr", 1.0, endpoint)
    high = cohort[cohort["tsr"] > 1.0]
    low = cohort[cohort["tsr"] <= 1.0]
    time, event = f"{endpoint}_months", f"{endpoint}_event"
    test = logrank_test(high[time], low[time], high[event], low[event])
    assert split.row["logrank_p"] == pytest.approx(test.p_value, abs=1e-12)
    assert split.row["logrank_chi2"] == pytest.approx(test.test_statistic, abs=1e-12)
    assert (split.row["n_high"], split.row["n_low"]) == (len(high), len(low))
    expected = KaplanMeierFitter().fit(high[time], high[event])
    assert split.row["median_high"] == expected.median_survival_time_
    pd.testing.assert_series_equal(
        split.fitters["high"].survival_function_.iloc[:, 0],
        expected.survival_function_.iloc[:, 0],
        check_names=False,
    )


def test_cox_equals_lifelines(cohort):
    row = cox_hazard(cohort, "tsr", "os")
    fit = CoxPHFitter().fit(cohort[["tsr", "os_months", "os_event"]], "os_months", "os_event")
    summary = fit.summary.loc["tsr"]
    assert row["hr"] == pytest.approx(summary["exp(coef)"], rel=1e-6)
    assert row["hr_low"] == pytest.approx(summary["exp(coef) lower 95%"], rel=1e-6)
    assert row["hr_high"] == pytest.approx(summary["exp(coef) upper 95%"], rel=1e-6)
    assert row["p"] == pytest.approx(summary["p"], abs=1e-6)
    assert row["hr"] > 1  # higher T/S, higher hazard: the simulated truth
    table = cox_table(cohort, ["tsr", "absent"])
    assert tuple(table.columns) == COX_COLUMNS and len(table) == 2


def test_degenerate_survival_inputs(cohort):
    everyone_low = km_by_cutoff(cohort, "tsr", 5.0, "os")
    assert everyone_low.row["n_high"] == 0 and math.isnan(everyone_low.row["logrank_p"])
    assert everyone_low.row["note"] == "one group is empty"
    no_event = cohort.assign(os_event=0)
    assert math.isnan(cox_hazard(no_event, "tsr")["hr"])
    assert cox_hazard(cohort.head(2), "tsr")["note"]
    with pytest.raises(KeyError, match="os_months"):
        km_by_cutoff(cohort.drop(columns="os_months"))


def test_outcome_frame_joins_on_participant():
    indices = pd.DataFrame({"participant_id": ["a", "b"], "tsr": [1.0, 2.0]})
    participants = pd.DataFrame(
        {"participant_id": ["b", "a", "c"], "grade": ["HGG", "LGG", "LGG"], "tsr": [9, 9, 9]}
    )
    joined = outcome_frame(indices, participants)
    assert joined.set_index("participant_id").loc["a"].tolist() == [1.0, "LGG"]
