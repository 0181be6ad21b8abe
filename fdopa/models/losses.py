"""Losses that MONAI does not offer in the form the segmentation contract needs.

The contract: logits ``(B, C, X, Y, Z)`` and integer labels ``(B, 1, X, Y, Z)``. Dice + CE and
Tversky are MONAI's own classes, configured in ``conf/loss/`` with ``to_onehot_y: true,
softmax: true``. Dice + focal is not: ``monai.losses.DiceFocalLoss`` puts a softmax on its Dice
term but a *sigmoid* focal term on the same logits (its ``FocalLoss`` keeps
``use_softmax=False``), and ``FocalLoss(use_softmax=True, include_background=False)`` would take
the softmax over the foreground channels alone. :class:`SoftmaxDiceFocalLoss` keeps both terms
on the one softmax over all classes.
"""

from __future__ import annotations

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
