"""Physical constants shared by the generator, the augmentations and the DICOM importer.

It imports nothing but :mod:`math`, so any module may use it without loading another package.
"""

from __future__ import annotations

import math

F18_HALF_LIFE_S: float = 6586.2
"""Physical half-life of fluorine-18 in seconds (109.77 min)."""

FWHM_TO_SIGMA: float = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
"""Standard deviation of a Gaussian per unit of its full width at half maximum (≈ 0.4247)."""
