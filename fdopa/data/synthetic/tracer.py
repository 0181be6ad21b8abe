"""Tracer kinetics of the synthetic [18F]F-DOPA generator: kinetics and sidecar timing.

Time conventions: frame timing is in seconds after injection (as in the BIDS sidecar);
kinetic curves live on a fine uniform grid in minutes. All curves are decay-corrected to
injection time and expressed in SUV (g/mL), so region means are directly comparable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from fdopa.physics import F18_HALF_LIFE_S

logger = logging.getLogger(__name__)

# Feng-shaped input, normalised so that the slow amplitudes sum to 1 (rates are positive, /min).
# The bolus (A1, λ1) peaks ≈ 0.25 min after arrival; λ2 = 0.08/min (t½ ≈ 9 min) makes the HGG
# curves (k2 + k3 ≈ 0.18/min) peak around 11 min and then wash out, while the slow tail
# λ3 = 0.008/min (t½ ≈ 87 min) keeps striatum and LGG rising to 30 min. λ2, λ3 and A2:A3 were
# chosen by a constrained search over these behaviours (see tests/data/test_tracer.py).
FENG_A1: float = 28.0
FENG_A2: float = 0.72
FENG_A3: float = 0.28
FENG_LAMBDA1: float = 4.0
FENG_LAMBDA2: float = 0.08
FENG_LAMBDA3: float = 0.008
FENG_DELAY_MIN: float = 0.5
DEFAULT_INPUT_SCALE: float = 4.88
"""SUV of the slow input components extrapolated to arrival; gives cortex SUV ≈ 1.3 at 20–30 min."""


@dataclass(frozen=True)
class Framing:
    """Frame timing of a PET acquisition, in seconds after injection (BIDS convention).

    Attributes:
        starts_s: ``FrameTimesStart`` of each frame.
        durations_s: ``FrameDuration`` of each frame.
    """

    starts_s: tuple[float, ...]
    durations_s: tuple[float, ...]

    def __post_init__(self) -> None:
        starts = tuple(float(s) for s in self.starts_s)
        durations = tuple(float(d) for d in self.durations_s)
        object.__setattr__(self, "starts_s", starts)
        object.__setattr__(self, "durations_s", durations)
        if len(starts) != len(durations):
            raise ValueError(
                f"FrameTimesStart has {len(starts)} entries but FrameDuration has {len(durations)}"
            )
        if not starts or not all(math.isfinite(s) and s >= 0.0 for s in starts):
            raise ValueError(f"FrameTimesStart must be non-empty, finite and >= 0 s: {starts}")
        if not all(math.isfinite(d) and d > 0.0 for d in durations):
            raise ValueError(f"FrameDuration must be finite and > 0 s, got {durations}")
        for i in range(1, len(starts)):
            if starts[i] <= starts[i - 1]:
                raise ValueError(
                    f"FrameTimesStart must be strictly increasing: frame {i} starts at "
                    f"{starts[i]} s, frame {i - 1} at {starts[i - 1]} s"
                )
            end_prev = starts[i - 1] + durations[i - 1]
            if starts[i] < end_prev - 1e-6:
                raise ValueError(
                    f"FrameTimesStart/FrameDuration: frame {i - 1} ends at {end_prev} s, after "
                    f"frame {i} starts at {starts[i]} s (frames overlap)"
                )

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.starts_s)

    @property
    def ends_s(self) -> np.ndarray:
        """Frame end times in seconds."""
        return np.asarray(self.starts_s) + np.asarray(self.durations_s)

    @property
    def mid_s(self) -> np.ndarray:
        """Frame mid-times ``FrameTimesStart + FrameDuration / 2`` in seconds."""
        return np.asarray(self.starts_s) + 0.5 * np.asarray(self.durations_s)

    @classmethod
    def from_spec(cls, spec: str, start_s: float = 0.0) -> Framing:
        """Build contiguous frames from a spec such as ``"6x10,4x30,7x60,10x120"`` (seconds).

        Args:
            spec: Comma-separated ``NxD`` groups (N frames of D seconds); a bare ``D`` is one frame.
            start_s: Start of the first frame in seconds after injection.

        Raises:
            ValueError: If the spec cannot be parsed or gives an invalid framing.
        """
        durations: list[float] = []
        for group in spec.replace(" ", "").split(","):
            count, sep, dur = group.lower().partition("x")
            try:
                n, d = (int(count), float(dur)) if sep else (1, float(count))
            except ValueError as err:
                raise ValueError(f"FrameDuration spec {spec!r}: cannot parse {group!r}") from err
            if n < 1:
                raise ValueError(f"FrameDuration spec {spec!r}: frame count must be >= 1")
            durations.extend([d] * n)
        starts = start_s + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        return cls(tuple(starts.tolist()), tuple(durations))

    @classmethod
    def default_dynamic(cls) -> Framing:
        """27 frames over 0–30 min: 6×10 s, 4×30 s, 7×60 s, 10×120 s (an edge falls at 600 s)."""
        return cls.from_spec("6x10,4x30,7x60,10x120")

    @classmethod
    def static(cls) -> Framing:
        """The static window: one frame 10–30 min after injection."""
        return cls((600.0,), (1200.0,))

    def to_bids(self) -> dict[str, list[float]]:
        """Sidecar fields ``FrameTimesStart``, ``FrameDuration`` and ``DecayCorrectionFactor``."""
        return {
            "FrameTimesStart": list(self.starts_s),
            "FrameDuration": list(self.durations_s),
            "DecayCorrectionFactor": decay_correction_factors(self).tolist(),
        }


def decay_correction_factors(framing: Framing, half_life_s: float = F18_HALF_LIFE_S) -> np.ndarray:
    """Per-frame decay-correction factors to injection time (BIDS ``DecayCorrectionFactor``).

    A frame [t_s, t_s + Δt] of a decaying source records the mean activity
    A0·e^{-λ t_s}·(1 - e^{-λΔt}) / (λΔt). The factor restoring A0 (activity at t = 0,
    including the decay during the frame) is therefore e^{λ t_s} · λΔt / (1 - e^{-λΔt}).
    Multiplying the uncorrected frame by this factor gives the decay-corrected frame.

    Args:
        framing: Frame timing in seconds after injection.
        half_life_s: Physical half-life of the radionuclide (default fluorine-18).

    Returns:
        Array of shape (n_frames,), every entry >= 1.
    """
    lam = math.log(2.0) / half_life_s
    starts = np.asarray(framing.starts_s)
    x = lam * np.asarray(framing.durations_s)
    return np.exp(lam * starts) * x / -np.expm1(-x)


def feng_input(
    t_min: np.ndarray,
    *,
    scale: float = DEFAULT_INPUT_SCALE,
    delay_min: float = FENG_DELAY_MIN,
    a1: float = FENG_A1,
    a2: float = FENG_A2,
    a3: float = FENG_A3,
    lambda1: float = FENG_LAMBDA1,
    lambda2: float = FENG_LAMBDA2,
    lambda3: float = FENG_LAMBDA3,
) -> np.ndarray:
    """Feng-shaped plasma input for FDOPA, in SUV.

    C_p(t) = scale·[(a1·s - a2 - a3)·e^{-λ1 s} + a2·e^{-λ2 s} + a3·e^{-λ3 s}], s = t - τ ≥ 0,
    and 0 before the arrival τ (``delay_min``). Rates are given as positive numbers (1/min).
    With the defaults (a2 + a3 = 1) ``scale`` is the SUV of the slow components extrapolated
    to arrival; the bolus peaks at ≈ 0.78 min at ≈ 3.2·scale SUV.

    Args:
        t_min: Times in minutes after injection.
        scale: Overall scale (SUV).
        delay_min: Arrival delay τ in minutes.
        a1: Bolus amplitude (1/min, relative).
        a2: Amplitude of the intermediate component (relative).
        a3: Amplitude of the slow tail (relative).
        lambda1: Bolus rate (1/min).
        lambda2: Intermediate rate (1/min).
        lambda3: Tail rate (1/min).
    """
    s = np.asarray(t_min, dtype=float) - delay_min
    sp = np.maximum(s, 0.0)
    cp = (
        (a1 * sp - a2 - a3) * np.exp(-lambda1 * sp)
        + a2 * np.exp(-lambda2 * sp)
        + a3 * np.exp(-lambda3 * sp)
    )
    return np.where(s >= 0.0, scale * cp, 0.0)


def _uniform_step(t_min: np.ndarray) -> float:
    t = np.asarray(t_min, dtype=float)
    if t.ndim != 1 or t.size < 2:
        raise ValueError("time grid must be 1-D with at least two points")
    steps = np.diff(t)
    h = float(steps.mean())
    if h <= 0 or not np.allclose(steps, h, rtol=1e-6, atol=0.0):
        raise ValueError("time grid must be uniform and increasing")
    return h


def _exp_conv(h: float, cp: np.ndarray, k: float) -> np.ndarray:
    """e^{-kt} ⊗ C_p, exact for C_p linear between grid points (tissue empty at t[0])."""
    x = k * h
    if x < 1e-3:  # series of the weights below, avoiding cancellation
        w_old = h * (0.5 - x / 3.0 + x * x / 8.0)
        w_new = h * (0.5 - x / 6.0 + x * x / 24.0)
    else:
        em = math.expm1(-x)
        w_old = h * (-em - x * math.exp(-x)) / (x * x)
        w_new = h * (x + em) / (x * x)
    u = w_old * cp[:-1] + w_new * cp[1:]
    return np.concatenate([[0.0], lfilter([1.0], [1.0, -math.exp(-x)], u)])


def tissue_compartments(
    t_min: np.ndarray, cp: np.ndarray, K1: float, k2: float, k3: float
) -> tuple[np.ndarray, np.ndarray]:
    """Free (C1) and trapped (C2) compartments of the irreversible two-tissue model (k4 = 0).

    C1 = K1·e^{-(k2+k3)t} ⊗ C_p and C2 = k3·∫C1 = K1·k3/(k2+k3)·(∫C_p - e^{-(k2+k3)t} ⊗ C_p).
    The convolution uses the exact one-step exponential recursion for an input that is linear
    between grid points, so the result is exact up to that interpolation of C_p.

    Args:
        t_min: Uniform time grid in minutes (tissue assumed empty at ``t_min[0]``).
        cp: Plasma input on the grid.
        K1: Influx rate constant (mL/cm³/min).
        k2: Efflux rate constant (1/min).
        k3: Trapping rate constant (1/min).

    Returns:
        (C1, C2) on the grid.
    """
    h = _uniform_step(t_min)
    cp = np.asarray(cp, dtype=float)
    if cp.shape != np.shape(t_min):
        raise ValueError(f"cp shape {cp.shape} differs from the time grid {np.shape(t_min)}")
    if min(K1, k2, k3) < 0:
        raise ValueError(f"rate constants must be >= 0, got K1={K1}, k2={k2}, k3={k3}")
    integral = np.concatenate([[0.0], np.cumsum(0.5 * h * (cp[1:] + cp[:-1]))])
    k = k2 + k3
    if k == 0.0:
        return K1 * integral, np.zeros_like(cp)
    conv = _exp_conv(h, cp, k)
    return K1 * conv, K1 * k3 / k * (integral - conv)


def tissue_tac(t_min: np.ndarray, cp: np.ndarray, K1: float, k2: float, k3: float) -> np.ndarray:
    """Tissue curve C_T = K1/(k2+k3)·[k3 + k2·e^{-(k2+k3)t}] ⊗ C_p = C1 + C2.

    No blood-volume term. Arguments and accuracy as in `tissue_compartments`.
    """
    c1, c2 = tissue_compartments(t_min, cp, K1, k2, k3)
    return c1 + c2


def _window_means(t_min: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact means of the piecewise-linear curve (t, c) over the windows [lo, hi] (minutes)."""
    t = np.asarray(t_min, dtype=float)
    c = np.asarray(c, dtype=float)
    if np.any(lo < t[0] - 1e-9) or np.any(hi > t[-1] + 1e-9):
        raise ValueError(f"window outside the simulated grid [{t[0]}, {t[-1]}] min")
    cum = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(t) * (c[1:] + c[:-1]))])

    def integral_to(x: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, t.size - 2)
        h = t[i + 1] - t[i]
        u = np.clip((x - t[i]) / h, 0.0, 1.0)
        return cum[i] + h * (u * c[i] + 0.5 * u * u * (c[i + 1] - c[i]))

    return (integral_to(hi) - integral_to(lo)) / (hi - lo)


def frame_average(t_min: np.ndarray, c: np.ndarray, framing: Framing) -> np.ndarray:
    """Exact mean of a fine-grid curve over each frame (frames need not fall on grid points).

    Args:
        t_min: Increasing time grid in minutes.
        c: Curve on the grid (taken as linear between grid points).
        framing: Frame timing in seconds; every frame must lie within the grid.
    """
    lo = np.asarray(framing.starts_s) / 60.0
    return _window_means(t_min, c, lo, framing.ends_s / 60.0)


@dataclass(frozen=True)
class KineticParams:
    """Microparameters of the irreversible two-tissue model (K1 mL/cm³/min; k2, k3 1/min)."""

    K1: float
    k2: float
    k3: float

    @property
    def ki(self) -> float:
        """Net influx rate Ki = K1·k3/(k2+k3) (mL/cm³/min)."""
        k = self.k2 + self.k3
        return self.K1 * self.k3 / k if k > 0 else 0.0


REGION_KINETICS: dict[str, KineticParams] = {
    "striatum": KineticParams(0.050, 0.050, 0.060),
    "cortex": KineticParams(0.035, 0.050, 0.0),
    "white_matter": KineticParams(0.020, 0.040, 0.0),
    "hgg": KineticParams(0.160, 0.160, 0.020),
    "hgg_fast": KineticParams(0.250, 0.400, 0.015),
    "lgg": KineticParams(0.040, 0.040, 0.012),
    "necrosis": KineticParams(0.005, 0.050, 0.0),
}
"""Typical (median) effective parameters per region, plus a necrotic core."""


def sample_parameters(
    rng: np.random.Generator, region: str | KineticParams, cv: float = 0.2
) -> KineticParams:
    """Draw subject-level parameters of a region, each rate independently lognormal.

    Each rate is ``typical·exp(σZ)`` with σ² = ln(1 + cv²): the typical value is the median
    and the coefficient of variation of the draw is exactly ``cv`` (the mean is typical·√(1+cv²)).
    Rates that are 0 (k3 of reversible regions) stay 0.

    Args:
        rng: Random generator.
        region: A key of `REGION_KINETICS`, or the typical parameters themselves.
        cv: Coefficient of variation of each rate (typical range 0.15–0.25).
    """
    if not isinstance(region, KineticParams) and region not in REGION_KINETICS:
        raise KeyError(f"unknown region {region!r}; known: {sorted(REGION_KINETICS)}")
    if cv < 0:
        raise ValueError(f"cv must be >= 0, got {cv}")
    typ = region if isinstance(region, KineticParams) else REGION_KINETICS[region]
    factors = np.exp(math.sqrt(math.log1p(cv * cv)) * rng.standard_normal(3))
    return KineticParams(
        *(float(v * f) for v, f in zip((typ.K1, typ.k2, typ.k3), factors, strict=True))
    )


def simulate_tacs(
    params: Mapping[str, KineticParams],
    framing: Framing,
    *,
    input_scale: float = DEFAULT_INPUT_SCALE,
    dt_s: float = 0.25,
    t_end_min: float | None = None,
) -> dict:
    """Noise-free, decay-corrected regional TACs (SUV) on a fine grid and per frame.

    Args:
        params: Kinetic parameters per region name.
        framing: Frame timing in seconds; the grid covers 0 to its end (or ``t_end_min``).
        input_scale: Scale of the Feng input (see `feng_input`).
        dt_s: Fine-grid step in seconds.
        t_end_min: End of the fine grid in minutes; at least the end of the last frame.

    Returns:
        Dict with ``t_min`` (fine grid), ``cp`` (input), ``tissue`` (region -> fine-grid C_T),
        ``frames`` (region -> frame means), ``cp_frames`` and ``mid_min`` (frame mid-times).
    """
    end = float(framing.ends_s[-1]) / 60.0
    t_end = end if t_end_min is None else float(t_end_min)
    if t_end < end - 1e-9:
        raise ValueError(f"t_end_min={t_end} ends before the last frame ({end} min)")
    h = dt_s / 60.0
    t = np.arange(math.ceil(t_end / h - 1e-9) + 1) * h
    cp = feng_input(t, scale=input_scale)
    tissue = {name: tissue_tac(t, cp, p.K1, p.k2, p.k3) for name, p in params.items()}
    logger.debug("simulated %d regions on %d grid points (dt=%.3g s)", len(tissue), t.size, dt_s)
    return {
        "t_min": t,
        "cp": cp,
        "tissue": tissue,
        "frames": {name: frame_average(t, c, framing) for name, c in tissue.items()},
        "cp_frames": frame_average(t, cp, framing),
        "mid_min": framing.mid_s / 60.0,
    }


def static_window_mean(
    sim: Mapping, *, start_min: float = 10.0, end_min: float = 30.0
) -> dict[str, float]:
    """Region name -> exact mean of its fine-grid TAC over [start_min, end_min] (static image).

    Args:
        sim: Output of `simulate_tacs`.
        start_min: Window start in minutes.
        end_min: Window end in minutes.
    """
    lo, hi = np.array([start_min]), np.array([end_min])
    return {
        name: float(_window_means(sim["t_min"], c, lo, hi)[0]) for name, c in sim["tissue"].items()
    }
