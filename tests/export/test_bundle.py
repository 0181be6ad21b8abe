"""The bundle: layout, metadata of a real run, fresh-process reload, TorchScript, tampering."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from export_helpers import tiny_config

from fdopa.export.bundle import read_bundle, write_bundle
from fdopa.export.bundle_config import BundleConfig, BundleError
from fdopa.export.run import export_checkpoint, find_run_config

FILES = {"model.pt", "model.ts", "config.json", "metadata.json", "checksums.json"}


@pytest.mark.slow
def test_export_of_a_trained_run_records_weights_config_data_and_metrics(trained):
    bundle = read_bundle(trained.bundle)
    assert {p.name for p in trained.bundle.iterdir()} - {"model.onnx"} == FILES
    checksums = json.loads((trained.bundle / "checksums.json").read_text())["files"]
    for name, digest in checksums.items():
        assert hashlib.sha256((trained.bundle / name).read_bytes()).hexdigest() == digest

    checkpoint = torch.load(trained.ckpt, map_location="cpu", weights_only=True)
    state = torch.load(trained.bundle / "model.pt", map_location="cpu", weights_only=True)
    expected = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in state)

    config = bundle.config
    assert config.network["decoder_channels"] == [32, 16, 16, 8, 8]
    assert (config.channels, config.normalisation, config.suv_scale) == (("pet",), "suv", 3.0)
    assert (config.spacing_mm, config.patch_size) == ((4.0, 4.0, 4.0), (32, 32, 32))
    assert (config.overlap, config.overlap_mode) == (0.5, "hann")

    meta = bundle.metadata
    assert meta["label_map"]["3"]["name"] == "tumour" and len(meta["label_map"]) == 4
    spec = meta["input"]
    assert (spec["modality"], spec["tracer"], spec["units"], spec["orientation"]) == (
        "PT", "FDOPA", "g/mL", "RAS",
    )  # fmt: skip
    assert meta["versions"]["torch"] == torch.__version__.split("+")[0]
    with (trained.run_dir / "splits.csv").open() as handle:
        train_ids = [r["participant_id"] for r in csv.DictReader(handle) if r["split"] == "train"]
    volumes = []
    for pid in train_ids:
        labels = nib.load(trained.cohort / "derivatives/labels" / pid / f"{pid}_dseg.nii.gz")
        volumes.append(np.count_nonzero(np.asarray(labels.dataobj) == 3) * 64 / 1000)
    training = meta["training"]
    assert training["tumour_ml_range"] == pytest.approx([min(volumes), max(volumes)])
    assert (training["n_train"], training["n_val"], training["n_subjects"]) == (7, 1, 8)
    assert (training["grid_shape"], training["cohort"]) == ([44, 52, 44], "paediatric")

    validation = meta["validation"]
    state = next(v for k, v in checkpoint["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert validation["epoch"] == checkpoint["epoch"]
    assert validation["metrics"]["val/dice"] == pytest.approx(float(state["current_score"]))
    metrics = validation["metrics"]
    assert {"val/dice_brain", "val/dice_tumour", "val/hd95_tumour"} <= metrics.keys()
    assert 0.0 <= metrics["val/clinical/score"] <= 1.0  # the default clinical callback logs it


@pytest.mark.slow
def test_reload_in_a_fresh_process_gives_identical_logits(tiny_bundle, tmp_path):
    bundle, net = tiny_bundle
    image = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.save(image, tmp_path / "image.pt")
    code = (
        "import sys, torch; from fdopa.export.bundle import read_bundle; "
        f"torch.set_num_threads({torch.get_num_threads()}); "
        "net = read_bundle(sys.argv[1]).load_network(); "
        "image = torch.load(sys.argv[2], weights_only=True); "
        "torch.save(net(image).detach(), sys.argv[3])"
    )
    args = [bundle.path, tmp_path / "image.pt", tmp_path / "logits.pt"]
    subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True)
    with torch.no_grad():
        expected = net.eval()(image)
    assert torch.equal(torch.load(tmp_path / "logits.pt", weights_only=True), expected)


def test_torchscript_equals_eager_within_1e_5(tiny_bundle):
    bundle, _ = tiny_bundle
    image = torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        eager = bundle.load_network()(image)
        traced = bundle.load_torchscript()(image)
    assert float((eager - traced).abs().max()) <= 1e-5


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip_byte", r"model\.pt: sha256 differs"),
        ("extra_file", r"\['notes\.txt'\] not in checksums\.json"),
        ("remove_model", r"model\.pt: listed in checksums\.json but missing"),
        ("remove_checksums", r"checksums\.json: missing"),
    ],
)
def test_a_tampered_bundle_is_refused(tiny_bundle, tmp_path, damage, message):
    copy = shutil.copytree(tiny_bundle[0].path, tmp_path / "bundle")
    if damage == "flip_byte":
        data = bytearray((copy / "model.pt").read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / "model.pt").write_bytes(bytes(data))
    elif damage == "extra_file":
        (copy / "notes.txt").write_text("hello")
    else:
        (copy / ("model.pt" if damage == "remove_model" else "checksums.json")).unlink()
    with pytest.raises(BundleError, match=message):
        read_bundle(copy)


def test_config_round_trips_and_refuses_unknown_builders_and_versions():
    config = tiny_config()
    assert BundleConfig.from_dict(config.to_dict()) == config
    with pytest.raises(BundleError, match=r"network\.builder"):
        tiny_config(builder="os.system")
    with pytest.raises(BundleError, match="format_version 99"):
        BundleConfig.from_dict({**config.to_dict(), "format_version": 99})
    with pytest.raises(BundleError, match="in_channels"):
        tiny_config(channels=("pet", "flair"))
    payload = config.to_dict()
    del payload["inference"]["patch_size"]
    with pytest.raises(BundleError, match="missing key 'patch_size'"):
        BundleConfig.from_dict(payload)


def test_writer_refuses_weights_of_another_network_and_leaves_nothing(tmp_path):
    other = tiny_config(network={**tiny_config().network, "decoder_channels": [16, 8, 8, 8, 8]})
    with pytest.raises(BundleError, match="do not fit"):
        write_bundle(tmp_path / "bundle", other.build_network(), tiny_config(), {})
    assert list(tmp_path.iterdir()) == []


def test_export_needs_the_run_config(tmp_path):
    ckpt = tmp_path / "lonely" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"pass --config RUN_DIR/config_resolved\.yaml"):
        export_checkpoint(ckpt, tmp_path / "bundle")
    (tmp_path / "lonely" / "config_resolved.yaml").write_text("{}")
    assert find_run_config(ckpt) == tmp_path / "lonely" / "config_resolved.yaml"
    with pytest.raises(FileNotFoundError, match="--config"):
        find_run_config(ckpt, tmp_path / "missing.yaml")
    assert not (tmp_path / "bundle").exists()


def test_the_run_config_sets_flair_dropout_and_prediction_defaults_of_the_bundle(tmp_path):
    from export_helpers import TINY_NETWORK

    from fdopa.export.run import _bundle_config

    model = {"net": {"_target_": "fdopa.models.network.build_unet", **TINY_NETWORK,
                     "in_channels": 2},
             "sw_patch_size": [32, 32, 32], "sw_overlap": 0.5, "sw_batch_size": 4,
             "sw_overlap_mode": "hann",
             "class_names": ["background", "brain", "striatum", "tumour"]}  # fmt: skip
    cfg = {
        "data": {"channels": ["pet", "flair"], "channel_dropout": {"flair": 0.3}},
        "model": model,
        "predict": {"tta": True, "keep_brain_component": True, "min_tumour_ml": 0.25},
    }
    _, config = _bundle_config(cfg, {}, tmp_path / "config_resolved.yaml")
    assert config.channel_dropout == {"flair": 0.3} and config.optional_channels == ("flair",)
    assert config.tta is True
    # every rule is recorded; one the run config leaves out at its default (no threshold)
    assert config.postprocess == {
        "keep_brain_component": True, "min_tumour_ml": 0.25, "tumour_threshold": None,
        "native_grid": False,
    }  # fmt: skip
    assert BundleConfig.from_dict(config.to_dict()) == config
    # a run config from before these keys: no dropout, no TTA, no clean-up
    _, old = _bundle_config({"data": {"channels": ["pet"]}, "model": {**model, "net": {
        **model["net"], "in_channels": 1}}}, {}, tmp_path / "c.yaml")  # fmt: skip
    assert (old.channel_dropout, old.tta, old.optional_channels) == ({}, False, ())
    assert old.postprocess == {
        "keep_brain_component": False, "min_tumour_ml": 0.0, "tumour_threshold": None,
        "native_grid": False,
    }  # fmt: skip


def test_every_public_name_of_fdopa_export_resolves_to_its_home():
    # fdopa.export imports lazily (no torch for `fdopa --help`): each name must still load.
    import fdopa.export
    from fdopa.export import bundle_config, predictor

    assert sorted(fdopa.export.__all__) == sorted(set(fdopa.export.__all__))
    for name in fdopa.export.__all__:
        assert getattr(fdopa.export, name).__name__ == name
    assert fdopa.export.BundleError is bundle_config.BundleError
    assert fdopa.export.Predictor is predictor.Predictor
    with pytest.raises(AttributeError, match="no attribute 'predict'"):
        fdopa.export.predict  # noqa: B018
