"""Generate a whole synthetic cohort and write it in the cohort layout, atomically.

The cohort is built in a hidden sibling of the target and renamed into place only when every
subject is written (:func:`fdopa.outputs.staged_dir`), so an interrupted run never leaves a
half-written cohort, and ``overwrite`` replaces only an earlier fdopa cohort.
Subjects are generated in parallel (joblib); subject ``i`` depends only on ``(seed, i)`` and its
dynamic flag, so the result is identical whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fdopa import __version__
from fdopa.data.synthetic.scanner import UNITS
from fdopa.data.synthetic.subject import SyntheticSubject, build_subject
from fdopa.data.synthetic.synth_config import SynthConfig
from fdopa.data.synthetic.tracer import Framing
from fdopa.layout import PARTICIPANTS, SubjectPaths
from fdopa.outputs import staged_dir, write_nifti

#: The cohort's description file; its ``fdopa_synth`` record holds the generator options.
DESCRIPTION = "dataset_description.json"

log = logging.getLogger(__name__)

#: Static-image sidecar fields shared by every subject.
_PET_SIDECAR: dict[str, Any] = {
    "Modality": "PT",
    "Manufacturer": "fdopa synthetic",
    "TracerName": "FDOPA",
    "TracerRadionuclide": "F18",
    "Units": "g/mL",
    "SUVType": "body weight",
    "InjectedRadioactivityUnits": "MBq",
    "BodyWeightUnits": "kg",
    "ModeOfAdministration": "bolus",
    "TimeZero": "10:00:00",
    "ScanStart": 0,
    "InjectionStart": 0,
    "ImageDecayCorrected": True,
    "ImageDecayCorrectionTime": 0,
    "AttenuationCorrection": "synthetic",
}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _sidecars(subject: SyntheticSubject, window_s: tuple[float, float]) -> tuple[dict, dict]:
    """Static and dynamic sidecars: physically consistent timing, dose and body weight."""
    common = {
        **_PET_SIDECAR,
        "InjectedRadioactivity": subject.participant["injected_mbq"],
        "BodyWeight": subject.participant["weight_kg"],
        "ImageDecayCorrectionTime": 0,
    }
    static_framing = Framing((window_s[0],), (window_s[1] - window_s[0],))
    return {**common, **static_framing.to_bids()}, {**common, **subject.framing.to_bids()}


def write_subject(root: Path, subject: SyntheticSubject, config: SynthConfig) -> None:
    """Write one subject's images, labels, sidecars and ground truth under ``root``."""
    paths = SubjectPaths(root, subject.participant_id)
    clean = paths.noise_free
    static_sidecar, dynamic_sidecar = _sidecars(subject, config.static_window_s)
    for sidecar in (static_sidecar, dynamic_sidecar):  # scanner realism and storage options
        sidecar["Units"] = UNITS[config.units]
        if "scanner" in subject.truth:
            profile = subject.truth["scanner"]["profile"]
            sidecar["ManufacturersModelName"] = f"fdopa synthetic {profile}"
    write_nifti(paths.static_pet, subject.static, subject.affine)
    _write_json(paths.static_sidecar, static_sidecar)
    write_nifti(clean.static_pet, subject.static_clean, subject.affine)
    _write_json(clean.static_sidecar, static_sidecar)
    if subject.dynamic is not None and subject.dynamic_clean is not None:
        write_nifti(paths.dynamic_pet, subject.dynamic, subject.affine, seconds=True)
        _write_json(paths.dynamic_sidecar, dynamic_sidecar)
        write_nifti(clean.dynamic_pet, subject.dynamic_clean, subject.affine, seconds=True)
        _write_json(clean.dynamic_sidecar, dynamic_sidecar)
    if subject.flair is not None:
        write_nifti(paths.flair, subject.flair, subject.affine)
    write_nifti(paths.labels, subject.labels, subject.affine)
    write_nifti(paths.manual_labels, subject.manual, subject.affine)
    _write_json(paths.truth, subject.truth)


def _generate_one(config: SynthConfig, root: Path, participant_id: str,
                  seed: np.random.SeedSequence, dynamic: bool) -> dict[str, Any]:  # fmt: skip
    subject = build_subject(config, participant_id, seed, dynamic)
    write_subject(root, subject, config)
    return subject.participant


def differing_options(config: SynthConfig, root: str | Path) -> list[str] | None:
    """The options in which the cohort generated in ``root`` differs from ``config``.

    Compares ``config.record()`` with the ``fdopa_synth`` record of ``root``'s
    ``dataset_description.json``, a key present on one side only included (so a scanner cohort
    never passes for a brain box).

    Args:
        config: The options a cohort is wanted with.
        root: An existing cohort folder.

    Returns:
        The differing keys, sorted (empty: the same options); None when ``root`` holds no
        generated cohort (no description, or one without an ``fdopa_synth`` record).
    """
    description = Path(root) / DESCRIPTION
    found = None
    if description.is_file():
        found = json.loads(description.read_text()).get("fdopa_synth")
    if found is None:
        return None
    expected = config.record()
    return sorted(k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k))


def _dataset_description(config: SynthConfig) -> dict[str, Any]:
    return {
        "Name": f"fdopa synthetic {config.cohort} FDOPA PET cohort",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "fdopa", "Version": __version__}],
        "fdopa_synth": config.record(),
    }


def generate_cohort(
    config: SynthConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Generate a synthetic cohort into ``out`` (cohort layout).

    Args:
        config: Generator configuration.
        out: Target directory; absent, empty, or (with ``overwrite``) an fdopa cohort.
        overwrite: Replace an existing fdopa cohort (one with fdopa's
            ``dataset_description.json``); other non-empty folders are always refused.
        n_jobs: Parallel worker processes (joblib); ``-1`` uses every core.
        progress: Show a progress bar.

    Returns:
        The ``participants.tsv`` table.

    Raises:
        FileExistsError: If ``out`` is a file, a non-empty folder that is not an fdopa cohort,
            or a cohort and ``overwrite`` is false.
        ValueError: If ``out`` is the current, home or root folder (or holds one).
        OSError: If ``out`` cannot be written.
    """
    dynamic_rng = np.random.default_rng([config.seed, 0])
    n_dynamic = round(config.dynamic_fraction * config.n)
    dynamic = np.zeros(config.n, bool)
    dynamic[dynamic_rng.choice(config.n, n_dynamic, replace=False)] = True
    seeds = np.random.SeedSequence([config.seed, 1]).spawn(config.n)
    ids = config.participant_ids()
    configs = [dataclasses.replace(config, realism="scanner" if scan else "brainbox")
               for scan in config.scanner_subjects()]  # fmt: skip

    with staged_dir(out, kind="cohort", overwrite=overwrite) as root:
        jobs = (
            delayed(_generate_one)(subject_config, root, pid, seed, bool(dyn))
            for subject_config, pid, seed, dyn in zip(configs, ids, seeds, dynamic, strict=True)
        )
        rows: list[dict[str, Any]] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())  # fmt: skip
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task(f"synth {config.cohort} ({config.geometry})", total=config.n)
            runner = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
            for row in runner(jobs):
                rows.append(row)
                bar.advance(task)
        table = pd.DataFrame(rows).sort_values("participant_id").reset_index(drop=True)
        table.to_csv(root / PARTICIPANTS, sep="\t", index=False)
        _write_json(root / DESCRIPTION, _dataset_description(config))
    log.info("wrote %d subjects to %s", config.n, out)
    return table
