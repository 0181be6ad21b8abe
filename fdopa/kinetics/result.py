"""The typed result of one subject's indices, and its dict / JSON / CSV forms.

An index that cannot be computed is None, and ``missing`` maps its name to the reason
(``tumour_empty``, ``no_dynamic``, ``striatum_suvmax_zero``, ...): never a silent 0 or NaN.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fdopa.kinetics.names import EXTRA_KEYS, INDEX_KEYS, TAC_REGIONS

__all__ = ["CSV_COLUMNS", "Fields", "IndexResult", "TacTable", "csv_text"]

CSV_COLUMNS: tuple[str, ...] = INDEX_KEYS + EXTRA_KEYS
"""Columns of an indices CSV row: the index output names in order, then the extras."""


class Fields:
    """Values and missing reasons of one subject's indices while they are being computed.

    Attributes:
        values: Every index and extra name → value (None until set).
        missing: Index name → reason it is absent.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = dict.fromkeys(INDEX_KEYS[2:-1] + EXTRA_KEYS)
        self.missing: dict[str, str] = {}

    def set(self, key: str, value: Any) -> None:
        """Set one value (a known name only)."""
        if key not in self.values:
            raise KeyError(f"unknown index field {key!r}")
        self.values[key] = value

    def absent(self, keys: Iterable[str], reason: str) -> None:
        """Record ``reason`` for every index name among ``keys`` (extras stay None)."""
        self.missing.update({key: reason for key in keys if key in INDEX_KEYS})

    def require(self, key: str, *sources: str) -> bool:
        """True when every source is present; else give ``key`` the first source's reason."""
        for source in sources:
            if self.values[source] is None:
                self.missing[key] = self.missing[source]
                return False
        return True

    def ratio(self, key: str, numerator: str, denominator: str) -> None:
        """Set ``key = numerator / denominator``, or record why it cannot be computed."""
        if not self.require(key, numerator, denominator):
            return
        if self.values[denominator] == 0:
            self.missing[key] = f"{denominator}_zero"
        else:
            self.values[key] = self.values[numerator] / self.values[denominator]


def _floats(array: np.ndarray | None) -> list[float] | None:
    return None if array is None else [float(v) for v in array]


@dataclass(frozen=True, eq=False)
class TacTable:
    """Time-activity curves of one subject.

    Attributes:
        frame_start_min: Frame starts (min).
        frame_duration_min: Frame durations (min).
        frame_mid_min: Frame mid-times (min).
        mean: Region (``tumour``, ``tumour_hot``, ``striatum``, ``reference``) → mean per
            frame, None for an empty region.
        sd: Region → population SD per frame, None for an empty region.
    """

    frame_start_min: np.ndarray
    frame_duration_min: np.ndarray
    frame_mid_min: np.ndarray
    mean: Mapping[str, np.ndarray | None]
    sd: Mapping[str, np.ndarray | None]

    def to_dict(self) -> dict[str, list[float] | None]:
        """``frame_{start,duration,mid}_min`` and ``<region>_mean`` / ``<region>_sd`` lists."""
        out: dict[str, list[float] | None] = {
            "frame_start_min": _floats(self.frame_start_min),
            "frame_duration_min": _floats(self.frame_duration_min),
            "frame_mid_min": _floats(self.frame_mid_min),
        }
        for region in TAC_REGIONS:
            out[f"{region}_mean"] = _floats(self.mean.get(region))
            out[f"{region}_sd"] = _floats(self.sd.get(region))
        return out

    def to_csv(self) -> str:
        """One row per frame: ``frame`` then the :meth:`to_dict` columns (empty: no region)."""
        table = self.to_dict()
        rows = [
            {"frame": f, **{k: None if v is None else v[f] for k, v in table.items()}}
            for f in range(self.frame_mid_min.size)
        ]
        return csv_text(rows, ("frame", *table))


@dataclass(frozen=True)
class IndexResult:
    """The PET indices of one scan (names, units and meaning: docs/indices.md#output-fields).

    Values are plain Python scalars; volumes in mL, times in minutes, slopes per hour, ratios
    unit-free. Every index is None exactly when ``missing`` holds its reason. The
    extras after ``missing`` describe how the indices were obtained (see
    :func:`fdopa.kinetics.reference_indices` for each one). ``tacs`` holds the curves of a
    dynamic scan; it is not part of the index row.
    """

    participant_id: str
    preset: str
    tumour_suvmax: float | None = None
    tumour_suvmean: float | None = None
    tumour_suvpeak: float | None = None
    tumour_ml: float | None = None
    striatum_suvmax: float | None = None
    striatum_suvmean: float | None = None
    reference_suvmean: float | None = None
    reference_suvmax: float | None = None
    reference_ml: float | None = None
    reference_rule: str | None = None
    tsr: float | None = None
    tbr_max: float | None = None
    tbr_mean: float | None = None
    mtv_ml: float | None = None
    measurable: bool | None = None
    ttp_min: float | None = None
    slope_tumour_per_h: float | None = None
    slope_striatum_per_h: float | None = None
    dsr: float | None = None
    curve_pattern: str | None = None
    ki_ref_tumour: float | None = None
    ki_ref_striatum: float | None = None
    missing: Mapping[str, str] = field(default_factory=dict)
    tumour_side: str | None = None
    midline_x_mm: float | None = None
    tumour_centroid_x_mm: float | None = None
    tumour_centroid_y_mm: float | None = None
    tumour_centroid_z_mm: float | None = None
    striatum_rule: str | None = None
    striatum_ml: float | None = None
    tumour_hot_ml: float | None = None
    mtv_threshold: float | None = None
    tumour_tac: str | None = None
    n_frames: int | None = None
    slope_window_frames: int | None = None
    slope_window_start_min: float | None = None
    slope_window_end_min: float | None = None
    patlak_frames: int | None = None
    v_ref_tumour: float | None = None
    v_ref_striatum: float | None = None
    tacs: TacTable | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Check that every absent index has a reason and every reason an absent index.

        Raises:
            ValueError: If a value and its ``missing`` entry disagree.
        """
        unexplained = [
            key for key in INDEX_KEYS[2:-1] if (getattr(self, key) is None) != (key in self.missing)
        ]
        unexplained += sorted(set(self.missing) - set(INDEX_KEYS[2:-1]))
        if unexplained:
            raise ValueError(f"indices {unexplained}: value and missing reason disagree")

    @classmethod
    def from_fields(
        cls, participant_id: str, preset: str, fields: Fields, tacs: TacTable | None = None
    ) -> IndexResult:
        """Build the result from a filled :class:`Fields` accumulator."""
        missing = {key: fields.missing[key] for key in INDEX_KEYS if key in fields.missing}
        return cls(str(participant_id), preset, **fields.values, missing=missing, tacs=tacs)

    def to_dict(self) -> dict[str, Any]:
        """The index output names in order, then the extras (``missing`` as a new dict)."""
        out = {key: getattr(self, key) for key in CSV_COLUMNS}
        out["missing"] = dict(self.missing)
        return out

    def to_json(self, *, include_tacs: bool = True, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`, followed by ``tacs`` (None without a dynamic scan).

        Args:
            include_tacs: Append the ``tacs`` field.
            indent: JSON indentation.
        """
        payload = self.to_dict()
        if include_tacs:
            payload["tacs"] = None if self.tacs is None else self.tacs.to_dict()
        return json.dumps(payload, indent=indent, allow_nan=False) + "\n"

    def to_row(self) -> dict[str, Any]:
        """A CSV row over :data:`CSV_COLUMNS`; ``missing`` as compact JSON."""
        row = self.to_dict()
        row["missing"] = json.dumps(row["missing"], separators=(",", ":"))
        return row


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header; None becomes an empty cell, floats keep full precision.

    Args:
        rows: Mappings from column name to value (missing columns are empty).
        columns: Column order.

    Returns:
        The CSV document.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
