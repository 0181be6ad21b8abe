"""Transfer learning: partial loading of a pretraining checkpoint and encoder freezing schedules.

``load_pretrained`` copies every shape-matched tensor of a Lightning checkpoint into a fresh
network, so a head with another class count (or a first convolution with another channel count)
keeps its new initialisation. ``FreezeSchedule`` freezes the encoder and releases it at once
(``freeze_encoder``) or stage by stage from the deepest (``gradual``); BatchNorm layers of frozen
parts are held in eval mode so that their running statistics stay those of the checkpoint.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fdopa.config import missing_pretrained

log = logging.getLogger(__name__)

ScheduleMode = Literal["none", "freeze_encoder", "gradual"]
SCHEDULES: tuple[str, ...] = ("none", "freeze_encoder", "gradual")


@dataclass
class TransferReport:
    """What :func:`load_pretrained` did, key by key (network keys, without the prefix).

    Attributes:
        loaded: Keys copied from the checkpoint.
        skipped_shape: Keys present in both whose shapes differ (checkpoint shape, network
            shape); these keep the network's fresh initialisation.
        missing: Network keys absent from the checkpoint (fresh initialisation).
        unexpected: Checkpoint keys the network does not have (ignored).
    """

    loaded: list[str] = field(default_factory=list)
    skipped_shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


class CheckpointError(ValueError):
    """A file given as a checkpoint that is not a Lightning checkpoint fdopa can read."""


def pet_scaling(normalisation: str, suv_scale: float) -> dict[str, Any]:
    """The PET intensity scaling of a data config, as a checkpoint records it.

    Args:
        normalisation: ``data.normalisation``.
        suv_scale: ``data.suv_scale`` (recorded only where it applies, for ``suv``).

    Returns:
        ``{"normalisation": …}``, with ``"suv_scale"`` for ``suv``.
    """
    scaling: dict[str, Any] = {"normalisation": str(normalisation)}
    if normalisation == "suv":
        scaling["suv_scale"] = float(suv_scale)
    return scaling


def _check_scaling(content: dict[str, Any], path: Path, expected: Mapping[str, Any]) -> None:
    """Refuse a checkpoint trained on PET scaled otherwise than ``expected``."""
    saved = (content.get("hyper_parameters") or {}).get("pet_scaling")
    if saved is None:
        log.warning(
            "%s records no PET normalisation (written before checkpoints recorded it): make sure "
            "it was pretrained with %s", path, _as_keys(expected)
        )  # fmt: skip
    elif dict(saved) != dict(expected):
        raise ValueError(
            f"finetune.pretrained: {path} was pretrained with {_as_keys(saved)}, this run uses "
            f"{_as_keys(expected)}; pretrain again with this run's data settings (python "
            "train.py +experiment=pretrain) or set the data keys to the checkpoint's"
        )


def _as_keys(scaling: Mapping[str, Any]) -> str:
    return ", ".join(f"data.{key}={value}" for key, value in scaling.items())


def read_checkpoint(path: str | Path, what: str = "--ckpt") -> dict[str, Any]:
    """Read a Lightning checkpoint safely (``weights_only=True``), or say what is wrong.

    Args:
        path: The ``.ckpt`` file.
        what: The option or config key that named it (``--ckpt``, ``finetune.pretrained``).

    Returns:
        The checkpoint's content (a dict holding ``state_dict``).

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        CheckpointError: If the file is not a readable Lightning checkpoint: truncated, corrupted,
            not a torch file, or holding Python objects other than weights (fdopa never
            unpickles those).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    hint = f"point {what} at a .ckpt written by train.py (RUN_DIR/checkpoints/*.ckpt)"
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{what} {path}: not a Lightning checkpoint (not readable as weights only: corrupted,"
            f" not a torch file, or holding Python objects other than weights, which fdopa never"
            f" loads); {hint}"
        ) from err
    except Exception as err:  # torch raises KeyError, EOFError, RuntimeError, ... on bad files
        raise CheckpointError(
            f"{what} {path}: not a Lightning checkpoint (unreadable: truncated, corrupted or not "
            f"a torch file); {hint}"
        ) from err
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise CheckpointError(f"{what} {path}: not a Lightning checkpoint (no state_dict); {hint}")
    return content


def require_checkpoint(checkpoint: str | Path) -> Path:
    """The pretraining checkpoint's path, or an error that says how to make one.

    Raises:
        FileNotFoundError: If ``checkpoint`` is not a file.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(missing_pretrained(path))
    return path


def load_pretrained(
    net: nn.Module,
    checkpoint: str | Path,
    *,
    prefix: str = "net.",
    scaling: Mapping[str, Any] | None = None,
) -> TransferReport:
    """Load the shape-matched weights of a Lightning checkpoint into ``net``.

    Args:
        net: The new network (e.g. a U-Net with another class count).
        checkpoint: A Lightning ``.ckpt`` file whose ``state_dict`` holds the network under
            ``prefix`` (``SegmentationModule`` stores it as ``net.*``).
        prefix: Key prefix of the network inside the checkpoint's ``state_dict``.
        scaling: This run's :func:`pet_scaling`; the checkpoint must have been trained with
            the same (a checkpoint that records none is loaded with a warning). None: not
            checked.

    Returns:
        The :class:`TransferReport`; it is also logged.

    Raises:
        FileNotFoundError: If the checkpoint does not exist (the message says how to make one).
        CheckpointError: If the file is no Lightning checkpoint (:func:`read_checkpoint`).
        ValueError: If it holds no key under ``prefix``, no tensor that fits the encoder
            of ``net`` (a checkpoint of another encoder: nothing would be transferred), or
            it was trained on PET scaled otherwise than ``scaling``.
    """
    path = require_checkpoint(checkpoint)
    content = read_checkpoint(path, "finetune.pretrained")
    if scaling is not None:
        _check_scaling(content, path, scaling)
    source = {k[len(prefix) :]: v for k, v in content["state_dict"].items() if k.startswith(prefix)}
    if not source:
        raise ValueError(f"{path}: no state_dict key starts with {prefix!r}")
    target = net.state_dict()
    report = TransferReport(
        missing=[k for k in target if k not in source],
        unexpected=[k for k in source if k not in target],
    )
    matched = {}
    for key, tensor in source.items():
        if key not in target:
            continue
        if tensor.shape == target[key].shape:
            matched[key] = tensor
            report.loaded.append(key)
        else:
            report.skipped_shape[key] = (tuple(tensor.shape), tuple(target[key].shape))
    has_encoder = any(k.startswith("encoder.") for k in target)
    if has_encoder and not any(k.startswith("encoder.") for k in report.loaded):
        raise ValueError(
            f"finetune.pretrained: {path}: none of its tensors fits the encoder of "
            f"model.net.encoder_name (it was made with another encoder); pretrain again with this "
            "model (python train.py +experiment=pretrain) or set model.net.encoder_name to the "
            "checkpoint's"
        )
    net.load_state_dict(matched, strict=False)
    log.info("%s: loaded %d of %d tensors", path, len(report.loaded), len(target))
    for key, (old, new) in report.skipped_shape.items():
        log.warning("not loaded (shape %s in checkpoint, %s in network): %s", old, new, key)
    if report.missing:
        log.warning("not in checkpoint (kept fresh): %s", ", ".join(report.missing))
    if report.unexpected:
        log.warning("in checkpoint only (ignored): %s", ", ".join(report.unexpected))
    return report


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def encoder_stages(encoder: nn.Module) -> list[list[nn.Module]]:
    """The encoder's stages, shallowest first, each as the modules that hold its parameters.

    Uses the smp encoder's ``get_stages()`` (resnet: [conv1, bn1], [layer1], [layer2],
    [layer3], [layer4]), unwrapping the containers it builds and dropping parameter-free
    modules; encoders without it fall back to their children in order, one stage each.
    Parameters that no stage covers (efficientnet's unused ``_conv_head``/``_bn1``) are
    attached to the deepest stage, so that the stages together hold every encoder parameter
    exactly once.

    Args:
        encoder: The encoder (``unet.encoder``).

    Returns:
        One list of modules per stage.
    """
    get_stages = getattr(encoder, "get_stages", None)
    stages = list(get_stages()) if callable(get_stages) else list(encoder.children())
    own = {id(module) for module in encoder.modules()}
    result: list[list[nn.Module]] = []
    for stage in stages:
        # get_stages() wraps existing modules in new containers: unwrap those.
        parts = [stage] if id(stage) in own else list(stage.children())
        parts = [part for part in parts if _has_parameters(part)]
        if parts:
            result.append(parts)
    covered = {id(p) for parts in result for part in parts for p in part.parameters()}
    leftover = {
        name.rpartition(".")[0] for name, p in encoder.named_parameters() if id(p) not in covered
    }
    if leftover and result:
        result[-1].extend(encoder.get_submodule(name) for name in sorted(leftover))
    elif leftover:
        result.append([encoder])
    return result


def count_trainable(module: nn.Module) -> int:
    """Number of parameter elements with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class FreezeSchedule(L.Callback):
    """Freeze the encoder of ``pl_module.net`` and release it on a schedule of epochs.

    * ``none``: everything trains from the first epoch.
    * ``freeze_encoder``: the whole encoder is frozen for epochs ``0 … unfreeze_epoch - 1``.
    * ``gradual``: the encoder is frozen before ``unfreeze_epoch``; then its stages
      (:func:`encoder_stages`) are released one at a time from the deepest, a new one every
      ``step_epochs`` epochs (stage *k* from the deepest at ``unfreeze_epoch + k·step_epochs``).

    Frozen parameters get ``requires_grad = False`` and their BatchNorm layers eval mode
    (re-applied before every training batch, since Lightning switches the model to train mode).
    The state follows ``trainer.current_epoch`` alone, so resuming a run restores it. The
    trainable-parameter count is logged as ``train/trainable_params`` every epoch and with
    ``logging`` whenever it changes; :attr:`history` maps epoch → count.

    Args:
        mode: ``none``, ``freeze_encoder`` or ``gradual``.
        unfreeze_epoch: First epoch with (part of) the encoder trainable.
        step_epochs: Epochs between two stage releases (``gradual``).
        encoder: Attribute path of the encoder inside the LightningModule.

    Raises:
        ValueError: For an unknown mode or negative epochs.
    """

    def __init__(
        self,
        mode: ScheduleMode = "none",
        unfreeze_epoch: int = 0,
        step_epochs: int = 1,
        encoder: str = "net.encoder",
    ) -> None:
        if mode not in SCHEDULES:
            raise ValueError(f"finetune.schedule: {mode!r} is not one of {', '.join(SCHEDULES)}")
        if unfreeze_epoch < 0 or step_epochs < 1:
            raise ValueError(
                "finetune.unfreeze_epoch must be >= 0 and finetune.step_epochs >= 1, got "
                f"{unfreeze_epoch} and {step_epochs}"
            )
        self.mode = mode
        self.unfreeze_epoch = unfreeze_epoch
        self.step_epochs = step_epochs
        self.encoder = encoder
        self.history: dict[int, int] = {}
        self._frozen: list[nn.Module] = []
        self._last_count: int | None = None

    def frozen_stage_count(self, epoch: int, n_stages: int) -> int:
        """How many encoder stages (from the shallowest) are frozen during ``epoch``."""
        if self.mode == "none":
            return 0
        if epoch < self.unfreeze_epoch:
            return n_stages
        if self.mode == "freeze_encoder":
            return 0
        released = 1 + (epoch - self.unfreeze_epoch) // self.step_epochs
        return max(n_stages - released, 0)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Apply the epoch's freezing and log the trainable-parameter count."""
        n_frozen = 0
        if self.mode != "none":  # "none" leaves the network (any network) untouched
            encoder = pl_module.get_submodule(self.encoder)
            stages = encoder_stages(encoder)
            n_frozen = self.frozen_stage_count(trainer.current_epoch, len(stages))
            encoder.requires_grad_(True)
            self._frozen = [m for parts in stages[:n_frozen] for m in parts]
            for module in self._frozen:
                module.requires_grad_(False)
            self._hold_batchnorm(encoder)
        count = count_trainable(pl_module)
        if count != self._last_count:
            log.info(
                "epoch %d: %d trainable parameters (%d encoder stages frozen, schedule %s)",
                trainer.current_epoch,
                count,
                n_frozen,
                self.mode,
            )
        self.history[trainer.current_epoch] = self._last_count = count
        pl_module.log("train/trainable_params", float(count), on_step=False, on_epoch=True)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Keep frozen BatchNorm layers in eval mode (train mode may have been restored)."""
        if self._frozen:
            self._hold_batchnorm(pl_module.get_submodule(self.encoder))

    def _hold_batchnorm(self, encoder: nn.Module) -> None:
        frozen = {id(m) for part in self._frozen for m in part.modules()}
        for module in encoder.modules():
            if isinstance(module, _BatchNorm):
                module.train(id(module) not in frozen and encoder.training)
