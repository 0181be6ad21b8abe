"""Reading what :class:`~fdopa.models.callbacks.ClinicalEvaluation` wrote into a run.

A training run directory holds ``clinical/epoch_<NNN>.csv`` (one row per validation subject,
``<index>_reference`` / ``<index>_predicted`` columns), ``clinical/preset.json`` (the exact
preset), ``checkpoints/`` and ``config_resolved.yaml`` (with ``data.root``, the cohort).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from fdopa.kinetics import Preset
from fdopa.layout import CHECKPOINTS_DIR, CLINICAL_DIR, RUN_CONFIG

__all__ = ["RunIndices", "read_run", "split_subject_table"]


@dataclass(frozen=True)
class RunIndices:
    """The indices of one epoch of a run.

    Attributes:
        epoch: Epoch whose table was read.
        source: Why that epoch (``--epoch``, ``best checkpoint`` or ``last epoch``).
        preset: The callback's preset.
        reference: Indices on the reference labels, one row per validation subject.
        predicted: Indices on the predicted labels.
        cohort: ``data.root`` of the run's resolved config, None if unknown.
    """

    epoch: int
    source: str
    preset: Preset
    reference: pd.DataFrame
    predicted: pd.DataFrame
    cohort: Path | None


def split_subject_table(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a per-subject callback table into ``reference`` and ``predicted`` index tables.

    Args:
        table: An ``epoch_<NNN>.csv`` table.

    Returns:
        ``{"reference": ..., "predicted": ...}``, each with ``participant_id`` and one column
        per index (the suffix removed).
    """
    out = {}
    for side in ("reference", "predicted"):
        suffix = f"_{side}"
        columns = [c for c in table.columns if c.endswith(suffix) and c != f"missing{suffix}"]
        part = table[["participant_id", *columns]]
        out[side] = part.rename(columns={c: c.removesuffix(suffix) for c in columns})
    return out


def _epochs(folder: Path, suffix: str) -> dict[int, Path]:
    """``epoch_<NNN><suffix>`` files of a folder by epoch (none for a missing folder)."""
    if not folder.is_dir():
        return {}
    found = (re.fullmatch(rf"epoch_(\d+){re.escape(suffix)}", p.name) for p in folder.iterdir())
    return {int(m.group(1)): folder / m.group(0) for m in found if m}


def read_run(run_dir: str | Path, epoch: int | None = None) -> RunIndices:
    """Read the clinical table of one epoch of a training run.

    Args:
        run_dir: Run directory (``runs/<task>/runs/<timestamp>``).
        epoch: Epoch to read; default the best checkpoint's epoch when ``checkpoints/`` holds
            exactly one ``epoch_<NNN>.ckpt`` with a table, else the last epoch with a table.

    Returns:
        The :class:`RunIndices`.

    Raises:
        FileNotFoundError: If the run has no clinical table (or none for ``epoch``).
    """
    run_dir = Path(run_dir)
    folder = run_dir / CLINICAL_DIR
    tables = _epochs(folder, ".csv")
    if not tables:
        raise FileNotFoundError(
            f"--run: {folder} holds no epoch_<NNN>.csv; train with callbacks=clinical or "
            "callbacks=checkpoint_clinical"
        )
    best = _epochs(run_dir / CHECKPOINTS_DIR, ".ckpt")
    if epoch is not None:
        source = "--epoch"
    elif len(best) == 1 and set(best) <= set(tables):
        epoch, source = next(iter(best)), "best checkpoint"
    else:
        epoch, source = max(tables), "last epoch"
    if epoch not in tables:
        raise FileNotFoundError(f"--epoch: no {folder}/epoch_{epoch:03d}.csv")
    sides = split_subject_table(pd.read_csv(tables[epoch], dtype={"participant_id": str}))
    preset = Preset(**json.loads((folder / "preset.json").read_text()))
    cohort = None
    config = run_dir / RUN_CONFIG
    if config.is_file():
        root = OmegaConf.select(OmegaConf.load(config), "data.root")
        cohort = Path(root) if root else None
    return RunIndices(epoch, source, preset, sides["reference"], sides["predicted"], cohort)
