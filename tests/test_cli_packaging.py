"""The light install and the packaged configs.

``fdopa --help``, ``indices``, ``synth`` and ``report`` run with torch (and the rest of the
``train`` extra) unimportable, and give the numbers of the in-process library; a command that
needs a missing extra says which one in one line; ``fdopa train`` composes the configs shipped
in the package exactly as ``train.py`` and the Hydra compose API do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import CONF_DIR, compose_train
from kinetics.scans import scan, write
from omegaconf import OmegaConf

from fdopa.cli import main
from fdopa.data.synthetic import SynthConfig, generate_cohort
from fdopa.evaluation.agreement import agreement_table
from fdopa.kinetics import get_preset, indices_from_files

REPO = Path(__file__).resolve().parents[1]
TRAIN_EXTRA = (  # the import names of the train, wandb, sweeps and slurm extras
    "torch", "torchvision", "torchio", "torchmetrics", "monai", "lightning",
    "segmentation_models_pytorch_3d", "hydra", "wandb", "optuna", "submitit",
)  # fmt: skip
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))

RUNNER = textwrap.dedent(
    """
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Absent:
        '''Packages of an install without the extras: importing them fails.'''

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Absent())
    from fdopa.cli import main

    status = main(sys.argv[2:])
    assert not BLOCKED & set(sys.modules), sorted(BLOCKED & set(sys.modules))
    sys.exit(status)
    """
)


def _fdopa(argv: list[str], cwd: Path, absent: tuple[str, ...] = TRAIN_EXTRA):
    """``fdopa ARGV`` in a fresh interpreter in which the ``absent`` packages cannot load."""
    return subprocess.run(
        [sys.executable, "-c", RUNNER, ",".join(absent), *argv],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_help_without_torch(tmp_path):
    done = _fdopa(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("synth", "indices", "report", "export", "predict", "import", "labels", "train"):
        assert f"    {command} " in done.stdout


def test_indices_without_torch_match_the_library(tmp_path):
    paths = write(tmp_path, scan())
    out = tmp_path / "result.json"
    argv = ["indices", "--pet", str(paths["static"]), "--labels", str(paths["labels"]),
            "--dynamic", str(paths["dynamic"]), "--set", "slab_mm=20",
            "--out", str(out)]  # fmt: skip
    done = _fdopa(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    expected = indices_from_files(paths["static"], paths["labels"],
                                  get_preset("guideline", slab_mm=20.0),
                                  dynamic_path=paths["dynamic"])  # fmt: skip
    payload = json.loads(out.read_text())
    assert payload == json.loads(expected.to_json())
    assert payload["tsr"] > 1  # the tumour is hotter than the striatum


@pytest.mark.slow
def test_synth_without_torch_matches_the_library(tmp_path):
    config = SynthConfig(n=1, grid="tiny", seed=3, dynamic_fraction=0.0, flair=False)
    generate_cohort(config, tmp_path / "library", n_jobs=1)
    argv = ["synth", "--n", "1", "--seed", "3", "--dynamic-fraction", "0", "--no-flair",
            "--jobs", "1", "--out", str(tmp_path / "cli")]  # fmt: skip
    done = _fdopa(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    library, cli = tmp_path / "library", tmp_path / "cli"
    pd.testing.assert_frame_equal(pd.read_csv(cli / "participants.tsv", sep="\t"),
                                  pd.read_csv(library / "participants.tsv", sep="\t"))  # fmt: skip
    images = sorted(p.relative_to(cli) for p in cli.rglob("*.nii.gz"))
    assert len(images) >= 2  # the PET and its labels at least
    for image in images:
        np.testing.assert_array_equal(nib.load(cli / image).get_fdata(),
                                      nib.load(library / image).get_fdata())  # fmt: skip


def test_report_without_torch_matches_the_agreement_table(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:02d}" for i in range(12)]
    truth = pd.DataFrame({"participant_id": ids, "tsr": rng.uniform(0.8, 2.5, 12),
                          "tbr_max": rng.uniform(1.2, 4.0, 12)})  # fmt: skip
    other = truth.assign(tsr=truth.tsr * rng.normal(1, 0.05, 12),
                         tbr_max=truth.tbr_max * rng.normal(1, 0.1, 12) + 0.1)  # fmt: skip
    truth.to_csv(tmp_path / "auto.csv", index=False)
    other.to_csv(tmp_path / "manual.csv", index=False)
    argv = ["report", "--indices", "auto.csv", "--against", "manual.csv", "--compare",
            "tsr,tbr_max", "--out", "report"]  # fmt: skip
    done = _fdopa(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "report" / "agreement.csv").set_index("index")
    auto, manual = (pd.read_csv(tmp_path / name) for name in ("auto.csv", "manual.csv"))
    expected = agreement_table(manual, auto, ["tsr", "tbr_max"]).set_index("index")  # vs --against
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_predict_without_torch_names_the_extra(tmp_path):
    argv = ["predict", "--bundle", "b", "--pet", "p.nii.gz", "--out", "o"]
    done = _fdopa(argv, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "fdopa predict: error: torch is not installed: pip install 'fdopa[train]'"
    )
    assert list(tmp_path.iterdir()) == []


def test_train_without_torch_checks_the_config_first_then_names_the_extra(tmp_path):
    # Hydra composes the config; everything else of the train extra is missing. The config
    # check (data.normalisation among the keys) must not need torch.
    absent = tuple(name for name in TRAIN_EXTRA if name != "hydra")
    typo = _fdopa(["train", "data.normalisation=suvr", f"paths.root_dir={tmp_path}"], tmp_path,
                  absent)  # fmt: skip
    assert typo.returncode == 2, typo.stderr
    assert typo.stderr.strip().startswith("fdopa train: error: data.normalisation: expected one")
    done = _fdopa(["train", f"paths.root_dir={tmp_path}"], tmp_path, absent)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "fdopa train: error: torch is not installed: pip install 'fdopa[train]'"
    )
    assert list(tmp_path.iterdir()) == []


def test_train_with_the_wandb_logger_without_wandb_names_the_extra(tmp_path):
    argv = ["train", "logger=wandb", f"paths.root_dir={tmp_path}"]
    done = _fdopa(argv, tmp_path, absent=("wandb",))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "fdopa train: error: wandb is not installed: pip install 'fdopa[wandb]' or logger=csv"
    )
    assert list(tmp_path.iterdir()) == []  # the refused run leaves no folder


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fdopa_train_composes_the_config_of_train_py(experiment, tmp_path, capsys, monkeypatch):
    overrides = ["--cfg", "job", f"+experiment={experiment}", "trainer.max_epochs=1"]
    monkeypatch.chdir(tmp_path)
    assert main(["train", *overrides]) == 0
    job = yaml.safe_load(capsys.readouterr().out)
    train_py = subprocess.run([sys.executable, str(REPO / "train.py"), *overrides], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert train_py.returncode == 0, train_py.stderr
    assert yaml.safe_load(train_py.stdout) == job
    expected = OmegaConf.to_container(compose_train(overrides[2:]), resolve=False)
    assert job == expected
    assert job["trainer"]["max_epochs"] == 1 and job["task_name"] == experiment
    assert list(tmp_path.iterdir()) == []  # composed only, nothing trained


def test_fdopa_train_refuses_a_bad_override_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "trainer.max_epochs=abc", f"paths.root_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fdopa train: error: trainer.max_epochs") and "\n" not in err
    assert list(tmp_path.iterdir()) == []
