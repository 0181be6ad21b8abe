"""Partial loading of a pretraining checkpoint and the encoder freezing schedules."""

import functools

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from model_helpers import TINY_DECODER, cpu_trainer, make_module, patch_loader, tiny_unet
from omegaconf import DictConfig, ListConfig

from fdopa.models.network import build_unet
from fdopa.models.transfer import FreezeSchedule, encoder_stages, load_pretrained, pet_scaling

# The resnet encoder's stages by name, shallowest first — written out independently of
# encoder_stages() so that the expected trainable counts come from the module tree alone.
RESNET_STAGES = [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]


def stage_numel(net, names):
    return sum(p.numel() for n in names for p in net.encoder.get_submodule(n).parameters())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real Lightning checkpoint of a 4-class module, hyperparameters given as ListConfig."""
    module = make_module(tiny_unet(seed=1), class_names=ListConfig(["bg", "brain", "str", "tum"]))
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=patch_loader(n=2))
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_checkpoint_loads_with_weights_only(checkpoint):
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert content["hyper_parameters"]["class_names"] == ("bg", "brain", "str", "tum")


def test_partial_loading_into_another_class_count(checkpoint):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    net = tiny_unet(classes=3, seed=2)
    fresh_head = {k: v.clone() for k, v in net.segmentation_head.state_dict().items()}
    report = load_pretrained(net, checkpoint)
    head_keys = {"segmentation_head.0.weight", "segmentation_head.0.bias"}
    assert set(report.skipped_shape) == head_keys
    assert report.skipped_shape["segmentation_head.0.bias"] == ((4,), (3,))
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(net.state_dict()) - 2
    for key, value in net.encoder.state_dict().items():
        assert torch.equal(value, saved[f"net.encoder.{key}"]), key  # bit-identical
    for key, value in net.decoder.state_dict().items():
        assert torch.equal(value, saved[f"net.decoder.{key}"]), key
    for key, value in net.segmentation_head.state_dict().items():
        assert torch.equal(value, fresh_head[key])  # the new initialisation is kept


def test_a_checkpoint_of_another_encoder_is_refused(checkpoint):
    """A resnet checkpoint gives a dpn68 network no encoder weight: an error, not a silent
    training from scratch."""
    net = build_unet("dpn68", in_channels=1, classes=4, decoder_channels=TINY_DECODER)
    with pytest.raises(ValueError, match=r"model\.net\.encoder_name") as error:
        load_pretrained(net, checkpoint)
    assert str(checkpoint) in str(error.value)


@pytest.fixture(scope="module")
def zscore_checkpoint(tmp_path_factory):
    """A real checkpoint of a module told it sees z-scored PET (a DictConfig, as Hydra gives)."""
    module = make_module(tiny_unet(seed=1), pet_scaling=DictConfig({"normalisation": "zscore"}))
    trainer = cpu_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=patch_loader(n=2))
    path = tmp_path_factory.mktemp("ckpt") / "zscore.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_pet_scaling_records_the_suv_scale_only_where_it_applies():
    assert pet_scaling("suv", 3) == {"normalisation": "suv", "suv_scale": 3.0}
    assert pet_scaling("zscore", 3.0) == {"normalisation": "zscore"}


def test_a_checkpoint_of_other_pet_scaling_is_refused(zscore_checkpoint):
    """Fine-tuning an adult model of z-scored PET on SUV / 3 would feed it another intensity
    scale in silence: an error naming both settings and the key."""
    content = torch.load(zscore_checkpoint, map_location="cpu", weights_only=True)
    assert content["hyper_parameters"]["pet_scaling"] == {"normalisation": "zscore"}
    with pytest.raises(ValueError, match=r"finetune\.pretrained") as error:
        load_pretrained(tiny_unet(seed=2), zscore_checkpoint, scaling=pet_scaling("suv", 3.0))
    message = str(error.value)
    assert "data.normalisation=zscore" in message
    assert "data.normalisation=suv, data.suv_scale=3.0" in message
    report = load_pretrained(tiny_unet(seed=2), zscore_checkpoint, scaling=pet_scaling("zscore", 3))
    assert len(report.loaded) == len(tiny_unet(seed=2).state_dict())


def test_a_checkpoint_without_pet_scaling_loads_with_a_warning(checkpoint, caplog):
    with caplog.at_level("WARNING", logger="fdopa.models.transfer"):
        load_pretrained(tiny_unet(seed=2), checkpoint, scaling=pet_scaling("zscore", 3.0))
    assert "records no PET normalisation" in caplog.text
    assert "data.normalisation=zscore" in caplog.text


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_pretrained(torch.nn.Conv3d(1, 1, 1), tmp_path / "absent.ckpt")
    assert "python train.py +experiment=pretrain" in str(error.value)
    assert "finetune.pretrained=" in str(error.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [({"net.x": torch.zeros(1)}, "not a Lightning checkpoint"),
     ({"state_dict": {"model.x": torch.zeros(1)}}, "no state_dict key")],
)  # fmt: skip
def test_unusable_checkpoints_are_rejected(tmp_path, content, match):
    path = tmp_path / "bad.ckpt"
    torch.save(content, path)
    with pytest.raises(ValueError, match=match):
        load_pretrained(torch.nn.Conv3d(1, 1, 1), path)


def test_resnet_stages_follow_the_module_tree():
    encoder = tiny_unet().encoder
    stages = encoder_stages(encoder)
    expected = [[encoder.get_submodule(n) for n in names] for names in RESNET_STAGES]
    assert [[id(m) for m in s] for s in stages] == [[id(m) for m in s] for s in expected]


@pytest.mark.parametrize(
    "name", ["resnet18", "dpn68", "vgg11_bn", "densenet121", "efficientnet-b0", "mobileone_s0"]
)
def test_stages_hold_every_encoder_parameter_once(name):
    encoder = build_unet(name, decoder_channels=(16, 16, 16, 16, 8)).encoder
    ids = [id(p) for s in encoder_stages(encoder) for m in s for p in m.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in encoder.parameters()}
    assert len(encoder_stages(encoder)) == 5


@pytest.mark.parametrize(
    ("mode", "unfreeze", "step", "frozen_per_epoch"),
    [("none", 0, 1, [0, 0, 0]), ("freeze_encoder", 2, 1, [5, 5, 0, 0]),
     ("gradual", 1, 1, [5, 4, 3, 2, 1, 0, 0]), ("gradual", 0, 2, [4, 4, 3, 3, 2, 2, 1, 1, 0])],
)  # fmt: skip
def test_frozen_stage_counts_per_epoch(mode, unfreeze, step, frozen_per_epoch):
    schedule = FreezeSchedule(mode, unfreeze_epoch=unfreeze, step_epochs=step)
    assert [
        schedule.frozen_stage_count(e, 5) for e in range(len(frozen_per_epoch))
    ] == frozen_per_epoch


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match=r"finetune\.schedule"):
        FreezeSchedule("partial")


class Snapshots(Callback):
    """State of the network (parameters and BN buffers) at the end of every training epoch."""

    def __init__(self):
        self.states = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.states.append({k: v.clone() for k, v in pl_module.net.state_dict().items()})


def changed(before, after, prefixes):
    keys = [k for k in before if k.startswith(prefixes) and "num_batches_tracked" not in k]
    return {k: not torch.equal(before[k], after[k]) for k in keys}


def run_schedule(mode, unfreeze_epoch, epochs):
    net = tiny_unet()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    # Strong weight decay: frozen weights would visibly shrink if the optimiser touched them.
    optimizer = functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.5)
    module = make_module(net, optimizer=optimizer, encoder_lr_factor=0.5)
    schedule = FreezeSchedule(mode, unfreeze_epoch=unfreeze_epoch, step_epochs=1)
    snapshots = Snapshots()
    trainer = cpu_trainer(
        max_epochs=epochs,
        limit_train_batches=1,
        callbacks=[schedule, snapshots],
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=patch_loader(n=2, batch_size=2))
    return net, initial, schedule, snapshots.states, trainer


def test_freeze_encoder_holds_weights_and_bn_statistics_then_releases():
    net, initial, schedule, states, trainer = run_schedule("freeze_encoder", 2, epochs=3)
    total = sum(p.numel() for p in net.parameters())
    encoder = sum(p.numel() for p in net.encoder.parameters())
    assert schedule.history == {0: total - encoder, 1: total - encoder, 2: total}
    assert float(trainer.callback_metrics["train/trainable_params"]) == total
    frozen_phase = changed(initial, states[1], ("encoder.",))
    assert not any(frozen_phase.values())  # weights, running_mean and running_var untouched
    assert any(k.endswith("running_mean") for k in frozen_phase)
    assert all(changed(initial, states[1], ("decoder.", "segmentation_head.")).values())
    released = changed(states[1], states[2], ("encoder.",))
    assert all(released.values())


def test_gradual_releases_the_deepest_stages_first():
    net, initial, schedule, states, _ = run_schedule("gradual", 1, epochs=3)
    total = sum(p.numel() for p in net.parameters())
    frozen = [RESNET_STAGES[:5], RESNET_STAGES[:4], RESNET_STAGES[:3]]
    expected = {
        e: total - sum(stage_numel(net, names) for names in f) for e, f in enumerate(frozen)
    }
    assert schedule.history == expected
    still_frozen = ("encoder.conv1.", "encoder.bn1.", "encoder.layer1.", "encoder.layer2.")
    assert not any(changed(initial, states[-1], still_frozen).values())
    assert not any(changed(initial, states[0], ("encoder.layer4.",)).values())
    assert all(changed(states[0], states[-1], ("encoder.layer4.", "encoder.layer3.")).values())


def test_no_schedule_trains_everything_from_the_start():
    net, initial, schedule, states, _ = run_schedule("none", 0, epochs=1)
    assert schedule.history == {0: sum(p.numel() for p in net.parameters())}
    assert all(changed(initial, states[0], ("encoder.", "decoder.")).values())
