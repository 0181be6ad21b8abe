"""Whole-volume sliding-window inference with TorchIO's ``GridSampler`` and ``GridAggregator``.

Validation and test volumes come whole and in any size; the network sees fixed patches. A
volume smaller than the patch along an axis is zero-padded symmetrically (as MONAI's
``sliding_window_inference`` does) and the logits are cropped back to the original grid; sizes
that are not multiples of the patch are covered by TorchIO's last, border-aligned patch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
import torchio as tio
from torch import Tensor, nn

OverlapMode = Literal["hann", "average"]


def patch_overlap(patch_size: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Convert a fractional overlap into TorchIO's even per-axis overlap in voxels.

    Args:
        patch_size: Patch size per spatial axis.
        overlap: Fraction of the patch shared by neighbouring patches, in ``[0, 1)``.

    Returns:
        The even overlap per axis, strictly smaller than the patch.

    Raises:
        ValueError: If ``overlap`` is outside ``[0, 1)``.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"model.sw_overlap: must lie in [0, 1), got {overlap}")
    return tuple(min(2 * round(overlap * size / 2), size - 2 + size % 2) for size in patch_size)


def _symmetric_padding(shape: Sequence[int], patch_size: Sequence[int]) -> list[int]:
    """``F.pad`` widths (last axis first) that grow every axis to at least the patch."""
    widths: list[int] = []
    for size, patch in reversed(list(zip(shape, patch_size, strict=True))):
        missing = max(patch - size, 0)
        widths += [missing // 2, missing - missing // 2]
    return widths


def predict_volume(
    net: nn.Module,
    image: Tensor,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 4,
    overlap_mode: OverlapMode = "hann",
) -> Tensor:
    """Predict the logits of a whole volume patch by patch.

    The network is run under ``torch.no_grad()`` in whatever train/eval mode the caller left
    it in (Lightning puts it in eval mode for validation and test). Patches go to the device of
    the network's parameters; the aggregation happens on the CPU and the result is returned on
    ``image``'s device as float32.

    Args:
        net: Maps ``(B, C, *patch_size)`` to logits ``(B, C_out, *patch_size)``.
        image: One volume ``(C, X, Y, Z)`` of any spatial size.
        patch_size: Patch size ``(px, py, pz)``; each must suit the network (multiples of 32
            for a depth-5 U-Net).
        overlap: Fraction of a patch shared with its neighbours, in ``[0, 1)``.
        batch_size: Patches per forward pass.
        overlap_mode: ``"hann"`` (Hann-window weighted blending) or ``"average"``.

    Returns:
        Logits ``(C_out, X, Y, Z)`` on the original grid.

    Raises:
        ValueError: For a non-4D image, a patch of the wrong length, a bad overlap or mode.

    Examples:
        >>> net = torch.nn.Conv3d(1, 4, kernel_size=1)
        >>> predict_volume(net, torch.randn(1, 40, 30, 20), (32, 32, 32)).shape
        torch.Size([4, 40, 30, 20])
    """
    if image.ndim != 4:
        raise ValueError(f"image: expected (C, X, Y, Z), got shape {tuple(image.shape)}")
    patch = tuple(int(size) for size in patch_size)
    if len(patch) != 3:
        raise ValueError(f"model.sw_patch_size: expected 3 sizes, got {patch_size}")
    if overlap_mode not in ("hann", "average"):
        raise ValueError(f"overlap_mode: expected 'hann' or 'average', got {overlap_mode!r}")
    if batch_size < 1:
        raise ValueError(f"model.sw_batch_size: must be >= 1, got {batch_size}")
    shape = tuple(image.shape[1:])
    padding = _symmetric_padding(shape, patch)
    padded = F.pad(image.detach().float().cpu(), padding)
    subject = tio.Subject(image=tio.ScalarImage(tensor=padded))
    sampler = tio.GridSampler(subject, patch, patch_overlap(patch, overlap))
    aggregator = tio.GridAggregator(sampler, overlap_mode=overlap_mode)
    parameter = next(net.parameters(), None)
    device = image.device if parameter is None else parameter.device
    with torch.no_grad():
        for start in range(0, len(sampler), batch_size):
            patches = [sampler[i] for i in range(start, min(start + batch_size, len(sampler)))]
            batch = torch.stack([p["image"].data for p in patches]).to(device)
            locations = torch.stack([p[tio.LOCATION] for p in patches])
            aggregator.add_batch(net(batch).float(), locations)
    logits = aggregator.get_output_tensor()
    # Undo the padding: F.pad lists (before, after) pairs from the last axis backwards.
    starts = padding[::2][::-1]
    crop = tuple(slice(s, s + n) for s, n in zip(starts, shape, strict=True))
    return logits[(slice(None), *crop)].to(image.device)
