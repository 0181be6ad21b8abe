"""Survival analysis of the indices: Kaplan–Meier by a cut-off, log-rank, Cox HR.

Endpoints are overall and progression-free survival, read from ``participants.tsv`` columns
``<endpoint>_months`` and ``<endpoint>_event`` (1 = event, 0 = censored). Subjects without the
index or the endpoint are left out and counted. Everything is delegated to lifelines.

The Kaplan–Meier split puts a subject in the *high* group when its value is strictly above the
cut-off (default: T/S > 1, the paediatric high-risk threshold). The Cox model is
univariate per index, HR per unit of the index. Undefined results are NaN with a ``note``:
an empty group (log-rank), fewer than 3 subjects, no event or no variation
of the index (Cox), or a Cox fit that does not converge; a fit whose CI reaches 0 or infinity
(separation in a small sample) keeps its numbers with a note.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import logrank_test

__all__ = [
    "COX_COLUMNS",
    "ENDPOINTS",
    "KM_COLUMNS",
    "KaplanMeierSplit",
    "cox_hazard",
    "cox_table",
    "km_by_cutoff",
    "outcome_frame",
]

logger = logging.getLogger(__name__)

ENDPOINTS: tuple[str, ...] = ("os", "pfs")
"""Survival endpoints: overall and progression-free survival."""

KM_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "index",
    "cutoff",
    "n_high",
    "n_low",
    "events_high",
    "events_low",
    "median_high",
    "median_low",
    "logrank_chi2",
    "logrank_p",
    "note",
)
"""Columns of the Kaplan–Meier / log-rank table (``km.csv``)."""

COX_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "index",
    "n",
    "events",
    "hr",
    "hr_low",
    "hr_high",
    "p",
    "note",
)
"""Columns of the Cox table (``cox.csv``)."""


def outcome_frame(indices: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Join per-subject indices with ``participants.tsv`` on ``participant_id``.

    Args:
        indices: Per-subject indices (``participant_id`` and index columns).
        participants: The cohort table (grade, ``os_months``, ``os_event``, ...).

    Returns:
        The inner join; columns of ``participants`` that ``indices`` also has are dropped.
    """
    extra = [c for c in participants.columns if c == "participant_id" or c not in indices]
    return indices.merge(participants[extra], on="participant_id", how="inner")


def _survival_data(table: pd.DataFrame, index: str, endpoint: str) -> pd.DataFrame:
    """``value``, ``time``, ``event`` of the subjects with all three (numeric, finite)."""
    columns = {index: "value", f"{endpoint}_months": "time", f"{endpoint}_event": "event"}
    missing = [c for c in columns if c not in table]
    if missing:
        raise KeyError(f"survival {endpoint}: columns {missing} absent from the table")
    data = table[list(columns)].rename(columns=columns).apply(pd.to_numeric, errors="coerce")
    return data[np.isfinite(data).all(axis=1)].astype(float).reset_index(drop=True)


@dataclass
class KaplanMeierSplit:
    """Kaplan–Meier curves of the two groups of a cut-off and their log-rank test.

    Attributes:
        endpoint: ``os`` or ``pfs``.
        index: Index column that was split.
        cutoff: High group: value > cutoff.
        row: The :data:`KM_COLUMNS` values.
        fitters: ``high`` / ``low`` → fitted :class:`lifelines.KaplanMeierFitter` (groups with
            at least one subject).
    """

    endpoint: str
    index: str
    cutoff: float
    row: dict[str, object]
    fitters: dict[str, KaplanMeierFitter] = field(default_factory=dict)


def km_by_cutoff(
    table: pd.DataFrame, index: str = "tsr", cutoff: float = 1.0, endpoint: str = "os"
) -> KaplanMeierSplit:
    """Kaplan–Meier estimates above / at-or-below a cut-off and the log-rank test between them.

    Args:
        table: One row per subject with ``index`` and the endpoint's columns.
        index: Index column.
        cutoff: High group: value strictly greater.
        endpoint: ``os`` or ``pfs``.

    Returns:
        The :class:`KaplanMeierSplit`; log-rank NaN (with a note) unless both groups hold a
        subject.
    """
    data = _survival_data(table, index, endpoint)
    high = data["value"] > cutoff
    row: dict[str, object] = {"endpoint": endpoint, "index": index, "cutoff": float(cutoff)}
    fitters = {}
    for name, group in (("high", data[high]), ("low", data[~high])):
        row[f"n_{name}"] = len(group)
        row[f"events_{name}"] = int(group["event"].sum())
        row[f"median_{name}"] = float("nan")
        if len(group):
            fitter = KaplanMeierFitter(label=f"{index} {'>' if name == 'high' else '≤'} {cutoff:g}")
            fitters[name] = fitter.fit(group["time"], group["event"])
            row[f"median_{name}"] = float(fitter.median_survival_time_)
    row |= {"logrank_chi2": float("nan"), "logrank_p": float("nan"), "note": ""}
    if fitters.keys() == {"high", "low"}:
        a, b = data[high], data[~high]
        test = logrank_test(a["time"], b["time"], a["event"], b["event"])
        row |= {"logrank_chi2": float(test.test_statistic), "logrank_p": float(test.p_value)}
    else:
        row["note"] = "one group is empty"
    return KaplanMeierSplit(endpoint, index, float(cutoff), row, fitters)


def cox_hazard(table: pd.DataFrame, index: str, endpoint: str = "os") -> dict[str, object]:
    """Univariate Cox proportional-hazards fit of one index (lifelines).

    Args:
        table: One row per subject with ``index`` and the endpoint's columns.
        index: Covariate.
        endpoint: ``os`` or ``pfs``.

    Returns:
        A dict over :data:`COX_COLUMNS`: HR = exp(coef) per unit of the index, its 95 % CI and
        the Wald p; NaN with a ``note`` when the fit is undefined (module docstring).
    """
    data = _survival_data(table, index, endpoint)
    nan = float("nan")
    row: dict[str, object] = {
        "endpoint": endpoint,
        "index": index,
        "n": len(data),
        "events": int(data["event"].sum()),
        "hr": nan,
        "hr_low": nan,
        "hr_high": nan,
        "p": nan,
        "note": "",
    }
    if len(data) < 3 or row["events"] == 0 or np.ptp(data["value"]) == 0:
        row["note"] = "too few subjects, no event or a constant index"
        return row
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = CoxPHFitter().fit(data, duration_col="time", event_col="event")
    except ConvergenceError as err:
        logger.info("Cox %s ~ %s did not converge: %s", endpoint, index, err)
        row["note"] = "did not converge"
        return row
    summary = fit.summary.loc["value"]
    row |= {
        "hr": float(summary["exp(coef)"]),
        "hr_low": float(summary["exp(coef) lower 95%"]),
        "hr_high": float(summary["exp(coef) upper 95%"]),
        "p": float(summary["p"]),
    }
    if not (np.isfinite(row["hr_low"]) and np.isfinite(row["hr_high"]) and row["hr_low"] > 0):
        row["note"] = "unstable fit: the confidence interval reaches 0 or infinity"
    return row


def cox_table(
    table: pd.DataFrame, indices: Sequence[str], endpoints: Sequence[str] = ENDPOINTS
) -> pd.DataFrame:
    """:func:`cox_hazard` of every index and endpoint (absent index columns are skipped).

    Returns:
        A DataFrame with exactly :data:`COX_COLUMNS`.
    """
    rows = [
        cox_hazard(table, index, endpoint)
        for endpoint in endpoints
        for index in indices
        if index in table
    ]
    return pd.DataFrame(rows, columns=list(COX_COLUMNS))
