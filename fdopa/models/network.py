"""The segmentation network: a segmentation-models-pytorch-3d U-Net built without downloads.

Only encoders that ``tests/models/test_network.py`` proves buildable with one input channel
and a forward pass are offered. Measured with smp-3d 1.0.2 / timm 0.9.7: the resnet, resnext
(up to 32x8d), dpn, vgg, densenet, efficientnet-b0…b7 and mobileone families build; the
``timm-*`` families (regnet, res2net, resnest, gernet, skresnet, mobilenetv3, efficientnet) and
the se_* encoders fail inside timm (a ``strides`` keyword or ``Identity.weight`` error); mit_b*
refuses ``in_channels != 3``. resnext101_32x16d/32d/48d build but hold 0.3–1.6 billion
parameters and are left out. ImageNet weights would be downloaded, so ``encoder_weights`` must
be ``None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from fdopa.models.live_taps import skip_dead_taps

SUPPORTED_ENCODERS: tuple[str, ...] = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d",
    "dpn68", "dpn68b", "dpn92", "dpn98", "dpn107", "dpn131",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "densenet121", "densenet169", "densenet201", "densenet161",
    "efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3",
    "efficientnet-b4", "efficientnet-b5", "efficientnet-b6", "efficientnet-b7",
    "mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4",
)  # fmt: skip


def build_unet(
    encoder_name: str = "resnet18",
    *,
    in_channels: int = 1,
    classes: int = 4,
    encoder_depth: int = 5,
    decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
    encoder_weights: str | None = None,
    input_skip: bool = False,
) -> nn.Module:
    """Build a 3D U-Net (segmentation-models-pytorch-3d) with randomly initialised weights.

    Args:
        encoder_name: One of :data:`SUPPORTED_ENCODERS`.
        in_channels: Input channels (1 for PET; 2 with FLAIR).
        classes: Output classes (4 for the label map).
        encoder_depth: Encoder stages. smp-3d 1.0.2 builds only depth 5: its encoders index
            five strides while its decoder demands one stride per stage.
        decoder_channels: Channels of each decoder block, deepest first.
        encoder_weights: Must be ``None``: pretrained weights would be downloaded.
        input_skip: Give the last decoder block the encoder's full-resolution feature (the
            image itself for all but the vgg encoders) as its skip. smp's decoder leaves it
            out, so its finest skip is the stride-2 stem: on the 4 mm grid every boundary is
            drawn from 8 mm features. Measured no better on the held-out children
            (experiments/README.md), hence off by default.

    Returns:
        The ``segmentation_models_pytorch_3d.Unet``, its convolutions skipping the kernel taps
        that only meet zero padding (:mod:`fdopa.models.live_taps`; same weights, same output),
        its decoder and head channels-last (:func:`channels_last_decoder`; contiguous logits).

    Raises:
        ValueError: For an unsupported encoder, a download request or mismatched depth.
    """
    if encoder_name not in SUPPORTED_ENCODERS:
        raise ValueError(
            f"model.encoder_name: {encoder_name!r} is not supported; choose one of "
            f"{', '.join(SUPPORTED_ENCODERS)}"
        )
    if encoder_weights is not None:
        raise ValueError(
            f"model.encoder_weights: must be null, got {encoder_weights!r} (pretrained "
            "ImageNet weights are downloaded at run time, which fdopa never does)"
        )
    if encoder_depth != 5:
        raise ValueError(
            f"model.encoder_depth: {encoder_depth} is not buildable with "
            "segmentation-models-pytorch-3d 1.0.2, which supports only 5"
        )
    if len(decoder_channels) != encoder_depth:
        raise ValueError(
            f"model.decoder_channels: {len(decoder_channels)} entries for encoder_depth "
            f"{encoder_depth}; give one per stage"
        )
    with warnings.catch_warnings():
        # timm_3d, which smp-3d imports, decorates functions with torch.jit.script at import
        # time, and torch 2.14 warns on each: two FutureWarnings on every `fdopa predict`.
        warnings.filterwarnings(
            "ignore", r"`torch\.jit\.(script|interface)` is deprecated", FutureWarning
        )
        import segmentation_models_pytorch_3d as smp

    net = smp.Unet(
        encoder_name=encoder_name,
        encoder_depth=encoder_depth,
        encoder_weights=None,
        decoder_channels=list(decoder_channels),
        in_channels=in_channels,
        classes=classes,
    )
    if input_skip:
        _with_input_skip(net, decoder_channels)
    skip_dead_taps(net)
    net.segmentation_head.append(_Contiguous())
    channels_last_decoder(net)
    return net


class _Contiguous(nn.Module):
    """The identity, its output in the default (NCDHW) memory layout."""

    def forward(self, x: Tensor) -> Tensor:
        return x.contiguous()


def channels_last_decoder(net: nn.Module, enabled: bool = True) -> None:
    """Keep the decoder's and the head's weights channels-last (``enabled``) or contiguous.

    oneDNN computes the few-channel convolutions of the upper decoder (8–16 channels on 16³
    and 32³ voxels) far faster channels-last, the backward pass above all: 16→8 channels on
    4 × 32³, forward + backward, 97 → 42 ms. Their outputs then follow that layout; the
    head's last module makes the logits contiguous again. The encoder stays contiguous, where
    the layout measured no faster. The arithmetic is the same to float rounding (1e-7).
    """
    layout = torch.channels_last_3d if enabled else torch.contiguous_format
    net.decoder.to(memory_format=layout)
    net.segmentation_head.to(memory_format=layout)


def _with_input_skip(net: nn.Module, decoder_channels: Sequence[int]) -> None:
    """Give ``net`` a decoder whose last block concatenates the full-resolution feature."""
    from segmentation_models_pytorch_3d.decoders.unet.decoder import DecoderBlock, UnetDecoder

    class InputSkipDecoder(UnetDecoder):
        """smp's U-Net decoder, its last block also fed the encoder's first feature."""

        def forward(self, *features: Tensor) -> Tensor:
            full, *strided = features
            head, *skips = strided[::-1]
            x = self.center(head)
            for block, skip in zip(self.blocks, [*skips, full], strict=True):
                x = block(x, skip)
            return x

    decoder = InputSkipDecoder(net.encoder.out_channels, list(decoder_channels))
    decoder.blocks[-1] = DecoderBlock(
        decoder_channels[-2], net.encoder.out_channels[0], decoder_channels[-1], stride=(2, 2, 2)
    )
    net.decoder = decoder
