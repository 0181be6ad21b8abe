"""Participant-level, seeded, stratified k-fold splits.

Folds are assigned per participant, never per scan: a participant listed on several rows (one
per session) lands in one fold. Within each stratum (grade by default) the shuffled participants
are dealt round-robin over the folds, continuing where the previous stratum stopped, so every
fold holds each stratum to within one participant and all folds are equal in size to within one
— also when a stratum has fewer members than there are folds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from fdopa.layout import SPLITS_FILE
from fdopa.outputs import write_text_atomic

log = logging.getLogger(__name__)

#: Stratum of participants whose stratification value is missing.
MISSING_STRATUM = "<missing>"


def _strata(participants: pd.DataFrame, stratify: str | None) -> pd.Series:
    """One stratum label per participant (index: participant_id)."""
    if "participant_id" not in participants.columns:
        raise ValueError("participants: missing column 'participant_id'")
    ids = participants["participant_id"].astype(str)
    if stratify is None:
        return pd.Series("all", index=pd.Index(ids.unique(), name="participant_id"))
    if stratify not in participants.columns:
        raise ValueError(f"participants: missing stratification column {stratify!r}")
    values = participants[stratify].astype(object).fillna(MISSING_STRATUM).astype(str)
    per_participant = values.groupby(ids.to_numpy(), sort=False).unique()
    conflicting = [pid for pid, v in per_participant.items() if len(v) > 1]
    if conflicting:
        raise ValueError(
            f"participants: {stratify!r} differs between rows of the same participant "
            f"{conflicting[:5]}"
        )
    strata = per_participant.map(lambda v: v[0])
    strata.index.name = "participant_id"
    return strata


def make_folds(
    participants: pd.DataFrame, n_folds: int, seed: int, stratify: str | None = "grade"
) -> pd.DataFrame:
    """Assign every participant to one of ``n_folds`` folds.

    Args:
        participants: Table with a ``participant_id`` column (repeated ids allowed: one
            participant, several sessions) and the ``stratify`` column.
        n_folds: Number of folds, 2 ≤ ``n_folds`` ≤ number of participants.
        seed: Seed of the shuffle; the same seed gives the same folds.
        stratify: Column to balance across folds (e.g. ``grade``), or ``None``. Missing
            values form their own stratum.

    Returns:
        One row per participant, sorted by id: ``participant_id``, ``fold`` (0-based).

    Raises:
        ValueError: On a missing column, a stratum value that differs between rows of one
            participant, or an impossible number of folds.
    """
    strata = _strata(participants, stratify)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer):
        raise ValueError(f"n_folds: must be an integer, got {n_folds!r}")
    if n_folds < 2:
        raise ValueError(f"n_folds: need at least 2 folds, got {n_folds}")
    if n_folds > len(strata):
        n = len(strata)
        fix = (
            f"add participants or lower the folds (data.n_folds={n} at most)"
            if n >= 2
            else "add participants: cross-validation needs at least 2"
        )
        raise ValueError(
            f"n_folds: the cohort is too small for {n_folds} folds: it has {n} participant(s) "
            f"and every fold needs one; {fix}"
        )
    rng = np.random.default_rng(seed)
    fold_order = rng.permutation(n_folds)
    folds: dict[str, int] = {}
    offset = 0
    for stratum in sorted(strata.unique()):
        members = np.sort(strata.index[strata == stratum].to_numpy())
        for pid in rng.permutation(members):
            folds[str(pid)] = int(fold_order[offset % n_folds])
            offset += 1
    table = pd.DataFrame({"participant_id": list(folds), "fold": list(folds.values())})
    return table.sort_values("participant_id", ignore_index=True)


def split(folds: pd.DataFrame, fold: int) -> tuple[list[str], list[str]]:
    """Training and validation participants of one fold.

    Args:
        folds: Output of :func:`make_folds`.
        fold: Validation fold, ``0 ≤ fold < n_folds``.

    Returns:
        ``(train_ids, val_ids)``, each sorted.

    Raises:
        ValueError: If ``fold`` is not one of the folds.
    """
    n_folds = int(folds["fold"].max()) + 1
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold: must lie in [0, {n_folds - 1}], got {fold}")
    val = folds["fold"] == fold
    return (
        sorted(folds.loc[~val, "participant_id"].astype(str)),
        sorted(folds.loc[val, "participant_id"].astype(str)),
    )


def write_splits(folds: pd.DataFrame, fold: int, run_dir: str | Path) -> Path:
    """Write ``splits.csv`` (participant_id, fold, split) into ``run_dir``, atomically.

    Args:
        folds: Output of :func:`make_folds`.
        fold: The validation fold of this run; its participants get ``split = val``, all
            others ``train``.
        run_dir: Run directory (created if needed).

    Returns:
        Path of the written file.
    """
    train_ids, _ = split(folds, fold)
    table = folds.assign(split=np.where(folds["participant_id"].isin(train_ids), "train", "val"))
    target = Path(run_dir) / SPLITS_FILE
    write_text_atomic(target, table[["participant_id", "fold", "split"]].to_csv(index=False))
    log.info("wrote %s (fold %d: %d val participants)", target, fold, (table.split == "val").sum())
    return target


def read_splits(run_dir: str | Path) -> dict[str, str]:
    """The ``splits.csv`` of a run: participant id → ``train`` or ``val``.

    Args:
        run_dir: Run directory holding the file :func:`write_splits` wrote.

    Returns:
        The split of every participant listed.

    Raises:
        FileNotFoundError: If the run has no ``splits.csv``.
    """
    table = pd.read_csv(Path(run_dir) / SPLITS_FILE, dtype={"participant_id": str})
    return dict(zip(table["participant_id"], table["split"], strict=True))
