import copy
import itertools

import pytest
import torch
import torch.nn as nn

from fdopa.models.live_taps import LiveTapConv3d, live_tap_range, skip_dead_taps
from fdopa.models.network import build_unet


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"),
    [
        (n, k, s, p)
        for n, k, s, p in itertools.product([1, 2, 3, 5], [1, 3, 7], [1, 2], [0, 1, 3])
        if n + 2 * p >= k  # at least one output
    ],
)
def test_the_live_range_holds_every_tap_some_output_reads_a_voxel_with(
    size, kernel, stride, padding
):
    outputs = (size + 2 * padding - kernel) // stride + 1
    live = {
        t
        for o in range(outputs)
        for t in range(kernel)
        if 0 <= o * stride - padding + t < size
    }  # fmt: skip
    first, last = live_tap_range(size, kernel, stride, padding)
    assert live <= set(range(first, last + 1))
    if stride == 1:  # then exactly those
        assert set(range(first, last + 1)) == live


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding", "groups"),
    [
        ((1, 1, 1), 3, 1, 1, 1),  # the deepest stage of a 32³ patch: centre tap only
        ((2, 2, 2), 3, 2, 1, 1),  # stride 2 into 1³
        ((1, 2, 3), 3, 1, 1, 2),  # mixed axes, grouped
        ((3, 1, 4), 7, 2, 3, 1),  # a 7³ stem on a thin input
        ((4, 4, 4), 3, 1, 1, 1),  # nothing to skip
    ],
)
def test_output_and_gradients_equal_the_plain_convolution(shape, kernel, stride, padding, groups):
    torch.manual_seed(0)
    plain = nn.Conv3d(4, 6, kernel, stride=stride, padding=padding, groups=groups).double()
    live = copy.deepcopy(plain)
    live.__class__ = LiveTapConv3d
    x = torch.randn(2, 4, *shape, dtype=torch.float64, requires_grad=True)
    x_live = x.detach().clone().requires_grad_(True)
    expected = plain(x)
    got = live(x_live)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    upstream = torch.randn_like(expected)
    expected.backward(upstream)
    got.backward(upstream)
    torch.testing.assert_close(live.weight.grad, plain.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(live.bias.grad, plain.bias.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(x_live.grad, x.grad, rtol=0, atol=1e-12)


def test_the_unet_skips_dead_taps_and_keeps_its_state_dict_and_output():
    torch.manual_seed(0)
    net = build_unet("resnet18", in_channels=2, classes=4, decoder_channels=(64, 32, 16, 16, 8))
    live = [m for m in net.modules() if type(m) is LiveTapConv3d]
    assert len(live) == sum(
        max(m.kernel_size) > 1 for m in net.modules() if isinstance(m, nn.Conv3d)
    )
    plain = copy.deepcopy(net).double().eval()
    for module in plain.modules():
        if type(module) is LiveTapConv3d:
            module.__class__ = nn.Conv3d
    assert skip_dead_taps(copy.deepcopy(plain)) == len(live)
    net = net.double().eval()
    assert net.state_dict().keys() == plain.state_dict().keys()
    with torch.no_grad():
        x = torch.randn(1, 2, 32, 32, 32, dtype=torch.float64)  # 1³ in the deepest stage
        torch.testing.assert_close(net(x), plain(x), rtol=0, atol=1e-10)


def test_a_traced_network_runs_the_plain_convolution():
    conv = nn.Conv3d(2, 3, 3, padding=1)
    conv.__class__ = LiveTapConv3d
    program = torch.jit.trace(conv, torch.randn(1, 2, 1, 1, 1))
    graph = str(program.inlined_graph)
    assert "aten::pad" not in graph and "aten::slice" not in graph
    x = torch.randn(1, 2, 4, 4, 4)  # another shape: a sliced trace would not fit it
    torch.testing.assert_close(
        program(x), nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
    )
