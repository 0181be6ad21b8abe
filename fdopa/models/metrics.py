"""Segmentation metrics accumulated per epoch: per-class Dice and the 95th-percentile Hausdorff.

torchmetrics 1.9 offers ``DiceScore`` (used as is) but its ``HausdorffDistance`` has no
percentile and averages over classes, so :class:`HausdorffDistance95` wraps MONAI's
``compute_hausdorff_distance(percentile=95)`` in a torchmetrics ``Metric``: one value per
volume and class, kept until ``reset()``, averaged over volumes by ``compute()``.

Empty classes (both metrics, per volume and class):

* absent from reference and prediction: undefined, stored as NaN and skipped by the epoch
  mean; a class absent from every volume of the epoch comes out NaN;
* present in only one of them: Dice 0; HD95 is the diagonal of the volume in mm (the largest
  distance the grid allows), so a missed or hallucinated tumour is penalised, not skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.metrics import compute_hausdorff_distance
from nibabel.affines import voxel_sizes
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.segmentation import DiceScore
from torchmetrics.utilities.data import dim_zero_cat


def voxel_spacing(affine: Tensor) -> tuple[float, ...]:
    """Voxel sizes in mm from a ``(4, 4)`` affine tensor (:func:`nibabel.affines.voxel_sizes`)."""
    return tuple(float(v) for v in voxel_sizes(affine.detach().double().cpu().numpy()))


class HausdorffDistance95(Metric):
    """Per-class 95th-percentile symmetric Hausdorff distance in mm, averaged over volumes.

    Args:
        num_classes: Classes of the label map, background (0) included.
        include_background: Whether to report class 0 too.
        percentile: Percentile of the surface distances (95 for HD95).
        kwargs: Passed to ``torchmetrics.Metric``.

    Examples:
        >>> metric = HausdorffDistance95(num_classes=3)
        >>> target = torch.zeros(1, 8, 8, 8, dtype=torch.long)
        >>> target[0, 1:4, 1:4, 1:4] = 1
        >>> target[0, 5:8, 5:8, 5:8] = 2
        >>> preds = target.clone()
        >>> preds[0, 4, 1:4, 1:4] = 1  # class 1 one 2 mm voxel too thick along x
        >>> metric.update(preds, target, spacing=(2.0, 2.0, 2.0))
        >>> metric.compute()  # mm, per class (1, 2)
        tensor([2., 0.])
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    values: list[Tensor]

    def __init__(
        self,
        num_classes: int,
        include_background: bool = False,
        percentile: float = 95.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.first_class = 0 if include_background else 1
        self.percentile = percentile
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, spacing: Sequence[float] | None = None) -> None:
        """Add one row of per-class distances per volume.

        Args:
            preds: Predicted labels ``(B, X, Y, Z)``.
            target: Reference labels ``(B, X, Y, Z)``.
            spacing: Voxel size in mm (isotropic 1 mm when ``None``).
        """
        spacing = tuple(spacing) if spacing is not None else (1.0,) * (preds.ndim - 1)
        extent = torch.tensor([(n - 1) * s for n, s in zip(preds.shape[1:], spacing, strict=True)])
        diagonal = float(torch.linalg.norm(extent))
        preds, target = preds.detach().cpu(), target.detach().cpu()
        rows = []
        for p, t in zip(preds, target, strict=True):
            row = []
            for c in range(self.first_class, self.num_classes):
                p_c, t_c = p == c, t == c
                has_p, has_t = bool(p_c.any()), bool(t_c.any())
                if not (has_p or has_t):
                    row.append(float("nan"))
                elif not (has_p and has_t):
                    row.append(diagonal)
                else:
                    hd = compute_hausdorff_distance(
                        p_c[None, None],
                        t_c[None, None],
                        include_background=True,
                        percentile=self.percentile,
                        spacing=list(spacing),
                    )
                    row.append(float(hd))
            rows.append(row)
        self.values.append(torch.tensor(rows, dtype=torch.float32, device=self.device))

    def compute(self) -> Tensor:
        """Mean over volumes per class, NaN (undefined) entries skipped."""
        return dim_zero_cat(self.values).nanmean(dim=0)


def segmentation_metrics(num_classes: int) -> MetricCollection:
    """One stage's metrics: foreground Dice per class (``dice``) and HD95 per class (``hd95``).

    Both take index label maps ``(B, X, Y, Z)``; ``hd95`` also takes ``spacing``. Each returns a
    tensor with one value per foreground class (classes ``1 … num_classes - 1``).
    """
    return MetricCollection(
        {
            "dice": DiceScore(
                num_classes=num_classes,
                include_background=False,
                average="none",
                input_format="index",
            ),
            "hd95": HausdorffDistance95(num_classes=num_classes),
        },
        compute_groups=False,
    )
