"""Participant-level stratified k-fold splits and splits.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fdopa.data.splits import make_folds, read_splits, split, write_splits


def participants(n_hgg: int = 15, n_lgg: int = 8, n_rare: int = 0) -> pd.DataFrame:
    grades = ["HGG"] * n_hgg + ["LGG"] * n_lgg + ["rare"] * n_rare
    return pd.DataFrame(
        {"participant_id": [f"sub-{i:03d}" for i in range(len(grades))], "grade": grades}
    )


CASES = [  # (n_hgg, n_lgg, n_rare, n_folds)
    (15, 8, 0, 5),
    (4, 4, 0, 4),
    (10, 3, 0, 5),  # LGG has fewer members than folds
    (9, 7, 2, 5),  # a stratum of 2 over 5 folds
    (3, 2, 0, 5),  # every stratum smaller than the number of folds
]


@pytest.mark.parametrize(("n_hgg", "n_lgg", "n_rare", "n_folds"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_folds_partition_and_stratify(n_hgg, n_lgg, n_rare, n_folds, seed):
    table = participants(n_hgg, n_lgg, n_rare)
    folds = make_folds(table, n_folds, seed)
    everyone = set(table["participant_id"])

    assert sorted(folds["participant_id"]) == sorted(everyone)
    assert set(folds["fold"]) == set(range(n_folds))
    seen_in_val: list[str] = []
    for fold in range(n_folds):
        train, val = split(folds, fold)
        assert not set(train) & set(val)
        assert set(train) | set(val) == everyone
        seen_in_val += val
    assert sorted(seen_in_val) == sorted(everyone)  # each participant validated exactly once

    grade = table.set_index("participant_id")["grade"]
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    for stratum, count in grade.value_counts().items():
        in_stratum = folds[folds["participant_id"].map(grade) == stratum]
        per_fold = in_stratum["fold"].value_counts().reindex(range(n_folds), fill_value=0)
        assert (np.abs(per_fold - count / n_folds) < 1).all(), (stratum, per_fold.tolist())


def test_same_seed_same_folds_other_seed_other_folds():
    table = participants()
    first, again = make_folds(table, 5, seed=3), make_folds(table, 5, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(make_folds(table, 5, seed=4))
    # row order of the input does not matter
    shuffled = table.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(first, make_folds(shuffled, 5, seed=3))


def test_sessions_of_a_participant_share_a_fold():
    table = participants(6, 4)
    sessions = pd.concat([table, table.iloc[:5], table.iloc[:2]], ignore_index=True)
    folds = make_folds(sessions, 3, seed=0)
    assert folds["participant_id"].is_unique and len(folds) == 10
    pd.testing.assert_frame_equal(folds, make_folds(table, 3, seed=0))


def test_unstratified_and_missing_grades():
    table = participants(5, 5)
    table.loc[[0, 6], "grade"] = np.nan  # missing values form their own stratum
    folds = make_folds(table, 2, seed=0)
    assert folds.set_index("participant_id").loc[["sub-000", "sub-006"], "fold"].nunique() == 2
    assert make_folds(table, 5, seed=0, stratify=None)["fold"].value_counts().tolist() == [2] * 5


@pytest.mark.parametrize(
    ("table", "n_folds", "stratify", "match"),
    [
        (participants(), 5, "site", "'site'"),
        (participants().drop(columns="participant_id"), 5, "grade", "participant_id"),
        (participants(2, 1), 4, "grade", "n_folds"),
        (participants(), 1, "grade", "n_folds"),
        (participants(2, 2).assign(participant_id=["a", "b", "b", "c"]), 2, "grade", "differs"),
    ],
)
def test_invalid_folds(table, n_folds, stratify, match):
    with pytest.raises(ValueError, match=match):
        make_folds(table, n_folds, seed=0, stratify=stratify)


def test_split_rejects_unknown_fold():
    with pytest.raises(ValueError, match="fold"):
        split(make_folds(participants(), 5, seed=0), 5)


def test_write_splits(tmp_path):
    folds = make_folds(participants(), 5, seed=0)
    run_dir = tmp_path / "run" / "nested"
    path = write_splits(folds, 2, run_dir)
    path = write_splits(folds, 2, run_dir)  # overwriting is fine

    assert path == run_dir / "splits.csv"
    assert [p.name for p in run_dir.iterdir()] == ["splits.csv"]  # no staging file left
    written = pd.read_csv(path)
    assert list(written.columns) == ["participant_id", "fold", "split"]
    train, val = split(folds, 2)
    assert sorted(written.loc[written["split"] == "val", "participant_id"]) == val
    assert sorted(written.loc[written["split"] == "train", "participant_id"]) == train
    pd.testing.assert_frame_equal(written[["participant_id", "fold"]], folds)
    # read back: every participant with its role, the split() of the same fold
    roles = read_splits(run_dir)
    assert sorted(roles) == sorted(train + val)
    assert sorted(p for p, role in roles.items() if role == "val") == val
    with pytest.raises(FileNotFoundError):
        read_splits(tmp_path)


def test_fixture_cohort_grades_balanced(paediatric_cohort):
    table = pd.read_csv(paediatric_cohort / "participants.tsv", sep="\t")
    folds = make_folds(table, 4, seed=0).merge(table[["participant_id", "grade"]])
    counts = folds.groupby(["fold", "grade"]).size().unstack(fill_value=0)
    expected = table["grade"].value_counts() / 4
    assert (np.abs(counts - expected) < 1).all().all()
