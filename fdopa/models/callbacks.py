"""ClinicalEvaluation: judge every validation epoch on the clinical indices, not on Dice alone.

For every validation volume the PET indices are computed twice on the same static PET with
the same preset — once on the predicted label map (``validation_step``'s ``pred``) and once on
the reference labels — with the dynamic indices when the subject has a 4-D image. The 4-D
image is read from disk and brought to the canonical RAS+ orientation of the batch (the data
module reorients ``pet``/``label``); when the batch is on another grid (the model grid of
``data.spacing_mm``) the frames are mapped to it linearly, as the static PET was. Reference results
never change and are computed once per subject; the 4-D images are kept in memory between
epochs unless ``cache_dynamic`` is off.

If the indices of a *predicted* label map cannot be computed (an exception in
:mod:`fdopa.kinetics`), every index of that subject counts as missing on the predicted side
with the error as its reason, and a warning is logged; errors on the reference side propagate.

Logged at each validation epoch end (``on_epoch``), for every index ``<i>`` of ``indices``:

* ``val/clinical/<i>_icc`` — ICC(A,1), NaN with fewer than 3 complete pairs;
* ``val/clinical/<i>_bias`` — mean(predicted − reference);
* ``val/clinical/<i>_mape`` — mean absolute percentage error (%);
* ``val/clinical/<i>_n_missing`` — subjects with the index on one side only;

and ``val/clinical/score`` (:mod:`fdopa.evaluation.score`, in [0, 1]) and
``val/clinical/seconds`` (this callback's time in the epoch). Outside the sanity check it
writes the per-subject table to ``<dirpath>/epoch_<NNN>.csv`` (and once ``preset.json``) and
logs it as the W&B table ``val/clinical/subjects`` when a :class:`WandbLogger` is attached.
Under DDP the rows of every rank are gathered, so every rank logs the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import nibabel as nib
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.loggers import WandbLogger

from fdopa.data.resample import map_to_grid
from fdopa.evaluation.agreement import agreement_table, paired_values
from fdopa.evaluation.names import DEFAULT_INDICES, SCORE_INDICES
from fdopa.evaluation.score import clinical_score, subject_terms
from fdopa.kinetics import IndexResult, InputError, compute_indices, get_preset
from fdopa.kinetics.io import read_frame_timing, sidecar_for
from fdopa.layout import CLINICAL_DIR
from fdopa.outputs import write_text_atomic

__all__ = ["PREFIX", "SCORE_KEY", "ClinicalEvaluation", "load_canonical_dynamic"]

log = logging.getLogger(__name__)

_GRID_TOL = 1e-3

PREFIX = "val/clinical"
"""Prefix of every key the clinical evaluation logs."""

SCORE_KEY = f"{PREFIX}/score"
"""The logged composite score: the name ModelCheckpoint monitors in ``checkpoint_clinical``."""


def load_canonical_dynamic(
    path: str | Path, sidecar: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a 4-D PET, reorient it to RAS+ as TorchIO's ``ToCanonical`` does, read its timing.

    Args:
        path: 4-D NIfTI image.
        sidecar: Its JSON sidecar; default :func:`fdopa.kinetics.io.sidecar_for`.

    Returns:
        ``(frames float32 (X, Y, Z, T), affine, frame_start_s, frame_duration_s)``.

    Raises:
        InputError: If the image is not 4-D or the sidecar's timing is invalid.
    """
    image = nib.load(path)
    if len(image.shape) != 4:
        raise InputError(path, "shape", f"expected a 4-D image, got shape {image.shape}")
    current = nib.orientations.io_orientation(image.affine)
    transform = nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt("RAS"))
    frames = nib.orientations.apply_orientation(image.get_fdata(dtype=np.float32), transform)
    affine = image.affine @ nib.orientations.inv_ornt_aff(transform, image.shape[:3])
    timing = read_frame_timing(sidecar or sidecar_for(path), frames.shape[3])
    return np.ascontiguousarray(frames), affine, *timing


class ClinicalEvaluation(L.Callback):
    """Clinical agreement of predicted vs reference labels at every validation epoch.

    See the module docstring for what is computed, logged and written.

    Args:
        preset: Index preset name (``guideline`` or ``genoa2024``).
        preset_overrides: Preset fields to change (as ``fdopa indices --set``).
        indices: Index output names compared and logged.
        score_indices: Key indices of ``val/clinical/score``.
        dynamic: Compute the dynamic indices of subjects with a 4-D image.
        cache_dynamic: Keep the canonical 4-D images in memory between epochs (about
            ``4 · voxels · frames`` bytes per dynamic validation subject).
        dirpath: Folder of the per-epoch CSVs; default ``<trainer.default_root_dir>/clinical``.

    Raises:
        ValueError: On an unknown preset or field, or a score index not in ``indices``.
    """

    def __init__(
        self,
        preset: str = "guideline",
        preset_overrides: Mapping[str, Any] | None = None,
        indices: Sequence[str] = DEFAULT_INDICES,
        score_indices: Sequence[str] = SCORE_INDICES,
        dynamic: bool = True,
        cache_dynamic: bool = True,
        dirpath: str | None = None,
    ) -> None:
        super().__init__()
        self.preset = get_preset(preset, **dict(preset_overrides or {}))
        self.indices = tuple(str(i) for i in indices)
        self.score_indices = tuple(str(i) for i in score_indices)
        if not set(self.score_indices) <= set(self.indices):
            raise ValueError(f"score_indices {self.score_indices} must be among {self.indices}")
        self.dynamic, self.cache_dynamic = dynamic, cache_dynamic
        self.dirpath = None if dirpath is None else Path(dirpath)
        self._reference: dict[str, dict[str, Any]] = {}
        self._frames: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._rows: list[dict[str, Any]] = []
        self._seconds = 0.0
        self._epoch_start = time.perf_counter()

    def _row(self, result: IndexResult) -> dict[str, Any]:
        missing = {i: result.missing[i] for i in self.indices if i in result.missing}
        return {**{i: getattr(result, i) for i in self.indices}, "missing": missing}

    def _dynamic(
        self, batch: Mapping[str, Any], shape: tuple[int, ...], affine: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[None, None, None]:
        """``(frames, starts, durations)`` on the batch's grid, or Nones without a 4-D image."""
        path = str(batch["dynamic_path"][0]) if "dynamic_path" in batch else ""
        if not self.dynamic or not path:
            return None, None, None
        if path not in self._frames:
            sidecar = str(batch["sidecar_path"][0]) or None
            frames, frames_affine, starts, durations = load_canonical_dynamic(path, sidecar)
            if frames.shape[:3] != shape or not np.allclose(frames_affine, affine, atol=_GRID_TOL):
                # The batch is on the model grid (data.spacing_mm): the frames follow it,
                # anti-aliased as the static PET was (ModelView.to_model).
                stack = np.moveaxis(frames, -1, 0)
                moved = map_to_grid(stack, frames_affine, affine, shape, order=1, antialias=True)
                frames = np.ascontiguousarray(np.moveaxis(moved, 0, -1))
            if not self.cache_dynamic:
                return frames, starts, durations
            self._frames[path] = (frames, starts, durations)
        return self._frames[path]

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the epoch's rows and timers."""
        self._rows, self._seconds = [], 0.0
        self._epoch_start = time.perf_counter()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Mapping[str, Any],
        batch: Mapping[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Compute the indices of one validation volume on both label maps."""
        begin = time.perf_counter()
        if not isinstance(outputs, Mapping) or "pred" not in outputs:
            raise TypeError(
                "ClinicalEvaluation needs validation_step to return a dict with "
                "'pred' (the predicted label map)"
            )
        participant = str(outputs.get("participant_id") or batch["participant_id"][0])
        pet = batch["pet"][0, 0].detach().cpu().numpy().astype(np.float64)
        affine = batch["affine"][0].detach().cpu().numpy().astype(np.float64)
        frames, starts, durations = self._dynamic(batch, pet.shape, affine)

        def indices(labels: np.ndarray) -> dict[str, Any]:
            result = compute_indices(
                pet, labels, affine, self.preset, frames, starts, durations, participant
            )
            return self._row(result)

        if participant not in self._reference:
            self._reference[participant] = indices(batch["label"][0, 0].cpu().numpy())
        try:
            predicted = indices(outputs["pred"].cpu().numpy())
        except Exception as err:  # a malformed prediction is a result, not a crash: see below
            reason = " ".join(f"error: {type(err).__name__}: {err}".split())
            log.warning("%s: indices of the predicted labels failed (%s)", participant, reason)
            predicted = {
                **dict.fromkeys(self.indices),
                "missing": dict.fromkeys(self.indices, reason),
            }
        self._rows.append(
            {
                "participant_id": participant,
                "dynamic": frames is not None,
                "reference": self._reference[participant],
                "predicted": predicted,
            }
        )
        self._seconds += time.perf_counter() - begin

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the agreement, the score and the cost; write the per-subject table."""
        begin = time.perf_counter()
        rows = _gather(self._rows)
        if not rows:
            return
        reference = pd.DataFrame(
            [{"participant_id": r["participant_id"], **r["reference"]} for r in rows]
        )
        predicted = pd.DataFrame(
            [{"participant_id": r["participant_id"], **r["predicted"]} for r in rows]
        )
        metrics = {SCORE_KEY: clinical_score(reference, predicted, self.score_indices)}
        table = agreement_table(reference, predicted, self.indices).set_index("index")
        for index in self.indices:
            _, counts = paired_values(reference, predicted, index)
            metrics |= {
                f"{PREFIX}/{index}_icc": table.at[index, "icc_a1"],
                f"{PREFIX}/{index}_bias": table.at[index, "bias"],
                f"{PREFIX}/{index}_mape": table.at[index, "mape"],
                f"{PREFIX}/{index}_n_missing": counts["n_missing_reference"]
                + counts["n_missing_method"],
            }
        subjects = self._subject_table(rows, reference, predicted, trainer.current_epoch)
        if not trainer.sanity_checking:
            self._write(trainer, subjects)
        self._seconds += time.perf_counter() - begin
        metrics[f"{PREFIX}/seconds"] = self._seconds
        for key, value in metrics.items():
            pl_module.log(key, float(value), on_step=False, on_epoch=True)
        elapsed = time.perf_counter() - self._epoch_start
        log.info(
            "epoch %d: %s %.3f over %d subjects; clinical evaluation %.2f s of a %.2f s "
            "validation epoch",
            trainer.current_epoch,
            SCORE_KEY,
            metrics[SCORE_KEY],
            len(rows),
            self._seconds,
            elapsed,
        )

    def _subject_table(
        self,
        rows: list[dict[str, Any]],
        reference: pd.DataFrame,
        predicted: pd.DataFrame,
        epoch: int,
    ) -> pd.DataFrame:
        """One row per subject: ``<index>_reference`` / ``<index>_predicted``, score, reasons."""
        table = pd.DataFrame(
            {
                "participant_id": reference["participant_id"],
                "epoch": epoch,
                "dynamic": [r["dynamic"] for r in rows],
            }
        )
        terms = {i: subject_terms(reference[i], predicted[i]) for i in self.score_indices}
        table["score"] = pd.DataFrame(terms).mean(axis=1)  # NaN: every key index absent
        for index in self.indices:
            table[f"{index}_reference"] = reference[index]
            table[f"{index}_predicted"] = predicted[index]
        for side, frame in (("reference", reference), ("predicted", predicted)):
            table[f"missing_{side}"] = [json.dumps(m, sort_keys=True) for m in frame["missing"]]
        return table

    def _write(self, trainer: L.Trainer, subjects: pd.DataFrame) -> None:
        """The epoch's CSV (and ``preset.json``) on rank zero; the W&B table."""
        if trainer.is_global_zero:
            folder = self.dirpath or Path(trainer.default_root_dir) / CLINICAL_DIR
            preset = folder / "preset.json"
            if not preset.exists():
                write_text_atomic(preset, json.dumps(dataclasses.asdict(self.preset), indent=2))
            write_text_atomic(
                folder / f"epoch_{trainer.current_epoch:03d}.csv", subjects.to_csv(index=False)
            )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                frame = subjects.astype(object).where(subjects.notna(), None)
                logger.log_table(key=f"{PREFIX}/subjects", dataframe=frame)


def _gather(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's rows (DDP), one per participant, sorted by participant."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, rows)
        rows = [row for part in parts for row in part]
    unique = {row["participant_id"]: row for row in rows}
    return [unique[key] for key in sorted(unique)]
