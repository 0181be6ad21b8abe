"""What the network sees: head box and model grid, shared by training and prediction.

Truths: the stored arrays themselves (a brain box already on the model grid maps by exact
copies, an LPS copy maps back to the RAS array), label volumes in millilitres counted on the
native grid, and constant frames that must stay constant on any grid.
"""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio

from fdopa.cli import main
from fdopa.data.datamodule import FdopaDataModule
from fdopa.data.model_view import ModelView, ToModelGrid
from fdopa.data.synthetic import SynthConfig
from fdopa.data.synthetic.scanner import JITTER, PROFILES, draw_profile
from fdopa.data.synthetic.subject import build_subject
from fdopa.labels import BRAIN, STRIATUM, TUMOUR
from fdopa.layout import SubjectPaths
from fdopa.models.callbacks import ClinicalEvaluation

PID = "sub-pd001"


@pytest.fixture(scope="module")
def brain_box(paediatric_cohort):
    paths = SubjectPaths(paediatric_cohort, PID)
    image = nib.load(paths.static_pet)
    return (
        image.get_fdata(dtype=np.float32),
        np.asarray(nib.load(paths.labels).dataobj),
        image.affine,
    )


@pytest.fixture(scope="module")
def scanner_subject(paediatric_config):
    """The fixture's first child as a scanner image of the ``tiny`` profile (5 mm voxels)."""
    config = dataclasses.replace(paediatric_config, realism="scanner", scanner="tiny")
    seed = np.random.SeedSequence([config.seed, 1]).spawn(config.n)[0]
    return build_subject(config, PID, seed, False)


def _ml(labels: np.ndarray, affine: np.ndarray, value: int) -> float:
    return float((labels == value).sum() * np.prod(nib.affines.voxel_sizes(affine))) / 1000.0


def test_a_brain_box_on_the_model_grid_maps_by_exact_copies(brain_box):
    pet, labels, affine = brain_box
    whole = ModelView.of(pet, affine, (4.0, 4.0, 4.0), crop=False)
    assert whole.shape == pet.shape and np.array_equal(whole.to_model(pet, 1), pet)
    view = ModelView.of(pet, affine, (4.0, 4.0, 4.0))
    back = view.to_native(view.to_model(labels, 0), 0)
    assert np.array_equal(back, labels)  # the head box holds every labelled voxel
    assert np.allclose(view.affine[:3, :3], np.diag([4.0, 4.0, 4.0]))


def test_an_lps_copy_maps_to_the_ras_array(brain_box):
    pet, _, affine = brain_box
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = np.asarray(pet.shape[:2]) - 1
    lps = np.ascontiguousarray(pet[::-1, ::-1])
    view = ModelView.of(lps, affine @ flip, (4.0, 4.0, 4.0), crop=False)
    assert nib.aff2axcodes(view.affine) == ("R", "A", "S")
    assert np.array_equal(view.to_model(lps, 1), pet)


def test_a_scanner_image_on_the_model_grid_keeps_its_volumes(scanner_subject):
    s = scanner_subject
    subject = tio.Subject(
        pet=tio.ScalarImage(tensor=torch.from_numpy(s.static[None]), affine=s.affine),
        label=tio.LabelMap(
            tensor=torch.from_numpy(s.labels[None].astype(np.int16)), affine=s.affine
        ),
    )
    out = ToModelGrid((4.0, 4.0, 4.0))(subject)
    assert np.allclose(nib.affines.voxel_sizes(out["label"].affine), 4.0)
    assert out["pet"].shape == out["label"].shape
    labels = out["label"].data[0].numpy()
    for value, tolerance in ((BRAIN, 0.03), (STRIATUM, 0.15), (TUMOUR, 0.15)):
        native = _ml(s.labels, s.affine, value)
        assert _ml(labels, out["label"].affine, value) == pytest.approx(native, rel=tolerance)
    # The face and neck below the brain were cut: the box is far smaller than the 320 mm field.
    assert np.prod(out["pet"].shape) * 64.0 < 0.6 * 320.0**3


def test_file_subjects_are_mapped_once_and_handed_out_again(scanner_subject, tmp_path, monkeypatch):
    s = scanner_subject
    nib.save(nib.Nifti1Image(s.static.astype(np.float32), s.affine), tmp_path / "pet.nii.gz")
    nib.save(nib.Nifti1Image(s.labels.astype(np.int16), s.affine), tmp_path / "label.nii.gz")

    def subject():
        return tio.Subject(
            pet=tio.ScalarImage(tmp_path / "pet.nii.gz"),
            label=tio.LabelMap(tmp_path / "label.nii.gz"),
        )

    transform = ToModelGrid((4.0, 4.0, 4.0))
    first = transform(subject())
    # the second epoch neither reads the files nor maps them again
    nib.save(
        nib.Nifti1Image(np.zeros_like(s.static, np.float32), s.affine), tmp_path / "pet.nii.gz"
    )
    monkeypatch.setattr(ModelView, "of", None)
    second = transform(subject())
    for name in ("pet", "label"):
        assert torch.equal(first[name].data, second[name].data)
        np.testing.assert_array_equal(first[name].affine, second[name].affine)
    second["pet"].data.mul_(0)  # a later transform's in-place change stays in its copy
    assert transform(subject())["pet"].data.abs().sum() > 0


def test_random_profiles_are_clinical_ones_jittered():
    rng = np.random.default_rng(3)
    drawn = [draw_profile(rng) for _ in range(40)]
    assert {name for name, _ in drawn} == {f"{k}~" for k in PROFILES if k != "tiny"}
    for name, profile in drawn:
        base = PROFILES[name.removesuffix("~")]
        assert profile.shape == base.shape
        for field in ("pixel_mm", "slice_mm", "psf_fwhm_mm", "noise"):
            ratio = getattr(profile, field) / getattr(base, field)
            assert 1 - JITTER - 1e-3 <= ratio <= 1 + JITTER + 1e-3, field


def test_mixed_realism_draws_an_exact_share_and_keeps_old_records():
    config = SynthConfig(n=10, realism="mixed", scanner_fraction=0.3, seed=4)
    chosen = config.scanner_subjects()
    assert chosen.sum() == 3 and np.array_equal(chosen, config.scanner_subjects())
    assert not SynthConfig(n=10).scanner_subjects().any()
    assert SynthConfig(n=10, realism="scanner").scanner_subjects().all()
    assert "scanner_fraction" not in SynthConfig(realism="scanner").record()
    assert config.record()["scanner_fraction"] == 0.3
    with pytest.raises(ValueError, match=r"^scanner_fraction: must lie in"):
        SynthConfig(realism="mixed", scanner_fraction=1.5)


def test_clinical_evaluation_maps_frames_to_the_batch_grid(tmp_path):
    """Frames of constant value stay constant on the coarser model grid of the batch."""
    values = np.array([1.0, 2.0, 5.0], np.float32)
    frames = np.ones((20, 24, 18, 3), np.float32) * values
    path = tmp_path / "sub-x_pet.nii.gz"
    nib.save(nib.Nifti1Image(frames, np.diag([2.0, 2.0, 3.0, 1.0])), path)
    timing = {"FrameTimesStart": [0, 60, 120], "FrameDuration": [60, 60, 60]}
    (tmp_path / "sub-x_pet.json").write_text(json.dumps(timing))
    grid = np.diag([4.0, 4.0, 4.0, 1.0])
    grid[:3, 3] = [1.0, 1.0, 0.5]
    batch = {"dynamic_path": [str(path)], "sidecar_path": [""]}
    moved, starts, _ = ClinicalEvaluation()._dynamic(batch, (10, 12, 13), grid)
    assert moved.shape == (10, 12, 13, 3)
    np.testing.assert_allclose(moved, np.broadcast_to(values, moved.shape), rtol=1e-6)
    np.testing.assert_allclose(starts, [0, 60, 120])


@pytest.mark.slow
def test_a_mixed_cohort_trains_on_the_model_grid(tmp_path, capsys):
    out = tmp_path / "mixed"
    argv = ["synth", "--n", "3", "--dynamic-fraction", "0", "--jobs", "1", "--realism", "mixed",
            "--scanner", "tiny", "--scanner-fraction", "0.34", "--seed", "2"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 0
    assert "wrote 3 paediatric subjects (tiny grid + tiny scanner" in capsys.readouterr().out
    shapes = sorted(nib.load(SubjectPaths(out, f"sub-pd00{i}").static_pet).shape for i in (1, 2, 3))
    assert shapes == [(44, 52, 44), (44, 52, 44), (64, 64, 64)]
    module = FdopaDataModule(
        str(out), n_folds=3, stratify=None, spacing_mm=(4.0, 4.0, 4.0), patch_size=(16, 16, 16),
        samples_per_volume=2, queue_length=6,
    )  # fmt: skip
    module.setup()
    volume = next(iter(module.val_dataloader()))
    assert np.allclose(np.diag(volume["affine"][0].numpy())[:3], 4.0)
    assert volume["image"].shape[2:] == volume["label"].shape[2:] == volume["pet"].shape[2:]
    patches = next(iter(module.train_dataloader()))
    assert patches["image"].shape[1:] == (1, 16, 16, 16)
