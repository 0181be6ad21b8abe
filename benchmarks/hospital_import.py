"""Hospital import against the synthetic truth: SUV round trip, FLAIR registration, atlas labels.

Usage: python benchmarks/hospital_import.py [--n 10] [--grid standard] [--cohort DIR] [--out DIR]

A synthetic paediatric cohort (generated, or ``--cohort``) is written as DICOM by the test
writer (``tests/hospital/dicom_writer.py``) in three scanner families, cycling: ``siemens``
(multi-frame dynamic, DecayCorrection START), ``ge`` (one series per frame, ADMIN, slices head
first, in-plane voxels halved: 1×1×2 mm on the standard grid), ``philips`` (CNTS with the
Philips scale factors). Each FLAIR is moved by a random rigid motion (±10°, ±15 mm) and written
as an oblique MR series. Then ``fdopa import`` runs, and from the imported PET, the registered
FLAIR and the true tumour mask alone the label map is derived (``fdopa labels``). Printed per
subject and summarised:

* round trip: max |SUV error| / max SUV (static and dynamic), frame-timing error (s), T/S,
  TBRmax, TBRmean relative differences against the original NIfTI with the true labels;
* registration: mean error (mm) of the FLAIR → PET transform over every brain voxel;
* labels: striatum and brain Dice against the synthetic truth, T/S / TBRmax / TBRmean from the
  derived labels vs from the true labels (share within 5 %);
* seconds per subject (import, labels), one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hospital"))
from dicom_writer import FAMILIES, Patient, rigid, upsample_in_plane, write_mr, write_pet

from fdopa.data.synthetic import SynthConfig, generate_cohort
from fdopa.hospital.importer import ImportOptions, import_dicom
from fdopa.hospital.labels import derive_labels
from fdopa.hospital.masks import read_tumour_mask
from fdopa.hospital.plan import pseudonym
from fdopa.kinetics import compute_indices
from fdopa.labels import BRAIN, STRIATUM, TUMOUR
from fdopa.layout import SubjectPaths

KEY = "benchmark"
RATIOS = ("tsr", "tbr_max", "tbr_mean")
ORDER = ("siemens", "ge", "philips")


def _write_dicom(cohort: Path, folder: Path, rng: np.random.Generator) -> dict[str, dict]:
    """Write every subject as DICOM; return pid → {family, new_id, motion, upsampled}."""
    subjects = {}
    ids = sorted(p.name for p in cohort.glob("sub-*"))
    for i, pid in enumerate(ids):
        family = ORDER[i % 3]
        paths = SubjectPaths(cohort, pid)
        sidecar = json.loads(paths.static_sidecar.read_text())
        patient = Patient(
            f"BENCH{i:04d}",
            weight_kg=sidecar["BodyWeight"],
            dose_mbq=sidecar["InjectedRadioactivity"],
        )
        upsample = family == "ge"
        static = nib.load(paths.static_pet)
        data, affine = static.get_fdata(), static.affine
        if upsample:
            data, affine = upsample_in_plane(data, affine)
        write_pet(
            folder / pid / "static",
            data,
            affine,
            sidecar["FrameTimesStart"],
            sidecar["FrameDuration"],
            patient,
            FAMILIES[family],
            number=2,
        )
        if paths.dynamic_pet.exists():
            dynamic = nib.load(paths.dynamic_pet)
            frames, frame_affine = dynamic.get_fdata(), dynamic.affine
            if upsample:
                frames, frame_affine = upsample_in_plane(frames, frame_affine)
            timing = json.loads(paths.dynamic_sidecar.read_text())
            write_pet(
                folder / pid / "dynamic",
                frames,
                frame_affine,
                timing["FrameTimesStart"],
                timing["FrameDuration"],
                patient,
                FAMILIES[family],
                number=10,
            )
        motion = rigid(rng.uniform(-10, 10, 3), rng.uniform(-15, 15, 3), centre=(0.0, -17.0, 5.0))
        flair = nib.load(paths.flair)
        write_mr(folder / pid / "mr", flair.get_fdata(), motion @ flair.affine, patient)
        subjects[pid] = {
            "family": family,
            "new_id": pseudonym(patient.patient_id, KEY),
            "motion": motion,
            "upsampled": upsample,
        }
    return subjects


def _native(data: np.ndarray, upsampled: bool) -> np.ndarray:
    if not upsampled:
        return data
    x, y = data.shape[0] // 2, data.shape[1] // 2
    return data.reshape(x, 2, y, 2, *data.shape[2:]).mean(axis=(1, 3))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _round_trip(cohort: Path, root: Path, pid: str, info: dict) -> dict:
    source, new = SubjectPaths(cohort, pid), SubjectPaths(root, info["new_id"])
    truth = nib.load(source.static_pet).get_fdata()
    got = _native(nib.load(new.static_pet).get_fdata(), info["upsampled"])
    row = {"suv_err_rel": float(np.abs(got - truth).max() / truth.max())}
    pairs = [(source.static_sidecar, new.static_sidecar)]
    if source.dynamic_pet.exists():
        frames = nib.load(source.dynamic_pet).get_fdata()
        back = _native(nib.load(new.dynamic_pet).get_fdata(), info["upsampled"])
        row["dyn_err_rel"] = float(np.abs(back - frames).max() / frames.max())
        pairs.append((source.dynamic_sidecar, new.dynamic_sidecar))
    timing = 0.0
    for a, b in pairs:
        ta, tb = json.loads(a.read_text()), json.loads(b.read_text())
        for key in ("FrameTimesStart", "FrameDuration"):
            timing = max(timing, float(np.abs(np.subtract(ta[key], tb[key])).max()))
    row["timing_err_s"] = timing
    labels = np.asarray(nib.load(source.labels).dataobj)
    affine = nib.load(source.static_pet).affine
    a = compute_indices(truth, labels, affine, "guideline")
    b = compute_indices(got, labels, affine, "guideline")
    for key in RATIOS:
        row[f"{key}_rt"] = abs(getattr(b, key) / getattr(a, key) - 1)
    transform = sitk.ReadTransform(str(new.flair_to_pet))
    world = np.argwhere(labels > 0) @ affine[:3, :3].T + affine[:3, 3]
    flip = np.array([-1.0, -1.0, 1.0])
    estimate = np.array([np.array(transform.TransformPoint(tuple(p * flip))) * flip for p in world])
    motion = info["motion"]
    truth_points = world @ motion[:3, :3].T + motion[:3, 3]
    row["reg_err_mm"] = float(np.linalg.norm(estimate - truth_points, axis=1).mean())
    return row


def _labels(cohort: Path, root: Path, pid: str, info: dict, tmp: Path) -> dict:
    source, new = SubjectPaths(cohort, pid), SubjectPaths(root, info["new_id"])
    truth = np.asarray(nib.load(source.labels).dataobj)
    source_affine = nib.load(source.static_pet).affine
    image = nib.load(new.static_pet)
    pet, affine = image.get_fdata(), image.affine
    mask_path = tmp / f"{pid}_tumour.nii.gz"
    nib.save(nib.Nifti1Image((truth == TUMOUR).astype(np.uint8), source_affine), mask_path)
    tumour = read_tumour_mask(mask_path, pet.shape, affine)
    flair = nib.load(new.flair).get_fdata()
    begin = time.perf_counter()
    result = derive_labels(pet, affine, tumour, flair)
    seconds = time.perf_counter() - begin
    reference = truth
    if info["upsampled"]:
        reference, _ = upsample_in_plane(truth, source_affine)
    row = {
        "dice_striatum": _dice(result.labels == STRIATUM, reference == STRIATUM),
        "dice_brain": _dice(result.labels == BRAIN, reference == BRAIN),
        "labels_s": seconds,
    }
    a = compute_indices(pet, reference, affine, "guideline")
    b = compute_indices(pet, result.labels, affine, "guideline")
    for key in RATIOS:
        row[f"{key}_labels"] = abs(getattr(b, key) / getattr(a, key) - 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="subjects (when generating)")
    parser.add_argument("--grid", default="standard", help="tiny or standard")
    parser.add_argument("--cohort", type=Path, help="existing synthetic cohort (else generated)")
    parser.add_argument("--out", type=Path, help="keep the DICOM and the imported cohort here")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="fdopa-hospital-"))
    work.mkdir(parents=True, exist_ok=True)
    cohort = args.cohort
    if cohort is None:
        cohort = work / "synthetic"
        config = SynthConfig(n=args.n, grid=args.grid, dynamic_fraction=0.5, seed=args.seed)
        generate_cohort(config, cohort, n_jobs=1, progress=False)
    begin = time.perf_counter()
    subjects = _write_dicom(cohort, work / "dicom", np.random.default_rng(args.seed))
    print(f"wrote DICOM of {len(subjects)} subjects in {time.perf_counter() - begin:.1f} s")
    begin = time.perf_counter()
    outcomes = import_dicom(work / "dicom", work / "imported", ImportOptions(key=KEY))
    import_s = time.perf_counter() - begin
    failed = [o for o in outcomes if not o.ok]
    print(
        f"imported {len(outcomes) - len(failed)}/{len(outcomes)} in {import_s:.1f} s "
        f"({import_s / len(outcomes):.1f} s/subject, registration included)"
    )
    for outcome in failed:
        print(f"  FAILED {outcome.participant_id}: {outcome.error}")
    seconds = {o.participant_id: o.seconds for o in outcomes}
    rows = []
    for pid, info in subjects.items():
        row = {"participant": pid, "family": info["family"], "import_s": seconds[info["new_id"]]}
        row.update(_round_trip(cohort, work / "imported", pid, info))
        row.update(_labels(cohort, work / "imported", pid, info, work))
        rows.append(row)
        print(
            " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ),
            flush=True,
        )
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(5).to_string(index=False))
    within = {k: float((table[f"{k}_labels"] <= 0.05).mean()) for k in RATIOS}
    print("\nsummary")
    print(
        f"  SUV round trip: max |error| / max = {table['suv_err_rel'].max():.2e} (static), "
        f"{table.get('dyn_err_rel', pd.Series([np.nan])).max():.2e} (dynamic); "
        f"frame timing max error {table['timing_err_s'].max():.2e} s"
    )
    for key in RATIOS:
        print(f"  {key} round trip: max relative difference {table[f'{key}_rt'].max():.2e}")
    print(
        f"  FLAIR registration: mean landmark error {table['reg_err_mm'].mean():.2f} mm "
        f"(max over subjects {table['reg_err_mm'].max():.2f} mm)"
    )
    print(
        f"  labels: striatum Dice median {table['dice_striatum'].median():.3f} "
        f"(min {table['dice_striatum'].min():.3f}), brain Dice median "
        f"{table['dice_brain'].median():.3f} (min {table['dice_brain'].min():.3f})"
    )
    for key in RATIOS:
        print(
            f"  {key} from derived labels within 5 %: {100 * within[key]:.0f} % of subjects "
            f"(max difference {100 * table[f'{key}_labels'].max():.1f} %)"
        )
    print(
        f"  time per subject: import {table['import_s'].mean():.1f} s, labels "
        f"{table['labels_s'].mean():.1f} s (one process)"
    )
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
