"""Reference implementation of the PET indices (docs/indices.md).

Deliberately plain: one region at a time, one rule at a time. It writes the ground-truth
indices of the synthetic cohort and is the yardstick for any faster implementation.

Conventions (see also :mod:`fdopa.kinetics.reference_regions` and
:mod:`fdopa.kinetics.reference_dynamic`):
    * Values are in the image's stored units; ratios are unit-free; volumes in mL from the
      affine's voxel size; times in minutes; slopes per hour.
    * SUVpeak: the sphere volume is ``preset.suvpeak_ml`` (radius ``(3V/4π)^(1/3)`` mm, 6.20 mm
      for 1 mL). A voxel belongs to the sphere when its centre lies within the radius of the
      centre voxel (distances through the voxel size). SUVpeak is the maximum, over sphere
      centres at tumour voxels, of the mean of all image voxels in the sphere whatever their
      label; voxels outside the image are left out of the mean. A tumour smaller than the
      sphere still has an SUVpeak.
    * The hot tumour mask (≥ ``hot_fraction`` × tumour max) is taken on the static image.
    * Max-based ratios (T/S, TBRmax) follow one voxel and are noise-sensitive.
    * An index that cannot be computed is None and ``missing[key]`` holds the reason.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import ndimage

from fdopa.kinetics.names import DYNAMIC_KEYS, EXTRA_KEYS, INDEX_KEYS, TAC_REGIONS
from fdopa.kinetics.presets import Preset, get_preset
from fdopa.kinetics.reference_dynamic import (
    curve_pattern,
    frame_mid_s,
    ols_slope_per_h,
    patlak_ki,
    region_tac,
    slope_window_frames,
)
from fdopa.kinetics.reference_regions import Regions, derive_regions, validate_inputs
from fdopa.kinetics.validation import check_analysable

__all__ = [
    "DYNAMIC_KEYS",
    "EXTRA_KEYS",
    "INDEX_KEYS",
    "reference_indices",
    "sphere_kernel",
    "suv_peak",
]

logger = logging.getLogger(__name__)


def sphere_kernel(zooms: tuple[float, float, float] | np.ndarray, volume_ml: float) -> np.ndarray:
    """Boolean kernel of the voxels whose centres lie in a sphere of the given volume.

    Args:
        zooms: Voxel size (mm) along the three axes.
        volume_ml: Sphere volume in mL.

    Returns:
        Odd-sized boolean array centred on the sphere centre.
    """
    zooms_a = np.asarray(zooms, dtype=float)
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    half = np.floor(radius / zooms_a + 1e-9).astype(int)
    axes = [np.arange(-h, h + 1) * z for h, z in zip(half, zooms_a, strict=True)]
    dx, dy, dz = np.meshgrid(*axes, indexing="ij")
    return dx**2 + dy**2 + dz**2 <= radius**2 * (1 + 1e-9)


def suv_peak(image: np.ndarray, mask: np.ndarray, zooms: Any, volume_ml: float) -> float | None:
    """Maximum over voxels of ``mask`` of the image mean in a sphere centred on the voxel.

    Args:
        image: 3-D image.
        mask: Region whose voxels are the candidate sphere centres.
        zooms: Voxel size (mm).
        volume_ml: Sphere volume (mL).

    Returns:
        SUVpeak, or None for an empty mask.
    """
    if not mask.any():
        return None
    kernel = sphere_kernel(zooms, volume_ml).astype(float)
    half = (np.array(kernel.shape) - 1) // 2
    index = np.argwhere(mask)
    lo = np.maximum(index.min(axis=0) - half, 0)
    hi = np.minimum(index.max(axis=0) + half + 1, image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    # Zero padding outside the crop is exact for every centre inside ``mask``: the crop reaches
    # a full kernel half-width beyond the mask except where it meets the image border, and
    # there the count below leaves the missing voxels out of the mean.
    sums = ndimage.correlate(image[box], kernel, mode="constant", cval=0.0)
    counts = ndimage.correlate(np.ones(sums.shape), kernel, mode="constant", cval=0.0)
    return float((sums / counts)[mask[box]].max())


def _ratio(values: dict[str, Any], missing: dict[str, str], key: str, num: str, den: str) -> None:
    """Set ``values[key] = values[num] / values[den]``, or record why that is impossible."""
    if values[num] is None:
        missing[key] = missing[num]
    elif values[den] is None:
        missing[key] = missing[den]
    elif values[den] == 0:
        missing[key] = f"{den}_zero"
    else:
        values[key] = values[num] / values[den]


def _static_indices(
    static: np.ndarray,
    regions: Regions,
    preset: Preset,
    values: dict[str, Any],
    missing: dict[str, str],
) -> None:
    """Fill the static indices into ``values`` and their missing reasons into ``missing``."""
    for region, mask in (
        ("tumour", regions.tumour),
        ("striatum", regions.striatum),
        ("reference", regions.reference),
    ):
        keys = [f"{region}_suvmax", f"{region}_suvmean", f"{region}_ml"]
        keys += {"tumour": ["tumour_suvpeak"], "reference": ["reference_rule"]}.get(region, [])
        if not mask.any():
            missing.update(dict.fromkeys([k for k in keys if k in INDEX_KEYS], f"{region}_empty"))
            continue
        values[f"{region}_suvmax"] = float(static[mask].max())
        values[f"{region}_suvmean"] = float(static[mask].mean())
        values[f"{region}_ml"] = regions.ml(mask)
    check_analysable({r: values[f"{r}_suvmean"] for r in ("reference", "tumour")}, "static")
    if regions.tumour.any():
        values["tumour_suvpeak"] = suv_peak(
            static, regions.tumour, regions.zooms, preset.suvpeak_ml
        )
    if regions.reference.any():
        values["reference_rule"] = regions.reference_rule

    tsr = {"max_over_max": "suvmax", "mean_over_mean": "suvmean"}[preset.tsr_rule]
    _ratio(values, missing, "tsr", f"tumour_{tsr}", f"striatum_{tsr}")
    tbr = {"max_over_mean": "suvmean", "max_over_max": "suvmax"}[preset.tbr_max_rule]
    _ratio(values, missing, "tbr_max", "tumour_suvmax", f"reference_{tbr}")
    _ratio(values, missing, "tbr_mean", "tumour_suvmean", "reference_suvmean")

    if values["tumour_ml"] is None:
        missing["mtv_ml"] = missing["tumour_ml"]
    elif preset.mtv_rule == "label":
        values["mtv_ml"] = values["tumour_ml"]
    elif values["reference_suvmean"] is None:
        missing["mtv_ml"] = missing["reference_suvmean"]
    else:
        threshold = preset.mtv_threshold * values["reference_suvmean"]
        values["mtv_threshold"] = threshold
        values["mtv_ml"] = regions.ml(regions.tumour & (static >= threshold))
    if values["mtv_ml"] is None:
        missing["measurable"] = missing["mtv_ml"]
    else:
        values["measurable"] = bool(values["mtv_ml"] > preset.measurable_ml)


def _dynamic_indices(
    dynamic: np.ndarray,
    starts: np.ndarray,
    durations: np.ndarray,
    masks: dict[str, np.ndarray],
    preset: Preset,
    values: dict[str, Any],
    missing: dict[str, str],
) -> dict[str, Any]:
    """Fill the dynamic indices into ``values`` / ``missing``; return the TACs."""
    mid_min = frame_mid_s(starts, durations) / 60.0
    tacs: dict[str, Any] = {
        "frame_start_min": (starts / 60.0).tolist(),
        "frame_duration_min": (durations / 60.0).tolist(),
        "frame_mid_min": mid_min.tolist(),
    }
    curves: dict[str, np.ndarray | None] = {}
    for region in TAC_REGIONS:
        tac = region_tac(dynamic, masks[region])
        curves[region] = None if tac is None else tac[0]
        tacs[f"{region}_mean"] = None if tac is None else tac[0].tolist()
        tacs[f"{region}_sd"] = None if tac is None else tac[1].tolist()

    frames = slope_window_frames(starts, durations, preset)
    values["n_frames"] = int(starts.size)
    values["slope_window_frames"] = int(frames.size)
    if frames.size:
        values["slope_window_start_min"] = float(mid_min[frames[0]])
        values["slope_window_end_min"] = float(mid_min[frames[-1]])
    tumour_tac = curves[preset.tumour_tac]
    if tumour_tac is None:
        missing["ttp_min"] = f"{preset.tumour_tac}_empty"
    else:
        peak = int(np.argmax(tumour_tac))
        ttp_s = starts[peak] if preset.ttp_rule == "start" else starts[peak] + durations[peak] / 2
        values["ttp_min"] = float(ttp_s) / 60.0
    for region, tac, name in (
        ("tumour", tumour_tac, preset.tumour_tac),
        ("striatum", curves["striatum"], "striatum"),
    ):
        key = f"slope_{region}_per_h"
        if tac is None:
            missing[key] = f"{name}_empty"
        elif frames.size < 2:
            missing[key] = "window_has_fewer_than_2_frames"
        else:
            values[key] = ols_slope_per_h(mid_min, tac, frames)
    _ratio(values, missing, "dsr", "slope_tumour_per_h", "slope_striatum_per_h")
    if values["slope_tumour_per_h"] is None:
        missing["curve_pattern"] = missing["slope_tumour_per_h"]
    else:
        pattern = curve_pattern(tumour_tac, frames, values["slope_tumour_per_h"], preset)
        values["curve_pattern"] = pattern
        if pattern is None:
            missing["curve_pattern"] = "tac_mean_in_window_nonpositive"

    tol_min = preset.time_tol_s / 60.0
    for region, tac, name in (
        ("tumour", tumour_tac, preset.tumour_tac),
        ("striatum", curves["striatum"], "striatum"),
    ):
        key = f"ki_ref_{region}"
        if curves["reference"] is None:
            missing[key] = "reference_empty"
        elif tac is None:
            missing[key] = f"{name}_empty"
        else:
            fit = patlak_ki(mid_min, tac, curves["reference"], preset.patlak_tstar_min, tol_min)
            if isinstance(fit, str):
                missing[key] = fit
            else:
                values[key], values[f"v_ref_{region}"], values["patlak_frames"] = fit
    return tacs


def reference_indices(
    static: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    preset: Preset | str,
    *,
    dynamic: np.ndarray | None = None,
    frame_start_s: np.ndarray | None = None,
    frame_duration_s: np.ndarray | None = None,
    participant_id: str = "",
) -> dict[str, dict[str, Any]]:
    """Compute the PET indices of one scan with the straightforward reference code.

    Args:
        static: 3-D static image (SUV or stored units).
        labels: 3-D label map (values 0–3), same grid as ``static``.
        affine: 4×4 voxel-to-RAS-world matrix of that grid.
        preset: A :class:`Preset` or the name of one in ``PRESETS``.
        dynamic: Optional 4-D image, frames on the last axis, same spatial grid.
        frame_start_s: Frame starts in seconds (sidecar FrameTimesStart); needed with dynamic.
        frame_duration_s: Frame durations in seconds (sidecar FrameDuration).
        participant_id: Written to the output.

    Returns:
        ``{"indices": ..., "tacs": ...}``. ``indices`` holds the index output names in order,
        then the extras ``tumour_side``, ``midline_x_mm``, ``tumour_centroid_{x,y,z}_mm``,
        ``striatum_rule``, ``striatum_ml``, ``tumour_hot_ml``, ``mtv_threshold`` (absolute, in
        image units), ``tumour_tac``, ``n_frames``, ``slope_window_frames``,
        ``slope_window_{start,end}_min`` (mid-times of the first and last window frame),
        ``patlak_frames``, ``v_ref_tumour`` and ``v_ref_striatum`` (Patlak intercepts). All
        values are plain Python scalars, str, bool or None. ``tacs`` is empty without a
        dynamic image; otherwise it holds ``frame_{start,duration,mid}_min`` and
        ``<region>_mean`` / ``<region>_sd`` lists for ``tumour``, ``tumour_hot``, ``striatum``
        (contralateral) and ``reference`` (None for an empty region).

    Raises:
        ValueError: On invalid inputs (the message names the argument) or an unknown preset.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    static, labels, affine, dynamic, starts, durations = validate_inputs(
        static, labels, affine, dynamic, frame_start_s, frame_duration_s
    )
    regions = derive_regions(labels, affine, preset)
    values: dict[str, Any] = dict.fromkeys(INDEX_KEYS[2:-1] + EXTRA_KEYS)
    missing: dict[str, str] = {}
    _static_indices(static, regions, preset, values, missing)
    hot = regions.tumour.copy()
    if values["tumour_suvmax"] is not None:
        hot &= static >= preset.hot_fraction * values["tumour_suvmax"]
        values["tumour_hot_ml"] = regions.ml(hot)

    tacs: dict[str, Any] = {}
    if dynamic is None:
        missing.update(dict.fromkeys(DYNAMIC_KEYS, "no_dynamic"))
    else:
        masks = {
            "tumour": regions.tumour,
            "tumour_hot": hot,
            "striatum": regions.striatum,
            "reference": regions.reference,
        }
        tacs = _dynamic_indices(dynamic, starts, durations, masks, preset, values, missing)

    centroid = regions.tumour_centroid_mm or (None, None, None)
    values.update(
        tumour_side=regions.tumour_side,
        midline_x_mm=regions.midline_x_mm,
        tumour_centroid_x_mm=centroid[0],
        tumour_centroid_y_mm=centroid[1],
        tumour_centroid_z_mm=centroid[2],
        striatum_rule=regions.striatum_rule,
        tumour_tac=preset.tumour_tac,
    )
    indices: dict[str, Any] = {"participant_id": str(participant_id), "preset": preset.name}
    indices.update({key: values[key] for key in INDEX_KEYS[2:-1]})
    indices["missing"] = {key: missing[key] for key in INDEX_KEYS if key in missing}
    indices.update({key: values[key] for key in EXTRA_KEYS})
    unexplained = [k for k in INDEX_KEYS if (indices[k] is None) != (k in indices["missing"])]
    if unexplained:  # a programming error, never a data condition
        raise RuntimeError(f"indices {unexplained}: value and missing reason disagree")
    logger.debug("reference indices of %r: %s", participant_id, indices)
    return {"indices": indices, "tacs": tacs}
