"""Speed and peak memory of ``Predictor.predict`` on a 2 mm volume, against MONAI's sliding window.

Usage: python benchmarks/predict_speed.py [--repeat 3] [--threads 2] [--patch 64] [--seed 0]

Generates one static synthetic subject on the 2 mm ``standard`` grid (88×104×88), writes it as
NIfTI with its sidecar, and exports a bundle of the default network (``conf/model/unet.yaml``:
resnet18 encoder, decoder 64-32-16-16-8; random weights: speed does not depend on them) with a
``--patch``³ sliding window, overlap 0.5, 4 patches per forward pass. Each case runs in a fresh
process with ``--threads`` torch threads:

* ``predict``: :meth:`fdopa.export.Predictor.predict` from the file (reading and checking the
  input, model-grid mapping, preprocessing, sliding windows with Hann blending, labels back on
  the native grid, every PET index);
* ``predict_tta``: the same with the left-right flip test-time augmentation;
* ``fdopa_window``: the sliding-window step alone, :func:`fdopa.models.inference.predict_volume`
  (TorchIO GridSampler/GridAggregator, Hann), on the preprocessed volume;
* ``monai_window``: ``monai.inferers.sliding_window_inference`` (Gaussian blending) on the same
  network, volume, patch size, overlap and batch size.

Seconds are the median of ``--repeat`` calls after a warm-up forward pass. Peak memory is the
rise of the process's peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over its
value after set-up and warm-up: tracemalloc would miss torch's native allocations. The ratio
``fdopa_window / monai_window`` compares the two sliding-window implementations (target ≤ 1.0);
``predict / monai_window`` adds everything around it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES = ("predict", "predict_tta", "fdopa_window", "monai_window")


def default_network() -> dict[str, Any]:
    """The network node of conf/model/unet.yaml, without its ``_target_``."""
    from omegaconf import OmegaConf

    from fdopa.config import compose_train

    net = OmegaConf.to_container(compose_train().model.net, resolve=True)
    net.pop("_target_")
    return net


def make_inputs(folder: Path, patch: int, seed: int) -> tuple[Path, Path]:
    """Write the 2 mm subject and the bundle; return the static PET path and the bundle."""
    import torch

    from fdopa.data.layout import SubjectPaths
    from fdopa.data.synthetic import SynthConfig
    from fdopa.data.synthetic.cohort import write_subject
    from fdopa.data.synthetic.subject import build_subject
    from fdopa.export.bundle import write_bundle
    from fdopa.export.config import BundleConfig
    from fdopa.export.metadata import build_metadata

    config = SynthConfig(grid="standard", n=1, seed=seed, dynamic_fraction=0.0)
    subject = build_subject(config, "sub-bench", np.random.SeedSequence([seed, 1]), dynamic=False)
    write_subject(folder, subject, config)
    bundle_config = BundleConfig(
        builder="fdopa.models.network.build_unet", network=default_network(), channels=("pet",),
        spacing_mm=(2.0, 2.0, 2.0), patch_size=(patch,) * 3, training_grid_shape=(88, 104, 88),
    )  # fmt: skip
    torch.manual_seed(seed)
    metadata = build_metadata(
        bundle_config, training={"tumour_ml_range": [1.0, 80.0]}, validation={}
    )
    write_bundle(folder / "bundle", bundle_config.build_network(), bundle_config, metadata)
    return SubjectPaths(folder, "sub-bench").static_pet, folder / "bundle"


def run_case(case: str, pet: Path, bundle: Path, repeat: int, threads: int) -> dict[str, Any]:
    """One case in this (fresh) process: median seconds, peak RSS rise, labels."""
    import torch
    from monai.inferers import sliding_window_inference

    from fdopa.export.inputs import load_scan
    from fdopa.export.predictor import Predictor

    torch.set_num_threads(threads)
    predictor = Predictor.from_bundle(bundle, tta=case == "predict_tta")
    config, net = predictor.config, predictor.net
    image, _ = predictor.model_input(load_scan(pet, predictor.input_spec))

    def monai() -> torch.Tensor:
        with torch.no_grad():
            return sliding_window_inference(
                image[None], config.patch_size, config.batch_size, net,
                overlap=config.overlap, mode="gaussian",
            )[0]  # fmt: skip

    calls = {
        "predict": lambda: predictor.predict(pet).labels,
        "predict_tta": lambda: predictor.predict(pet).labels,
        "fdopa_window": lambda: predictor.logits(image).argmax(0).numpy(),
        "monai_window": lambda: monai().argmax(0).numpy(),
    }
    with torch.no_grad():
        net(torch.zeros(1, len(config.channels), *config.patch_size))  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, labels = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        labels = calls[case]()
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": statistics.median(seconds),
        "all_seconds": seconds,
        "peak_rise_mib": (peak - before) / 1024,
        "peak_mib": peak / 1024,
        "labels": labels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Every step runs in a fresh process spawned by this small one: a child inherits the
    # parent's peak RSS through fork + exec, so the parent never holds large arrays.
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        with context.Pool(1) as pool:
            pet, bundle = pool.apply(make_inputs, (Path(tmp), args.patch, args.seed))
        results = {}
        for case in CASES:
            with context.Pool(1) as pool:
                results[case] = pool.apply(run_case, (case, pet, bundle, args.repeat, args.threads))
    monai = results["monai_window"]["seconds"]
    print(f"2 mm volume 88x104x88, patch {args.patch}^3, overlap 0.5, batch 4, "
          f"{args.threads} threads, median of {args.repeat}")  # fmt: skip
    print(f"{'case':<14}{'seconds':>9}{'/ monai':>9}{'peak RSS rise MiB':>19}{'peak MiB':>10}")
    for case, result in results.items():
        print(f"{case:<14}{result['seconds']:>9.2f}{result['seconds'] / monai:>9.2f}"
              f"{result['peak_rise_mib']:>19.0f}{result['peak_mib']:>10.0f}   "
              f"(calls: {', '.join(f'{s:.2f}' for s in result['all_seconds'])} s)")  # fmt: skip
    agreement = np.mean(results["fdopa_window"]["labels"] == results["monai_window"]["labels"])
    print(f"label agreement fdopa (Hann) vs MONAI (Gaussian) windows: {agreement:.4f}")
    ratio = results["fdopa_window"]["seconds"] / monai
    print(f"ratio fdopa_window / monai_window = {ratio:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
