"""``fdopa indices``: the one-scan form (JSON) and the cohort form (CSV + TAC CSVs)."""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from scans import scan, write

from fdopa.cli import main
from fdopa.kinetics import get_preset, indices_from_files
from fdopa.kinetics.cohort_indices import COHORT_COLUMNS
from fdopa.layout import SubjectPaths


def test_one_scan_writes_json(tmp_path, capsys):
    paths = write(tmp_path, scan())
    out = tmp_path / "out" / "result.json"
    argv = ["indices", "--pet", str(paths["static"]), "--labels", str(paths["labels"]),
            "--dynamic", str(paths["dynamic"]), "--sidecar", str(paths["sidecar"]),
            "--preset", "genoa2024", "--set", "slab_mm=20", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(out.read_text())
    expected = indices_from_files(paths["static"], paths["labels"],
                                  get_preset("genoa2024", slab_mm=20.0),
                                  dynamic_path=paths["dynamic"])  # fmt: skip
    assert payload == json.loads(expected.to_json())
    assert payload["participant_id"] == "sub-01" and payload["preset"] == "genoa2024"
    assert len(payload["tacs"]["tumour_mean"]) == 6
    assert "sub-01" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "slab=3"], "preset field 'slab'"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--dynamic", "{static}"], "{static}: shape: expected a 4-D image"),
        (["--labels", "{dynamic}"], "{dynamic}: shape: expected a 3-D image"),
        (["--cohort", "{tmp}"], "either --pet"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, message):
    paths = write(tmp_path, scan())
    names = {"static": paths["static"], "dynamic": paths["dynamic"], "tmp": tmp_path}
    argv = ["indices", "--pet", str(paths["static"]), "--labels", str(paths["labels"]),
            "--out", str(tmp_path / "r.json"), *(e.format(**names) for e in extra)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fdopa indices: error: ") and "\n" not in err
    assert message.format(**names) in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_cohort_survives_a_broken_subject(paediatric_cohort, tmp_path, capsys):
    root = tmp_path / "cohort"
    shutil.copytree(paediatric_cohort, root)
    broken = SubjectPaths(root, "sub-pd003")
    image = nib.load(broken.labels)
    labels = np.asanyarray(image.dataobj).copy()
    labels[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(labels, image.affine), broken.labels)
    out = tmp_path / "results" / "indices.csv"
    argv = ["indices", "--cohort", str(root), "--labels-from", "derivatives/labels",
            "--preset", "guideline", "--out", str(out), "--jobs", "2"]  # fmt: skip
    assert main(argv) == 1
    assert "sub-pd003" in capsys.readouterr().err
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(COHORT_COLUMNS)
    assert [r["participant_id"] for r in rows] == [f"sub-pd00{i}" for i in range(1, 9)]
    for row in rows:
        paths = SubjectPaths(root, row["participant_id"])
        if paths == broken:
            assert row["error"] == f"InputError: {broken.labels}: labels: values [7] not in "\
                "the label map (0, 1, 2, 3)"  # fmt: skip
            assert row["tsr"] == "" and row["preset"] == "guideline"
            continue
        dynamic = paths.dynamic_pet if paths.dynamic_pet.exists() else None
        expected = indices_from_files(paths.static_pet, paths.labels, "guideline",
                                      dynamic_path=dynamic)  # fmt: skip
        assert row["error"] == "" and float(row["tsr"]) == expected.tsr
        assert json.loads(row["missing"]) == expected.missing
        tac_file = out.parent / "indices_tacs" / f"{row['participant_id']}_tacs.csv"
        assert tac_file.exists() == (dynamic is not None)
        if dynamic is not None:
            assert tac_file.read_text() == expected.tacs.to_csv()
    assert sorted(p.name for p in out.parent.iterdir()) == ["indices.csv", "indices_tacs"]
