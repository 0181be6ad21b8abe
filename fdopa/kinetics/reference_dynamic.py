"""Reference implementation, part 2: TACs and the dynamic indices.

Conventions:
    * Frame mid-time ``t_i = start_i + duration_i / 2``; all fitted times are in minutes.
    * A region TAC is the per-frame mean of its voxels; its SD is the population SD (ddof = 0).
    * Frame times are compared with a tolerance (``Preset.time_tol_s``), never for equality.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import cumulative_trapezoid

from fdopa.kinetics.presets import Preset

__all__ = [
    "curve_pattern",
    "frame_mid_s",
    "ols_slope_per_h",
    "patlak_ki",
    "region_tac",
    "slope_window_frames",
]


def frame_mid_s(frame_start_s: np.ndarray, frame_duration_s: np.ndarray) -> np.ndarray:
    """Return frame mid-times in seconds.

    Args:
        frame_start_s: Frame starts (s).
        frame_duration_s: Frame durations (s).

    Returns:
        ``start + duration / 2`` for every frame.
    """
    return np.asarray(frame_start_s, dtype=float) + np.asarray(frame_duration_s, dtype=float) / 2


def region_tac(dynamic: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the mean and SD (ddof = 0) of a region in every frame.

    Args:
        dynamic: 4-D image, frames on the last axis.
        mask: 3-D boolean region mask.

    Returns:
        ``(mean, sd)``, each of length n_frames, or None for an empty region.
    """
    if not mask.any():
        return None
    values = np.asarray(dynamic[mask], dtype=float)  # (n_voxels, n_frames)
    return values.mean(axis=0), values.std(axis=0)


def slope_window_frames(
    frame_start_s: np.ndarray, frame_duration_s: np.ndarray, preset: Preset
) -> np.ndarray:
    """Return the indices of the frames in the slope window.

    ``fixed``: frames whose mid-time lies in ``preset.slope_window_min`` (± ``time_tol_s``).
    ``from_start_s``: the first frame whose start is ≥ ``preset.slope_start_s`` (− ``time_tol_s``)
    and every later frame.

    Args:
        frame_start_s: Frame starts (s).
        frame_duration_s: Frame durations (s).
        preset: Index preset.

    Returns:
        Sorted integer frame indices (possibly empty).
    """
    starts = np.asarray(frame_start_s, dtype=float)
    tol = preset.time_tol_s
    if preset.slope_window == "fixed":
        mid = frame_mid_s(starts, frame_duration_s)
        t_a, t_b = (60.0 * t for t in preset.slope_window_min)
        return np.flatnonzero((mid >= t_a - tol) & (mid <= t_b + tol))
    late = np.flatnonzero(starts >= preset.slope_start_s - tol)
    if late.size == 0:
        return late
    return np.arange(late[0], starts.size)


def ols_slope_per_h(mid_min: np.ndarray, tac: np.ndarray, frames: np.ndarray) -> float:
    """Ordinary least-squares slope of a TAC against mid-time, per hour.

    Args:
        mid_min: Frame mid-times (min).
        tac: TAC values, one per frame.
        frames: Indices of the frames to fit (at least two).

    Returns:
        Slope in TAC units per hour; exactly 0.0 when the TAC is constant over the window to
        round-off (``ptp <= 1e-12 × max |TAC|``), where a least-squares solver would return
        ~1e-16 noise instead (which would make a ratio such as DSR explode).
    """
    window = np.asarray(tac[frames], dtype=float)
    if np.ptp(window) <= 1e-12 * np.max(np.abs(window)):
        return 0.0
    slope_per_min = np.polyfit(mid_min[frames], tac[frames], 1)[0]
    return float(slope_per_min) * 60.0


def curve_pattern(
    tac: np.ndarray,
    frames: np.ndarray,
    slope_per_h: float,
    preset: Preset,
) -> str | None:
    """Classify a TAC as ``increasing``, ``plateau`` or ``decreasing``.

    The peak frame is the first frame with the highest TAC value. ``increasing``: slope > eps
    and the peak is not before the window (i.e. in it, or after it should frames follow the
    window); ``decreasing``: slope < −eps and the peak lies before the window; otherwise
    ``plateau``. In ``relative`` mode the slope is divided by the mean TAC over the window.

    Args:
        tac: TAC values, one per frame.
        frames: Indices of the slope-window frames (non-empty).
        slope_per_h: OLS slope per hour over those frames.
        preset: Index preset (``pattern_eps``, ``pattern_eps_mode``).

    Returns:
        The pattern, or None when relative mode meets a non-positive window mean.
    """
    slope = slope_per_h
    if preset.pattern_eps_mode == "relative":
        level = float(np.mean(tac[frames]))
        if level <= 0:
            return None
        slope = slope_per_h / level
    peak = int(np.argmax(tac))
    if slope > preset.pattern_eps and peak >= frames[0]:
        return "increasing"
    if slope < -preset.pattern_eps and peak < frames[0]:
        return "decreasing"
    return "plateau"


def patlak_ki(
    mid_min: np.ndarray,
    c_target: np.ndarray,
    c_reference: np.ndarray,
    tstar_min: float,
    tol_min: float,
) -> tuple[float, float, int] | str:
    """Reference Patlak: slope of C_T/C_R against ∫C_R/C_R for t ≥ t*.

    The integral is the trapezoid rule over the frame mid-times with ``(t, C) = (0, 0)``
    prepended, so the fit is exact when ``C_T(t_i) = Ki·∫C_R(t_i) + V·C_R(t_i)`` with that
    same integral.

    Args:
        mid_min: Frame mid-times (min).
        c_target: Target TAC (tumour or striatum).
        c_reference: Reference-region TAC.
        tstar_min: Start of the linear part (min).
        tol_min: Tolerance (min) for ``t ≥ t*``.

    Returns:
        ``(ki_per_min, intercept, n_frames_fitted)`` or a reason string when the fit is
        impossible (``patlak_has_fewer_than_2_frames``, ``reference_tac_nonpositive``).
    """
    times = np.concatenate([[0.0], mid_min])
    integral = cumulative_trapezoid(np.concatenate([[0.0], c_reference]), times)
    frames = np.flatnonzero(mid_min >= tstar_min - tol_min)
    if frames.size < 2:
        return "patlak_has_fewer_than_2_frames"
    if (c_reference[frames] <= 0).any():
        return "reference_tac_nonpositive"
    x = integral[frames] / c_reference[frames]
    y = c_target[frames] / c_reference[frames]
    ki, intercept = np.polyfit(x, y, 1)
    return float(ki), float(intercept), int(frames.size)
