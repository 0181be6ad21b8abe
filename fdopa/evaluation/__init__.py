"""Clinical evaluation: agreement and outcome statistics, the score, the report (no torch).

* :mod:`~fdopa.evaluation.agreement` — ICC(A,1)/ICC(C,1), Bland–Altman, Wilcoxon, MAPE, ρ;
* :mod:`~fdopa.evaluation.association` — Mann–Whitney, ROC AUC and Youden cut-off vs grade;
* :mod:`~fdopa.evaluation.survival` — Kaplan–Meier by a cut-off, log-rank, Cox HR;
* :mod:`~fdopa.evaluation.score` — the composite ``val/clinical/score``;
* :mod:`~fdopa.evaluation.delineations` — semi-automatic labels, indices per method of a cohort;
* :mod:`~fdopa.evaluation.report`, :mod:`~fdopa.evaluation.plots`,
  :mod:`~fdopa.evaluation.runs` — ``fdopa report``;
* :mod:`~fdopa.evaluation.validity` — held-out clinical validity of a trained model.

The Lightning callback that runs this evaluation every validation epoch lives with the training
code, :class:`fdopa.models.callbacks.ClinicalEvaluation`.
"""
