"""The PET intensity scaling's names and constants, importable without torch.

The training config is checked before torch is imported (a typo fails within a second, and a
core install without the ``train`` extra gets its one-line message), so the names the check
accepts live here; :mod:`fdopa.data.transforms` builds the transforms they name.
"""

from __future__ import annotations

__all__ = ["DEFAULT_SUV_SCALE", "NORMALISATIONS", "SUV_UNITS"]

#: Intensity normalisations of the PET channel, selected by name. Every one but ``none`` reads
#: its input in SUV (see :func:`fdopa.export.metadata.input_spec`).
NORMALISATIONS: tuple[str, ...] = ("suv", "zscore", "brain_ratio", "none")
#: Default SUV scale of the ``suv`` normalisation: brain and tumour uptake become O(1).
DEFAULT_SUV_SCALE = 3.0
#: Sidecar ``Units`` values that mean SUV (body weight) — what the ``suv`` normalisation needs.
SUV_UNITS: frozenset[str] = frozenset({"g/mL", "g/ml", "SUV", "SUVbw"})
