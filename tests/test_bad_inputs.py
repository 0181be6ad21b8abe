"""Bad inputs, command by command: one line, the right exit status, nothing lost, nothing written.

A table of cases (MONAI style): an id, the issue defect it reproduces (``None``: a case that was
already right and must stay so), the command line (built in a scratch folder), the expected exit
status and the words the message must hold. For every case the runner checks that

* the exit status is the expected one and stderr holds exactly one ``error:`` line with the
  words (no traceback, never advice to load a checkpoint unsafely);
* nothing was written and no input changed: the scratch folder, the fixture cohort, the
  bundle and its tampered copy hold the same files with the same sha256 before and after;
* ``predict`` built no network: outputs and inputs are checked against the bundle first.

The defects whose check is not a command line (Ctrl-C, a cohort with a failing subject, the
training config, folds of a one-subject cohort) have their own tests below.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from fdopa.cli import main
from fdopa.layout import SubjectPaths

REPO = Path(__file__).resolve().parents[1]
READ_ONLY = Path("/sys")  # not writable, even by root
needs_read_only = pytest.mark.skipif(not READ_ONLY.is_dir(), reason="no read-only /sys")


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv(world)`` must exit ``status`` with ``words`` in one line."""

    id: str
    defect: int | None
    argv: Callable[[SimpleNamespace], list[str]]
    status: int
    words: tuple[str, ...]
    cwd: str = "work"
    marks: tuple = ()


def _synth(out: Callable, *extra: str) -> Callable:
    return lambda w: ["synth", "--n", "1", "--jobs", "1", "--no-flair", "--out", str(out(w)),
                      *extra]  # fmt: skip


def _indices(pet: str = "pet", labels: str = "labels", out: Callable | None = None) -> Callable:
    def argv(w: SimpleNamespace) -> list[str]:
        target = out(w) if out else w.tmp / "result.json"
        return ["indices", "--pet", str(getattr(w, pet)), "--labels", str(getattr(w, labels)),
                "--out", str(target)]  # fmt: skip

    return argv


def _export(out: Callable, *extra: str, ckpt: str = "ckpt_text") -> Callable:
    return lambda w: ["export", "--ckpt", str(getattr(w, ckpt)), "--config", str(w.run_config),
                      "--out", str(out(w)), *extra]  # fmt: skip


def _predict(out: Callable, pet: str = "pet", bundle: str = "bundle", *extra: str) -> Callable:
    return lambda w: ["predict", "--bundle", str(getattr(w, bundle)), "--pet",
                      str(getattr(w, pet)), "--out", str(out(w)), *extra]  # fmt: skip


def _predict_cohort(out: Callable, *extra: str) -> Callable:
    return lambda w: ["predict", "--bundle", str(w.bundle), "--cohort", str(w.cohort), "--out",
                      str(out(w)), *extra]  # fmt: skip


def _report(out: Callable, indices: str = "indices_a", *extra: str) -> Callable:
    return lambda w: ["report", "--indices", str(getattr(w, indices)), "--against",
                      str(w.indices_b), "--out", str(out(w)), *extra]  # fmt: skip


def _new(w: SimpleNamespace) -> Path:
    return w.tmp / "new"


# fmt: off
CASES: list[Case] = [
    # --- fdopa synth -------------------------------------------------------------------------
    Case("synth-out-dot-empty-folder", 1, _synth(lambda w: "."), 2, ("current folder",),
         cwd="empty"),
    Case("synth-out-dot-overwrite", 1, _synth(lambda w: ".", "--overwrite"), 2,
         ("current folder",)),
    Case("synth-out-parent-of-cwd", 1, _synth(lambda w: "..", "--overwrite"), 2,
         ("holding the current folder",)),
    Case("synth-out-home", 1, _synth(lambda w: "~", "--overwrite"), 2, ("home folder",)),
    Case("synth-out-root", 1, _synth(lambda w: "/", "--overwrite"), 2, ("file-system root",)),
    Case("synth-overwrite-foreign-folder", 1, _synth(lambda w: w.foreign, "--overwrite"), 2,
         ("not an fdopa cohort", "never replaces")),
    Case("synth-overwrite-other-bids-dataset", 1, _synth(lambda w: w.bids, "--overwrite"), 2,
         ("not an fdopa cohort",)),
    Case("synth-out-read-only", 5, _synth(lambda w: READ_ONLY / "fdopa-cohort"), 2,
         ("cannot write",), marks=(needs_read_only,)),
    Case("synth-out-under-a-file", 5, _synth(lambda w: w.file / "cohort"), 2, ("is a file",)),
    Case("synth-out-is-a-file", None, _synth(lambda w: w.file), 2, ("not a directory",)),
    Case("synth-bad-n", None, lambda w: ["synth", "--n", "0", "--out", str(_new(w))], 2, ("n:",)),
    # --- fdopa indices -----------------------------------------------------------------------
    Case("indices-all-zero-pet", 3, _indices(pet="zero_pet"), 2,
         ("zero_pet.nii.gz", "not an analysable PET", "reference")),
    Case("indices-negated-pet", 4, _indices(pet="negated_pet"), 2,
         ("negated_pet.nii.gz", "not an analysable PET")),
    Case("indices-out-is-a-folder", 5, _indices(out=lambda w: w.empty), 2, ("is a folder",)),
    Case("indices-out-under-a-file", 5, _indices(out=lambda w: w.file / "r.json"), 2,
         ("is a file",)),
    Case("indices-out-read-only", 5, _indices(out=lambda w: READ_ONLY / "r.json"), 2,
         ("cannot write",), marks=(needs_read_only,)),
    Case("indices-cohort-out-is-a-folder", 5,
         lambda w: ["indices", "--cohort", str(w.cohort), "--out", str(w.empty)], 2,
         ("is a folder",)),
    Case("indices-cohort-out-read-only", 5,
         lambda w: ["indices", "--cohort", str(w.cohort), "--out", str(READ_ONLY / "i.csv")], 2,
         ("cannot write",), marks=(needs_read_only,)),
    Case("indices-nan-voxels", None, _indices(pet="nan_pet"), 2, ("nan_pet", "NaN")),
    Case("indices-grid-mismatch", None, _indices(labels="shifted_labels"), 2,
         ("shifted_labels", "affine")),
    Case("indices-label-values", None, _indices(labels="bad_labels"), 2, ("labels", "[7]")),
    Case("indices-4d-as-static", None, _indices(pet="dynamic"), 2, ("shape", "3-D")),
    Case("indices-missing-pet", None, _indices(pet="missing"), 2, ("no such file",)),
    Case("indices-unknown-preset", None,
         lambda w: [*_indices()(w), "--preset", "nope"], 2, ("unknown preset",)),
    # --- fdopa export ------------------------------------------------------------------------
    Case("export-out-dot-overwrite", 1, _export(lambda w: ".", "--overwrite"), 2,
         ("current folder",)),
    Case("export-overwrite-foreign-folder", 1, _export(lambda w: w.foreign, "--overwrite"), 2,
         ("not an fdopa bundle",)),
    Case("export-out-read-only", 5, _export(lambda w: READ_ONLY / "bundle"), 2,
         ("cannot write",), marks=(needs_read_only,)),
    Case("export-out-is-a-file", None, _export(lambda w: w.file), 2, ("a_file.txt",)),
    Case("export-ckpt-text-file", 6, _export(_new), 2,
         ("--ckpt", "ckpt.txt", "not a Lightning checkpoint")),
    Case("export-ckpt-truncated", 6, _export(_new, ckpt="ckpt_truncated"), 2,
         ("--ckpt", "truncated.ckpt", "not a Lightning checkpoint")),
    Case("export-ckpt-with-python-objects", 6, _export(_new, ckpt="ckpt_objects"), 2,
         ("--ckpt", "objects.ckpt", "objects other than weights")),
    Case("export-ckpt-a-tensor", 6, _export(_new, ckpt="ckpt_tensor"), 2,
         ("--ckpt", "tensor.ckpt", "no state_dict")),
    Case("export-ckpt-missing", None, _export(_new, ckpt="missing"), 2, ("no such file",)),
    # --- fdopa predict (no network may be built for any of these) ----------------------------
    Case("predict-out-under-a-file", 5, _predict(lambda w: w.file), 2, ("is a file",)),
    Case("predict-output-name-is-a-folder", 5, _predict(lambda w: w.blocked), 2,
         ("_dseg.nii.gz", "is a folder")),
    Case("predict-out-read-only", 5, _predict(lambda w: READ_ONLY / "p"), 2, ("cannot write",),
         marks=(needs_read_only,)),
    Case("predict-all-zero-pet", 4, _predict(_new, "zero_pet"), 2,
         ("zero_pet.nii.gz", "not an analysable PET")),
    Case("predict-negated-pet", 4, _predict(_new, "negated_pet"), 2,
         ("negated_pet.nii.gz", "not an analysable PET")),
    Case("predict-4d-as-pet", 5, _predict(_new, "dynamic"), 2, ("shape", "3-D")),
    Case("predict-cohort-out-dot", 1, _predict_cohort(lambda w: "."), 2, ("current folder",)),
    Case("predict-cohort-overwrite-foreign", 1,
         _predict_cohort(lambda w: w.foreign, "--overwrite"), 2, ("not an fdopa predictions",)),
    Case("predict-existing-output", None, _predict(lambda w: w.predicted), 2,
         ("already exist", "--overwrite")),
    Case("predict-tampered-bundle", None, _predict(_new, bundle="tampered"), 2,
         ("config.json", "sha256 differs")),
    # --- fdopa report ------------------------------------------------------------------------
    Case("report-out-is-a-file", 5, _report(lambda w: w.file), 2, ("not a directory",)),
    Case("report-out-foreign-folder", 1, _report(lambda w: w.foreign), 2,
         ("not an fdopa report",)),
    Case("report-out-dot", 1, _report(lambda w: "."), 2, ("current folder",)),
    Case("report-out-read-only", 5, _report(lambda w: READ_ONLY / "report"), 2,
         ("cannot write",), marks=(needs_read_only,)),
    Case("report-missing-indices", None, _report(_new, "missing"), 2, ("no such file",)),
]
# fmt: on


BIG = 1 << 20  # bytes


def _tree(*roots: Path, full: bool = False) -> dict[str, str]:
    """Every file and folder under ``roots`` → sha256 (``dir`` for a folder).

    Files of ``BIG`` bytes or more (the bundles' weights) are keyed by size and modification
    time unless ``full``: a writer cannot change them without changing both, and hashing them
    for every case cost a second each. The module fixtures hash them in full once more at the
    end (:func:`bundles_unchanged`).
    """
    entries = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                entries[str(path)] = "dir"
            elif not full and (stat := path.stat()).st_size >= BIG:
                entries[str(path)] = f"{stat.st_size}:{stat.st_mtime_ns}"
            else:
                entries[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A tiny random bundle (4 mm, 32³ patches); read-only."""
    from fdopa.export.bundle import write_bundle
    from fdopa.export.bundle_config import BundleConfig
    from fdopa.export.metadata import build_metadata

    network = {"encoder_name": "resnet18", "in_channels": 1, "classes": 4, "encoder_depth": 5,
               "decoder_channels": [16, 16, 8, 8, 8], "encoder_weights": None}  # fmt: skip
    config = BundleConfig(
        builder="fdopa.models.network.build_unet", network=network, channels=("pet",),
        spacing_mm=(4.0, 4.0, 4.0), patch_size=(32, 32, 32), training_grid_shape=(44, 52, 44),
    )  # fmt: skip
    torch.manual_seed(0)
    training = {"n_train": 0, "tumour_ml_range": [1.0, 80.0]}
    metadata = build_metadata(config, training=training, validation={})
    out = tmp_path_factory.mktemp("bad_inputs") / "bundle"
    write_bundle(out, config.build_network(), config, metadata)
    return out


@pytest.fixture(scope="module")
def tampered(tmp_path_factory, bundle) -> Path:
    """A copy of :func:`bundle` whose ``config.json`` no longer matches its checksum; read-only.

    Made once per module: a copy per case would write (and hash) the whole bundle again.
    """
    out = tmp_path_factory.mktemp("bad_inputs") / "tampered"
    shutil.copytree(bundle, out)
    config = out / "config.json"
    config.write_text(config.read_text().replace('"overlap_mode"', '"overlap_mode" ', 1))
    return out


@pytest.fixture(scope="module")
def bundles_unchanged(bundle, tampered):
    """Hash both bundles in full before the first case and after the last."""
    before = _tree(bundle, tampered, full=True)
    yield
    assert _tree(bundle, tampered, full=True) == before


@pytest.fixture
def world(tmp_path, paediatric_cohort, bundle, tampered, bundles_unchanged) -> SimpleNamespace:
    """The scratch folder: valid and broken inputs, a folder of someone else's files, ..."""
    w = SimpleNamespace(tmp=tmp_path, cohort=paediatric_cohort, bundle=bundle, tampered=tampered)
    ins = tmp_path / "inputs"
    ins.mkdir()
    source = SubjectPaths(paediatric_cohort, "sub-pd001")
    pet = nib.load(source.static_pet)
    data, affine = pet.get_fdata(), pet.affine
    labels = np.asarray(nib.load(source.labels).dataobj)
    w.pet = shutil.copy(source.static_pet, ins / "sub-pd001_desc-static_pet.nii.gz")
    w.labels = shutil.copy(source.labels, ins / "sub-pd001_dseg.nii.gz")
    w.zero_pet = _save(ins / "zero_pet.nii.gz", np.zeros_like(data), affine)
    w.negated_pet = _save(ins / "negated_pet.nii.gz", -data, affine)
    nan = data.copy()
    nan[0, 0, 0] = np.nan
    w.nan_pet = _save(ins / "nan_pet.nii.gz", nan, affine)
    shifted = affine.copy()
    shifted[0, 3] += 2.0
    w.shifted_labels = _save(ins / "shifted_labels.nii.gz", labels, shifted)
    bad = labels.copy()
    bad[0, 0, 0] = 7
    w.bad_labels = _save(ins / "bad_labels.nii.gz", bad, affine)
    dynamic = next(
        SubjectPaths(paediatric_cohort, f"sub-pd00{i}").dynamic_pet
        for i in range(1, 9)
        if SubjectPaths(paediatric_cohort, f"sub-pd00{i}").dynamic_pet.is_file()
    )
    w.dynamic = shutil.copy(dynamic, ins / "dynamic_pet.nii.gz")
    w.missing = ins / "missing.nii.gz"
    # Checkpoints that are not Lightning checkpoints, and a run config to export with.
    w.ckpt_text = ins / "ckpt.txt"
    w.ckpt_text.write_text("not a checkpoint")
    good = ins / "good.ckpt"
    torch.save({"state_dict": {"net.w": torch.zeros(2)}}, good)
    w.ckpt_truncated = ins / "truncated.ckpt"
    w.ckpt_truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    w.ckpt_objects = ins / "objects.ckpt"
    torch.save({"state_dict": {}, "args": argparse.Namespace(a=1)}, w.ckpt_objects)
    w.ckpt_tensor = ins / "tensor.ckpt"
    torch.save(torch.zeros(3), w.ckpt_tensor)
    w.run_config = ins / "config_resolved.yaml"
    w.run_config.write_text("data: {}\nmodel: {}\n")
    # Index tables for the report.
    table = pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03"], "tsr": [1.0, 2, 3]})
    w.indices_a, w.indices_b = ins / "a.csv", ins / "b.csv"
    table.to_csv(w.indices_a, index=False)
    table.to_csv(w.indices_b, index=False)
    # Places to write to: someone's folder, a BIDS dataset made elsewhere, a file, ...
    w.work = tmp_path / "work"
    w.work.mkdir()
    (w.work / "keep.txt").write_text("the user's own file")
    w.empty = tmp_path / "empty"
    w.empty.mkdir()
    w.foreign = tmp_path / "foreign"
    w.foreign.mkdir()
    (w.foreign / "thesis.docx").write_text("years of work")
    w.bids = tmp_path / "bids"
    w.bids.mkdir()
    (w.bids / "dataset_description.json").write_text(json.dumps({"Name": "hospital"}))
    w.file = tmp_path / "a_file.txt"
    w.file.write_text("not a folder")
    w.home = tmp_path / "home"
    w.home.mkdir()
    (w.home / "notes.txt").write_text("home")
    w.blocked = tmp_path / "blocked"
    (w.blocked / "sub-pd001_desc-static_pet_dseg.nii.gz").mkdir(parents=True)
    w.predicted = tmp_path / "predicted"
    w.predicted.mkdir()
    (w.predicted / "sub-pd001_desc-static_pet_dseg.nii.gz").write_text("earlier prediction")
    return w


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if a network is built (predict must check everything first)."""
    from fdopa.export.bundle import Bundle

    def built(*args, **kwargs):
        raise AssertionError("a network was built before the inputs and outputs were checked")

    monkeypatch.setattr(Bundle, "load_network", built)
    monkeypatch.setattr(Bundle, "load_torchscript", built)


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES]
)  # fmt: skip
def test_bad_input(case, world, no_network, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(world.home))
    monkeypatch.chdir(world.work if case.cwd == "work" else world.empty)
    argv = case.argv(world)
    roots = (world.tmp, world.cohort, world.bundle, world.tampered)
    before = _tree(*roots)
    status = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert status == case.status, err
    assert len(errors) == 1 and "Traceback" not in err, err
    for word in case.words:
        assert word in errors[0], (word, errors[0])
    assert "weights_only" not in err
    assert _tree(*roots) == before  # nothing written or changed


def test_every_defect_has_a_case():
    covered = {c.defect for c in CASES}
    assert {1, 3, 4, 5, 6} <= covered  # 2 and 7–10 have their own tests below


# --- defects checked outside the command table ----------------------------------------------


def test_ctrl_c_exits_130_with_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """Defect 9: Ctrl-C in the middle of a cohort generation."""
    import fdopa.data.synthetic.generate as cohort_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cohort_module, "build_subject", interrupted)
    out = tmp_path / "cohort"
    status = main(["synth", "--n", "2", "--jobs", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fdopa synth: interrupted"), err
    assert list(tmp_path.iterdir()) == []  # neither the cohort nor its staging folder


def test_fdopa_help_documents_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("0 success", "1 some cohort subjects failed", "2 bad input", "130 interrupted"):
        assert words in out


def test_a_cohort_subject_that_cannot_be_analysed_is_an_error_row(
    paediatric_cohort, tmp_path, capsys
):
    """Defects 3 and 4 in a cohort: the subject fails (exit 1), the others are reported."""
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for pid in ("sub-pd001", "sub-pd002"):
        shutil.copytree(paediatric_cohort / pid, cohort / pid)
        shutil.copytree(
            paediatric_cohort / "derivatives" / "labels" / pid,
            cohort / "derivatives" / "labels" / pid,
        )
    rows = (paediatric_cohort / "participants.tsv").read_text().splitlines()
    (cohort / "participants.tsv").write_text("\n".join(rows[:3]) + "\n")
    pet = SubjectPaths(cohort, "sub-pd002").static_pet
    image = nib.load(pet)
    _save(pet, -image.get_fdata(), image.affine)
    out = tmp_path / "indices.csv"
    assert main(["indices", "--cohort", str(cohort), "--out", str(out)]) == 1
    table = pd.read_csv(out).set_index("participant_id")
    assert pd.isna(table.at["sub-pd001", "error"]) and table.at["sub-pd001", "tsr"] > 0
    assert "not an analysable PET" in table.at["sub-pd002", "error"]
    assert pd.isna(table.at["sub-pd002", "tsr"]) and pd.isna(table.at["sub-pd002", "mtv_ml"])


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_no_index_from_an_image_that_cannot_be_analysed(indices_impl, scale):
    """Defects 3 and 4 in both implementations of the indices (library level)."""
    from fdopa.kinetics import InputError

    labels = np.zeros((20, 12, 12), np.int16)
    labels[1:19, 1:11, 1:11] = 1
    labels[5:7, 5:7, 5:7] = 2
    labels[13:15, 5:7, 5:7] = 2
    labels[15:17, 2:4, 5:7] = 3
    static = scale * (labels + 1.0)
    with pytest.raises(InputError, match=r"^static: voxels: not an analysable PET"):
        indices_impl(static, labels, np.diag([4.0, 4, 4, 1]), "guideline")


@pytest.fixture(params=["reference", "fast"])
def indices_impl(request):
    from fdopa.kinetics import compute_indices, reference_indices

    return reference_indices if request.param == "reference" else compute_indices


def test_one_participant_is_too_few_for_the_folds():
    """Defect 8: say the cohort is too small for the folds, and what to change."""
    from fdopa.data.splits import make_folds

    one = pd.DataFrame({"participant_id": ["sub-01"], "grade": ["low"]})
    with pytest.raises(ValueError, match="too small for 5 folds") as error:
        make_folds(one, 5, seed=0)
    assert "1 participant" in str(error.value) and "add participants" in str(error.value)
    three = pd.DataFrame({"participant_id": ["a", "b", "c"], "grade": ["x"] * 3})
    with pytest.raises(ValueError, match=r"data.n_folds=3 at most"):
        make_folds(three, 5, seed=0)


# --- train.py -------------------------------------------------------------------------------

CONFIG_CASES = [  # (overrides, the key named) — defect 7
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["trainer.max_epochs=0"], "trainer.max_epochs"),
    (["data.batch_size=2.5"], "data.batch_size"),
    (["data.batch_size=true"], "data.batch_size"),
    (["data.channels=[pet,t1]"], "data.channels"),
    (["data.patch_size=[32,32]"], "data.patch_size"),
    (["data.normalisation=suvr"], "data.normalisation"),
    (["model.optimizer.lr=fast"], "model.optimizer.lr"),
    (["model.sw_overlap=1.5"], "model.sw_overlap"),
    (["data=cohort"], "data.root"),
]


@pytest.mark.parametrize(("overrides", "key"), CONFIG_CASES)
def test_a_mistyped_config_key_is_refused_at_composition(overrides, key, tmp_path):
    from fdopa.config import compose_train
    from fdopa.errors import BadInput

    with pytest.raises(BadInput, match=rf"^{key}: "):
        compose_train(overrides, output_dir=tmp_path)


def test_new_config_keys_are_not_refused(tmp_path):
    from fdopa.config import compose_train

    cfg = compose_train(["+data.new_option=3", "+model.other=abc"], output_dir=tmp_path)
    assert cfg.data.new_option == 3


def test_a_checkpoint_that_is_not_one_is_refused_naming_the_key(paediatric_cohort, tmp_path):
    """Defect 6 for ``finetune.pretrained`` (and ``ckpt_path``), before anything is built."""
    from fdopa.config import compose_train
    from fdopa.models.transfer import CheckpointError
    from fdopa.pipeline import build

    bad = tmp_path / "adult.ckpt"
    bad.write_text("not a checkpoint")
    common = [f"data.root={paediatric_cohort}", "data.synth=null", f"paths.root_dir={tmp_path}"]
    for key in ("finetune.pretrained", "ckpt_path"):
        cfg = compose_train([*common, f"{key}={bad}"], output_dir=tmp_path / "run")
        with pytest.raises(CheckpointError, match=rf"^{key} .*adult.ckpt: not a Lightning") as e:
            build(cfg)
        assert "weights_only" not in str(e.value)
    assert not (tmp_path / "run").exists()


def _train_py(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides, f"paths.root_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    return done, time.perf_counter() - begin


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["trainer.max_epochs=abc"], ("trainer.max_epochs", "'abc'")),  # defects 7 and 10
        (["data=cohrt"], ("data/cohrt",)),  # defect 10
        (  # defect 2: a user's data.root never triggers generation
            ["+experiment=finetune", "data=cohort", "data.root=misspelt/path"],
            ("data.root", "misspelt/path", "no such cohort folder"),
        ),
        (["data.root=misspelt/path"], ("data.root", "misspelt/path")),  # defect 2, data=tiny
    ],
)
def test_train_py_input_error_is_one_line_and_writes_nothing(tmp_path, overrides, words):
    done, seconds = _train_py(tmp_path, *overrides)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), done.stderr
    for word in words:
        assert word in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run folder, no generated cohort
    assert seconds < 60  # refused at composition, long before any training
