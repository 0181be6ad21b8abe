import pytest
import torch
from model_helpers import tiny_unet
from monai.inferers import sliding_window_inference

from fdopa.models.inference import blending_window, patch_overlap, predict_volume

MONAI_MODE = {"hann": "gaussian", "average": "constant"}


@pytest.mark.parametrize("mode", ["hann", "average"])
@pytest.mark.parametrize(
    "shape",
    [(45, 38, 29), (70, 33, 32), (20, 20, 20)],  # smaller than / not divisible by the patch
)
def test_voxelwise_net_matches_monai_sliding_window_and_direct_forward(mode, shape):
    torch.manual_seed(0)
    net = torch.nn.Conv3d(2, 4, kernel_size=1)
    image = torch.randn(2, *shape)
    ours = predict_volume(net, image, (32, 32, 32), overlap=0.5, batch_size=3, overlap_mode=mode)
    with torch.no_grad():
        monai = sliding_window_inference(
            image[None], (32, 32, 32), 3, net, overlap=0.5, mode=MONAI_MODE[mode]
        )[0]
        direct = net(image[None])[0]
    assert ours.shape == (4, *shape)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, monai, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["hann", "average"])
def test_volume_of_one_patch_equals_direct_forward_of_a_unet(mode):
    net = tiny_unet().eval()
    image = torch.randn(1, 32, 32, 32)
    ours = predict_volume(net, image, (32, 32, 32), overlap=0.5, overlap_mode=mode)
    with torch.no_grad():
        direct = net(image[None])[0]
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("patch", "overlap", "expected"),
    [((32, 32, 32), 0.5, (16, 16, 16)), ((32, 64, 33), 0.25, (8, 16, 8)),
     ((32, 32, 32), 0.0, (0, 0, 0)), ((32, 32, 33), 0.99, (30, 30, 32))],
)  # fmt: skip
def test_fractional_overlap_becomes_even_voxels_below_the_patch(patch, overlap, expected):
    assert patch_overlap(patch, overlap) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"overlap": 1.0}, "sw_overlap"), ({"overlap_mode": "crop"}, "overlap_mode"),
     ({"patch_size": (32, 32)}, "sw_patch_size"), ({"batch_size": 0}, "sw_batch_size")],
)  # fmt: skip
def test_bad_arguments_are_rejected(kwargs, match):
    arguments = {"patch_size": (32, 32, 32), **kwargs}
    with pytest.raises(ValueError, match=match):
        predict_volume(torch.nn.Conv3d(1, 2, 1), torch.randn(1, 40, 40, 40), **arguments)


@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_gaussian_blending_of_a_unet_matches_monai_sliding_window(overlap):
    # A real network (not voxel-wise): every patch position and weight must agree with MONAI.
    net = tiny_unet().eval()
    image = torch.randn(1, 70, 45, 29, generator=torch.Generator().manual_seed(1))
    ours = predict_volume(net, image, (32, 32, 32), overlap, batch_size=3, overlap_mode="gaussian")
    with torch.no_grad():
        monai = sliding_window_inference(
            image[None], (32, 32, 32), 3, net, overlap=overlap, mode="gaussian"
        )[0]
    torch.testing.assert_close(ours, monai, rtol=0, atol=1e-5)
    assert not torch.equal(
        predict_volume(net, image, (32, 32, 32), overlap, overlap_mode="average"), ours
    )  # the blending window matters for this network


def test_hann_window_equals_torchio_aggregator():
    pytest.importorskip("torchio")
    from torchio.data.inference.aggregator import GridAggregator

    torch.testing.assert_close(
        blending_window((32, 16, 8), "hann"), GridAggregator._get_hann_window((32, 16, 8)).float()
    )
