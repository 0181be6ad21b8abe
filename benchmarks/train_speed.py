"""Training-step and validation speed of the default model on the tiny and standard grids.

Usage: python benchmarks/train_speed.py [--steps 10] [--subjects 3]
Generates a few subjects per grid into a temporary directory (not timed), then prints seconds
per training step (batch of patches, forward + backward + AdamW) and seconds per validation
volume (sliding-window inference + Dice/HD95), with the model and data configs of conf/.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from hydra.utils import instantiate

from fdopa.config import compose_train
from fdopa.data.synthetic import SynthConfig, generate_cohort


def _endless(loader: Iterable) -> Iterator:
    """Batches of ``loader``, epoch after epoch."""
    while True:
        yield from loader


def measure(grid: str, steps: int, subjects: int, tmp: Path) -> tuple[float, float]:
    """Seconds per training step and per validation volume for one data config."""
    root = tmp / grid
    generate_cohort(SynthConfig(n=subjects, grid=grid, seed=0), root, n_jobs=2, progress=False)
    data = "tiny" if grid == "tiny" else "standard"
    cfg = compose_train([f"data={data}", f"data.root={root}", "data.synth=null",
                         "data.n_folds=3", "data.num_workers=0", "model.log_images=0"],
                        output_dir=tmp / f"run-{grid}")  # fmt: skip
    datamodule = instantiate(cfg.data, augment=instantiate(cfg.augment), run_dir=None)
    datamodule.setup("fit")
    cfg.model.sw_patch_size = list(cfg.data.patch_size)
    module = instantiate(cfg.model, loss=instantiate(cfg.loss))
    optimiser = torch.optim.AdamW(module.parameters(), lr=1e-3)
    batches = _endless(datamodule.train_dataloader())
    next(batches)  # fill the queue once
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        optimiser.zero_grad()
        module.loss(module(batch["image"]), batch["label"]).backward()
        optimiser.step()
    step = (time.perf_counter() - start) / steps
    module.eval()
    volumes = list(datamodule.val_dataloader())
    start = time.perf_counter()
    with torch.no_grad():
        for batch in volumes:
            module.predict_volume(batch["image"][0])
    return step, (time.perf_counter() - start) / len(volumes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--subjects", type=int, default=3)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'grid':9} {'s/train step':>13} {'s/val volume':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for grid in ("tiny", "standard"):
            step, volume = measure(grid, args.steps, args.subjects, Path(tmp))
            print(f"{grid:9} {step:13.3f} {volume:13.3f}")


if __name__ == "__main__":
    main()
