"""Noise-free synthetic subjects: the fast indices read from files against independent truth.

None of the expected values comes from the kinetics code (neither implementation):

* brute force on the files with numpy: the tumour and striatum voxels, their max, mean and
  volume, the MTV threshold count, the ratios, the region TACs, the peak frame and the
  least-squares slope (the definitions of docs/indices.md);
* the generator's own voxel count of the tumour (truth ``lesion.volume_ml_labels``);
* the generator's analytic model: in a noise-free image every voxel mixes the compartments'
  model TACs (truth ``tacs_model``) with fixed weights, so a region's TAC is a non-negative
  combination of them, and the same weights applied to the compartments' exact static-window
  means (truth ``static_window_model``) give the region's static mean.
"""

import functools
import json

import nibabel as nib
import numpy as np
import pytest
from scipy import optimize

from fdopa.kinetics import PRESETS, indices_from_files
from fdopa.labels import STRIATUM, TUMOUR
from fdopa.layout import SubjectPaths

pytestmark = pytest.mark.slow

RTOL = 1e-6  # float32 images, float64 sums


def _image(path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=np.float64), image.affine


def _x_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World x (mm) of every voxel of ``mask``."""
    return nib.affines.apply_affine(affine, np.argwhere(mask))[:, 0]


def _striatum(labels: np.ndarray, affine: np.ndarray, rule: str) -> np.ndarray:
    """Both striata, or the one on the other side of the tumour (split halfway between them)."""
    striatum = labels == STRIATUM
    if rule == "both":
        return striatum
    assert rule == "contralateral", rule
    x = _x_mm(striatum, affine)
    split = (x.min() + x.max()) / 2
    far = x > split if _x_mm(labels == TUMOUR, affine).mean() < split else x < split
    mask = np.zeros_like(striatum)
    mask[tuple(np.argwhere(striatum)[far].T)] = True
    return mask


def _slope_per_h(mid_min: np.ndarray, tac: np.ndarray) -> float:
    return float(np.polyfit(mid_min / 60.0, tac, 1)[0])


def _check_static(got: dict, static: np.ndarray, labels: np.ndarray, affine, truth, preset):
    voxel_ml = float(np.prod(nib.affines.voxel_sizes(affine))) / 1000.0
    tumour = labels == TUMOUR
    striatum = _striatum(labels, affine, got["striatum_rule"])
    approx = functools.partial(pytest.approx, rel=RTOL)
    assert got["tumour_ml"] == approx(tumour.sum() * voxel_ml)
    assert got["tumour_ml"] == approx(truth["lesion"]["volume_ml_labels"])
    assert got["tumour_suvmax"] == approx(static[tumour].max())
    assert got["tumour_suvmean"] == approx(static[tumour].mean())
    assert got["striatum_ml"] == approx(striatum.sum() * voxel_ml)
    assert got["striatum_suvmax"] == approx(static[striatum].max())
    assert got["striatum_suvmean"] == approx(static[striatum].mean())
    assert got["tsr"] == approx(static[tumour].max() / static[striatum].max())
    reference_mean = got["reference_suvmean"]
    assert got["tbr_mean"] == approx(static[tumour].mean() / reference_mean)
    if preset.tbr_max_rule == "max_over_mean":
        assert got["tbr_max"] == approx(static[tumour].max() / reference_mean)
    else:
        assert got["tbr_max"] == approx(static[tumour].max() / got["reference_suvmax"])
    if preset.mtv_rule == "label":
        assert got["mtv_ml"] == approx(tumour.sum() * voxel_ml)
    else:
        hot = static[tumour] >= preset.mtv_threshold * reference_mean
        assert got["mtv_ml"] == approx(hot.sum() * voxel_ml)
    return tumour, striatum


def _check_dynamic(result, dynamic_path, sidecar, tumour, striatum, truth, preset):
    got, tacs = result.to_dict(), result.tacs.to_dict()
    frames, _ = _image(dynamic_path)
    start_min = np.asarray(sidecar["FrameTimesStart"]) / 60.0
    mid_min = start_min + np.asarray(sidecar["FrameDuration"]) / 120.0
    curves = {"tumour": frames[tumour].mean(axis=0), "striatum": frames[striatum].mean(axis=0)}
    for region, curve in curves.items():
        np.testing.assert_allclose(tacs[f"{region}_mean"], curve, rtol=RTOL, err_msg=region)
    peak = int(np.argmax(curves["tumour"]))
    expected_ttp = mid_min[peak] if preset.ttp_rule == "mid" else start_min[peak]
    assert got["ttp_min"] == pytest.approx(expected_ttp)
    tol_min = preset.time_tol_s / 60.0
    if preset.slope_window == "fixed":
        low, high = preset.slope_window_min
        window = (mid_min >= low - tol_min) & (mid_min <= high + tol_min)
    else:
        window = np.arange(len(start_min)) >= np.argmax(
            start_min >= preset.slope_start_s / 60 - tol_min
        )
    slopes = {r: _slope_per_h(mid_min[window], c[window]) for r, c in curves.items()}
    assert got["slope_tumour_per_h"] == pytest.approx(slopes["tumour"], rel=1e-5)
    assert got["slope_striatum_per_h"] == pytest.approx(slopes["striatum"], rel=1e-5)
    assert got["dsr"] == pytest.approx(slopes["tumour"] / slopes["striatum"], rel=1e-5)
    # Every region's TAC and static mean are one mixture of the generator's analytic curves.
    names = [name for name in truth["tacs_model"] if name != "mid_min"]
    model = np.array([truth["tacs_model"][name] for name in names]).T
    window_means = np.array([truth["static_window_model"][name] for name in names])
    np.testing.assert_allclose(truth["tacs_model"]["mid_min"], mid_min, atol=1e-9)
    for region in ("tumour", "striatum", "reference"):
        curve = np.asarray(tacs[f"{region}_mean"])
        weights, residual = optimize.nnls(model, curve)
        assert residual <= 1e-5 * np.linalg.norm(curve), region
        assert weights @ window_means == pytest.approx(got[f"{region}_suvmean"], rel=1e-5), region


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_noise_free_indices_equal_independent_truth(paediatric_cohort, name):
    preset = PRESETS[name]
    subjects = [
        SubjectPaths(paediatric_cohort, p.name) for p in sorted(paediatric_cohort.glob("sub-*"))
    ]
    n_dynamic = 0
    for paths in subjects:
        truth = json.loads(paths.truth.read_text())
        clean = paths.noise_free
        dynamic = clean.dynamic_pet if clean.dynamic_pet.exists() else None
        result = indices_from_files(clean.static_pet, paths.labels, name, dynamic_path=dynamic)
        static, affine = _image(clean.static_pet)
        labels = np.asarray(nib.load(paths.labels).dataobj).astype(int)
        got = result.to_dict()
        tumour, striatum = _check_static(got, static, labels, affine, truth, preset)
        if dynamic is not None:
            n_dynamic += 1
            sidecar = json.loads(clean.dynamic_sidecar.read_text())
            _check_dynamic(result, dynamic, sidecar, tumour, striatum, truth, preset)
        else:
            assert got["missing"]["ttp_min"] == "no_dynamic"
    assert len(subjects) == 8 and n_dynamic == 4
