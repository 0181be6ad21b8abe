"""Losses that MONAI does not offer in the form the segmentation contract needs.

The contract: logits ``(B, C, X, Y, Z)`` and integer labels ``(B, 1, X, Y, Z)``. Dice + CE and
Tversky are MONAI's own classes, configured in ``conf/loss/`` with ``to_onehot_y: true,
softmax: true``. Dice + focal is not: ``monai.losses.DiceFocalLoss`` puts a softmax on its Dice
term but a *sigmoid* focal term on the same logits (its ``FocalLoss`` keeps
``use_softmax=False``), and ``FocalLoss(use_softmax=True, include_background=False)`` would take
the softmax over the foreground channels alone. :class:`SoftmaxDiceFocalLoss` keeps both terms
on the one softmax over all classes. MONAI's Dice is pooled over the batch for every class or for
none; :class:`MixedDiceCELoss` takes chosen classes' Dice per patch (the tumour's, in
fine-tuning) and the others' pooled.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, FocalLoss
from torch import Tensor, nn


class SoftmaxDiceFocalLoss(nn.Module):
    """Soft Dice plus focal loss, both on the softmax of the logits.

    The Dice term is MONAI's ``DiceLoss`` (optionally without the background class); the focal
    term is MONAI's softmax focal loss ``-(1 - p_t)^gamma log p_t`` over all classes, averaged
    over batch, classes and voxels as MONAI does.

    Args:
        include_background: Whether the Dice term includes class 0.
        batch: Dice over the whole batch (robust to patches without some class) instead of
            per sample.
        gamma: Focusing parameter; 0 gives cross-entropy divided by the number of classes.
        lambda_dice: Weight of the Dice term.
        lambda_focal: Weight of the focal term.
        smooth_nr: Dice numerator smoothing.
        smooth_dr: Dice denominator smoothing.

    Examples:
        >>> import torch
        >>> loss = SoftmaxDiceFocalLoss()
        >>> loss(torch.randn(2, 4, 8, 8, 8), torch.randint(0, 4, (2, 1, 8, 8, 8))).ndim
        0
    """

    def __init__(
        self,
        include_background: bool = False,
        batch: bool = True,
        gamma: float = 2.0,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        if lambda_dice < 0 or lambda_focal < 0:
            raise ValueError(
                f"loss.lambda_dice / loss.lambda_focal must be >= 0, got {lambda_dice}, "
                f"{lambda_focal}"
            )
        self.dice = DiceLoss(
            include_background=include_background,
            to_onehot_y=True,
            softmax=True,
            batch=batch,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
        )
        self.focal = FocalLoss(
            include_background=True, to_onehot_y=True, gamma=gamma, use_softmax=True
        )
        self.lambda_dice = lambda_dice
        self.lambda_focal = lambda_focal

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of logits ``(B, C, ...)`` against integer labels ``(B, 1, ...)``."""
        return self.lambda_dice * self.dice(logits, target) + self.lambda_focal * self.focal(
            logits, target
        )


class MixedDiceCELoss(nn.Module):
    """Soft Dice plus cross-entropy, each class's Dice pooled over the batch or per patch.

    A Dice pooled over the batch (MONAI's ``batch=True``) weighs a class by its voxels in the
    whole batch: a 1 mL tumour beside a 40 mL one in the same batch counts for little, and a
    small low-uptake tumour can be given up. A Dice per patch (``batch=False``) gives every
    patch's tumour the same weight whatever its size, but in each patch without a class it
    drives that class to nothing, and for the striatum that measured worse
    (experiments/README.md).
    This loss takes the Dice of the classes in ``per_sample`` per patch (averaged over the
    batch) and that of the others pooled over the batch, then averages over the classes as
    MONAI's ``DiceCELoss`` does; with ``per_sample`` empty it is ``DiceCELoss(batch=True)``,
    with every class in it ``DiceCELoss(batch=False)``.

    Args:
        per_sample: Class values whose Dice is taken per patch.
        include_background: Whether class 0 has a Dice term (cross-entropy sees every class).
        lambda_dice: Weight of the Dice term.
        lambda_ce: Weight of the cross-entropy term.
        smooth_nr: Dice numerator smoothing.
        smooth_dr: Dice denominator smoothing.

    Raises:
        ValueError: If a weight or a class value is negative (at construction), or a class
            value is not among the output's classes (when called).

    Examples:
        >>> import torch
        >>> loss = MixedDiceCELoss(per_sample=[3])
        >>> loss(torch.randn(2, 4, 8, 8, 8), torch.randint(0, 4, (2, 1, 8, 8, 8))).ndim
        0
    """

    def __init__(
        self,
        per_sample: Sequence[int] = (),
        include_background: bool = False,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        if lambda_dice < 0 or lambda_ce < 0:
            raise ValueError(
                f"loss.lambda_dice / loss.lambda_ce must be >= 0, got {lambda_dice}, {lambda_ce}"
            )
        self.per_sample = tuple(int(c) for c in per_sample)
        if any(c < 0 for c in self.per_sample):
            raise ValueError(f"loss.per_sample: class values must be >= 0, got {per_sample}")
        self.first = 0 if include_background else 1
        self.lambda_dice, self.lambda_ce = lambda_dice, lambda_ce
        self.smooth_nr, self.smooth_dr = smooth_nr, smooth_dr

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of logits ``(B, C, ...)`` against integer labels ``(B, 1, ...)``."""
        if any(c >= logits.shape[1] for c in self.per_sample):
            raise ValueError(
                f"loss.per_sample: {list(self.per_sample)} names a class beyond the "
                f"{logits.shape[1]} of the network's output"
            )
        labels = target[:, 0].long()
        probabilities = torch.softmax(logits, dim=1)
        onehot = torch.movedim(F.one_hot(labels, logits.shape[1]), -1, 1).to(logits.dtype)
        space = tuple(range(2, logits.ndim))
        overlap = (probabilities * onehot).sum(space)  # (B, C)
        total = (probabilities + onehot).sum(space)
        pooled = (2 * overlap.sum(0) + self.smooth_nr) / (total.sum(0) + self.smooth_dr)
        each = ((2 * overlap + self.smooth_nr) / (total + self.smooth_dr)).mean(0)
        per_sample = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        per_sample[list(self.per_sample)] = True
        dice = torch.where(per_sample, each, pooled)[self.first :]
        cross_entropy = F.cross_entropy(logits, labels)
        return self.lambda_dice * (1 - dice.mean()) + self.lambda_ce * cross_entropy
