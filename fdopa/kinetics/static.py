"""Static indices (SUVmax/mean/peak, T/S, TBRmax, TBRmean, MTV) — the fast path.

Region maxima, means and volumes come from one :func:`region_stats` pass; SUVpeak from one FFT
convolution of the tumour's bounding box with the sphere kernel (sums and voxel counts, so
spheres cut by the image border average only the voxels inside the image). Definitions are
those of :mod:`fdopa.kinetics.reference`; max-based ratios (T/S, TBRmax) follow one voxel and
are noise-sensitive.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from fdopa.kinetics.presets import Preset
from fdopa.kinetics.region_stats import region_stats
from fdopa.kinetics.regions import Coords, RegionSet
from fdopa.kinetics.result import Fields
from fdopa.kinetics.validation import check_analysable

__all__ = ["static_indices", "suv_peak_fft"]


def _sphere(zooms: tuple[float, float, float], volume_ml: float) -> np.ndarray:
    """Float kernel of the voxel centres within the sphere of ``volume_ml`` around the centre."""
    radius = (0.75 * volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0)
    half = [int(radius / z + 1e-9) for z in zooms]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    squared = sum((a * z) ** 2 for a, z in zip(axes, zooms, strict=True))
    return (squared <= radius * radius * (1 + 1e-9)).astype(float)


def suv_peak_fft(
    image: np.ndarray, coords: Coords, zooms: tuple[float, float, float], volume_ml: float
) -> float | None:
    """Maximum over the region's voxels of the image mean in a sphere centred on the voxel.

    Args:
        image: 3-D image.
        coords: Voxel coordinates of the region (the candidate sphere centres).
        zooms: Voxel size (mm).
        volume_ml: Sphere volume (mL).

    Returns:
        SUVpeak, or None for an empty region.
    """
    if coords[0].size == 0:
        return None
    kernel = _sphere(zooms, volume_ml)
    half = (np.array(kernel.shape) - 1) // 2
    points = np.stack(coords, axis=1)
    lo = np.maximum(points.min(axis=0) - half, 0)
    hi = np.minimum(points.max(axis=0) + half + 1, image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    block = np.asarray(image[box], dtype=float)
    # The box reaches a full kernel half-width beyond every centre except at the image border,
    # where the zero padding of the convolution is matched by the voxel count below.
    sums = fftconvolve(block, kernel, mode="same")
    counts = np.rint(fftconvolve(np.ones(block.shape), kernel, mode="same"))
    local = tuple(points[:, axis] - lo[axis] for axis in range(3))
    return float((sums[local] / counts[local]).max())


def static_indices(
    static: np.ndarray,
    regions: RegionSet,
    preset: Preset,
    fields: Fields,
    source: object = "static",
) -> Coords:
    """Fill the static indices into ``fields``; return the hot tumour voxels.

    Args:
        static: 3-D static image (float64).
        regions: Derived regions.
        preset: Index preset.
        fields: Accumulator of values and missing reasons.
        source: The image's file path or argument name, for the error message.

    Returns:
        Coordinates of the tumour voxels ≥ ``hot_fraction`` × tumour SUVmax (empty without
        tumour).

    Raises:
        InputError: If the reference or tumour mean is ≤ 0 (not an analysable PET; see
            :func:`~fdopa.kinetics.validation.check_analysable`).
    """
    masks = {"tumour": regions.tumour, "striatum": regions.striatum, "reference": regions.reference}
    stats = region_stats(static, masks)
    for row, (name, coords) in enumerate(masks.items()):
        keys = [f"{name}_suvmax", f"{name}_suvmean", f"{name}_ml"]
        keys += {"tumour": ["tumour_suvpeak"], "reference": ["reference_rule"]}.get(name, [])
        if coords[0].size == 0:
            fields.absent(keys, f"{name}_empty")
            continue
        fields.set(f"{name}_suvmax", float(stats.max[row, 0]))
        fields.set(f"{name}_suvmean", float(stats.mean[row, 0]))
        fields.set(f"{name}_ml", regions.ml(coords[0].size))
    check_analysable({r: fields.values[f"{r}_suvmean"] for r in ("reference", "tumour")}, source)
    if regions.reference_rule is not None:
        fields.set("reference_rule", regions.reference_rule)
    if regions.tumour[0].size:
        peak = suv_peak_fft(static, regions.tumour, regions.zooms, preset.suvpeak_ml)
        fields.set("tumour_suvpeak", peak)

    tsr = {"max_over_max": "suvmax", "mean_over_mean": "suvmean"}[preset.tsr_rule]
    fields.ratio("tsr", f"tumour_{tsr}", f"striatum_{tsr}")
    tbr = {"max_over_mean": "suvmean", "max_over_max": "suvmax"}[preset.tbr_max_rule]
    fields.ratio("tbr_max", "tumour_suvmax", f"reference_{tbr}")
    fields.ratio("tbr_mean", "tumour_suvmean", "reference_suvmean")

    tumour_values = static[regions.tumour]
    if preset.mtv_rule == "label":
        if fields.require("mtv_ml", "tumour_ml"):
            fields.set("mtv_ml", fields.values["tumour_ml"])
    elif fields.require("mtv_ml", "tumour_ml", "reference_suvmean"):
        threshold = preset.mtv_threshold * fields.values["reference_suvmean"]
        fields.set("mtv_threshold", threshold)
        fields.set("mtv_ml", regions.ml(np.count_nonzero(tumour_values >= threshold)))
    if fields.require("measurable", "mtv_ml"):
        fields.set("measurable", bool(fields.values["mtv_ml"] > preset.measurable_ml))

    if tumour_values.size == 0:
        return regions.tumour
    hot = tumour_values >= preset.hot_fraction * fields.values["tumour_suvmax"]
    fields.set("tumour_hot_ml", regions.ml(np.count_nonzero(hot)))
    i, j, k = regions.tumour
    return i[hot], j[hot], k[hot]
