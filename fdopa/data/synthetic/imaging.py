"""Image formation: scanner PSF, correlated count-dependent noise calibrated to a target CoV.

The noise model: per frame, ``σ(x) = k · sqrt(C(x) · DCF / Δt)`` (C the noise-free
decay-corrected activity, DCF the frame's decay-correction factor, Δt its length), spatially
correlated by a 2–4 mm Gaussian smoothing of white noise normalised back to unit variance. The
gain ``k`` is solved exactly so that the static image's noise CoV in normal brain equals the
subject's target: ``std(noisy − clean) / mean(clean)`` over label-1 voxels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from fdopa.kinetics.regions import bounding_box
from fdopa.physics import FWHM_TO_SIGMA

#: Gaussian kernels reach this many standard deviations (SciPy's default ``truncate``).
_TRUNCATE = 4.0


def gaussian_blur(volume: np.ndarray, sigma_vox: float | np.ndarray) -> np.ndarray:
    """``ndimage.gaussian_filter(volume, sigma_vox, mode="constant")``, the same values.

    Beyond the kernel's reach of the non-zero voxels the result is exactly zero, so only the box
    around them (widened by the kernel radius) is filtered: a lesion or the striatum blurs in a
    fraction of the whole volume's time.
    """
    sigma = np.broadcast_to(np.asarray(sigma_vox, float), (volume.ndim,))
    radius = (_TRUNCATE * sigma + 0.5).astype(int)  # SciPy's kernel radius per axis
    out = np.zeros_like(volume)
    box = bounding_box(volume != 0, radius)
    if box is None:
        return out
    out[box] = ndimage.gaussian_filter(volume[box], sigma, mode="constant", truncate=_TRUNCATE)
    return out


def psf_blur(volume: np.ndarray, fwhm_mm: float, voxel_mm: float = 1.0) -> np.ndarray:
    """Blur a 3D volume with an isotropic Gaussian PSF of the given FWHM (mm)."""
    return gaussian_blur(volume, fwhm_mm * FWHM_TO_SIGMA / voxel_mm)


def correlated_noise(
    rng: np.random.Generator, shape: tuple[int, ...], fwhm_mm: float, voxel_mm: float
) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed by a Gaussian of ``fwhm_mm``.

    The smoothing kernel's sum of squares is measured on an impulse, so the result has
    exactly unit variance in expectation, whatever the FWHM and voxel size.
    """
    sigma = fwhm_mm * FWHM_TO_SIGMA / voxel_mm
    white = rng.standard_normal(shape).astype(np.float32)
    if sigma < 1e-3:
        return white
    size = 2 * int(np.ceil(4 * sigma)) + 1
    impulse = np.zeros((size,) * len(shape), np.float64)
    impulse[(size // 2,) * len(shape)] = 1.0
    gain = np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum())
    return ndimage.gaussian_filter(white, sigma, mode="wrap") / np.float32(gain)


def noisy_frames(
    rng: np.random.Generator,
    clean: np.ndarray,
    decay_factors: np.ndarray,
    durations_s: np.ndarray,
    *,
    fwhm_mm: float,
    voxel_mm: float,
) -> np.ndarray:
    """Unit-gain noise of every frame (``k = 1``), shape ``clean.shape`` (X, Y, Z, F)."""
    noise = np.empty_like(clean, dtype=np.float32)
    for f in range(clean.shape[-1]):
        sigma = np.sqrt(np.clip(clean[..., f], 0, None) * decay_factors[f] / durations_s[f])
        noise[..., f] = sigma * correlated_noise(rng, clean.shape[:3], fwhm_mm, voxel_mm)
    return noise


def window_mean(frames: np.ndarray, starts_s: np.ndarray, durations_s: np.ndarray,
                window_s: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """Duration-weighted mean of the frames that tile ``window_s`` exactly.

    Raises:
        ValueError: If the frames inside the window do not tile it (a gap or partial frame).
    """
    ends = starts_s + durations_s
    inside = (starts_s >= window_s[0] - 1e-6) & (ends <= window_s[1] + 1e-6)
    covered = float(durations_s[inside].sum())
    if not inside.any() or abs(covered - (window_s[1] - window_s[0])) > 1e-6:
        raise ValueError(
            f"FrameTimesStart/FrameDuration: frames do not tile the static window "
            f"{window_s[0]:g}–{window_s[1]:g} s (covered {covered:g} s)"
        )
    weights = durations_s[inside] / covered
    return np.tensordot(frames[..., inside], weights, axes=([-1], [0])).astype(np.float32)


def noise_gain(noise_static: np.ndarray, clean_static: np.ndarray, mask: np.ndarray,
               target_cov: float) -> float:  # fmt: skip
    """Gain ``k`` that makes ``std(k·noise) / mean(clean)`` over ``mask`` equal ``target_cov``."""
    unit_cov = float(noise_static[mask].std() / clean_static[mask].mean())
    return target_cov / unit_cov
