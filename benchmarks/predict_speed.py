"""Start-up, sliding-window and whole-prediction speed and peak memory, against MONAI.

Usage: python benchmarks/predict_speed.py [--repeat 3] [--threads 1] [--patch 64] [--seed 0]
       [--onnx]

Run it as the figures are meant: on this machine, one core and one thread per process,
``taskset -c 0 python benchmarks/predict_speed.py --threads 1`` (two cores: ``--threads 2``).

Two 2 mm inputs of one static synthetic subject: the *brain box* (the ``standard`` grid,
88×104×88) and a *scanner-sized* image (256×256×110 at 2 mm) holding the same brain box, low
positive noise everywhere else and a hot structure away from the head. The bundle holds the
default network (``conf/model/unet.yaml``: resnet18 encoder, decoder 64-32-16-16-8; random
weights: speed does not depend on them) with a ``--patch``³ window, overlap 0.5, batch 4.
Every case runs in a fresh process:

* ``startup_eager`` / ``startup_torchscript``: importing the predictor, reading and verifying
  the bundle and loading the network (eager: state dict assigned to a module built on the meta
  device; TorchScript: ``model.ts``) up to the first forward pass; ``startup_initialised``: the
  former eager way (network randomly initialised, then the weights loaded);
* ``first_result``: a fresh process's start-up plus its first whole prediction of the scanner
  image (file in → label map, indices, QC picture out): the time a user waits;
* ``predict_box`` / ``predict_scanner`` (``predict_box_torchscript``: with ``model.ts``): whole
  predictions (head located, crop, sliding window, labels back, indices, QC picture), median
  of ``--repeat`` after a warm-up forward pass;
* ``window_box`` / ``window_scanner`` and ``monai_box`` / ``monai_scanner``: the sliding window
  alone on the whole preprocessed image (no crop): :func:`fdopa.models.inference.predict_volume`
  and ``monai.inferers.sliding_window_inference``, both with Gaussian blending;
* with ``--onnx`` (needs ``onnx`` and ``onnxruntime``, not part of any extra): the network
  exported to ONNX (``torch.onnx.export``, opset 17, dynamic batch) and run by ONNX Runtime's
  CPU provider with the same thread count: ``startup_onnx`` (imports, bundle verified, session
  created from ``model.onnx``) and ``window_box_onnx`` / ``window_scanner_onnx`` (the same
  sliding window, each batch through the session).

Peak memory is the process's peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
torch's native allocations included). The crop's effect: labels and indices of the scanner
image inside the brain box against those of the brain box.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES = (
    "startup_initialised", "startup_eager", "startup_torchscript", "first_result",
    "predict_box", "predict_box_torchscript", "predict_scanner",
    "window_box", "monai_box", "window_scanner", "monai_scanner",
)  # fmt: skip
ONNX_CASES = ("startup_onnx", "window_box_onnx", "window_scanner_onnx")
SCANNER_SHAPE = (256, 256, 110)
OFFSET = (84, 76, 11)
"""Voxel of the scanner image where the brain box starts."""


def default_network() -> dict[str, Any]:
    """The network node of conf/model/unet.yaml, without its ``_target_``."""
    from omegaconf import OmegaConf

    from fdopa.config import compose_train

    net = OmegaConf.to_container(compose_train().model.net, resolve=True)
    net.pop("_target_")
    return net


def make_inputs(folder: Path, patch: int, seed: int) -> tuple[Path, Path, Path]:
    """Write the brain box, the scanner-sized image and the bundle; return their paths."""
    import json

    import nibabel as nib
    import torch

    from fdopa.data.synthetic import SynthConfig
    from fdopa.data.synthetic.generate import write_subject
    from fdopa.data.synthetic.subject import build_subject
    from fdopa.export.bundle import write_bundle
    from fdopa.export.bundle_config import BundleConfig
    from fdopa.export.metadata import build_metadata
    from fdopa.layout import SubjectPaths

    config = SynthConfig(grid="standard", n=1, seed=seed, dynamic_fraction=0.0)
    subject = build_subject(config, "sub-bench", np.random.SeedSequence([seed, 1]), dynamic=False)
    write_subject(folder, subject, config)
    box = SubjectPaths(folder, "sub-bench").static_pet
    image = nib.load(box)
    rng = np.random.default_rng(seed)
    scanner = (0.05 * rng.random(SCANNER_SHAPE)).astype(np.float32)
    inner = tuple(slice(o, o + n) for o, n in zip(OFFSET, image.shape, strict=True))
    scanner[inner] = image.get_fdata(dtype=np.float32)
    scanner[20:40, 20:40, 5:25] += 3.0  # a hot structure outside the head
    affine = image.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(OFFSET, float)
    scanner_path = folder / "sub-scanner_pet.nii.gz"
    nib.save(nib.Nifti1Image(scanner, affine), scanner_path)
    sidecar = json.loads(box.with_name(box.name.replace(".nii.gz", ".json")).read_text())
    (folder / "sub-scanner_pet.json").write_text(json.dumps(sidecar))
    bundle_config = BundleConfig(
        builder="fdopa.models.network.build_unet", network=default_network(), channels=("pet",),
        spacing_mm=(2.0, 2.0, 2.0), patch_size=(patch,) * 3, training_grid_shape=(88, 104, 88),
    )  # fmt: skip
    torch.manual_seed(seed)
    metadata = build_metadata(
        bundle_config, training={"tumour_ml_range": [1.0, 80.0]}, validation={}
    )
    write_bundle(folder / "bundle", bundle_config.build_network(), bundle_config, metadata)
    return box, scanner_path, folder / "bundle"


def export_onnx(bundle: Path) -> Path:
    """Write the bundle's network as ``model.onnx`` beside the bundle (dynamic batch)."""
    import torch

    from fdopa.export.bundle import read_bundle

    read = read_bundle(bundle)
    net = read.load_network("cpu")
    patch = read.config.patch_size
    path = bundle.parent / "model.onnx"
    example = torch.zeros(1, len(read.config.channels), *patch)
    torch.onnx.export(
        net, (example,), str(path), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    return path


def onnx_network(path: Path, threads: int) -> Any:
    """An ONNX Runtime session behind a parameter-free module (what predict_volume calls)."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    class OnnxNet(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"image": image.numpy()})[0])

    return OnnxNet()


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str, paths: tuple[Path, Path, Path], repeat: int, threads: int) -> dict:
    """One case in this (fresh) process: seconds, peak RSS, and the prediction when made."""
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    from fdopa.export.predictor import Predictor
    from fdopa.export.qc import qc_figure

    box, scanner, bundle = paths
    engine = "torchscript" if case.endswith("torchscript") else "eager"
    # the sliding-window cases run on the whole image: no head box
    whole_image = case.startswith(("window", "monai"))
    predictor = Predictor.from_bundle(bundle, engine=engine, crop=not whole_image)
    if case == "startup_initialised":  # the former way: random initialisation, then the weights
        net = predictor.config.build_network()
        net.load_state_dict(torch.load(bundle / "model.pt", weights_only=True))
        predictor.net = net.eval()
    if case.endswith("onnx"):
        predictor.net = onnx_network(bundle.parent / "model.onnx", threads)
    config, net = predictor.config, predictor.net
    folder = bundle.parent

    def whole(pet: Path) -> Any:
        prediction = predictor.predict(pet)
        qc_figure(prediction, folder / f"{case}_qc.png")
        return prediction

    if case.startswith("startup"):
        return {"seconds": time.perf_counter() - start, "all_seconds": [], "peak_mib": _peak_mib()}
    if case == "first_result":
        whole(scanner)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "all_seconds": [], "peak_mib": _peak_mib()}
    from monai.inferers import sliding_window_inference

    from fdopa.export.inputs import load_scan
    from fdopa.models.inference import predict_volume

    pet = box if "_box" in case else scanner
    image, _ = predictor.model_input(load_scan(pet, predictor.input_spec))
    if case.endswith("onnx"):
        case = case.removesuffix("_onnx")  # the same call through the session

    def window() -> Any:
        return predict_volume(
            net, image, config.patch_size, config.overlap, config.batch_size, "gaussian"
        )

    def monai() -> Any:
        with torch.inference_mode():
            return sliding_window_inference(
                image[None], config.patch_size, config.batch_size, net,
                overlap=config.overlap, mode="gaussian",
            )[0]  # fmt: skip

    call = {"predict": lambda: whole(pet), "window": window, "monai": monai}[case.split("_")[0]]
    with torch.inference_mode():
        net(torch.zeros(1, len(config.channels), *config.patch_size))  # warm-up
    seconds, result = [], None
    for _ in range(repeat):
        begin = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - begin)
    out = {"seconds": statistics.median(seconds), "all_seconds": seconds, "peak_mib": _peak_mib()}
    if case.startswith("predict"):
        out["labels"], out["indices"] = result.labels, result.indices.to_dict()
        out["crop"] = result.crop.to_dict()
    else:
        out["labels"] = result.argmax(0).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    args = parser.parse_args()
    # Every step runs in a fresh process spawned by this small one: a child inherits the
    # parent's peak RSS through fork + exec, so the parent never holds large arrays.
    context = multiprocessing.get_context("spawn")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        with context.Pool(1) as pool:
            paths = pool.apply(make_inputs, (Path(tmp), args.patch, args.seed))
            if args.onnx:
                pool.apply(export_onnx, (paths[2],))
        for case in CASES + (ONNX_CASES if args.onnx else ()):
            window = "scanner" in case and not case.startswith("predict")
            repeat = 1 if window else args.repeat
            with context.Pool(1) as pool:
                results[case] = pool.apply(run_case, (case, paths, repeat, args.threads))
            print(f"{case}: {results[case]['seconds']:.2f} s", flush=True)
    cores = len(os.sched_getaffinity(0))
    print(f"\n2 mm brain box 88x104x88 and scanner image {'x'.join(map(str, SCANNER_SHAPE))}, "
          f"patch {args.patch}^3, overlap 0.5, batch 4, {args.threads} torch thread(s) on "
          f"{cores} core(s), median of {args.repeat} (1 call for the scanner windows)")  # fmt: skip
    print(f"{'case':<20}{'seconds':>9}{'peak RSS MiB':>14}   calls")
    for case, result in results.items():
        calls = ", ".join(f"{s:.2f}" for s in result["all_seconds"])
        print(f"{case:<20}{result['seconds']:>9.2f}{result['peak_mib']:>14.0f}   {calls}")
    for where in ("box", "scanner"):
        ours, theirs = results[f"window_{where}"], results[f"monai_{where}"]
        agreement = np.mean(ours["labels"] == theirs["labels"])
        print(f"sliding window {where}: fdopa / MONAI = {ours['seconds'] / theirs['seconds']:.2f}"
              f" (target <= 1.0), label agreement {agreement:.4f}")  # fmt: skip
    if args.onnx:
        for where in ("box", "scanner"):
            ours, ort = results[f"window_{where}"], results[f"window_{where}_onnx"]
            agreement = np.mean(ours["labels"] == ort["labels"])
            ratio = ort["seconds"] / ours["seconds"]
            print(f"sliding window {where}: ONNX Runtime / eager = {ratio:.2f}, "
                  f"label agreement {agreement:.4f}")  # fmt: skip
        ort, eager = results["startup_onnx"], results["startup_eager"]
        print(f"start-up: ONNX Runtime {ort['seconds']:.2f} s, {ort['peak_mib']:.0f} MiB; eager "
              f"{eager['seconds']:.2f} s, {eager['peak_mib']:.0f} MiB")  # fmt: skip
    box, scanner = results["predict_box"], results["predict_scanner"]
    ratio = scanner["seconds"] / box["seconds"]
    print(
        f"whole prediction scanner / brain box = {ratio:.2f} (target <= 2); first result "
        f"incl. start-up {results['first_result']['seconds']:.1f} s (target <= 30 s)"
    )
    print(f"crop scanner image: {scanner['crop']}")
    inner = tuple(slice(o, o + n) for o, n in zip(OFFSET, box["labels"].shape, strict=True))
    same = np.mean(scanner["labels"][inner] == box["labels"])
    outside = int(scanner["labels"].sum() - scanner["labels"][inner].sum())
    print(
        f"crop effect: label agreement in the brain box {same:.4f}, labelled voxels outside "
        f"it {outside}"
    )
    for key in ("tumour_ml", "tsr", "tbr_max", "tumour_suvmax"):
        print(f"  {key}: brain box {box['indices'][key]}, scanner {scanner['indices'][key]}")


if __name__ == "__main__":
    main()
