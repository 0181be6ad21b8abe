"""Index presets: every rule and number of the PET indices as one frozen dataclass.

Two presets ship:

* ``guideline`` — EANM/EANO/RANO 2019 and PET RANO 1.0: T/S = max/max, TBRmax = max/mean,
  MTV by a 1.6 × reference-mean threshold, TTP at frame mid-time, slope over 10–30 min.
* ``genoa2024`` — the paediatric semi-automatic tool: TBRmax = max/max, MTV = tumour-label
  volume, TTP at frame start, slope from the first frame starting at or after 120 s to the last
  frame.

Both use label 2 alone as the striatum: the label map has no pallidum label, so the
genoa2024 rule "striatum includes the pallidum where a label map provides it" reduces to label 2.
``striatum_labels`` stays configurable for label maps that may carry more structures.

Max-based ratios (T/S, TBRmax) follow the single hottest voxel and are therefore sensitive to
image noise and reconstruction; mean- and peak-based values are more robust.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fdopa.labels import BRAIN, FOREGROUND, STRIATUM, TUMOUR

__all__ = ["PRESETS", "Preset", "get_preset", "parse_overrides"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "reference_start": ("slab", "hemisphere", "both_hemispheres"),
    "tsr_rule": ("max_over_max", "mean_over_mean"),
    "tbr_max_rule": ("max_over_mean", "max_over_max"),
    "tbr_mean_rule": ("mean_over_mean",),
    "mtv_rule": ("threshold", "label"),
    "ttp_rule": ("mid", "start"),
    "slope_window": ("fixed", "from_start_s"),
    "pattern_eps_mode": ("relative", "absolute"),
    "tumour_tac": ("tumour", "tumour_hot"),
}

_NON_NEGATIVE = ("midline_mm", "slab_mm", "margin_mm", "min_ref_ml", "measurable_ml")
_POSITIVE = ("mtv_threshold", "suvpeak_ml", "time_tol_s", "pattern_eps")


@dataclass(frozen=True)
class Preset:
    """All configurable rules of the PET indices (docs/indices.md#preset-fields).

    Attributes:
        name: Preset name, written to the ``preset`` output field.
        brain_label: Label value of healthy brain (label map: 1).
        striatum_labels: Label values forming the striatum (default ``(2,)``; the label
            map has no pallidum label).
        tumour_label: Label value of the tumour (label map: 3).
        midline_mm: A tumour whose centroid lies closer than this to the midline uses both
            striata and both sides for the reference.
        reference_start: First reference rule tried: ``slab``, ``hemisphere`` or
            ``both_hemispheres``; later rules are the fallbacks.
        slab_mm: Half-height (world z, mm) of the axial slab around the tumour centroid.
        margin_mm: Minimum Euclidean distance (mm) of reference voxels from tumour and striatum.
        min_ref_ml: A reference smaller than this triggers the next fallback.
        tsr_rule: ``max_over_max`` (SUVmax tumour / SUVmax striatum) or ``mean_over_mean``.
        tbr_max_rule: ``max_over_mean`` (guideline) or ``max_over_max`` (genoa2024).
        tbr_mean_rule: ``mean_over_mean``.
        mtv_rule: ``threshold`` (tumour voxels ≥ ``mtv_threshold`` × reference mean) or
            ``label`` (tumour-label volume).
        mtv_threshold: Multiple of the reference mean used by the ``threshold`` MTV rule.
        measurable_ml: A lesion is measurable when MTV is strictly above this (mL).
        suvpeak_ml: Volume (mL) of the SUVpeak sphere.
        hot_fraction: Hot tumour voxels are those ≥ this fraction of the static tumour max.
        ttp_rule: TTP reported at the peak frame's ``mid`` time or its ``start``.
        tumour_tac: TAC used for TTP, tumour slope and pattern: ``tumour`` (mean of the label)
            or ``tumour_hot`` (mean of the hot voxels).
        slope_window: ``fixed`` (frames with mid-time in ``slope_window_min``) or
            ``from_start_s`` (first frame starting ≥ ``slope_start_s`` to the last frame).
        slope_window_min: ``(t_a, t_b)`` in minutes for the ``fixed`` window.
        slope_start_s: Start threshold (s) for the ``from_start_s`` window.
        time_tol_s: Tolerance (s) of every comparison of frame times; times are never
            compared for exact equality.
        pattern_eps: Slope threshold of the curve pattern.
        pattern_eps_mode: ``relative``: compare slope / mean(TAC in the window) (per hour,
            unit-free) with ``pattern_eps``; ``absolute``: compare the slope (TAC units per
            hour) itself.
        patlak_tstar_min: Start (min) of the linear Patlak part.
    """

    name: str = "guideline"
    brain_label: int = BRAIN
    striatum_labels: tuple[int, ...] = (STRIATUM,)
    tumour_label: int = TUMOUR
    midline_mm: float = 5.0
    reference_start: Literal["slab", "hemisphere", "both_hemispheres"] = "slab"
    slab_mm: float = 15.0
    margin_mm: float = 10.0
    min_ref_ml: float = 2.0
    tsr_rule: Literal["max_over_max", "mean_over_mean"] = "max_over_max"
    tbr_max_rule: Literal["max_over_mean", "max_over_max"] = "max_over_mean"
    tbr_mean_rule: Literal["mean_over_mean"] = "mean_over_mean"
    mtv_rule: Literal["threshold", "label"] = "threshold"
    mtv_threshold: float = 1.6
    measurable_ml: float = 0.5
    suvpeak_ml: float = 1.0
    hot_fraction: float = 0.9
    ttp_rule: Literal["mid", "start"] = "mid"
    tumour_tac: Literal["tumour", "tumour_hot"] = "tumour"
    slope_window: Literal["fixed", "from_start_s"] = "fixed"
    slope_window_min: tuple[float, float] = (10.0, 30.0)
    slope_start_s: float = 120.0
    time_tol_s: float = 0.5
    pattern_eps: float = 0.1
    pattern_eps_mode: Literal["relative", "absolute"] = "relative"
    patlak_tstar_min: float = 10.0

    def __post_init__(self) -> None:
        """Normalise sequence fields to tuples and validate every field.

        Raises:
            ValueError: If a field has an unknown choice or an out-of-range value.
        """
        striatum = tuple(int(v) for v in self.striatum_labels)
        window = tuple(float(v) for v in self.slope_window_min)
        object.__setattr__(self, "striatum_labels", striatum)
        object.__setattr__(self, "slope_window_min", window)
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in choices:
                raise ValueError(
                    f"preset {self.name!r}: {key}={getattr(self, key)!r} is not one of {choices}"
                )
        for key in _NON_NEGATIVE:
            if not float(getattr(self, key)) >= 0:
                raise ValueError(f"preset {self.name!r}: {key} must be >= 0")
        for key in _POSITIVE:
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"preset {self.name!r}: {key} must be > 0")
        if not 0 < self.hot_fraction <= 1:
            raise ValueError(f"preset {self.name!r}: hot_fraction must be in (0, 1]")
        if len(window) != 2 or not window[0] < window[1]:
            raise ValueError(
                f"preset {self.name!r}: slope_window_min must be (t_a, t_b), t_a < t_b"
            )
        labels = [self.brain_label, self.tumour_label, *striatum]
        if (
            not striatum
            or any(v not in FOREGROUND.values() for v in labels)
            or len(set(labels)) != len(labels)
        ):
            raise ValueError(
                f"preset {self.name!r}: brain_label, striatum_labels and tumour_label must be "
                f"distinct values in {sorted(FOREGROUND.values())}, got {labels}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Return the preset as a JSON-serialisable dict (tuples become lists).

        Returns:
            Mapping of field name to value.
        """
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


PRESETS: dict[str, Preset] = {
    "guideline": Preset(name="guideline"),
    "genoa2024": Preset(
        name="genoa2024",
        tbr_max_rule="max_over_max",
        mtv_rule="label",
        ttp_rule="start",
        slope_window="from_start_s",
    ),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """Return a named preset, optionally with some fields replaced.

    Args:
        name: ``guideline`` or ``genoa2024``.
        **overrides: Fields of :class:`Preset` to replace.

    Returns:
        The (possibly modified) preset; the registry entry itself is never changed.

    Raises:
        ValueError: If ``name`` is not a known preset, an override names an unknown field, or
            an override value is invalid.

    Examples:
        >>> get_preset("guideline", slab_mm=20.0).slab_mm
        20.0
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown Preset field(s) {unknown} for preset {name!r}")
    return dataclasses.replace(PRESETS[name], **overrides)


def _convert(text: str, default: Any) -> Any:
    """Convert ``text`` to the type of the field's default value."""
    if isinstance(default, tuple):
        items = [v for v in text.strip().strip("()[]").split(",") if v.strip()]
        kind = type(default[0]) if default else float
        return tuple(kind(v) for v in items)
    return type(default)(text)


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``FIELD=VALUE`` strings (the CLI's ``--set``) into typed preset overrides.

    Each value is converted to the type of the field (``float``, ``int``, ``str``, or a
    comma-separated tuple such as ``slope_window_min=5,25``).

    Args:
        pairs: ``FIELD=VALUE`` strings.

    Returns:
        Field → converted value, ready for :func:`get_preset`.

    Raises:
        ValueError: Naming the field, for a malformed pair, an unknown field or a value that
            cannot be converted.

    Examples:
        >>> parse_overrides(["slab_mm=20", "slope_window_min=5,25", "ttp_rule=start"])
        {'slab_mm': 20.0, 'slope_window_min': (5.0, 25.0), 'ttp_rule': 'start'}
    """
    defaults = dataclasses.asdict(Preset())
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"preset override {pair!r}: expected FIELD=VALUE")
        if key not in defaults or key == "name":
            raise ValueError(
                f"preset field {key!r}: unknown; fields: {sorted(set(defaults) - {'name'})}"
            )
        try:
            out[key] = _convert(text, defaults[key])
        except ValueError as err:
            kind = type(defaults[key]).__name__
            raise ValueError(f"preset field {key!r}: cannot read {text!r} as {kind}") from err
    return out
