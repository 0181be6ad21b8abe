"""Grade association against scipy and scikit-learn called directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics

from fdopa.evaluation.association import (
    ASSOCIATION_COLUMNS,
    association_table,
    grade_association,
    roc_curve,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_youden_and_mann_whitney_equal_sklearn_and_scipy(seed):
    rng = np.random.default_rng(seed)
    grades = np.array(["HGG"] * 9 + ["LGG"] * 11)
    values = np.round(np.where(grades == "HGG", 1.2, 0.9) + rng.normal(0, 0.2, 20), 1)  # ties
    out = grade_association(values, grades)
    positive = grades == "HGG"
    assert out["auc"] == pytest.approx(metrics.roc_auc_score(positive, values), abs=1e-12)
    expected_p = stats.mannwhitneyu(values[positive], values[~positive]).pvalue
    assert out["mannwhitney_p"] == pytest.approx(expected_p, abs=1e-12)
    fpr, tpr, thresholds = metrics.roc_curve(positive, values, drop_intermediate=False)
    best = np.argmax(tpr - fpr)
    assert out["youden_cutoff"] == pytest.approx(thresholds[best])
    assert out["sensitivity"] == pytest.approx(tpr[best])
    assert out["specificity"] == pytest.approx(1 - fpr[best])
    ours = roc_curve(values, positive)
    assert np.trapezoid(ours[1], ours[0]) == pytest.approx(out["auc"], abs=1e-12)


def test_perfect_separation_and_a_missing_group():
    perfect = grade_association([2.0, 3.0, 0.5, 0.7], ["HGG", "HGG", "LGG", "LGG"])
    assert (perfect["auc"], perfect["youden_cutoff"]) == (1.0, 2.0)
    assert perfect["sensitivity"] == perfect["specificity"] == 1.0
    one_group = grade_association([1.0, None, 2.0], ["HGG", "LGG", "HGG"])
    assert (one_group["n"], one_group["n_positive"]) == (2, 2)
    assert math.isnan(one_group["auc"]) and math.isnan(one_group["mannwhitney_p"])


def test_association_table_columns():
    table = pd.DataFrame({"grade": ["HGG", "LGG", "HGG"], "tsr": [1.2, 0.8, 1.1]})
    out = association_table(table, ["tsr", "dsr"])
    assert tuple(out.columns) == ASSOCIATION_COLUMNS
    assert out["n"].tolist() == [3, 0]
