"""Clinical evaluation: agreement and outcome statistics, the callback, the report.

* :mod:`~fdopa.evaluation.agreement` — ICC(A,1)/ICC(C,1), Bland–Altman, Wilcoxon, MAPE, ρ;
* :mod:`~fdopa.evaluation.association` — Mann–Whitney, ROC AUC and Youden cut-off vs grade;
* :mod:`~fdopa.evaluation.survival` — Kaplan–Meier by a cut-off, log-rank, Cox HR;
* :mod:`~fdopa.evaluation.score` — the composite ``val/clinical/score``;
* :mod:`~fdopa.evaluation.callback` — :class:`ClinicalEvaluation` (Lightning);
* :mod:`~fdopa.evaluation.delineations` — semi-automatic labels, indices per method of a cohort;
* :mod:`~fdopa.evaluation.report`, :mod:`~fdopa.evaluation.plots`,
  :mod:`~fdopa.evaluation.runs` — ``fdopa report``.

Names are imported lazily, so that ``import fdopa.evaluation`` (the CLI does) stays cheap and
loads torch/Lightning only for the callback.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AGREEMENT_COLUMNS": "agreement",
    "agreement_table": "agreement",
    "icc": "agreement",
    "paired_agreement": "agreement",
    "paired_values": "agreement",
    "association_table": "association",
    "grade_association": "association",
    "roc_curve": "association",
    "cox_hazard": "survival",
    "cox_table": "survival",
    "km_by_cutoff": "survival",
    "outcome_frame": "survival",
    "DEFAULT_INDICES": "names",
    "SCORE_INDICES": "names",
    "SCORE_KEY": "names",
    "clinical_score": "score",
    "ClinicalEvaluation": "callback",
    "cohort_method_indices": "delineations",
    "semi_automatic_labels": "delineations",
    "write_report": "report",
    "read_run": "runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name from its submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
