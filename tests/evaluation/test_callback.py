"""ClinicalEvaluation: logged keys and values, CSV, 4-D reorientation, checkpoint wiring."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import ScriptedModule, fit, phantom, volume_batch
from helpers import compose_train
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from fdopa.evaluation.names import DEFAULT_INDICES
from fdopa.kinetics import indices_from_files
from fdopa.layout import SubjectPaths
from fdopa.models.callbacks import PREFIX, SCORE_KEY, ClinicalEvaluation, load_canonical_dynamic
from fdopa.pipeline import build

SUBJECTS = {f"sub-{i}": phantom(*args) for i, args in enumerate([(0.9, 3), (1.0, 4), (1.2, 5)])}
NO_TUMOUR = {pid: np.where(labels == 3, 1, labels) for pid, (labels, _) in SUBJECTS.items()}
EXACT = {pid: labels for pid, (labels, _) in SUBJECTS.items()}
ITEMS = [volume_batch(labels, pet, pid) for pid, (labels, pet) in SUBJECTS.items()]
STATIC_INDICES = ["tsr", "tbr_max", "tbr_mean", "mtv_ml", "tumour_suvpeak"]


def _keys(indices) -> set[str]:
    suffixes = ("icc", "bias", "mape", "n_missing")
    return {f"{PREFIX}/{i}_{s}" for i in indices for s in suffixes} | {SCORE_KEY}


def test_logged_keys_values_and_per_subject_csv(tmp_path):
    callback = ClinicalEvaluation(indices=STATIC_INDICES, dirpath=str(tmp_path / "clinical"))
    module = ScriptedModule([NO_TUMOUR, EXACT], dice=[0.9, 0.6])
    trainer = fit(module, ITEMS, [callback], 2, tmp_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert _keys(STATIC_INDICES) | {f"{PREFIX}/seconds"} <= set(metrics)
    assert metrics[SCORE_KEY] == 1.0  # the last epoch predicts the reference exactly
    for index in STATIC_INDICES:
        assert metrics[f"{PREFIX}/{index}_icc"] == 1.0
        assert metrics[f"{PREFIX}/{index}_bias"] == metrics[f"{PREFIX}/{index}_mape"] == 0.0
        assert metrics[f"{PREFIX}/{index}_n_missing"] == 0.0
    first = pd.read_csv(tmp_path / "clinical" / "epoch_000.csv")
    last = pd.read_csv(tmp_path / "clinical" / "epoch_001.csv")
    assert first["participant_id"].tolist() == list(SUBJECTS)
    assert first["score"].tolist() == [0.0] * 3 and last["score"].tolist() == [1.0] * 3
    assert first["tsr_predicted"].isna().all()
    assert json.loads(first["missing_predicted"][0])["tsr"] == "tumour_empty"
    np.testing.assert_allclose(first["tsr_reference"], [2.7 / 2.5, 3.0 / 2.5, 3.6 / 2.5])
    assert (last["tsr_predicted"] == last["tsr_reference"]).all()
    preset = json.loads((tmp_path / "clinical" / "preset.json").read_text())
    assert preset["name"] == "guideline" and preset["mtv_threshold"] == 1.6


def test_a_known_change_of_the_prediction_gives_its_bias_and_one_sided_misses_count(tmp_path):
    predictions, added_ml = {}, []
    for pid, (labels, pet) in SUBJECTS.items():
        rim = (pet == 2.0) & (labels == 1)  # hot voxels (≥ 1.6 × the reference mean 1.0)
        predictions[pid] = np.where(rim, 3, labels)
        added_ml.append(rim.sum() * 4.0**3 / 1000)
    labels = SUBJECTS["sub-0"][0]
    predictions["sub-0"] = np.where(labels == 3, 1, labels)  # no predicted tumour
    callback = ClinicalEvaluation(
        indices=["tsr", "tbr_max", "mtv_ml"], score_indices=["tsr"], dirpath=str(tmp_path)
    )
    trainer = fit(ScriptedModule([predictions], dice=[0.5]), ITEMS, [callback], 1, tmp_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert metrics[f"{PREFIX}/tsr_n_missing"] == metrics[f"{PREFIX}/mtv_ml_n_missing"] == 1.0
    assert metrics[f"{PREFIX}/tsr_bias"] == metrics[f"{PREFIX}/tbr_max_bias"] == 0.0
    assert metrics[f"{PREFIX}/mtv_ml_bias"] == pytest.approx(np.mean(added_ml[1:]), abs=1e-6)
    assert metrics[SCORE_KEY] == pytest.approx(2 / 3)  # T/S exact for 2 subjects, missed for 1


@pytest.mark.parametrize("option", ["checkpoint_clinical", "default"])
def test_checkpoint_follows_the_configured_monitor(option, tmp_path):
    """Epoch 0 has the better Dice, epoch 1 the better clinical score."""
    cfg = compose_train([f"callbacks={option}"], output_dir=tmp_path)
    checkpoint = instantiate(cfg.callbacks.model_checkpoint)
    assert isinstance(checkpoint, ModelCheckpoint)
    clinical = ClinicalEvaluation(indices=STATIC_INDICES, dirpath=str(tmp_path / "clinical"))
    module = ScriptedModule([NO_TUMOUR, EXACT], dice=[0.9, 0.6])
    fit(module, ITEMS, [checkpoint, clinical], 2, tmp_path)
    expected = {"checkpoint_clinical": ("epoch_001.ckpt", 1.0), "default": ("epoch_000.ckpt", 0.9)}
    name, score = expected[option]
    assert Path(checkpoint.best_model_path).name == name
    assert float(checkpoint.best_model_score) == pytest.approx(score)


def test_checkpoint_clinical_monitors_exactly_the_logged_key(tmp_path):
    cfg = compose_train(["callbacks=checkpoint_clinical"], output_dir=tmp_path)
    assert cfg.callbacks.model_checkpoint.monitor == SCORE_KEY
    assert cfg.callbacks.model_checkpoint.mode == "max"
    callback = instantiate(cfg.callbacks.clinical_evaluation)
    assert isinstance(callback, ClinicalEvaluation)
    assert callback.indices == DEFAULT_INDICES
    assert callback.dirpath == tmp_path / "clinical"
    plain = compose_train(["callbacks=clinical"], output_dir=tmp_path)
    assert plain.callbacks.model_checkpoint.monitor == plain.optimized_metric == "val/dice"
    assert "clinical_evaluation" in plain.callbacks and "lr_monitor" in plain.callbacks


def _flip_x(source: Path, target: Path) -> None:
    """Store a 4-D image in LAS orientation (x reversed), as a scanner might."""
    image = nib.load(source)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = image.shape[0] - 1
    flipped = nib.Nifti1Image(np.asarray(image.dataobj)[::-1], image.affine @ flip, image.header)
    flipped.set_qform(image.affine @ flip, code=1)
    flipped.set_sform(image.affine @ flip, code=1)
    nib.save(flipped, target)


def test_dynamic_indices_from_a_4d_image_in_another_orientation(paediatric_cohort, tmp_path):
    table = pd.read_csv(paediatric_cohort / "participants.tsv", sep="\t")
    pid = table.loc[table["dynamic"] == 1, "participant_id"].iloc[0]
    paths = SubjectPaths(paediatric_cohort, pid)
    flipped = tmp_path / "las_pet.nii.gz"
    _flip_x(paths.dynamic_pet, flipped)
    frames, affine, starts, _ = load_canonical_dynamic(flipped, paths.dynamic_sidecar)
    original = nib.load(paths.dynamic_pet)
    np.testing.assert_array_equal(frames, original.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(affine, original.affine, atol=1e-9)
    assert starts.size == frames.shape[3]

    static = nib.load(paths.static_pet)
    labels = np.asarray(nib.load(paths.labels).dataobj)
    item = volume_batch(
        labels, static.get_fdata(), pid, static.affine, str(flipped), str(paths.dynamic_sidecar)
    )
    callback = ClinicalEvaluation(dirpath=str(tmp_path / "clinical"))
    fit(ScriptedModule([{pid: labels}], dice=[1.0]), [item], [callback], 1, tmp_path)
    row = pd.read_csv(tmp_path / "clinical" / "epoch_000.csv").iloc[0]
    truth = indices_from_files(
        paths.static_pet, paths.labels, "guideline", dynamic_path=paths.dynamic_pet
    )
    assert bool(row["dynamic"]) and truth.ttp_min is not None
    for index in DEFAULT_INDICES:
        assert row[f"{index}_reference"] == pytest.approx(getattr(truth, index), rel=1e-6), index
        assert row[f"{index}_predicted"] == pytest.approx(getattr(truth, index), rel=1e-6), index


def test_wandb_table_is_logged_when_a_wandb_logger_is_attached(tmp_path):
    callback = ClinicalEvaluation(indices=["tsr"], score_indices=["tsr"], dirpath=str(tmp_path))
    wandb = mock.create_autospec(WandbLogger, instance=True)
    trainer = mock.Mock(loggers=[wandb], is_global_zero=True, current_epoch=3)
    subjects = pd.DataFrame(
        {"participant_id": ["a"], "tsr_reference": [1.0], "tsr_predicted": [np.nan]}
    )
    callback._write(trainer, subjects)
    (call,) = wandb.log_table.call_args_list
    assert call.kwargs["key"] == f"{PREFIX}/subjects"
    assert call.kwargs["dataframe"].iloc[0].tolist() == ["a", 1.0, None]
    assert (tmp_path / "epoch_003.csv").is_file()


def test_unknown_score_index_is_refused():
    with pytest.raises(ValueError, match="score_indices"):
        ClinicalEvaluation(indices=["tsr"], score_indices=["mtv_ml"])


@pytest.mark.slow
def test_fast_dev_run_of_the_pipeline_logs_the_keys_and_writes_the_csv(paediatric_cohort, tmp_path):
    overrides = [
        f"data.root={paediatric_cohort}",
        "data.synth=null",
        "data.n_folds=4",
        f"paths.root_dir={tmp_path}",
        "callbacks=clinical",
        "callbacks.model_summary=null",
        "debug=fdr",
    ]
    cfg = compose_train(overrides, output_dir=tmp_path / "run")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert _keys(DEFAULT_INDICES) <= set(trainer.callback_metrics)
    assert 0.0 <= float(trainer.callback_metrics[SCORE_KEY]) <= 1.0
    (table,) = (tmp_path / "run" / "clinical").glob("epoch_*.csv")
    subjects = pd.read_csv(table)
    assert len(subjects) == 1  # fast_dev_run: one validation volume
    assert subjects["tsr_reference"].notna().all()
