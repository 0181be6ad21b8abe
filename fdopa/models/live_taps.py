"""3D convolutions that leave out the kernel taps which only ever meet zero padding.

On the 4 mm grid a 32³ training patch reaches the U-Net's deepest encoder stage as 1³ voxels:
there a 3×3×3 convolution padded by one voxel multiplies 26 of its 27 taps by padding zeros,
yet oneDNN computes all of them, forward and backward (the weight gradient of a 512-channel
layer holds 7 M numbers). :class:`LiveTapConv3d` slices the kernel to the taps that can reach
the input and pads only what those need: the same output and the same gradients (zero for the
dead taps, as before); a resnet18 training step of 4 × 32³ patches takes 0.44 s against 0.51 s
on two threads (``benchmarks/encoder_speed.py``).
The parameters and the state dict are those of :class:`torch.nn.Conv3d`; a traced or scripted
network runs the plain convolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _outputs(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output voxels of a convolution along one axis (dilation 1)."""
    return (size + 2 * padding - kernel) // stride + 1


def live_tap_range(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """The kernel taps that can reach the input along one axis (dilation 1, zero padding).

    Output ``o`` reads input ``o * stride - padding + t`` with tap ``t``; a tap is live when
    some output reads a real voxel with it. The range holds every live tap, and at stride 1
    only those (a larger stride may leave dead taps inside it, which cost time, not accuracy).

    Args:
        size: Input voxels along the axis.
        kernel: Kernel taps along the axis.
        stride: Stride along the axis.
        padding: Zero padding on each side.

    Returns:
        ``(first, last)`` tap of the range, inclusive.
    """
    first = max(0, padding - (_outputs(size, kernel, stride, padding) - 1) * stride)
    last = min(kernel - 1, padding + size - 1)
    return first, last


class LiveTapConv3d(nn.Conv3d):
    """:class:`torch.nn.Conv3d` that convolves with the live taps only (see the module doc)."""

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return super()._conv_forward(input, weight, bias)
        axes = zip(input.shape[-3:], self.kernel_size, self.stride, self.padding, strict=True)
        taps, pads, outputs = [], [], []
        for n, k, s, p in axes:
            first, last = live_tap_range(n, k, s, p)
            m = _outputs(n, k, s, p)
            before = p - first  # zeros the live taps still read, before and after the input
            after = max(0, (m - 1) * s + last - first + 1 - before - n)
            pads[:0] = [before, after]  # F.pad lists the last axis first
            taps.append(slice(first, last + 1))
            outputs.append(slice(0, m))
        if all(t.stop - t.start == k for t, k in zip(taps, self.kernel_size, strict=True)):
            return super()._conv_forward(input, weight, bias)
        out = F.conv3d(F.pad(input, pads), weight[..., *taps], bias, self.stride, 0, 1, self.groups)
        return out[..., *outputs]


def skip_dead_taps(net: nn.Module) -> int:
    """Make every zero-padded, undilated :class:`torch.nn.Conv3d` in ``net`` a live-tap one.

    Args:
        net: The network, changed in place (its parameters and state dict are untouched).

    Returns:
        How many convolutions were changed.
    """
    changed = 0
    for module in net.modules():
        if (
            type(module) is nn.Conv3d
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
            and module.dilation == (1, 1, 1)
            and max(module.kernel_size) > 1
        ):
            module.__class__ = LiveTapConv3d
            changed += 1
    return changed
