"""Training-step and forward-pass time of the U-Net with different encoders, in one run.

Usage: python benchmarks/encoder_speed.py [--encoders dpn68 resnet18 efficientnet-b0]
       [--steps 8] [--threads 2]

Each encoder is built as the default model is (``conf/model/unet.yaml``: its decoder channels,
PET + FLAIR in, 4 classes) and timed on random input: one training step of 4 × 2 × 32³
patches (forward, cross-entropy, backward, fused AdamW; the median after two warm-up steps)
and one forward pass of a 4 × 2 × 64³ batch without gradients (the prediction's sliding
window). Prints the parameter count and both times per encoder.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from omegaconf import OmegaConf

from fdopa.config import compose_train
from fdopa.models.network import build_unet


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
    patches = torch.randn(4, 2, 32, 32, 32)
    labels = torch.randint(0, 4, (4, 32, 32, 32))
    volume = torch.randn(4, 2, 64, 64, 64)
    print(f"default encoder {net_cfg['encoder_name']}, decoder {decoder}, {args.threads} threads")
    for encoder in args.encoders:
        net = build_unet(encoder, in_channels=2, classes=4, decoder_channels=decoder)
        optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
        seconds = []
        for _ in range(args.steps + 2):
            start = time.perf_counter()
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(net(patches), labels).backward()
            optimiser.step()
            seconds.append(time.perf_counter() - start)
        net.eval()
        with torch.no_grad():
            start = time.perf_counter()
            net(volume)
            forward = time.perf_counter() - start
        parameters = sum(p.numel() for p in net.parameters()) / 1e6
        step = statistics.median(seconds[2:])
        print(f"{encoder:>16}: {parameters:5.1f} M parameters, training step {step:.3f} s, "
              f"forward 4 × 64³ {forward:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
