"""Configuration of the synthetic cohort generator, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fdopa.data.synthetic.geometry import GRIDS
from fdopa.data.synthetic.scanner import (
    DEFAULT_PROFILE,
    HEAD_MODEL_REVISION,
    ORIENTATIONS,
    PROFILES,
    RANDOM_PROFILE,
    REALISMS,
    UNITS,
)
from fdopa.data.synthetic.tracer import Framing

COHORTS: tuple[str, ...] = ("adult", "paediatric")


@dataclass(frozen=True)
class SynthConfig:
    """Options of :func:`fdopa.data.synthetic.generate_cohort`.

    Attributes:
        cohort: ``adult`` or ``paediatric`` (age scaling, location priors, noise level).
        n: Number of subjects (> 0).
        grid: Output grid, ``standard`` (2 mm) or ``tiny`` (4 mm).
        dynamic_fraction: Fraction of subjects with a 4D dynamic image, in [0, 1].
        seed: Seed of the whole cohort. Subject ``i`` depends only on ``(seed, i)`` and on
            whether it is drawn as dynamic (an exact count, chosen from ``seed``, ``n`` and
            ``dynamic_fraction``).
        framing: Dynamic framing as ``NxD`` groups in seconds, starting at injection.
        static_window_s: Static image window (s after injection); the dynamic frames must
            tile it exactly.
        flair: Whether to write the FLAIR-like MRI channel.
        noise: ``False`` writes noise-free images in place of the noisy ones.
        parameter_cv: Between-subject CV of every kinetic rate (typical range 0.15–0.25).
        cov_range: Target voxel CoV of normal brain on the static image (adults; children
            ×1.2–1.5).
        noise_fwhm_mm: Range of the noise-correlation FWHM (mm).
        prefix: Participant label prefix; defaults to ``ad`` (adult) or ``pd`` (paediatric).
        realism: ``brainbox`` (a brain-sized box on ``grid``), ``scanner`` (a head and neck in
            the field of view of ``scanner``, tilted and off-centre; ``grid`` is then unused) or
            ``mixed`` (an exact share ``scanner_fraction`` of the subjects, chosen from ``seed``
            and ``n``, as ``scanner``, the others as ``brainbox``).
        scanner: Scanner profile of the ``scanner`` realism (a key of
            :data:`fdopa.data.synthetic.scanner.PROFILES`), or ``random``: a clinical profile
            drawn per subject with its voxel size, PSF and noise jittered
            (:func:`fdopa.data.synthetic.scanner.draw_profile`).
        scanner_fraction: Share of scanner subjects of the ``mixed`` realism, in [0, 1].
        orientation: Storage order of the arrays, ``ras`` or ``lps``.
        units: PET image units, ``suv`` (g/mL) or ``bqml`` (Bq/mL with dose and weight in the
            sidecar).
    """

    cohort: str = "paediatric"
    n: int = 40
    grid: str = "tiny"
    dynamic_fraction: float = 0.3
    seed: int = 0
    framing: str = "6x10,4x30,7x60,10x120"
    static_window_s: tuple[float, float] = (600.0, 1800.0)
    flair: bool = True
    noise: bool = True
    parameter_cv: float = 0.2
    cov_range: tuple[float, float] = (0.10, 0.15)
    noise_fwhm_mm: tuple[float, float] = (2.0, 4.0)
    prefix: str | None = None
    realism: str = "brainbox"
    scanner: str = DEFAULT_PROFILE
    orientation: str = "ras"
    units: str = "suv"
    scanner_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.cohort not in COHORTS:
            raise ValueError(f"cohort: unknown cohort {self.cohort!r}; choose one of {COHORTS}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n <= 0:
            raise ValueError(
                f"n: the number of subjects must be a positive integer, got {self.n!r}"
            )
        if self.grid not in GRIDS:
            raise ValueError(
                f"grid: unknown output grid {self.grid!r}; choose one of {sorted(GRIDS)}"
            )
        scanners = (*PROFILES, RANDOM_PROFILE)
        for name, allowed in (("realism", REALISMS), ("scanner", scanners),
                              ("orientation", ORIENTATIONS), ("units", tuple(UNITS))):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}: unknown value {getattr(self, name)!r}; choose one of {allowed}"
                )
        if not 0.0 <= self.scanner_fraction <= 1.0:
            raise ValueError(f"scanner_fraction: must lie in [0, 1], got {self.scanner_fraction}")
        if not 0.0 <= self.dynamic_fraction <= 1.0:
            raise ValueError(f"dynamic_fraction: must lie in [0, 1], got {self.dynamic_fraction}")
        if not 0.0 <= self.parameter_cv < 1.0:
            raise ValueError(f"parameter_cv: must lie in [0, 1), got {self.parameter_cv}")
        try:
            framing = Framing.from_spec(self.framing)
        except ValueError as err:
            raise ValueError(f"framing: {err}") from err
        if len(self.static_window_s) != 2:
            raise ValueError(f"static_window_s: give (start, end) in s, got {self.static_window_s}")
        start, end = self.static_window_s
        edges = np.concatenate([framing.starts_s, framing.ends_s])
        if not (0 <= start < end <= framing.ends_s[-1] + 1e-6) or not all(
            np.isclose(edges, t).any() for t in (start, end)
        ):
            raise ValueError(
                f"static_window_s: {self.static_window_s} must start and end on frame edges of "
                f"framing {self.framing!r}"
            )

    @property
    def label_prefix(self) -> str:
        """Participant label prefix (``ad`` or ``pd`` unless set)."""
        return self.prefix or ("ad" if self.cohort == "adult" else "pd")

    def record(self) -> dict[str, Any]:
        """The options as JSON values (tuples as lists), as ``dataset_description.json`` keeps them.

        A data module compares this record with a cohort's to tell whether it was generated with
        the same options. A brain box leaves out ``realism`` and ``scanner``, only ``mixed``
        keeps ``scanner_fraction``, and the storage options are left out at their defaults, so a
        brain-box cohort's record is the one it had before they existed. A cohort with scanner
        images also records ``head_model`` (``scanner.HEAD_MODEL_REVISION``): one made by an
        earlier head model is then not reused.
        """
        skip = {"realism", "scanner"} if self.realism == "brainbox" else set()
        skip |= set() if self.realism == "mixed" else {"scanner_fraction"}
        skip |= {k for k, v in (("orientation", "ras"), ("units", "suv")) if getattr(self, k) == v}
        record = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()
                  if k not in skip}  # fmt: skip
        if self.realism != "brainbox":
            record["head_model"] = HEAD_MODEL_REVISION
        return record

    @property
    def geometry(self) -> str:
        """What the images are, in words: ``tiny grid``, ``std-200 scanner``, or both joined."""
        grid, scanner = f"{self.grid} grid", f"{self.scanner} scanner"
        return {"brainbox": grid, "scanner": scanner}.get(self.realism, f"{grid} + {scanner}")

    def scanner_subjects(self) -> np.ndarray:
        """Which subjects are generated in the ``scanner`` realism (boolean, length ``n``)."""
        if self.realism != "mixed":
            return np.full(self.n, self.realism == "scanner")
        chosen = np.zeros(self.n, bool)
        count = round(self.scanner_fraction * self.n)
        chosen[np.random.default_rng([self.seed, 2]).choice(self.n, count, replace=False)] = True
        return chosen

    def participant_ids(self) -> list[str]:
        """Participant labels ``sub-<prefix>NNN`` of the cohort."""
        width = max(3, len(str(self.n)))
        return [f"sub-{self.label_prefix}{i + 1:0{width}d}" for i in range(self.n)]
