import copy
import subprocess
import sys

import pytest
import torch

from fdopa.models.network import SUPPORTED_ENCODERS, build_unet, channels_last_decoder


@pytest.mark.slow
@pytest.mark.parametrize("encoder", SUPPORTED_ENCODERS)
def test_every_supported_encoder_builds_and_runs_with_one_channel(encoder):
    model = build_unet(encoder, in_channels=1, classes=4).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1, 32, 32, 32))
    assert logits.shape == (1, 4, 32, 32, 32)
    assert torch.isfinite(logits).all()


def test_two_channels_and_narrow_decoder():
    model = build_unet("resnet18", in_channels=2, classes=3, decoder_channels=(64, 32, 16, 8, 4))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 2, 32, 32, 32)).shape == (2, 3, 32, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"encoder_name": "timm-regnetx_002"}, "model.encoder_name"),
        ({"encoder_name": "mit_b0"}, "model.encoder_name"),
        ({"encoder_weights": "imagenet"}, "model.encoder_weights"),
        ({"encoder_depth": 4}, "model.encoder_depth"),
        ({"decoder_channels": (64, 32, 16)}, "model.decoder_channels"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        build_unet(**kwargs)


def test_building_the_network_raises_no_warning_from_its_dependencies():
    # A fresh interpreter: in this one smp-3d (and timm_3d's torch.jit.script decorators,
    # deprecated in torch 2.14) may already be imported.
    code = (
        "from fdopa.models.network import build_unet; "
        "build_unet('resnet18', in_channels=2, classes=4)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("encoder", ["resnet18", "vgg11_bn"])
def test_input_skip_hands_the_full_resolution_feature_to_the_last_decoder_block(encoder):
    torch.manual_seed(0)
    net = build_unet(encoder, in_channels=2, classes=4, decoder_channels=(32, 16, 16, 8, 8),
                     input_skip=True).eval()  # fmt: skip
    image = torch.randn(1, 2, 32, 32, 32)
    seen = {}
    net.decoder.blocks[-1].register_forward_hook(lambda m, args, out: seen.update(skip=args))
    with torch.no_grad():
        logits = net(image)
        first = net.encoder(image)[0]
    assert logits.shape == (1, 4, 32, 32, 32)
    upsampled, skip = seen["skip"]
    assert upsampled.shape[2:] == (16, 16, 16)
    # resnet's first feature is the image itself; vgg's a full-resolution convolution of it.
    assert torch.equal(skip, first)
    assert skip.shape[2:] == (32, 32, 32)
    if encoder == "resnet18":
        assert torch.equal(skip, image)
    # smp's own decoder gives its last block no skip.
    plain = build_unet(encoder, in_channels=2, classes=4, decoder_channels=(32, 16, 16, 8, 8))
    plain.decoder.blocks[-1].register_forward_hook(lambda m, args, out: seen.update(plain=args))
    with torch.no_grad():
        plain.eval()(image)
    assert seen["plain"][1] is None


def test_the_decoder_is_channels_last_and_computes_what_a_contiguous_one_does():
    torch.manual_seed(0)
    net = build_unet("resnet18", in_channels=2, classes=4, decoder_channels=(32, 16, 16, 8, 8))
    # Eval mode: BatchNorm over a batch of two at the one-voxel deepest stage would turn the
    # float rounding of either layout into gradients that differ by 0.3 %.
    net.eval()
    last = torch.channels_last_3d
    assert net.decoder.blocks[-1].conv1[0].weight.is_contiguous(memory_format=last)
    assert net.segmentation_head[0].weight.is_contiguous(memory_format=last)
    assert net.encoder.conv1.weight.is_contiguous()
    plain = copy.deepcopy(net)
    channels_last_decoder(plain, enabled=False)
    assert plain.decoder.blocks[-1].conv1[0].weight.is_contiguous()
    image = torch.randn(2, 2, 32, 32, 32)
    logits, reference = net(image), plain(image)
    assert logits.is_contiguous()
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-6)
    logits.square().mean().backward()
    reference.square().mean().backward()
    # Float32 rounding, relative to each gradient's size. It is 2e-6 in a fresh process, but
    # up to 1.4e-4 for the first convolution once oneDNN has run other shapes (its choice of
    # kernel changes the order of the sums): a layout bug would be of order one.
    for (name, p), q in zip(net.named_parameters(), plain.parameters(), strict=True):
        scale = float(q.grad.abs().max())
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-3 * scale, msg=name)
