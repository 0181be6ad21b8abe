"""nnU-Net v2 as a peer: the same training children, fdopa's fine-tuning wall clock, the same judge.

Usage (nnU-Net is an optional extra, never part of the default install):
    pip install -e '.[nnunet]'
    python benchmarks/nnunet_peer.py --run runs/levers/mixed36h [--budget-s S]
           [--seed 7311 7529 7877] [--n 8] [--grid tiny] [--out runs/nnunet_peer]

``--run`` is a finished fdopa training run (``hydra.run.dir``): its ``config_resolved.yaml``
names the cohort and its channels, its ``splits.csv`` the training children, and its
``train.log`` the wall clock of its training (from the split to the end of ``Trainer.fit``, so
neither side's data generation counts), which is nnU-Net's budget unless ``--budget-s`` is given.

nnU-Net is run as its authors ship it, with two settings that make the comparison fair on this
machine: the ``3d_fullres`` target spacing is fdopa's model grid when the run set one
(``data.spacing_mm``; nnU-Net would otherwise pick the cohort's median spacing, which is the
stored grid of a run without it), and training stops when the budget is spent
(iterations of 50 batches; the poly learning-rate schedule runs on the elapsed share of the
budget instead of on 1000 epochs). Data augmentation runs in the main process
(``nnUNet_n_proc_DA=0``), as fdopa's ``data.num_workers: 0`` does; fold ``all`` trains on every
training child. Planning and preprocessing are timed apart from the budget.

The trained network predicts the held-out children (``benchmarks/clinical_validity.py``'s cohorts,
nnU-Net's own sliding window with its mirroring), the PET indices of its label maps are computed
exactly as for fdopa's, and both are scored by :mod:`fdopa.evaluation.validity`. nnU-Net has no
QC, so none of its cases is flagged. Printed: nnU-Net's summary, then a side-by-side table with
fdopa's ``<run>/validity/summary.json`` (FLAIR given) when that exists. Written to ``--out``:
the nnU-Net folders (``raw``, ``preprocessed``, ``results``), ``predictions/``,
``children_nnunet.csv``, ``bland_altman_nnunet.png``, ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import yaml
from clinical_validity import bland_altman, ensure_cohort, evaluate  # benchmarks/ on sys.path

DATASET_ID, DATASET_NAME = 501, "Dataset501_FDOPA"
NNUNET_CHANNELS = {"pet": "PET", "flair": "FLAIR"}
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def training_seconds(train_log: Path) -> float:
    """Wall clock of an fdopa run's training: from the fold split to the end of ``Trainer.fit``.

    Args:
        train_log: The run's ``train.log``.

    Returns:
        Seconds between the data module's ``fold …: N train`` line and the ``Trainer.fit``
        stopped line.

    Raises:
        SystemExit: If either line is missing (the run did not finish).
    """
    start = end = None
    for line in train_log.read_text().splitlines():
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        when = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if start is None and re.search(r"fold \d+/\d+: \d+ train", line):
            start = when
        if "`Trainer.fit` stopped" in line:
            end = when
    if start is None or end is None:
        raise SystemExit(f"{train_log}: no fold split or Trainer.fit end; give --budget-s")
    return (end - start).total_seconds()


def training_children(run: Path) -> tuple[Path, tuple[str, ...], list[str], list[float] | None]:
    """The cohort root, channels, training participants and model grid of an fdopa run.

    The grid is ``data.spacing_mm``, or None when the run kept the stored grids (then nnU-Net
    plans its own spacing, the cohort's median, which those grids share).
    """
    from fdopa.data.splits import read_splits
    from fdopa.layout import RUN_CONFIG

    config = yaml.safe_load((run / RUN_CONFIG).read_text())["data"]
    train = sorted(pid for pid, role in read_splits(run).items() if role == "train")
    spacing = config.get("spacing_mm")
    spacing = None if spacing is None else [float(s) for s in spacing]
    return Path(config["root"]), tuple(config["channels"]), train, spacing


def write_raw_dataset(
    root: Path, channels: tuple[str, ...], participants: list[str], raw: Path
) -> Path:
    """Copy the training children into nnU-Net's raw layout (``imagesTr``, ``labelsTr``).

    Args:
        root: fdopa cohort folder.
        channels: fdopa channel names, in model order (``pet`` first).
        participants: Training participant ids.
        raw: nnU-Net's ``nnUNet_raw`` folder.

    Returns:
        The dataset folder.
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    from fdopa.data.cohort import load_cohort
    from fdopa.labels import LABEL_NAMES

    folder = raw / DATASET_NAME
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    subjects = {s.participant_id: s for s in load_cohort(root, channels=channels)}
    for pid in participants:
        subject = subjects[pid]
        sources = {"pet": subject.static_pet, "flair": subject.flair}
        for index, channel in enumerate(channels):
            shutil.copyfile(sources[channel], folder / "imagesTr" / f"{pid}_{index:04d}.nii.gz")
        shutil.copyfile(subject.labels, folder / "labelsTr" / f"{pid}.nii.gz")
    generate_dataset_json(
        str(folder), {i: NNUNET_CHANNELS[c] for i, c in enumerate(channels)},
        {name: value for value, name in enumerate(LABEL_NAMES)}, len(participants),
        ".nii.gz", dataset_name=DATASET_NAME,
        description="fdopa training children of one run, for the peer benchmark",
    )  # fmt: skip
    return folder


def budget_trainer(budget_s: float) -> type:
    """An ``nnUNetTrainer`` that trains until ``budget_s`` wall-clock seconds are spent."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class BudgetTrainer(nnUNetTrainer):
        """nnU-Net's trainer, stopped by wall clock, the poly schedule on the elapsed share."""

        # nnU-Net records its trainer's __init__ arguments by name: keep its exact signature
        def __init__(
            self, plans: dict, configuration: str, fold: Any, dataset_json: dict,
            device: torch.device | None = None,
        ) -> None:  # fmt: skip
            device = device or torch.device("cpu")
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_iterations_per_epoch = 50
            self.num_val_iterations_per_epoch = 5
            self.iterations = 0
            self.started = 0.0

        def elapsed_share(self) -> float:
            return (time.perf_counter() - self.started) / budget_s

        def on_train_epoch_start(self) -> None:
            # nnU-Net's poly schedule, lr0 (1 - epoch / max_steps)^0.9, on the elapsed share of
            # the budget: max_steps = epoch / share (nnU-Net steps it and logs the rate)
            share = min(self.elapsed_share(), 0.999)
            epoch = self.current_epoch
            self.lr_scheduler.max_steps = epoch / share if epoch and share > 0 else 10**9
            super().on_train_epoch_start()

        def run_training(self) -> None:
            self.on_train_start()
            self.started = time.perf_counter()
            while self.elapsed_share() < 1.0:
                self.on_epoch_start()
                self.on_train_epoch_start()
                outputs = []
                for _ in range(self.num_iterations_per_epoch):
                    outputs.append(self.train_step(next(self.dataloader_train)))
                    self.iterations += 1
                    if self.elapsed_share() >= 1.0:
                        break
                self.on_train_epoch_end(outputs)
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    val = [self.validation_step(next(self.dataloader_val))
                           for _ in range(self.num_val_iterations_per_epoch)]  # fmt: skip
                    self.on_validation_epoch_end(val)
                self.on_epoch_end()
            self.on_train_end()

    return BudgetTrainer


@dataclass
class NnUNetSegmenter:
    """Segments a held-out child with a trained nnU-Net, then computes fdopa's indices.

    Mirrors the part of :meth:`fdopa.export.Predictor.predict` that
    ``clinical_validity.evaluate`` calls; nnU-Net has no QC, so nothing is flagged.
    """

    predictor: Any
    out: Path

    def predict(
        self, pet: Path, *, dynamic: Path | None, sidecar: Path | None, flair: Path | None,
        participant_id: str,
    ) -> Any:  # fmt: skip
        """nnU-Net's label map on the PET grid and the indices of the PET with it."""
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

        from fdopa.export.predictor import Prediction
        from fdopa.kinetics import indices_from_files

        if flair is None:
            raise ValueError("the nnU-Net peer was trained with PET and FLAIR: give the FLAIR")
        io = SimpleITKIO()
        image, properties = io.read_images([str(pet), str(flair)])
        labels = self.predictor.predict_single_npy_array(image, properties)
        path = self.out / f"{Path(pet).parents[2].name}_{participant_id}.nii.gz"
        io.write_seg(labels.astype(np.uint8), str(path), properties)
        indices = indices_from_files(
            pet, path, "guideline", dynamic_path=dynamic, sidecar_path=sidecar,
            participant_id=participant_id,
        )  # fmt: skip
        stored = nib.load(pet)
        return Prediction(
            labels=np.asarray(nib.load(path).dataobj, dtype=np.uint8), affine=stored.affine,
            pet=np.asarray(stored.dataobj, dtype=np.float32), indices=indices, qc_flag=False,
            qc_reasons=(), stem=participant_id,
        )  # fmt: skip


def key_figures(summary: dict[str, Any]) -> dict[str, str]:
    """The figures of :func:`fdopa.evaluation.validity.summarise` that the comparison shows."""

    def mean_sd(block: dict[str, Any]) -> str:
        return f"{block['mean']:.3f} ± {block['sd']:.3f}"

    figures = {
        "tumour Dice": mean_sd(summary["dice"]["tumour"]),
        "tumour Dice median": f"{summary['dice']['tumour']['median']:.3f}",
    }
    for grade, block in sorted(summary["tumour_dice_by_grade"].items()):
        figures[f"tumour Dice {grade}"] = mean_sd(block)
    figures["missed (flagged)"] = f"{len(summary['missed'])} ({len(summary['missed_flagged'])})"
    figures["striatum Dice"] = mean_sd(summary["dice"]["striatum"])
    figures["brain Dice"] = mean_sd(summary["dice"]["brain"])
    for name, icc in summary["icc_a1"].items():
        figures[f"ICC(A,1) {name} (one-sided)"] = f"{icc:.3f} ({summary['n_one_sided'][name]})"
    figures["MTV median abs. error %"] = f"{summary['mtv_median_abs_error_pct']:.1f}"
    figures["TTP within one frame %"] = f"{summary['ttp_within_one_frame_pct']:.0f}"
    figures["seconds per child"] = f"{summary['seconds_per_child']:.2f}"
    return figures


def side_by_side(nnunet: dict[str, Any], fdopa: dict[str, Any] | None) -> str:
    """A Markdown table of the key figures of both methods (fdopa's: – when not given)."""
    ours = key_figures(fdopa) if fdopa is not None else {}
    lines = ["| figure | nnU-Net | fdopa |", "|---|---|---|"]
    for name, value in key_figures(nnunet).items():
        lines.append(f"| {name} | {value} | {ours.get(name, '–')} |")
    return "\n".join(lines)


def nnunet_environment(out: Path, augmentation_processes: int) -> None:
    """nnU-Net's folders under ``out`` and its settings, which it reads from the environment.

    Args:
        out: Folder of ``raw``, ``preprocessed`` and ``results``.
        augmentation_processes: ``nnUNet_n_proc_DA``: planning sizes its test network with this
            many threads (at least 1); 0 runs training's augmentation in the main process.
    """
    os.environ.update({
        "nnUNet_raw": str(out / "raw"), "nnUNet_preprocessed": str(out / "preprocessed"),
        "nnUNet_results": str(out / "results"), "nnUNet_compile": "f",
        "nnUNet_n_proc_DA": str(augmentation_processes),
    })  # fmt: skip


def main() -> None:
    """Convert, plan, train at the budget, predict the held-out children and compare."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="finished fdopa training run")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="training seconds (default: the run's, from train.log)")  # fmt: skip
    parser.add_argument("--seed", type=int, nargs="+", default=[7311, 7529, 7877])
    parser.add_argument("--n", type=int, default=8, help="held-out children per seed")
    parser.add_argument("--grid", default="tiny")
    parser.add_argument("--dynamic-fraction", type=float, default=0.3)
    parser.add_argument("--cache", type=Path, default=Path("data/heldout"))
    parser.add_argument("--out", type=Path, default=Path("runs/nnunet_peer"))
    args = parser.parse_args()

    out = args.out.resolve()
    nnunet_environment(out, augmentation_processes=2)  # before nnU-Net is imported
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.file_path_utilities import load_json

    from fdopa.evaluation.validity import format_summary, summarise

    logging.getLogger("fdopa").setLevel(logging.ERROR)
    budget = args.budget_s or training_seconds(args.run / "train.log")
    root, channels, train, spacing = training_children(args.run)
    grid = "as stored" if spacing is None else f"{spacing} mm"
    print(f"fdopa run {args.run}: {len(train)} training children of {root}, channels "
          f"{list(channels)}, grid {grid}; nnU-Net budget {budget:.0f} s")  # fmt: skip

    start = time.perf_counter()
    write_raw_dataset(root, channels, train, out / "raw")
    extract_fingerprints([DATASET_ID], num_processes=2, check_dataset_integrity=True)
    plans_name = plan_experiments([DATASET_ID], overwrite_target_spacing=spacing,
                                  overwrite_plans_name="nnUNetPlans_fdopa_grid")  # fmt: skip
    preprocess([DATASET_ID], plans_name, configurations=("3d_fullres",), num_processes=(2,))
    prepare_s = time.perf_counter() - start

    nnunet_environment(out, augmentation_processes=0)  # as fdopa's data.num_workers: 0
    folder = out / "preprocessed" / DATASET_NAME
    plans = {**load_json(str(folder / f"{plans_name}.json")), "continue_training": False}
    trainer = budget_trainer(budget)(
        plans, "3d_fullres", "all", load_json(str(folder / "dataset.json")), torch.device("cpu")
    )
    start = time.perf_counter()
    trainer.run_training()
    train_s = time.perf_counter() - start
    parameters = sum(p.numel() for p in trainer.network.parameters())
    setup = plans["configurations"]["3d_fullres"]
    print(f"nnU-Net: planning and preprocessing {prepare_s:.0f} s; training {train_s:.0f} s "
          f"({trainer.iterations} iterations, {trainer.current_epoch} epochs of "
          f"{trainer.num_iterations_per_epoch}, patch {setup['patch_size']}, batch "
          f"{setup['batch_size']}, {parameters / 1e6:.1f} M parameters)")  # fmt: skip

    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = nnUNetPredictor(use_mirroring=True, perform_everything_on_device=False,
                                device=torch.device("cpu"), allow_tqdm=False)  # fmt: skip
    predictor.manual_initialization(
        trainer.network, trainer.plans_manager, trainer.configuration_manager,
        [trainer.network.state_dict()], trainer.dataset_json, type(trainer).__name__,
        trainer.inference_allowed_mirroring_axes,
    )  # fmt: skip
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    segmenter = NnUNetSegmenter(predictor, out / "predictions")
    roots = [
        ensure_cohort(args.cache, s, args.n, args.grid, args.dynamic_fraction) for s in args.seed
    ]
    start = time.perf_counter()
    table = evaluate(segmenter, roots, True, out, "nnunet")
    seconds = time.perf_counter() - start
    table.to_csv(out / "children_nnunet.csv", index=False)
    bland_altman(table, out / "bland_altman_nnunet.png")
    summary = {**summarise(table), "seconds_per_child": seconds / len(table)}
    print(f"\n=== nnU-Net ({seconds / len(table):.2f} s per child)")
    print(format_summary(summary))
    fdopa_summary = args.run / "validity" / "summary.json"
    fdopa = None
    if fdopa_summary.exists():
        variants = json.loads(fdopa_summary.read_text())["variants"]
        fdopa = variants.get("given", variants.get("pet_only"))
    print("\n" + side_by_side(summary, fdopa))
    settings = {
        "run": str(args.run), "budget_s": budget, "train_s": train_s, "prepare_s": prepare_s,
        "iterations": trainer.iterations, "patch_size": setup["patch_size"],
        "batch_size": setup["batch_size"], "parameters": parameters, "seeds": args.seed,
        "n": args.n, "grid": args.grid,
    }  # fmt: skip
    text = json.dumps({"settings": settings, "nnunet": summary}, indent=2, default=str)
    (out / "summary.json").write_text(text + "\n")
    print(f"\nwrote {out}/children_nnunet.csv, summary.json and pictures")


if __name__ == "__main__":
    main()
