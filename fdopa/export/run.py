"""Export a training checkpoint: its run's resolved config, training data and metrics → bundle.

A Lightning checkpoint holds the weights and the module's hyperparameters (sliding-window
settings, class names) but not the network or preprocessing config; those come from the run's
``config_resolved.yaml`` (``RUN_DIR/checkpoints/x.ckpt`` → ``RUN_DIR/config_resolved.yaml``).
The training cohort is read (headers and label maps of the training participants of the run's
``splits.csv``) for the training spacing, grid and tumour volume range; the validation metrics
come from the checkpoint's ModelCheckpoint state and the run's CSV logs.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import yaml
from nibabel.affines import voxel_sizes

from fdopa.data.cohort import canonical_shape, load_cohort
from fdopa.data.resample import SPACING_RTOL
from fdopa.data.scaling import DEFAULT_SUV_SCALE
from fdopa.data.splits import read_splits
from fdopa.export.bundle import Bundle, sha256, write_bundle
from fdopa.export.bundle_config import BundleConfig, BundleError
from fdopa.export.metadata import build_metadata
from fdopa.labels import TUMOUR
from fdopa.layout import LABELS_DIR, RUN_CONFIG, SPLITS_FILE
from fdopa.models.transfer import read_checkpoint
from fdopa.outputs import check_artefact_dir

__all__ = [
    "export_checkpoint",
    "find_run_config",
    "training_summary",
    "validation_metrics",
]

log = logging.getLogger(__name__)


def find_run_config(ckpt: str | Path, config: str | Path | None = None) -> Path:
    """The run config of a checkpoint: ``config`` if given, else the run directory's one.

    Args:
        ckpt: Checkpoint path (``RUN_DIR/checkpoints/x.ckpt``).
        config: Explicit config path.

    Returns:
        The config path.

    Raises:
        FileNotFoundError: If ``config`` is missing, or neither ``RUN_DIR/config_resolved.yaml``
            nor one beside the checkpoint exists.
    """
    if config is not None:
        if not Path(config).is_file():
            raise FileNotFoundError(f"--config {config}: no such file")
        return Path(config)
    ckpt = Path(ckpt)
    candidates = [ckpt.parent.parent / RUN_CONFIG, ckpt.parent / RUN_CONFIG]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{ckpt}: no run config at {' or '.join(map(str, candidates))}; the checkpoint alone "
        f"lacks the network config: pass --config RUN_DIR/{RUN_CONFIG}"
    )


def _section(cfg: Mapping[str, Any], key: str, source: Path) -> Mapping[str, Any]:
    value = cfg.get(key)
    if not isinstance(value, Mapping):
        raise BundleError(f"{source}: missing section {key!r}")
    return value


def _bundle_config(
    cfg: Mapping[str, Any], hparams: Mapping[str, Any], source: Path
) -> tuple[Mapping[str, Any], BundleConfig]:
    """The data section of the run config, and the bundle config (spacing still a stub)."""
    data, model = _section(cfg, "data", source), _section(cfg, "model", source)
    network = dict(_section(model, "net", source))
    builder = network.pop("_target_", None)
    setting = {**model, **hparams}  # the checkpoint's hyperparameters are authoritative
    try:
        config = BundleConfig(
            builder=str(builder),
            network=network,
            channels=tuple(data["channels"]),
            spacing_mm=(1.0, 1.0, 1.0),
            normalisation=data.get("normalisation", "suv"),
            suv_scale=float(data.get("suv_scale", DEFAULT_SUV_SCALE)),
            channel_dropout=data.get("channel_dropout") or {},
            patch_size=tuple(setting["sw_patch_size"]),
            overlap=float(setting["sw_overlap"]),
            batch_size=int(setting["sw_batch_size"]),
            overlap_mode=str(setting["sw_overlap_mode"]),
            classes=tuple(setting["class_names"]),
            tta=bool((cfg.get("predict") or {}).get("tta", False)),
            postprocess={k: v for k, v in (cfg.get("predict") or {}).items() if k != "tta"},
        )
    except KeyError as err:
        raise BundleError(f"{source}: missing key {err}") from err
    except BundleError as err:
        raise BundleError(f"{source}: {err}") from err
    return data, config


def _canonical_zooms(image: nib.Nifti1Image) -> tuple[float, float, float]:
    axes = nib.orientations.io_orientation(image.affine)[:, 0].astype(int)
    zooms = [0.0, 0.0, 0.0]
    for axis, size in zip(axes, voxel_sizes(image.affine), strict=True):
        zooms[axis] = float(size)
    return zooms[0], zooms[1], zooms[2]


def training_summary(
    data: Mapping[str, Any], run_dir: Path, data_root: str | Path | None = None
) -> dict[str, Any]:
    """Describe the training participants of a run from the cohort on disk.

    Args:
        data: The ``data`` section of the run config (``root``, ``labels_from``, ``channels``,
            ``synth``, ``fold``, ``n_folds``, ``max_subjects``).
        run_dir: Run directory holding ``splits.csv``; without one every cohort participant
            is taken (recorded in ``subjects_from``).
        data_root: Cohort root replacing ``data.root`` (exporting on another machine).

    Returns:
        ``cohort``, ``data_root``, ``n_subjects``, ``n_train``, ``n_val``, ``fold``,
        ``n_folds``, ``subjects_from``, ``spacing_mm`` (``data.spacing_mm``, else the median),
        ``spacing_mm_range``, ``grid_shape`` (most common, RAS), ``tumour_ml_range``,
        ``tumour_ml_median``, ``synthetic`` (the generator options or None).

    Raises:
        FileNotFoundError: If the cohort root does not exist.
        fdopa.layout.CohortError: If the cohort is invalid.
    """
    root = Path(data_root if data_root is not None else data["root"])
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.root: training cohort {root} not found; the export reads it for the training "
            "spacing, grid and tumour volumes: pass --data-root"
        )
    subjects = load_cohort(
        root, labels_from=data.get("labels_from", LABELS_DIR), channels=tuple(data["channels"])
    )
    subjects = sorted(subjects, key=lambda s: s.participant_id)[: data.get("max_subjects")]
    splits = run_dir / SPLITS_FILE
    if splits.is_file():
        roles, subjects_from = read_splits(run_dir), str(splits)
    else:
        log.warning("%s: missing; summarising every cohort participant as training data", splits)
        roles, subjects_from = {}, "all cohort participants (no splits.csv)"
    train = [s for s in subjects if roles.get(s.participant_id, "train") == "train"]
    if not train:
        raise BundleError(f"{splits}: no training participant of {root}")
    zooms, shapes, tumour_ml = [], [], []
    for subject in train:
        image = nib.load(subject.static_pet)
        zooms.append(_canonical_zooms(image))
        shapes.append(canonical_shape(image))
        labels = nib.load(subject.labels)
        voxel_ml = float(np.prod(voxel_sizes(labels.affine))) / 1000.0
        tumour_ml.append(int(np.count_nonzero(np.asarray(labels.dataobj) == TUMOUR)) * voxel_ml)
    spacing = np.median(np.asarray(zooms), axis=0)
    if data.get("spacing_mm") is not None:  # every volume was mapped to this model grid
        spacing = np.asarray(data["spacing_mm"], float)
    elif not np.allclose(zooms, spacing, rtol=SPACING_RTOL, atol=0.0):
        log.warning("training spacings differ (%s); the bundle uses the median", sorted(set(zooms)))
    synth = data.get("synth")
    cohorts = sorted({str(s.participant.get("cohort")) for s in train if "cohort" in s.participant})
    return {
        "cohort": (synth or {}).get("cohort") or ",".join(cohorts) or None,
        "data_root": str(root),
        "n_subjects": len(subjects),
        "n_train": len(train),
        "n_val": sum(roles.get(s.participant_id) == "val" for s in subjects),
        "fold": data.get("fold"),
        "n_folds": data.get("n_folds"),
        "subjects_from": subjects_from,
        "spacing_mm": [round(float(v), 6) for v in spacing],
        "spacing_mm_range": [float(np.min(zooms)), float(np.max(zooms))],
        "grid_shape": list(Counter(shapes).most_common(1)[0][0]),
        "tumour_ml_range": [float(min(tumour_ml)), float(max(tumour_ml))],
        "tumour_ml_median": float(np.median(tumour_ml)),
        "synthetic": dict(synth) if synth else None,
    }


def _number(value: Any) -> float | None:
    """A finite float from a tensor, number or CSV cell; None otherwise."""
    try:
        number = float(value.item() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def validation_metrics(checkpoint: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """Validation metrics of a checkpoint's epoch.

    From the checkpoint: every ModelCheckpoint's monitored metric (its ``current_score`` is this
    checkpoint's value, ``best_model_score`` the best of the run). From the run directory: the
    ``val/*`` values of the checkpoint's epoch in every CSV logger ``metrics.csv`` (per-class
    Dice, HD95, ``val/clinical/score`` when the clinical callback logged it). W&B-only runs
    have the monitored metrics alone.

    Returns:
        ``epoch``, ``global_step``, ``monitors`` (one ``{monitor, score, best_score}``
        per ModelCheckpoint) and ``metrics`` (name → value).
    """
    epoch = checkpoint.get("epoch")
    metrics: dict[str, float] = {}
    for path in sorted(run_dir.glob("**/metrics.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if epoch is None or _number(row.get("epoch")) != epoch:
                    continue
                for key, cell in row.items():
                    if key.startswith("val/") and _number(cell) is not None:
                        metrics[key] = float(cell)
    monitors = []
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if not (key.startswith("ModelCheckpoint") and isinstance(state, Mapping)):
            continue
        if not state.get("monitor"):
            continue
        score = _number(state.get("current_score"))
        best = _number(state.get("best_model_score"))
        monitors.append({"monitor": state["monitor"], "score": score, "best_score": best})
        if score is not None:
            metrics[state["monitor"]] = score
    return {
        "epoch": epoch,
        "global_step": checkpoint.get("global_step"),
        "monitors": monitors,
        "metrics": dict(sorted(metrics.items())),
    }


def export_checkpoint(
    ckpt: str | Path,
    out: str | Path,
    *,
    config: str | Path | None = None,
    data_root: str | Path | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Export a training checkpoint as a bundle (see :mod:`fdopa.export.bundle`).

    Args:
        ckpt: Lightning checkpoint of a :class:`~fdopa.models.module.SegmentationModule`.
        out: Bundle directory to create.
        config: The run's ``config_resolved.yaml`` (default: found from ``ckpt``).
        data_root: Training cohort root replacing the config's ``data.root``.
        overwrite: Replace an existing bundle.

    Returns:
        The written, verified bundle.

    Raises:
        FileNotFoundError: If the checkpoint, the config or the cohort is missing.
        FileExistsError: If ``out`` holds a bundle and ``overwrite`` is false, or anything
            else (checked first; see :func:`fdopa.outputs.staged_dir`).
        fdopa.models.transfer.CheckpointError: If ``ckpt`` is not a Lightning checkpoint.
        BundleError: If the config is incomplete or does not fit the weights.
    """
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"--ckpt {ckpt}: no such file")
    check_artefact_dir(out, kind="bundle", overwrite=overwrite)
    config_path = find_run_config(ckpt, config)
    cfg = yaml.safe_load(config_path.read_text())
    if not isinstance(cfg, Mapping):
        raise BundleError(f"{config_path}: not a YAML mapping")
    checkpoint = read_checkpoint(ckpt, "--ckpt")
    hparams = checkpoint.get("hyper_parameters") or {}
    data, bundle_config = _bundle_config(cfg, hparams, config_path)
    training = training_summary(data, config_path.parent, data_root)
    bundle_config = dataclasses.replace(
        bundle_config,
        spacing_mm=tuple(training["spacing_mm"]),
        training_grid_shape=tuple(training["grid_shape"]),
    )
    state = {
        key.removeprefix("net."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    net = bundle_config.build_network()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BundleError(
            f"{config_path}: model.net does not fit the weights of {ckpt}: {err}"
        ) from err
    metadata = build_metadata(
        bundle_config,
        training=training,
        validation=validation_metrics(checkpoint, config_path.parent),
        source={
            "checkpoint": str(ckpt.resolve()),
            "checkpoint_sha256": sha256(ckpt),
            "config": str(config_path.resolve()),
            "optimized_metric": cfg.get("optimized_metric"),
        },
    )
    return write_bundle(out, net, bundle_config, metadata, overwrite=overwrite)
