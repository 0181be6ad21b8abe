"""Dynamic indices (TTP, slopes, DSR, curve pattern, Patlak Ki_ref) — the fast path.

All region TACs (mean and SD of tumour, hot tumour, contralateral striatum and reference) come
from one :func:`region_stats` pass over the 4-D image. Slopes and Patlak fits are closed-form
least squares over all curves at once. Frame windows are chosen by searching the sorted frame
times with a tolerance (``Preset.time_tol_s``), never by exact equality of times: a framing
without a frame starting at exactly 120 s simply starts the ``genoa2024`` window at the first
frame after it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fdopa.kinetics.presets import Preset
from fdopa.kinetics.region_stats import region_stats
from fdopa.kinetics.regions import Coords
from fdopa.kinetics.result import Fields, TacTable

__all__ = ["dynamic_indices", "least_squares", "patlak_fit", "slope_window"]


def slope_window(starts_s: np.ndarray, durations_s: np.ndarray, preset: Preset) -> np.ndarray:
    """Indices of the frames of the slope window (contiguous, possibly empty).

    ``fixed``: frames whose mid-time lies in ``preset.slope_window_min`` ± ``time_tol_s``;
    ``from_start_s``: the first frame starting at or after ``slope_start_s`` − ``time_tol_s``
    and all later frames.

    Args:
        starts_s: Frame starts (s), strictly increasing.
        durations_s: Frame durations (s).
        preset: Index preset.

    Returns:
        Integer frame indices.
    """
    tol = preset.time_tol_s
    if preset.slope_window == "from_start_s":
        first = np.searchsorted(starts_s, preset.slope_start_s - tol, side="left")
        return np.arange(first, starts_s.size)
    mid = starts_s + durations_s / 2
    t_a, t_b = (60.0 * t for t in preset.slope_window_min)
    first = np.searchsorted(mid, t_a - tol, side="left")
    stop = np.searchsorted(mid, t_b + tol, side="right")
    return np.arange(first, max(first, stop))


def least_squares(x: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary least-squares line of every row of ``curves`` against ``x`` (closed form).

    Args:
        x: Abscissae, shape (n,), not all equal.
        curves: Ordinates, shape (k, n).

    Returns:
        ``(slopes, intercepts)``, each of shape (k,).
    """
    centred = x - x.mean()
    means = curves.mean(axis=1)
    slopes = (curves - means[:, None]) @ centred / (centred @ centred)
    return slopes, means - slopes * x.mean()


def patlak_fit(
    mid_min: np.ndarray,
    targets: np.ndarray,
    reference: np.ndarray,
    tstar_min: float,
    tol_min: float,
) -> tuple[np.ndarray, np.ndarray, int] | str:
    """Reference-region Patlak: slope of C_T/C_R against ∫C_R/C_R over frames with t ≥ t*.

    ∫C_R is the trapezoid rule over the frame mid-times from ``(0, 0)``.

    Args:
        mid_min: Frame mid-times (min).
        targets: Target TACs, shape (k, n_frames).
        reference: Reference TAC, shape (n_frames,).
        tstar_min: Start of the linear part (min).
        tol_min: Tolerance (min) of ``t ≥ t*``.

    Returns:
        ``(ki_per_min, intercepts, n_frames_fitted)`` or the reason the fit is impossible
        (``patlak_has_fewer_than_2_frames``, ``reference_tac_nonpositive``).
    """
    steps = np.diff(mid_min, prepend=0.0)
    integral = np.cumsum(steps * (reference + np.concatenate([[0.0], reference[:-1]])) / 2)
    first = np.searchsorted(mid_min, tstar_min - tol_min, side="left")
    if mid_min.size - first < 2:
        return "patlak_has_fewer_than_2_frames"
    c_ref = reference[first:]
    if (c_ref <= 0).any():
        return "reference_tac_nonpositive"
    ki, intercept = least_squares(integral[first:] / c_ref, targets[:, first:] / c_ref)
    return ki, intercept, int(c_ref.size)


def _pattern(tac: np.ndarray, frames: np.ndarray, slope_per_h: float, preset: Preset) -> str | None:
    """Curve pattern (rules of :func:`fdopa.kinetics.reference_dynamic.curve_pattern`)."""
    if preset.pattern_eps_mode == "relative":
        level = float(tac[frames].mean())
        if level <= 0:
            return None
        slope_per_h /= level
    before_window = int(np.argmax(tac)) < frames[0]
    if slope_per_h > preset.pattern_eps and not before_window:
        return "increasing"
    if slope_per_h < -preset.pattern_eps and before_window:
        return "decreasing"
    return "plateau"


def _slopes(
    mid_min: np.ndarray, curves: np.ndarray, names: list[str], frames: np.ndarray, fields: Fields
) -> None:
    """OLS slopes per hour of the named curves over the window frames."""
    if frames.size < 2:
        fields.absent([f"slope_{name}_per_h" for name in names], "window_has_fewer_than_2_frames")
        return
    if not names:
        return
    window = curves[:, frames]
    slopes, _ = least_squares(mid_min[frames], window)
    # a curve flat to round-off has slope exactly 0 (as the reference), not ±1e-16 noise
    slopes[np.ptp(window, axis=1) <= 1e-12 * np.abs(window).max(axis=1)] = 0.0
    for name, slope in zip(names, slopes, strict=True):
        fields.set(f"slope_{name}_per_h", float(slope) * 60.0)


def _patlak(
    mid_min: np.ndarray,
    curves: np.ndarray,
    names: list[str],
    reference: np.ndarray | None,
    preset: Preset,
    fields: Fields,
) -> None:
    """Patlak Ki_ref (and intercepts) of the named curves against the reference TAC."""
    if reference is None:
        fields.absent(["ki_ref_tumour", "ki_ref_striatum"], "reference_empty")
        return
    if not names:
        return
    tol_min = preset.time_tol_s / 60.0
    fit = patlak_fit(mid_min, curves, reference, preset.patlak_tstar_min, tol_min)
    if isinstance(fit, str):
        fields.absent([f"ki_ref_{name}" for name in names], fit)
        return
    fields.set("patlak_frames", fit[2])
    for name, ki, intercept in zip(names, fit[0], fit[1], strict=True):
        fields.set(f"ki_ref_{name}", float(ki))
        fields.set(f"v_ref_{name}", float(intercept))


def dynamic_indices(
    dynamic: np.ndarray,
    regions: Mapping[str, Coords],
    starts_s: np.ndarray,
    durations_s: np.ndarray,
    preset: Preset,
    fields: Fields,
) -> TacTable:
    """Fill TTP, slopes, DSR, curve pattern and Patlak Ki_ref into ``fields``.

    Args:
        dynamic: 4-D image, frames on the last axis.
        regions: ``tumour``, ``tumour_hot``, ``striatum`` and ``reference`` coordinates.
        starts_s: Validated frame starts (s).
        durations_s: Validated frame durations (s).
        preset: Index preset.
        fields: Accumulator of values and missing reasons.

    Returns:
        The subject's TACs.
    """
    stats = region_stats(dynamic, regions)
    mid_min = (starts_s + durations_s / 2) / 60.0
    tacs = TacTable(
        starts_s / 60.0,
        durations_s / 60.0,
        mid_min,
        mean={name: stats.row(name, "mean") for name in stats.names},
        sd={name: stats.row(name, "sd") for name in stats.names},
    )
    frames = slope_window(starts_s, durations_s, preset)
    fields.set("n_frames", int(starts_s.size))
    fields.set("slope_window_frames", int(frames.size))
    if frames.size:
        fields.set("slope_window_start_min", float(mid_min[frames[0]]))
        fields.set("slope_window_end_min", float(mid_min[frames[-1]]))

    sources = {"tumour": preset.tumour_tac, "striatum": "striatum"}  # output name → TAC
    names = [name for name, tac in sources.items() if tacs.mean[tac] is not None]
    for name, tac in sources.items():
        if name not in names:
            fields.absent([f"slope_{name}_per_h", f"ki_ref_{name}"], f"{tac}_empty")
    curves = np.array([tacs.mean[sources[name]] for name in names]).reshape(
        len(names), starts_s.size
    )
    tumour = tacs.mean[preset.tumour_tac]
    if tumour is None:
        fields.absent(["ttp_min"], f"{preset.tumour_tac}_empty")
    else:
        peak = int(np.argmax(tumour))
        ttp_s = starts_s[peak] + (0.0 if preset.ttp_rule == "start" else durations_s[peak] / 2)
        fields.set("ttp_min", float(ttp_s) / 60.0)

    _slopes(mid_min, curves, names, frames, fields)
    fields.ratio("dsr", "slope_tumour_per_h", "slope_striatum_per_h")
    if fields.require("curve_pattern", "slope_tumour_per_h") and tumour is not None:
        pattern = _pattern(tumour, frames, fields.values["slope_tumour_per_h"], preset)
        if pattern is None:
            fields.absent(["curve_pattern"], "tac_mean_in_window_nonpositive")
        fields.set("curve_pattern", pattern)
    _patlak(mid_min, curves, names, tacs.mean["reference"], preset, fields)
    return tacs
