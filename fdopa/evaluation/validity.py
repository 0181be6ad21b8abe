"""Clinical validity of automatic delineations on held-out children: per-child rows, summary.

Each child gives one row (:func:`child_row`): per-class Dice of the automatic label map against
the reference one, whether the tumour was missed entirely (no voxel in common) and whether QC
flagged the case, and the key indices computed on the same PET with both label maps.
:func:`summarise` turns the rows into the figures of the clinical-validity benchmark:

* tumour Dice mean ± SD and median, by grade, by location and by reference tumour volume
  (below / at least :data:`SMALL_TUMOUR_ML`); striatum and brain Dice;
* tumours missed entirely, and how many of them QC flagged;
* ICC(A,1) of automatic vs reference for each of :data:`KEY_INDICES` (pingouin, through
  :func:`fdopa.evaluation.agreement.paired_agreement`, on the children with both values), and
  the number of children where the index exists on one side only;
* the median absolute MTV error in percent of the reference, over the children whose
  reference MTV is at least :data:`MTV_MIN_ML`;
* the share of dynamic children whose automatic time-to-peak falls in the reference peak frame
  or a neighbouring one (a one-sided missing TTP counts as a miss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fdopa.evaluation.agreement import paired_agreement
from fdopa.kinetics import IndexResult
from fdopa.labels import FOREGROUND, TUMOUR

__all__ = [
    "KEY_INDICES",
    "MTV_MIN_ML",
    "SMALL_TUMOUR_ML",
    "child_row",
    "dice",
    "format_summary",
    "peak_frame",
    "summarise",
]

KEY_INDICES: tuple[str, ...] = ("tsr", "tbr_max", "tbr_mean", "mtv_ml")
"""Indices whose agreement (ICC(A,1)) is reported."""
SMALL_TUMOUR_ML = 5.0
"""Reference tumour volume (mL) separating small from large tumours."""
MTV_MIN_ML = 1.0
"""Smallest reference MTV (mL) entering the MTV percentage error."""


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty (undefined, never a silent 1)."""
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(np.logical_and(a, b))) / total


def peak_frame(ttp_min: float | None, frame_mid_min: Sequence[float] | None) -> int | None:
    """Index of the frame whose mid-time is closest to a time-to-peak (None if unknown)."""
    if ttp_min is None or frame_mid_min is None or not np.isfinite(ttp_min):
        return None
    return int(np.argmin(np.abs(np.asarray(frame_mid_min, dtype=float) - ttp_min)))


def _value(result: IndexResult, name: str) -> float:
    value = getattr(result, name)
    return float("nan") if value is None else float(value)


def child_row(
    participant: Mapping[str, Any],
    auto_labels: np.ndarray,
    reference_labels: np.ndarray,
    voxel_ml: float,
    auto: IndexResult,
    reference: IndexResult,
    *,
    qc_flag: bool = False,
    qc_reasons: Sequence[str] = (),
) -> dict[str, Any]:
    """One child's comparison of the automatic and the reference delineation.

    Args:
        participant: ``participants.tsv`` row (``participant_id``, ``grade``, ``location``, …).
        auto_labels: Automatic label map.
        reference_labels: Reference label map on the same grid.
        voxel_ml: Voxel volume in mL.
        auto: Indices of the PET with ``auto_labels``.
        reference: Indices of the same PET with ``reference_labels``.
        qc_flag: Whether the prediction was flagged for review.
        qc_reasons: Why.

    Returns:
        ``participant_id``, ``grade``, ``location``, ``dynamic``, ``ref_tumour_ml``,
        ``auto_tumour_ml``, ``dice_<class>``, ``missed`` (reference tumour present, no voxel in
        common), ``qc_flag``, ``qc_reasons``, ``ref_<index>`` / ``auto_<index>`` for
        :data:`KEY_INDICES` and ``ttp_min``, and ``ref_ttp_frame`` / ``auto_ttp_frame``.
    """
    if auto_labels.shape != reference_labels.shape:
        raise ValueError(
            f"label maps differ in shape: {auto_labels.shape} vs {reference_labels.shape}"
        )
    ref_tumour = reference_labels == TUMOUR
    auto_tumour = auto_labels == TUMOUR
    row: dict[str, Any] = {
        "participant_id": participant.get("participant_id", reference.participant_id),
        "grade": participant.get("grade"),
        "location": participant.get("location"),
        "dynamic": reference.tacs is not None,
        "ref_tumour_ml": int(ref_tumour.sum()) * voxel_ml,
        "auto_tumour_ml": int(auto_tumour.sum()) * voxel_ml,
    }
    for name, value in FOREGROUND.items():
        row[f"dice_{name}"] = dice(auto_labels == value, reference_labels == value)
    row["missed"] = bool(ref_tumour.any() and not np.logical_and(ref_tumour, auto_tumour).any())
    row["qc_flag"], row["qc_reasons"] = bool(qc_flag), "; ".join(qc_reasons)
    for name in (*KEY_INDICES, "ttp_min"):
        row[f"ref_{name}"], row[f"auto_{name}"] = _value(reference, name), _value(auto, name)
    frames = None if reference.tacs is None else reference.tacs.frame_mid_min
    row["ref_ttp_frame"] = peak_frame(reference.ttp_min, frames)
    row["auto_ttp_frame"] = peak_frame(auto.ttp_min, frames)
    return row


def _mean_sd(values: pd.Series) -> dict[str, float]:
    values = values.dropna()
    return {
        "n": int(values.size),
        "mean": float(values.mean()) if values.size else float("nan"),
        "sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
        "median": float(values.median()) if values.size else float("nan"),
    }


def summarise(rows: pd.DataFrame) -> dict[str, Any]:
    """The benchmark figures of a table of :func:`child_row` rows (see the module docstring).

    Returns:
        ``n``, ``dice`` (class → ``n, mean, sd, median``), ``tumour_dice_by_grade``,
        ``tumour_dice_by_location``, ``tumour_dice_by_size`` (``< 5 mL`` / ``>= 5 mL``),
        ``missed`` and ``missed_flagged`` (participant ids), ``icc_a1`` and ``n_one_sided``
        (index → value), ``mtv_median_abs_error_pct`` with ``mtv_n``, ``ttp_within_one_frame_pct``
        with ``ttp_n`` (dynamic children).
    """
    summary: dict[str, Any] = {"n": len(rows)}
    summary["dice"] = {name: _mean_sd(rows[f"dice_{name}"]) for name in FOREGROUND}
    tumour = rows["dice_tumour"]
    size = np.where(rows["ref_tumour_ml"] < SMALL_TUMOUR_ML, f"< {SMALL_TUMOUR_ML:g} mL",
                    f">= {SMALL_TUMOUR_ML:g} mL")  # fmt: skip
    for key, groups in (("grade", rows["grade"]), ("location", rows["location"]), ("size", size)):
        summary[f"tumour_dice_by_{key}"] = {
            str(group): _mean_sd(values) for group, values in tumour.groupby(groups)
        }
    missed = rows[rows["missed"]]
    summary["missed"] = list(missed["participant_id"])
    summary["missed_flagged"] = list(missed.loc[missed["qc_flag"], "participant_id"])
    summary["icc_a1"], summary["n_one_sided"] = {}, {}
    for name in KEY_INDICES:
        ref, auto = rows[f"ref_{name}"].astype(float), rows[f"auto_{name}"].astype(float)
        summary["icc_a1"][name] = paired_agreement(ref, auto)["icc_a1"]
        summary["n_one_sided"][name] = int((np.isfinite(ref) != np.isfinite(auto)).sum())
    large = rows[rows["ref_mtv_ml"] >= MTV_MIN_ML]
    error = 100.0 * (large["auto_mtv_ml"] - large["ref_mtv_ml"]).abs() / large["ref_mtv_ml"]
    summary["mtv_n"] = len(error)
    # A missing automatic MTV is an unbounded error: it ranks last, never dropped.
    summary["mtv_median_abs_error_pct"] = (
        float(error.fillna(np.inf).median()) if len(error) else float("nan")
    )
    dynamic = rows[rows["dynamic"].astype(bool)]
    ref_frame = pd.to_numeric(dynamic["ref_ttp_frame"], errors="coerce")
    auto_frame = pd.to_numeric(dynamic["auto_ttp_frame"], errors="coerce")
    within = ((ref_frame - auto_frame).abs() <= 1) & ref_frame.notna() & auto_frame.notna()
    summary["ttp_n"] = len(dynamic)
    summary["ttp_within_one_frame_pct"] = (
        100.0 * float(within.mean()) if len(dynamic) else float("nan")
    )
    return summary


def _dice_line(label: str, stats: Mapping[str, float]) -> str:
    return (
        f"  {label:<24} {stats['mean']:.3f} ± {stats['sd']:.3f}  median {stats['median']:.3f}"
        f"  (n={stats['n']})"
    )


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as the plain-text table the benchmark prints."""
    lines = [f"held-out children: {summary['n']}", "Dice (mean ± SD, median):"]
    lines += [_dice_line(name, stats) for name, stats in summary["dice"].items()]
    for key in ("grade", "location", "size"):
        lines.append(f"tumour Dice by {key}:")
        lines += [_dice_line(g, s) for g, s in summary[f"tumour_dice_by_{key}"].items()]
    missed, flagged = summary["missed"], summary["missed_flagged"]
    lines.append(
        f"tumours missed entirely: {len(missed)} {missed or ''} (QC-flagged: {len(flagged)})"
    )
    lines.append("ICC(A,1) auto vs reference (children with the index on one side only):")
    for name, value in summary["icc_a1"].items():
        lines.append(f"  {name:<24} {value:.3f}  ({summary['n_one_sided'][name]})")
    lines.append(
        f"MTV median absolute error (reference MTV >= {MTV_MIN_ML:g} mL, n={summary['mtv_n']}):"
        f" {summary['mtv_median_abs_error_pct']:.1f} %"
    )
    lines.append(
        f"TTP within one frame (dynamic children, n={summary['ttp_n']}):"
        f" {summary['ttp_within_one_frame_pct']:.1f} %"
    )
    return "\n".join(lines)
