"""fdopa.outputs: atomic files, staged folders, and what --overwrite may replace."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from fdopa.outputs import (
    PREDICTIONS_MARKER,
    check_output_file,
    is_artefact,
    save_nifti_atomic,
    staged_dir,
    staged_files,
    write_text_atomic,
)


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_text_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "out.csv"
    write_text_atomic(target, "a,b\n")
    write_text_atomic(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    assert os.listdir(target.parent) == ["out.csv"]


def test_save_nifti_atomic_round_trips(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = save_nifti_atomic(nib.Nifti1Image(data, np.eye(4)), tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(nib.load(path).get_fdata(), data)
    assert os.listdir(tmp_path) == ["x.nii.gz"]


def test_check_output_file_refuses_before_any_work(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output_file(tmp_path / "folder")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output_file(tmp_path / "missing" / "out.json")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_output_file(tmp_path / "file" / "out.json", parents=True)
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_output_file(tmp_path / "file", overwrite=False)
    assert check_output_file(tmp_path / "new" / "out.json", parents=True).name == "out.json"
    assert sorted(os.listdir(tmp_path)) == ["file", "folder"]  # nothing created by a check


def _cohort(root, name="fdopa"):
    root.mkdir()
    description = {"Name": "x", "GeneratedBy": [{"Name": name}]}
    (root / "dataset_description.json").write_text(json.dumps(description))


def test_only_an_fdopa_cohort_is_an_artefact(tmp_path):
    _cohort(tmp_path / "ours")
    _cohort(tmp_path / "theirs", name="hospital-pacs")
    assert is_artefact(tmp_path / "ours", "cohort")
    assert not is_artefact(tmp_path / "theirs", "cohort")
    assert not is_artefact(tmp_path / "ours", "bundle")


def test_staged_dir_writes_beside_the_target_and_renames_on_success(tmp_path):
    out = tmp_path / "predictions"
    with staged_dir(out, kind="predictions") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".predictions.tmp-")
        (staging / "a.txt").write_text("new")
        assert not out.exists()
    assert sorted(os.listdir(out)) == sorted([PREDICTIONS_MARKER, "a.txt"])
    assert os.listdir(tmp_path) == ["predictions"]
    with pytest.raises(FileExistsError, match="--overwrite"), staged_dir(out, kind="predictions"):
        pass
    with staged_dir(out, kind="predictions", overwrite=True) as staging:
        (staging / "b.txt").write_text("newer")
    assert sorted(os.listdir(out)) == sorted([PREDICTIONS_MARKER, "b.txt"])
    assert os.listdir(tmp_path) == ["predictions"]  # the old one is gone, no leftovers


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_staged_dir_failure_removes_only_the_staging_folder(tmp_path, error):
    out = tmp_path / "cohort"
    _cohort(out)
    (out / "keep.txt").write_text("old")
    with pytest.raises(type(error)), staged_dir(out, kind="cohort", overwrite=True) as staging:
        (staging / "half.txt").write_text("half")
        raise error
    assert sorted(os.listdir(out)) == ["dataset_description.json", "keep.txt"]
    assert _hidden(tmp_path) == []


def test_staged_dir_refuses_a_folder_it_did_not_make(tmp_path, monkeypatch):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter.tex").write_text("years")
    refused = pytest.raises(FileExistsError, match="not an fdopa cohort")
    with refused, staged_dir(foreign, kind="cohort", overwrite=True):
        pytest.fail("entered")
    monkeypatch.chdir(foreign)
    for out in (".", "..", "/"):
        refused = pytest.raises(ValueError, match="name a new folder")
        with refused, staged_dir(out, kind="cohort", overwrite=True):
            pytest.fail("entered")
    assert os.listdir(foreign) == ["chapter.tex"] and _hidden(tmp_path) == []


def test_staged_dir_requires_the_marker_of_its_kind(tmp_path):
    missing = pytest.raises(RuntimeError, match=r"checksums\.json")
    with missing, staged_dir(tmp_path / "bundle", kind="bundle") as staging:
        (staging / "model.pt").write_text("w")
    assert os.listdir(tmp_path) == []


def test_staged_files_are_all_or_nothing_and_touch_nothing_else(tmp_path):
    (tmp_path / "other.txt").write_text("someone's")
    paths = {"a": tmp_path / "a.txt", "b": tmp_path / "b.txt"}
    with pytest.raises(OSError, match="disk full"), staged_files(paths) as staged:
        staged["a"].write_text("1")
        raise OSError("disk full")
    assert sorted(os.listdir(tmp_path)) == ["other.txt"]
    with staged_files(paths) as staged:
        for kind, path in staged.items():
            path.write_text(kind)
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt", "other.txt"]
    assert (tmp_path / "b.txt").read_text() == "b"
