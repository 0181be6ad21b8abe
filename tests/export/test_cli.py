"""``fdopa export`` and ``fdopa predict``: output names and contents, cohort form, no partials."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

import fdopa.export.outputs as outputs
from fdopa.cli import main
from fdopa.kinetics import INDEX_KEYS
from fdopa.kinetics.io import load_inputs
from fdopa.layout import SubjectPaths
from fdopa.outputs import PREDICTIONS_MARKER


@pytest.mark.slow
def test_export_cli_reads_the_run_config_beside_the_checkpoint(trained, tmp_path, capsys):
    assert main(["export", "--ckpt", str(trained.ckpt), "--out", str(tmp_path / "b")]) == 0
    assert "wrote bundle" in capsys.readouterr().out
    exported = json.loads((tmp_path / "b" / "config.json").read_text())
    assert exported == json.loads((trained.bundle / "config.json").read_text())
    assert main(["export", "--ckpt", str(trained.ckpt), "--out", str(tmp_path / "b")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_predict_one_dynamic_scan_writes_the_named_outputs(paediatric_cohort, tiny_bundle,
                                                           tmp_path, capsys):  # fmt: skip
    ids = sorted(p.name for p in paediatric_cohort.glob("sub-*"))
    pid = next(i for i in ids if SubjectPaths(paediatric_cohort, i).dynamic_pet.exists())
    paths = SubjectPaths(paediatric_cohort, pid)
    out = tmp_path / "out"
    args = ["predict", "--bundle", str(tiny_bundle[0].path), "--pet", str(paths.static_pet),
            "--dynamic", str(paths.dynamic_pet), "--sidecar", str(paths.dynamic_sidecar),
            "--probabilities", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    stem = f"{pid}_desc-static_pet"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{suffix}" for suffix in ("dseg.nii.gz", "indices.json", "qc.png", "probseg.nii.gz")
    )
    source, written = nib.load(paths.static_pet), nib.load(out / f"{stem}_dseg.nii.gz")
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-6)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 3}
    assert nib.load(out / f"{stem}_probseg.nii.gz").shape == (*source.shape, 4)
    assert (out / f"{stem}_qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    payload = json.loads((out / f"{stem}_indices.json").read_text())
    assert list(payload)[: len(INDEX_KEYS)] == list(INDEX_KEYS)
    assert {"qc_flag", "qc_reasons", "tacs"} <= payload.keys()
    assert payload["qc_flag"] == bool(payload["qc_reasons"])
    assert payload["tacs"] is not None and payload["participant_id"] == pid
    inputs = load_inputs(paths.static_pet, out / f"{stem}_dseg.nii.gz")
    assert payload["tumour_suvmax"] == (
        float(inputs.static[inputs.labels == 3].max()) if (inputs.labels == 3).any() else None
    )
    assert main(args) == 2  # outputs exist: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def _bad_units(pet_sidecar):
    sidecar = json.loads(pet_sidecar.read_text())
    pet_sidecar.write_text(json.dumps({**sidecar, "Units": "CNTS"}))


def test_predict_refuses_bad_input_and_a_tampered_bundle_writing_nothing(
    paediatric_cohort, tiny_bundle, tmp_path, capsys
):
    cohort = tmp_path / "cohort"
    paths = SubjectPaths(cohort, "sub-pd001")
    shutil.copytree(paediatric_cohort / "sub-pd001", cohort / "sub-pd001")
    _bad_units(paths.static_sidecar)
    bundle = str(tiny_bundle[0].path)
    out = tmp_path / "out"
    assert (
        main(["predict", "--bundle", bundle, "--pet", str(paths.static_pet), "--out", str(out)])
        == 2
    )
    assert "Units: 'CNTS' contradicts" in capsys.readouterr().err

    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    (tampered / "config.json").write_text((tampered / "config.json").read_text() + " ")
    pet = SubjectPaths(paediatric_cohort, "sub-pd001").static_pet
    assert main(["predict", "--bundle", str(tampered), "--pet", str(pet), "--out", str(out)]) == 2
    assert "config.json: sha256 differs" in capsys.readouterr().err
    assert not out.exists()


def test_a_failure_while_writing_leaves_no_partial_output(paediatric_cohort, tiny_bundle, tmp_path,
                                                          monkeypatch):  # fmt: skip
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "qc_figure", broken)
    pet = SubjectPaths(paediatric_cohort, "sub-pd001").static_pet
    out = tmp_path / "out"
    args = ["predict", "--bundle", str(tiny_bundle[0].path), "--pet", str(pet), "--out", str(out)]
    assert main(args) == 2  # an OSError while writing: one line, nothing left
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_predict_cohort_writes_every_subject_and_one_csv(paediatric_cohort, tiny_bundle, tmp_path,
                                                         capsys):  # fmt: skip
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    ids = ["sub-pd001", "sub-pd002"]
    for pid in ids:
        shutil.copytree(paediatric_cohort / pid, cohort / pid)
    table = (paediatric_cohort / "participants.tsv").read_text().splitlines()
    (cohort / "participants.tsv").write_text("\n".join(table[:3]) + "\n")
    _bad_units(SubjectPaths(cohort, "sub-pd002").static_sidecar)
    out = tmp_path / "out"
    args = ["predict", "--bundle", str(tiny_bundle[0].path), "--cohort", str(cohort), "--tta",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 1  # sub-pd002 fails, sub-pd001 is written
    captured = capsys.readouterr()
    assert "1 subject(s) failed: sub-pd002" in captured.err
    with (out / "indices.csv").open() as handle:
        rows = {row["participant_id"]: row for row in csv.DictReader(handle)}
    assert rows.keys() == set(ids)
    assert rows["sub-pd001"]["error"] == "" and rows["sub-pd001"]["tta_disagreement"] != ""
    assert "Units" in rows["sub-pd002"]["error"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["indices.csv", PREDICTIONS_MARKER]
        + [f"sub-pd001_desc-static_pet_{s}" for s in ("dseg.nii.gz", "indices.json", "qc.png")]
    )
    # A second run replaces the predictions folder only with --overwrite.
    assert main(args) == 2
    assert "already exists (an fdopa predictions folder)" in capsys.readouterr().err
