"""Training-step and forward-pass time of the U-Net with different encoders, in one run.

Usage: python benchmarks/encoder_speed.py [--encoders dpn68 resnet18 efficientnet-b0]
       [--steps 8] [--threads 2]

Each encoder is built as the default model is (``conf/model/unet.yaml``: its decoder channels,
PET + FLAIR in, 4 classes) and timed on random input: one training step of 4 × 2 × 32³
patches (forward, cross-entropy, backward, fused AdamW; the median after two warm-up steps)
and one forward pass of a 4 × 2 × 64³ batch without gradients (the prediction's sliding
window). Each is timed as the builder gives it (live-tap convolutions,
:mod:`fdopa.models.live_taps`; a channels-last decoder,
:func:`fdopa.models.network.channels_last_decoder`), with plain convolutions instead, and with
a contiguous decoder instead, in turn, twice; the faster round counts. Prints the parameter
count and the times per encoder.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from omegaconf import OmegaConf

from fdopa.config import compose_train
from fdopa.models.live_taps import LiveTapConv3d, skip_dead_taps
from fdopa.models.network import build_unet, channels_last_decoder


def _plain(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with every live-tap convolution made a plain :class:`torch.nn.Conv3d` again."""
    for module in net.modules():
        if type(module) is LiveTapConv3d:
            module.__class__ = torch.nn.Conv3d
    return net


#: (name, live-tap convolutions, channels-last decoder); the first is what build_unet gives.
VARIANTS = (
    ("as built", True, True),
    ("plain convolutions", False, True),
    ("contiguous decoder", True, False),
)


def _time(net: torch.nn.Module, steps: int) -> tuple[float, float]:
    """Median training-step seconds on 4 × 2 × 32³ patches; a 4 × 2 × 64³ forward (warm)."""
    patches = torch.randn(4, 2, 32, 32, 32)
    labels = torch.randint(0, 4, (4, 32, 32, 32))
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    seconds = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(patches), labels).backward()
        optimiser.step()
        seconds.append(time.perf_counter() - start)
    net.eval()
    volume = torch.randn(4, 2, 64, 64, 64)
    with torch.no_grad():
        net(volume)  # warm-up
        start = time.perf_counter()
        net(volume)
        forward = time.perf_counter() - start
    net.train()
    return statistics.median(seconds[2:]), forward


def main() -> None:
    """Build, time and print each encoder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["dpn68", "resnet18", "efficientnet-b0"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net_cfg = OmegaConf.to_container(compose_train([]).model.net)
    decoder = list(net_cfg["decoder_channels"])
    print(f"default encoder {net_cfg['encoder_name']}, decoder {decoder}, {args.threads} threads")
    for encoder in args.encoders:
        net = build_unet(encoder, in_channels=2, classes=4, decoder_channels=decoder)
        parameters = sum(p.numel() for p in net.parameters()) / 1e6
        best = {}  # variant → (step, forward), the faster of two rounds run in turn
        for _ in range(2):
            for variant, live, channels_last in VARIANTS:
                if live:
                    skip_dead_taps(net)
                else:
                    _plain(net)
                channels_last_decoder(net, channels_last)
                step, forward = _time(net, args.steps)
                old = best.get(variant, (step, forward))
                best[variant] = (min(step, old[0]), min(forward, old[1]))
        step, forward = best["as built"]
        others = ", ".join(
            f"{v} {best[v][0]:.3f} s (× {best[v][0] / step:.2f}) / {best[v][1]:.3f} s"
            for v, *_ in VARIANTS[1:]
        )
        print(f"{encoder:>16}: {parameters:5.1f} M parameters; training step / forward 4 × 64³ "
              f"{step:.3f} / {forward:.3f} s; {others}")  # fmt: skip


if __name__ == "__main__":
    main()
