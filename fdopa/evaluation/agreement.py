"""Paired agreement of an index between two methods: ICC, Bland–Altman, MAPE, ρ.

One method is the *reference* (the delineation the other is judged against: bias, MAPE and
the percentage errors are relative to it) and the other is the *method* under test.

Degenerate inputs never raise; the statistic that is undefined becomes NaN:

* pairs where either value is missing (None/NaN) are dropped before anything is computed (the
  callers count them, see :func:`paired_values`);
* ``n < 3`` complete pairs: ICC, its CI and Spearman ρ are NaN (two subjects give one degree
  of freedom between targets and a correlation of ±1 by construction); the bias needs
  ``n >= 1`` and the limits of agreement ``n >= 2``;
* identical values (every difference 0): ICC(A,1) = ICC(C,1) = 1 with CI (1, 1) (the limit of
  the F-based interval as the residual variance vanishes), bias = limits = 0, MAPE = 0 and
  Wilcoxon p = 1; when, in addition, every subject has the same value, the ICCs are NaN
  (no between-subject variance: 0/0) and so is ρ;
* a constant non-zero shift makes the residual mean square 0: ICC(C,1) = 1, ICC(A,1) is
  finite, and pingouin's CI of ICC(A,1) is NaN;
* MAPE = 100 · mean(|method − reference| / |reference|) over the pairs whose reference is not
  0 (a percentage of 0 is undefined); NaN when no such pair remains.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pingouin
from scipy import stats

__all__ = [
    "AGREEMENT_COLUMNS",
    "absolute_percentage_error",
    "agreement_table",
    "icc",
    "paired_agreement",
    "paired_values",
]

AGREEMENT_COLUMNS: tuple[str, ...] = (
    "index",
    "n",
    "icc_a1",
    "icc_a1_low",
    "icc_a1_high",
    "icc_c1",
    "bias",
    "loa_low",
    "loa_high",
    "wilcoxon_p",
    "mape",
    "spearman",
)
"""Columns of an agreement table (``agreement.csv``), one row per index."""

_MIN_PAIRS = 3


@contextmanager
def _pingouin_full_precision() -> Iterable[None]:
    """Disable pingouin's rounding (CI95 is rounded to 2 decimals by default)."""
    saved = dict(pingouin.options)
    pingouin.options.update({key: None for key in saved if key.startswith("round")})
    try:
        yield
    finally:
        pingouin.options.clear()
        pingouin.options.update(saved)


def icc(ratings: np.ndarray) -> dict[str, float]:
    """ICC(A,1) and ICC(C,1) with their 95 % CI (pingouin) of a complete targets × raters table.

    ICC(A,1) is McGraw & Wong's two-way random, absolute-agreement, single-measure ICC
    (Shrout–Fleiss ICC(2,1)); ICC(C,1) the consistency form (Shrout–Fleiss ICC(3,1)).

    Args:
        ratings: ``(n_targets, k_raters)`` array without missing values.

    Returns:
        ``icc_a1``, ``icc_a1_low``, ``icc_a1_high``, ``icc_c1``, ``icc_c1_low``,
        ``icc_c1_high``; NaN for fewer than 3 targets or a table of one repeated value, and
        ``1`` with CI ``(1, 1)`` when every rater gives every target the same value as the
        others (see the module docstring).

    Examples:
        >>> table = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6],
        ...                   [10, 5, 6, 9], [6, 2, 4, 7]], float)  # Shrout & Fleiss 1979
        >>> round(icc(table)["icc_a1"], 2), round(icc(table)["icc_c1"], 2)
        (0.29, 0.71)
    """
    ratings = np.asarray(ratings, dtype=float)
    keys = ("icc_a1", "icc_a1_low", "icc_a1_high", "icc_c1", "icc_c1_low", "icc_c1_high")
    n, k = ratings.shape
    if n < _MIN_PAIRS or k < 2 or np.ptp(ratings) == 0:
        return dict.fromkeys(keys, float("nan"))
    if np.all(ratings == ratings[:, :1]):
        return dict.fromkeys(keys, 1.0)
    long = pd.DataFrame(
        {
            "target": np.repeat(np.arange(n), k),
            "rater": np.tile(np.arange(k), n),
            "rating": ratings.ravel(),
        }
    )
    with _pingouin_full_precision(), np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table = pingouin.intraclass_corr(long, "target", "rater", "rating").set_index("Type")
    out = {}
    for key, kind in (("icc_a1", "ICC(A,1)"), ("icc_c1", "ICC(C,1)")):
        out[key] = float(table.at[kind, "ICC"])
        out[f"{key}_low"], out[f"{key}_high"] = (float(v) for v in table.at[kind, "CI95"])
    return out


def absolute_percentage_error(method: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pair ``|method − reference| / |reference|`` (a fraction, not percent).

    Equal values give 0 (also when both are 0); a reference of 0 with another value gives inf.
    """
    method, reference = np.asarray(method, float), np.asarray(reference, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(method - reference) / np.abs(reference)
    return np.where(method == reference, 0.0, error)


def paired_agreement(reference: Sequence[float], method: Sequence[float]) -> dict[str, float]:
    """Every agreement statistic of one index (module docstring: degenerate cases).

    Args:
        reference: Values of the reference delineation, one per subject.
        method: Values of the method under test, same subjects in the same order.

    Returns:
        A dict over :data:`AGREEMENT_COLUMNS` without ``index``: ``n`` (complete pairs),
        ICC(A,1) with CI, ICC(C,1), Bland–Altman ``bias`` = mean(method − reference) and the
        95 % limits ``bias ± 1.96 SD`` (SD with ddof 1), the Wilcoxon signed-rank p (scipy,
        two-sided, zero differences dropped), MAPE in percent and Spearman ρ.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    ref = np.asarray(reference, dtype=float)
    other = np.asarray(method, dtype=float)
    if ref.shape != other.shape or ref.ndim != 1:
        raise ValueError(f"paired values: shapes {ref.shape} and {other.shape} differ")
    keep = np.isfinite(ref) & np.isfinite(other)
    ref, other = ref[keep], other[keep]
    n = int(ref.size)
    nan = float("nan")
    diff = other - ref
    ratings = icc(np.column_stack([ref, other]))
    out: dict[str, Any] = {"n": n, **{k: ratings[k] for k in AGREEMENT_COLUMNS[2:6]}}
    bias = float(diff.mean()) if n else nan
    half = 1.96 * float(diff.std(ddof=1)) if n >= 2 else nan
    out |= {"bias": bias, "loa_low": bias - half, "loa_high": bias + half}
    if n == 0:
        out["wilcoxon_p"] = nan
    elif not diff.any():
        out["wilcoxon_p"] = 1.0
    else:
        out["wilcoxon_p"] = float(stats.wilcoxon(other, ref).pvalue)
    defined = ref != 0
    ape = absolute_percentage_error(other[defined], ref[defined])
    out["mape"] = 100.0 * float(ape.mean()) if ape.size else nan
    constant = n < _MIN_PAIRS or np.ptp(ref) == 0 or np.ptp(other) == 0
    out["spearman"] = nan if constant else float(stats.spearmanr(ref, other).statistic)
    return out


def paired_values(
    reference: pd.DataFrame, method: pd.DataFrame, index: str, key: str = "participant_id"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Align one index of two per-subject tables and count the one-sided missing values.

    Args:
        reference: Table with ``key`` and ``index`` columns (e.g. an indices CSV).
        method: The same for the method under test.
        index: Column compared.
        key: Subject key shared by the tables.

    Returns:
        ``(pairs, counts)``: ``pairs`` has ``key``, ``reference`` and ``method`` for the
        subjects present in both tables with both values; ``counts`` has ``n_missing_reference``
        (value only on the method's side), ``n_missing_method`` (only on the reference's side)
        and ``n_missing_both``.
    """
    left = reference[[key, index]].rename(columns={index: "reference"})
    right = method[[key, index]].rename(columns={index: "method"})
    merged = left.merge(right, on=key, how="inner")
    ref = pd.to_numeric(merged["reference"], errors="coerce").notna()
    other = pd.to_numeric(merged["method"], errors="coerce").notna()
    counts = {
        "n_missing_reference": int((~ref & other).sum()),
        "n_missing_method": int((ref & ~other).sum()),
        "n_missing_both": int((~ref & ~other).sum()),
    }
    pairs = merged[ref & other].astype({"reference": float, "method": float})
    return pairs.reset_index(drop=True), counts


def agreement_table(
    reference: pd.DataFrame,
    method: pd.DataFrame,
    indices: Sequence[str],
    key: str = "participant_id",
) -> pd.DataFrame:
    """:func:`paired_agreement` of several indices, one row per index.

    Args:
        reference: Per-subject table of the reference delineation.
        method: Per-subject table of the method under test.
        indices: Columns to compare (absent columns give a row of NaN with ``n`` 0).
        key: Subject key shared by the tables.

    Returns:
        A DataFrame with exactly :data:`AGREEMENT_COLUMNS`.
    """
    rows = []
    for index in indices:
        if index not in reference or index not in method:
            rows.append({"index": index, **paired_agreement([], [])})
            continue
        pairs, _ = paired_values(reference, method, index, key)
        rows.append({"index": index, **paired_agreement(pairs["reference"], pairs["method"])})
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
