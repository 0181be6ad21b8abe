"""Training-step and forward-pass time of the U-Net with different encoders, in one run.

Usage: python benchmarks/encoder_speed.py [--encoders dpn68 resnet18 efficientnet-b0]
       [--steps 8] [--threads 2]

Each encoder is built as the default model is (``conf/model/unet.yaml``: its decoder channels,
PET + FLAIR in, 4 classes) and timed on random input: one training step of 4 × 2 × 32³
patches (forward, cross-entropy, backward, fused AdamW; the median after two warm-up steps)
and one forward pass of a 4 × 2 × 64³ batch without gradients (the prediction's sliding
window). Each is timed with plain convolutions and with the live-tap ones the builder gives
(:mod:`fdopa.models.live_taps`), in turn, twice; the faster round counts. Prints the parameter
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
from fdopa.models.network import build_unet


def _plain(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with every live-tap convolution made a plain :class:`torch.nn.Conv3d` again."""
    for module in net.modules():
        if type(module) is LiveTapConv3d:
            module.__class__ = torch.nn.Conv3d
    return net


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
            for variant, convert in (("plain", _plain), ("live", skip_dead_taps)):
                convert(net)
                step, forward = _time(net, args.steps)
                old = best.get(variant, (step, forward))
                best[variant] = (min(step, old[0]), min(forward, old[1]))
        (live_step, live_forward), (plain_step, plain_forward) = best["live"], best["plain"]
        print(f"{encoder:>16}: {parameters:5.1f} M parameters; training step {live_step:.3f} s "
              f"(plain convolutions {plain_step:.3f} s, × {plain_step / live_step:.2f}); "
              f"forward 4 × 64³ {live_forward:.3f} s (plain {plain_forward:.3f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
