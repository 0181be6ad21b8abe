"""Whole-volume sliding-window inference by direct tensor slicing and a precomputed weight window.

Validation and test volumes come whole and in any size; the network sees fixed patches. A
volume smaller than the patch along an axis is zero-padded symmetrically (as MONAI's
``sliding_window_inference`` does) and the logits are cropped back to the original grid. Patches
start every ``patch − overlap`` voxels, the last one aligned with the far border (the positions
of MONAI's and TorchIO's samplers for even patch sizes); each patch's logits are accumulated
with a fixed weight window (Hann, Gaussian or flat) and the sum divided by the summed weights.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OverlapMode = Literal["hann", "gaussian", "average"]
OVERLAP_MODES: tuple[str, ...] = ("hann", "gaussian", "average")
GAUSSIAN_SIGMA_SCALE = 0.125
"""Gaussian blending: sigma as a fraction of the patch (MONAI's default ``sigma_scale``)."""


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


def _window_1d(size: int, mode: str) -> Tensor:
    """One axis of the blending window (float64)."""
    if mode == "hann":  # TorchIO's: a Hann window of size + 2 without its zero ends
        return torch.hann_window(size + 2, periodic=False, dtype=torch.float64)[1:-1]
    if mode == "gaussian":  # MONAI's compute_importance_map
        x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
        return torch.exp(-(x**2) / (2 * (GAUSSIAN_SIGMA_SCALE * size) ** 2))
    return torch.ones(size, dtype=torch.float64)


@functools.lru_cache(maxsize=8)
def blending_window(patch_size: tuple[int, ...], mode: str) -> Tensor:
    """Weight of each patch voxel when overlapping patches are blended (float32, > 0).

    Args:
        patch_size: Patch size ``(px, py, pz)``.
        mode: ``"hann"``, ``"gaussian"`` (sigma = :data:`GAUSSIAN_SIGMA_SCALE` × patch, floored
            at 1e-3 as in MONAI) or ``"average"`` (flat).

    Returns:
        The ``patch_size`` window; cached, do not modify it.
    """
    x, y, z = (_window_1d(size, mode) for size in patch_size)
    window = (x[:, None, None] * y[None, :, None] * z[None, None, :]).float()
    if mode == "gaussian":
        window = window.clamp(min=max(float(window.min()), 1e-3))
    return window


def patch_starts(size: int, patch: int, step: int) -> list[int]:
    """Start voxels of the patches along one axis: every ``step``, the last at the far border."""
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def predict_volume(
    net: nn.Module,
    image: Tensor,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 4,
    overlap_mode: OverlapMode = "hann",
) -> Tensor:
    """Predict the logits of a whole volume patch by patch.

    The network is run under ``torch.inference_mode()`` in whatever train/eval mode the caller left
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
        overlap_mode: Blending of overlapping patches: ``"hann"`` (TorchIO's Hann window),
            ``"gaussian"`` (MONAI's Gaussian importance map) or ``"average"`` (flat).

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
    if overlap_mode not in OVERLAP_MODES:
        raise ValueError(f"overlap_mode: expected one of {OVERLAP_MODES}, got {overlap_mode!r}")
    if batch_size < 1:
        raise ValueError(f"model.sw_batch_size: must be >= 1, got {batch_size}")
    shape = tuple(image.shape[1:])
    padding = _symmetric_padding(shape, patch)
    padded = F.pad(image.detach().float().cpu(), padding)
    steps = [
        size - overlap for size, overlap in zip(patch, patch_overlap(patch, overlap), strict=True)
    ]
    grids = [patch_starts(n, p, s) for n, p, s in zip(padded.shape[1:], patch, steps, strict=True)]
    corners = [(x, y, z) for x in grids[0] for y in grids[1] for z in grids[2]]
    window = blending_window(patch, overlap_mode)
    parameter = next(net.parameters(), None)
    device = image.device if parameter is None else parameter.device
    logits = weights = None
    with torch.inference_mode():
        for first in range(0, len(corners), batch_size):
            boxes = [
                tuple(slice(c, c + p) for c, p in zip(corner, patch, strict=True))
                for corner in corners[first : first + batch_size]
            ]
            batch = torch.stack([padded[(slice(None), *box)] for box in boxes]).to(device)
            output = net(batch).float().cpu()
            if logits is None:
                logits = torch.zeros((output.shape[1], *padded.shape[1:]))
                weights = torch.zeros(padded.shape[1:])
            for patch_logits, box in zip(output, boxes, strict=True):
                logits[(slice(None), *box)].addcmul_(patch_logits, window)
                weights[box] += window
        logits /= weights
    # Undo the padding: F.pad lists (before, after) pairs from the last axis backwards.
    starts = padding[::2][::-1]
    crop = tuple(slice(s, s + n) for s, n in zip(starts, shape, strict=True))
    return logits[(slice(None), *crop)].clone().to(image.device)
