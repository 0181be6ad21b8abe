"""Association of an index with tumour grade: Mann–Whitney p, ROC AUC, Youden cut-off.

Higher values are taken to point to the *positive* grade (HGG by default): the AUC is the
probability that a random positive subject has a higher value than a random negative one (ties
count one half), i.e. ``U / (n_pos · n_neg)`` of the Mann–Whitney statistic of the positive
group, and an AUC below 0.5 means the index is lower in high-grade tumours. The Youden cut-off
maximises sensitivity + specificity − 1 over the rule "value ≥ cut-off → positive" (ties go
to the highest cut-off). With no subject in one of the groups every statistic is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ASSOCIATION_COLUMNS", "association_table", "grade_association", "roc_curve"]

ASSOCIATION_COLUMNS: tuple[str, ...] = (
    "index",
    "n",
    "n_positive",
    "mannwhitney_p",
    "auc",
    "youden_cutoff",
    "sensitivity",
    "specificity",
)
"""Columns of an association table, one row per index."""


def roc_curve(
    values: Sequence[float], positive: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the rule "value ≥ threshold → positive".

    Args:
        values: Index values.
        positive: True for positive subjects (e.g. HGG).

    Returns:
        ``(fpr, tpr, thresholds)``, from the highest threshold (``+inf``: nothing positive)
        down to the lowest value (everything positive).
    """
    values = np.asarray(values, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    thresholds = np.r_[np.inf, np.unique(values)[::-1]]
    called = values[None, :] >= thresholds[:, None]
    tpr = (called & positive).sum(axis=1) / max(int(positive.sum()), 1)
    fpr = (called & ~positive).sum(axis=1) / max(int((~positive).sum()), 1)
    return fpr, tpr, thresholds


def grade_association(
    values: Sequence[float], grades: Sequence[str], positive: str = "HGG"
) -> dict[str, float]:
    """Mann–Whitney p, ROC AUC and Youden cut-off of one index against grade.

    Args:
        values: Index values (NaN/None entries are dropped with their grade).
        grades: Grade label of each subject.
        positive: The grade counted as positive; every other grade is negative.

    Returns:
        A dict over :data:`ASSOCIATION_COLUMNS` without ``index``.
    """
    values = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy()
    is_positive = np.asarray([str(g) == positive for g in grades], dtype=bool)
    keep = np.isfinite(values)
    values, is_positive = values[keep], is_positive[keep]
    pos, neg = values[is_positive], values[~is_positive]
    out: dict[str, float] = {"n": int(values.size), "n_positive": int(pos.size)}
    if pos.size == 0 or neg.size == 0:
        keys = ASSOCIATION_COLUMNS[3:]
        return out | dict.fromkeys(keys, float("nan"))
    test = stats.mannwhitneyu(pos, neg, alternative="two-sided")
    fpr, tpr, thresholds = roc_curve(values, is_positive)
    youden = tpr - fpr
    best = int(np.flatnonzero(youden == youden.max())[0])
    return out | {
        "mannwhitney_p": float(test.pvalue),
        "auc": float(test.statistic) / (pos.size * neg.size),
        "youden_cutoff": float(thresholds[best]),
        "sensitivity": float(tpr[best]),
        "specificity": float(1.0 - fpr[best]),
    }


def association_table(
    table: pd.DataFrame,
    indices: Sequence[str],
    grade_column: str = "grade",
    positive: str = "HGG",
) -> pd.DataFrame:
    """:func:`grade_association` of several indices of one per-subject table.

    Args:
        table: One row per subject with the index columns and ``grade_column``.
        indices: Index columns (an absent column gives ``n`` 0 and NaN statistics).
        grade_column: Grade column.
        positive: Positive grade.

    Returns:
        A DataFrame with exactly :data:`ASSOCIATION_COLUMNS`.
    """
    grades = table[grade_column].astype(str).tolist()
    rows = []
    for index in indices:
        values = table[index] if index in table else [float("nan")] * len(table)
        rows.append({"index": index, **grade_association(values, grades, positive)})
    return pd.DataFrame(rows, columns=list(ASSOCIATION_COLUMNS))
