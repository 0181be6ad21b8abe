"""The composite clinical score: exact values of its documented formula."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fdopa.evaluation.score import clinical_score, subject_terms


def _table(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"participant_id": [f"s{i}" for i in range(n)], **columns})


def test_subject_terms():
    terms = subject_terms(
        [1.0, 2.0, None, 1.0, None, 0.0, 0.0], [1.0, 2.2, 1.0, None, None, 0.0, 1.0]
    )
    expected = [1.0, math.exp(-0.1), 0.0, 0.0, np.nan, 1.0, 0.0]
    np.testing.assert_allclose(terms, expected, atol=1e-15)


def test_identical_tables_score_one_and_known_errors_score_their_formula():
    reference = _table(tsr=[1.0, 1.5], tbr_max=[2.0, 3.0], tbr_mean=[1.2, 1.4], mtv_ml=[5.0, 0.0])
    assert clinical_score(reference, reference) == 1.0
    predicted = reference.assign(tsr=[1.1, 1.5], mtv_ml=[None, None])
    expected = np.mean([(math.exp(-0.1) + 1) / 2, 1.0, 1.0, 0.0])
    assert clinical_score(reference, predicted) == pytest.approx(expected, abs=1e-15)


def test_indices_missing_everywhere_do_not_count_and_no_data_scores_zero():
    reference = _table(tsr=[1.0], tbr_max=[None], tbr_mean=[None], mtv_ml=[None])
    assert clinical_score(reference, reference) == 1.0
    assert clinical_score(reference.iloc[:0], reference.iloc[:0]) == 0.0
