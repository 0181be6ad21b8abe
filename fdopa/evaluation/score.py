"""The composite clinical score of a checkpoint, ``val/clinical/score``, in [0, 1].

For every key index ``k`` (default T/S, TBRmax, TBRmean, MTV) and every subject ``i`` whose
index exists on at least one side, the per-subject agreement is::

    s_ik = exp(-|pred_ik - ref_ik| / |ref_ik|)   both values present (1 when they are equal,
                                                 0 when ref_ik = 0 and pred_ik differs)
    s_ik = 0                                     present on one side only (a missed or a
                                                 spurious index is a complete failure)

Subjects with the index missing on both sides do not count for it. Then::

    score = mean over the key indices with at least one counted subject of
            mean over those subjects of s_ik

and 0 when no index has a counted subject. ``exp(-APE)`` maps an error of 10 % to 0.90, 50 %
to 0.61 and 100 % to 0.37. Unlike ICC, the score is defined for a single subject, needs no
between-subject spread (a validation fold of 2 similar subjects has a meaningless ICC), is
bounded, and falls smoothly as the predicted indices drift from the reference ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fdopa.evaluation.agreement import absolute_percentage_error
from fdopa.evaluation.names import SCORE_INDICES

__all__ = ["clinical_score", "subject_terms"]


def subject_terms(
    reference: Sequence[float | None], predicted: Sequence[float | None]
) -> np.ndarray:
    """Per-subject agreement ``s_ik`` of one index (module docstring); NaN where both miss.

    Args:
        reference: Reference values (None/NaN: missing).
        predicted: Predicted values of the same subjects.

    Returns:
        Float array of ``s_ik`` in [0, 1], NaN for subjects missing on both sides.
    """
    ref = pd.to_numeric(pd.Series(list(reference), dtype=object), errors="coerce").to_numpy(float)
    pred = pd.to_numeric(pd.Series(list(predicted), dtype=object), errors="coerce").to_numpy(float)
    has_ref, has_pred = np.isfinite(ref), np.isfinite(pred)
    terms = np.where(has_ref | has_pred, 0.0, np.nan)
    both = has_ref & has_pred
    terms[both] = np.exp(-absolute_percentage_error(pred[both], ref[both]))
    return terms


def clinical_score(
    reference: pd.DataFrame,
    predicted: pd.DataFrame,
    indices: Sequence[str] = SCORE_INDICES,
    key: str = "participant_id",
) -> float:
    """The composite clinical score (module docstring) of two per-subject tables.

    Args:
        reference: One row per subject with ``key`` and the index columns (reference labels).
        predicted: The same for the predicted labels.
        indices: Key indices.
        key: Subject key; subjects present in one table only are ignored.

    Returns:
        The score in [0, 1].
    """
    merged = reference.merge(predicted, on=key, suffixes=("_ref", "_pred"))
    means = []
    for index in indices:
        terms = subject_terms(merged[f"{index}_ref"], merged[f"{index}_pred"])
        if np.isfinite(terms).any():
            means.append(float(np.nanmean(terms)))
    return float(np.mean(means)) if means else 0.0
