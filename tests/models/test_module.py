"""SegmentationModule: whole-volume metrics against independent computations, optimiser groups."""

import functools
import math

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from model_helpers import VolumeDataset, cpu_trainer, make_module, patch_loader, tiny_unet
from monai.losses import DiceCELoss
from monai.metrics import HausdorffDistanceMetric
from torch import nn
from torch.utils.data import DataLoader

from fdopa.models.metrics import HausdorffDistance95
from fdopa.models.overlay import overlay_panels

SHAPE = (20, 24, 18)  # smaller than the 32³ patch: exercises the padding too
SPACING = 4.0
NAMES = ("brain", "striatum", "tumour")


class EchoNet(nn.Module):
    """Voxel-wise 'network': logits that make its input channel (labels) the argmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = x[:, 0].round().long().clamp(0, 3)
        return 8.0 * nn.functional.one_hot(labels, 4).permute(0, 4, 1, 2, 3).float()


def boxes(*regions):
    volume = np.zeros(SHAPE, dtype=np.int64)
    for value, (x, y, z) in regions:
        volume[x, y, z] = value
    return volume


def constructed_volumes():
    """Two (reference, prediction) pairs; the second has no tumour in either."""
    s = np.s_
    ref0 = boxes((1, s[2:18, 2:22, 2:16]), (2, s[6:10, 8:12, 6:10]), (3, s[12:16, 14:19, 8:12]))
    pred0 = boxes((1, s[3:18, 2:21, 2:16]), (2, s[6:11, 8:12, 6:10]), (3, s[12:15, 13:19, 9:12]))
    ref1 = boxes((1, s[1:17, 3:22, 2:15]), (2, s[5:9, 9:13, 6:10]))
    pred1 = boxes((1, s[1:18, 3:20, 2:15]), (2, s[5:9, 9:14, 5:10]))
    return [(ref0, pred0), (ref1, pred1)]


def numpy_dice(ref, pred, c):
    a, b = ref == c, pred == c
    total = a.sum() + b.sum()
    return np.nan if total == 0 else 2 * (a & b).sum() / total


def monai_hd95(ref, pred):
    """MONAI's own metric on one-hot volumes: per-class HD95 (mm) of one volume."""
    onehot = [
        torch.nn.functional.one_hot(torch.tensor(v), 4).permute(3, 0, 1, 2)[None]
        for v in (pred, ref)
    ]
    metric = HausdorffDistanceMetric(include_background=False, percentile=95)
    return metric(onehot[0], onehot[1], spacing=SPACING)[0].numpy()


class KeepOutputs(Callback):
    def __init__(self):
        self.outputs = []

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self.outputs.append(outputs)


def volume_loader():
    pairs = constructed_volumes()
    images = [torch.tensor(pred, dtype=torch.float32)[None] for _, pred in pairs]
    labels = [torch.tensor(ref)[None] for ref, _ in pairs]
    return DataLoader(VolumeDataset(images, labels, spacing=SPACING), batch_size=1)


@pytest.fixture(scope="module")
def validated():
    module = make_module(EchoNet(), sw_patch_size=(32, 32, 32), sw_overlap=0.25)
    keep = KeepOutputs()
    trainer = cpu_trainer(callbacks=[keep])
    trainer.validate(module, dataloaders=volume_loader(), verbose=False)
    val = {k: float(v) for k, v in trainer.callback_metrics.items()}
    trainer.test(module, dataloaders=volume_loader(), verbose=False)
    test = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return val, test, keep.outputs


def test_validation_dice_and_hd95_equal_independent_computations(validated):
    val, _, _ = validated
    pairs = constructed_volumes()
    dice = np.array([[numpy_dice(r, p, c) for c in (1, 2, 3)] for r, p in pairs])
    assert np.isnan(dice[1, 2])  # tumour absent from both: undefined and skipped
    expected_dice = np.nanmean(dice, axis=0)
    hd = np.array([monai_hd95(r, p) for r, p in pairs])
    expected_hd = [hd[:, 0].mean(), hd[:, 1].mean(), hd[0, 2]]
    for i, name in enumerate(NAMES):
        assert val[f"val/dice_{name}"] == pytest.approx(expected_dice[i], rel=1e-6)
        assert val[f"val/hd95_{name}"] == pytest.approx(expected_hd[i], rel=1e-5)
    assert val["val/dice"] == pytest.approx(expected_dice.mean(), rel=1e-6)
    assert 0 < val["val/dice_tumour"] < 1 and val["val/hd95_tumour"] > 0


def test_validation_loss_is_the_mean_whole_volume_loss(validated):
    val, _, _ = validated
    loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    values = [
        float(
            loss(
                EchoNet()(torch.tensor(p, dtype=torch.float32)[None, None]),
                torch.tensor(r)[None, None],
            )
        )
        for r, p in constructed_volumes()
    ]
    assert val["val/loss"] == pytest.approx(np.mean(values), rel=1e-5)


def test_validation_step_returns_cpu_labels_and_participant(validated):
    _, _, outputs = validated
    assert [o["participant_id"] for o in outputs] == ["sub-000", "sub-001"]
    for output, (_, pred) in zip(outputs, constructed_volumes(), strict=True):
        assert output["pred"].dtype == torch.int64 and output["pred"].device.type == "cpu"
        np.testing.assert_array_equal(output["pred"].numpy(), pred)
        assert output["loss"].ndim == 0


def test_test_stage_logs_the_same_metrics_under_its_prefix(validated):
    val, test, _ = validated
    for name in ("loss", "dice", *(f"{m}_{c}" for m in ("dice", "hd95") for c in NAMES)):
        assert test[f"test/{name}"] == pytest.approx(val[f"val/{name}"], rel=1e-6)


def test_hd95_of_a_class_in_one_map_only_is_the_volume_diagonal():
    metric = HausdorffDistance95(num_classes=4)
    ref, pred = (torch.tensor(v)[None] for v in constructed_volumes()[0])
    pred_without_tumour = torch.where(pred == 3, 1, pred)
    metric.update(pred_without_tumour, ref, spacing=(2.0, 3.0, 4.0))
    diagonal = math.dist(
        (0, 0, 0), [(n - 1) * s for n, s in zip(SHAPE, (2.0, 3.0, 4.0), strict=True)]
    )
    assert float(metric.compute()[2]) == pytest.approx(diagonal)


def test_overlay_png_is_written_without_wandb(tmp_path):
    module = make_module(EchoNet(), log_images=1)
    trainer = cpu_trainer(logger=CSVLogger(tmp_path), default_root_dir=tmp_path)
    trainer.validate(module, dataloaders=volume_loader(), verbose=False)
    pngs = sorted(tmp_path.rglob("overlays/*.png"))
    assert [p.name for p in pngs] == ["epoch000_sub-000.png"]


def test_no_overlay_without_a_logger(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = cpu_trainer(default_root_dir=tmp_path)
    trainer.validate(make_module(EchoNet(), log_images=2), volume_loader(), verbose=False)
    assert not list(tmp_path.rglob("*.png"))


def test_overlay_panels_cut_through_the_tumour():
    ref, pred = constructed_volumes()[0]
    picture = overlay_panels(np.ones(SHAPE), ref, pred)
    assert picture.shape == (SHAPE[1], 3 * SHAPE[0], 3) and picture.dtype == np.uint8
    assert (picture[:, SHAPE[0] :] == [235, 40, 40]).all(axis=-1).sum() == 0  # blended, not pure
    red = picture[..., 0].astype(int) - picture[..., 1]
    assert (red[:, SHAPE[0] : 2 * SHAPE[0]] > 50).sum() == 4 * 5  # the tumour box, one slice


def test_parameter_groups_have_discriminative_learning_rates():
    net = tiny_unet()
    module = make_module(
        net,
        optimizer=functools.partial(torch.optim.AdamW, lr=2e-3, weight_decay=1e-5),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        encoder_lr_factor=0.1,
    )
    config = module.configure_optimizers()
    optimizer = config["optimizer"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["encoder"]["lr"] == pytest.approx(2e-4)
    assert groups["decoder+head"]["lr"] == pytest.approx(2e-3)
    assert {id(p) for p in groups["encoder"]["params"]} == {id(p) for p in net.encoder.parameters()}
    rest = [*net.decoder.parameters(), *net.segmentation_head.parameters()]
    assert {id(p) for p in groups["decoder+head"]["params"]} == {id(p) for p in rest}
    assert config["lr_scheduler"]["interval"] == "epoch"
    config["lr_scheduler"]["scheduler"].step()
    assert groups["encoder"]["lr"] == pytest.approx(1e-4)
    assert groups["decoder+head"]["lr"] == pytest.approx(1e-3)


class StepRecorder(Callback):
    """Each optimiser step's learning rate, gradient and weight change of a one-layer net."""

    def __init__(self) -> None:
        self.lrs, self.grads, self.before, self.after = [], [], [], []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.grads.append(module.net.weight.grad.detach().clone())
        self.before.append(module.net.weight.detach().clone())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.after.append(module.net.weight.detach().clone())


def test_linear_warmup_scales_each_step_and_composes_with_the_epoch_scheduler():
    # Plain SGD: a step changes a weight by exactly -lr × gradient, so the rate each step
    # really used is read from the weights, not from the module's own bookkeeping.
    torch.manual_seed(0)
    module = make_module(
        nn.Conv3d(1, 4, kernel_size=1),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        warmup_steps=4,
    )
    recorder = StepRecorder()
    trainer = cpu_trainer(max_epochs=2, callbacks=[recorder], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=patch_loader(n=4, batch_size=1))
    # 4 steps an epoch; the warm-up 1/4 … 4/4 over epoch 0; StepLR halves the rate at epoch 1.
    expected = [0.025, 0.05, 0.075, 0.1, 0.05, 0.05, 0.05, 0.05]
    assert recorder.lrs == pytest.approx(expected)
    for lr, grad, before, after in zip(
        expected, recorder.grads, recorder.before, recorder.after, strict=True
    ):
        torch.testing.assert_close(after, before - lr * grad)
    # The scheduler's state never saw the warm-up: two epochs of halving from 0.1.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)


def test_warmup_steps_must_not_be_negative():
    with pytest.raises(ValueError, match=r"model\.warmup_steps"):
        make_module(EchoNet(), warmup_steps=-1)


def test_class_names_must_match_the_class_count():
    with pytest.raises(ValueError, match="class_names"):
        make_module(EchoNet(), num_classes=3)
