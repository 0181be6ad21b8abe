"""A small valid scan (static, labels, 4-D PET, sidecar) for the file-level tests."""

import json

import nibabel as nib
import numpy as np

SHAPE = (20, 12, 12)
AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])
AFFINE[:3, 3] = [-38.0, -22.0, -22.0]
STARTS = [0.0, 60.0, 120.0, 300.0, 600.0, 1200.0]
DURATIONS = [60.0, 60.0, 180.0, 300.0, 600.0, 600.0]


def scan():
    """Valid arrays and sidecar of a small scan (tumour on the right)."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[1:19, 1:11, 1:11] = 1
    labels[5:7, 5:7, 5:7] = 2
    labels[13:15, 5:7, 5:7] = 2
    labels[15:17, 2:4, 5:7] = 3
    rng = np.random.default_rng(0)
    dynamic = (labels[..., None] + 1.0) * np.linspace(0.5, 1.5, len(STARTS))
    dynamic = (dynamic + rng.uniform(0, 0.1, dynamic.shape)).astype(np.float32)
    sidecar = {"FrameTimesStart": STARTS, "FrameDuration": DURATIONS, "Units": "g/mL"}
    return {"static": dynamic[..., 3:].mean(axis=3), "labels": labels, "dynamic": dynamic,
            "sidecar": sidecar, "affines": {}}  # fmt: skip


def write(tmp_path, parts):
    """Write the parts as NIfTI / JSON files; return their paths."""
    paths = {
        "static": tmp_path / "sub-01_desc-static_pet.nii.gz",
        "labels": tmp_path / "sub-01_dseg.nii.gz",
        "dynamic": tmp_path / "sub-01_pet.nii.gz",
        "sidecar": tmp_path / "sub-01_pet.json",
    }
    for name in ("static", "labels", "dynamic"):
        nib.save(nib.Nifti1Image(parts[name], parts["affines"].get(name, AFFINE)), paths[name])
    paths["sidecar"].write_text(json.dumps(parts["sidecar"]))
    return paths
