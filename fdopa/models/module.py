"""The LightningModule: patch training, whole-volume validation/test, metrics, optimisers.

Logged names (the same strings everywhere — ModelCheckpoint, sweeps, ``optimized_metric``):

* ``train/loss`` (per step and per epoch);
* ``val/loss``, ``val/dice_<class>`` and ``val/hd95_<class>`` for every foreground class
  (``brain``, ``striatum``, ``tumour`` by default), ``val/dice`` = mean of the per-class
  Dice values that are defined; the same under ``test/``;
* validation overlays (``log_images`` volumes per epoch): ``val/overlay_<i>`` images on W&B,
  otherwise PNGs in ``<first logger's folder>/overlays/``; none without a logger.

Dice and HD95 are computed per volume and averaged per epoch (:mod:`fdopa.models.metrics`):
a class absent from both reference and prediction of a volume is skipped, and a class absent
from every volume of the epoch is logged as NaN. HD95 is in mm (spacing from the affine).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor, nn

from fdopa.labels import LABEL_NAMES, NUM_LABELS
from fdopa.models.inference import OverlapMode, predict_volume
from fdopa.models.metrics import segmentation_metrics, voxel_spacing
from fdopa.models.overlay import overlay_panels

log = logging.getLogger(__name__)

STAGES = ("val", "test")


class SegmentationModule(L.LightningModule):
    """Segmentation of the label map with a configurable network, loss and optimiser.

    Batches follow the data module's contract: training ``image`` ``(B, C, *patch)`` float32
    and ``label`` ``(B, 1, *patch)`` int64; validation/test one whole volume (``B = 1``) with
    ``image``, ``label``, ``pet`` (static SUV), ``affine``, ``participant_id``.

    Hyperparameters are saved without ``net``, ``loss``, ``optimizer`` and ``scheduler``
    (modules and partials cannot be read back by ``torch.load(weights_only=True)``, which
    Lightning uses for resuming); sequences are stored as plain tuples for the same reason.
    The resolved Hydra config records them instead.

    Args:
        net: Network mapping ``(B, C, ...)`` to logits ``(B, num_classes, ...)``; an ``encoder``
            attribute (smp U-Net) gets its own learning rate.
        loss: Loss of logits against ``(B, 1, ...)`` integer labels.
        optimizer: Partial optimiser taking the parameter groups, e.g.
            ``functools.partial(torch.optim.AdamW, lr=1e-3)``.
        scheduler: Optional partial scheduler taking the optimiser; stepped every epoch.
        encoder_lr_factor: Encoder learning rate = optimiser lr × this factor.
        warmup_steps: Linear learning-rate warm-up: optimiser step *s* (from 0) runs at
            ``min(1, (s + 1) / warmup_steps)`` × the scheduled rate of every group (0: none).
        num_classes: Output classes.
        class_names: One name per class; foreground names label the metrics.
        sw_patch_size: Sliding-window patch for whole-volume inference.
        sw_overlap: Fractional overlap of the sliding windows, in ``[0, 1)``.
        sw_batch_size: Patches per forward pass in whole-volume inference.
        sw_overlap_mode: ``"hann"`` or ``"average"`` blending of overlapping patches.
        log_images: Validation volumes per epoch drawn as overlay pictures (0 disables).
        pet_scaling: How the PET reaches the network, from the data config
            (:func:`~fdopa.models.transfer.pet_scaling`). Saved with the checkpoint, so that a
            fine-tuning can check that its adult checkpoint saw the PET scaled the same way.

    Raises:
        ValueError: If ``class_names`` does not match ``num_classes``, or the factor or
            ``warmup_steps`` is negative.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        encoder_lr_factor: float = 1.0,
        warmup_steps: int = 0,
        num_classes: int = NUM_LABELS,
        class_names: Sequence[str] = LABEL_NAMES,
        sw_patch_size: Sequence[int] = (32, 32, 32),
        sw_overlap: float = 0.5,
        sw_batch_size: int = 4,
        sw_overlap_mode: OverlapMode = "hann",
        log_images: int = 2,
        pet_scaling: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Tuples, not Hydra ListConfigs: the saved hyperparameters must load with weights_only.
        class_names = tuple(str(name) for name in class_names)
        sw_patch_size = tuple(int(size) for size in sw_patch_size)
        pet_scaling = None if pet_scaling is None else dict(pet_scaling)  # no DictConfig
        if len(class_names) != num_classes:
            raise ValueError(
                f"model.class_names: {len(class_names)} names for num_classes={num_classes}"
            )
        if encoder_lr_factor < 0:
            raise ValueError(f"encoder_lr_factor: must be >= 0, got {encoder_lr_factor}")
        if warmup_steps < 0:
            raise ValueError(f"model.warmup_steps: must be >= 0, got {warmup_steps}")
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"])
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metrics = nn.ModuleDict({stage: segmentation_metrics(num_classes) for stage in STAGES})

    @property
    def foreground_names(self) -> tuple[str, ...]:
        """Names of the classes 1 … num_classes - 1, in metric order."""
        return tuple(self.hparams.class_names[1:])

    def forward(self, image: Tensor) -> Tensor:
        """Logits of a batch of patches ``(B, C, ...)``."""
        return self.net(image)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Loss of one batch of patches, logged as ``train/loss``.

        The loss is computed in float32 even under mixed precision: in bfloat16 the soft Dice
        sums of a batch lose enough precision to turn the weights to NaN within an epoch
        (measured on CPU with ``trainer.precision=bf16-mixed``).
        """
        loss = self.loss(self(batch["image"]).float(), batch["label"])
        self.log(
            "train/loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["image"].shape[0],
        )
        return loss

    def predict_volume(self, image: Tensor) -> Tensor:
        """Sliding-window logits ``(num_classes, X, Y, Z)`` of one volume ``(C, X, Y, Z)``."""
        hp = self.hparams
        return predict_volume(
            self.net,
            image,
            hp.sw_patch_size,
            overlap=hp.sw_overlap,
            batch_size=hp.sw_batch_size,
            overlap_mode=hp.sw_overlap_mode,
        )

    def _evaluate(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        image, label = batch["image"], batch["label"]
        if image.shape[0] != 1:
            raise ValueError(
                f"{stage} batches hold one whole volume (batch size 1), got {image.shape[0]}"
            )
        logits = self.predict_volume(image[0])[None]
        loss = self.loss(logits, label)
        pred = logits.argmax(dim=1)
        spacing = voxel_spacing(batch["affine"][0]) if "affine" in batch else None
        self.metrics[stage].update(pred, label[:, 0], spacing=spacing)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=1)
        return {
            "loss": loss.detach(),
            "pred": pred[0].cpu(),
            "participant_id": str(batch["participant_id"][0]),
        }

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Predict one whole volume and update the metrics.

        Returns:
            ``{"loss": scalar, "pred": int64 labels (X, Y, Z) on CPU, "participant_id": str}``
            for callbacks (``on_validation_batch_end``), e.g. the clinical evaluation.
        """
        output = self._evaluate(batch, "val")
        trainer = self._trainer
        drawing = (
            batch_idx < self.hparams.log_images
            and trainer is not None
            and trainer.loggers
            and trainer.is_global_zero
            and not trainer.sanity_checking
        )
        if drawing:
            self._log_overlay(batch, output["pred"], batch_idx)
        return output

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """As :meth:`validation_step`, logged under ``test/`` (no pictures)."""
        return self._evaluate(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = self.metrics[stage]
        if metrics["dice"].update_count == 0:
            return
        values = metrics.compute()
        summary = []
        for name, dice, hd95 in zip(
            self.foreground_names, values["dice"], values["hd95"], strict=True
        ):
            self.log(f"{stage}/dice_{name}", dice)
            self.log(f"{stage}/hd95_{name}", hd95)
            summary.append(f"{name} {float(dice):.3f}")
        mean = values["dice"].nanmean()
        self.log(f"{stage}/dice", mean, prog_bar=stage == "val")
        if not self.trainer.sanity_checking:
            log.info("epoch %d: %s/dice %.3f (%s)", self.current_epoch, stage, float(mean),
                     ", ".join(summary))  # fmt: skip
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's per-class Dice/HD95 and reset the validation metrics."""
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Log the epoch's per-class Dice/HD95 and reset the test metrics."""
        self._log_epoch_metrics("test")

    def _log_overlay(self, batch: dict[str, Any], pred: Tensor, batch_idx: int) -> None:
        """Draw PET | reference | prediction through the tumour.

        To W&B when a WandbLogger is attached, else as a PNG in the first logger's folder;
        nothing without a logger.
        """
        pet = batch["pet"] if "pet" in batch else batch["image"][:, :1]
        participant = str(batch["participant_id"][0])
        picture = overlay_panels(
            pet[0, 0].detach().cpu().numpy(),
            batch["label"][0, 0].cpu().numpy(),
            pred.numpy(),
        )
        wandb_loggers = [lg for lg in self.loggers if isinstance(lg, WandbLogger)]
        for logger in wandb_loggers:
            logger.log_image(
                key=f"val/overlay_{batch_idx}", images=[picture], caption=[participant]
            )
        if not wandb_loggers:
            # The first logger's folder, as trainer.log_dir gives it (without its collective
            # broadcast, which would stall other ranks: only rank zero draws).
            logger = self.loggers[0]
            folder = getattr(logger, "log_dir", None) or logger.save_dir
            if folder:  # never the working directory
                _save_png(picture, Path(folder), self.current_epoch, participant)

    def warmup_factor(self, step: int) -> float:
        """Learning-rate factor of optimiser step ``step`` (from 0) under the linear warm-up."""
        warmup = self.hparams.warmup_steps
        return 1.0 if step >= warmup else (step + 1) / warmup

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """One optimiser step, its learning rates scaled by :meth:`warmup_factor`.

        The scaled rates are put back after the step, so the epoch scheduler's own state never
        sees the warm-up and the two compose by multiplication.
        """
        factor = self.warmup_factor(self.trainer.global_step)
        if factor == 1.0:
            optimizer.step(closure=optimizer_closure)
            return
        scheduled = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] *= factor
        try:
            optimizer.step(closure=optimizer_closure)
        finally:
            for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
                group["lr"] = lr

    def configure_optimizers(self) -> dict[str, Any]:
        """Optimiser over two groups, ``encoder`` (lr × factor) and ``decoder+head`` (lr).

        Every parameter is in the optimiser from the start: parameters frozen by
        :class:`fdopa.models.transfer.FreezeSchedule` have no gradient and are skipped by the
        optimiser (weight decay included) until they are released.
        """
        encoder = getattr(self.net, "encoder", None)
        encoder_params = list(encoder.parameters()) if isinstance(encoder, nn.Module) else []
        in_encoder = {id(p) for p in encoder_params}
        rest = [p for p in self.parameters() if id(p) not in in_encoder]
        groups = [
            {"params": params, "name": name}
            for name, params in (("encoder", encoder_params), ("decoder+head", rest))
            if params
        ]
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:
            if group["name"] == "encoder":
                group["lr"] *= self.hparams.encoder_lr_factor
        log.info(
            "optimiser %s: %s",
            type(optimizer).__name__,
            ", ".join(f"{g['name']} lr={g['lr']:.3g}" for g in optimizer.param_groups),
        )
        config: dict[str, Any] = {"optimizer": optimizer}
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
            schedule: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                schedule["monitor"] = "val/loss"
            config["lr_scheduler"] = schedule
        return config


def _save_png(picture: np.ndarray, log_dir: Path, epoch: int, participant: str) -> Path:
    """Write an overlay picture to ``<log_dir>/overlays/epoch<NNN>_<participant>.png``."""
    import matplotlib.image

    folder = log_dir / "overlays"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"epoch{epoch:03d}_{participant}.png"
    matplotlib.image.imsave(path, picture)
    return path
