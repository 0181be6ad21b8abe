import subprocess
import sys

import pytest
import torch

from fdopa.models.network import SUPPORTED_ENCODERS, build_unet


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
