"""Tumour lesions in template space: location priors, blobby shapes, necrosis, heterogeneity.

Location priors (adult: hemispheric; paediatric: pons/DIPG, thalamus, cerebellum,
hemispheric, optic pathway). A lesion is the level set ``r/R + a·n < 1`` of the normalised radius
perturbed by smooth noise ``n``; the necrotic core and the larger FLAIR-like extent are other
level sets of the same field, so they nest as they do in real gliomas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fdopa.data.synthetic.anatomy import LOBES, Anatomy

#: Location priors per cohort (probabilities sum to 1).
LOCATION_PRIORS: dict[str, dict[str, float]] = {
    "adult": {"frontal": 0.40, "temporal": 0.30, "insular": 0.12, "parietal": 0.18},
    "paediatric": {
        "pons": 0.30, "thalamus": 0.12, "cerebellum": 0.18, "frontal": 0.12, "temporal": 0.08,
        "parietal": 0.06, "insular": 0.04, "optic_pathway": 0.10,
    },
}  # fmt: skip
#: Probability of a high-grade glioma by location.
HGG_PROBABILITY: dict[str, float] = {
    "pons": 0.85, "thalamus": 0.55, "cerebellum": 0.2, "optic_pathway": 0.05,
    "frontal": 0.55, "temporal": 0.55, "parietal": 0.55, "insular": 0.45,
}  # fmt: skip
#: Fraction of HGG with the fast-washout kinetic pattern (the synthetic cohort's hard case).
FAST_WASHOUT_FRACTION = 0.25
#: Lesion volume (mL) range by location: a log-uniform draw inside it.
VOLUME_RANGE_ML: dict[str, tuple[float, float]] = {
    "pons": (8.0, 40.0), "thalamus": (3.0, 30.0), "cerebellum": (4.0, 60.0),
    "optic_pathway": (1.0, 12.0), "frontal": (3.0, 80.0), "temporal": (3.0, 80.0),
    "parietal": (3.0, 80.0), "insular": (3.0, 50.0),
}  # fmt: skip
_MAX_STRIATUM_OVERLAP = 0.15


@dataclass(frozen=True)
class Lesion:
    """A lesion drawn in template space.

    Attributes:
        location: Location name (a key of :data:`VOLUME_RANGE_ML`).
        hemisphere: ``left``, ``right`` or ``midline``.
        centre_mm: Centre in template world coordinates (mm).
        tumour: Fractional tumour map on the template grid (float32, 0–1).
        necrosis: Fractional necrotic-core map (subset of the tumour).
        extent: Fractional FLAIR-like extent (tumour plus oedema).
        heterogeneity: Multiplicative uptake field (mean 1) inside the tumour.
        heterogeneity_cv: Coefficient of variation of that field.
    """

    location: str
    hemisphere: str
    centre_mm: tuple[float, float, float]
    tumour: np.ndarray
    necrosis: np.ndarray
    extent: np.ndarray
    heterogeneity: np.ndarray
    heterogeneity_cv: float


def draw_location(rng: np.random.Generator, cohort: str) -> str:
    """Draw a lesion location from the cohort's prior."""
    prior = LOCATION_PRIORS[cohort]
    names = list(prior)
    return str(rng.choice(names, p=np.array([prior[n] for n in names])))


def draw_kinetic_class(rng: np.random.Generator, location: str) -> tuple[str, str]:
    """Draw the WHO grade group and kinetic class (``lgg``, ``hgg`` or ``hgg_fast``)."""
    if rng.random() >= HGG_PROBABILITY[location]:
        return "LGG", "lgg"
    return "HGG", "hgg_fast" if rng.random() < FAST_WASHOUT_FRACTION else "hgg"


def _candidates(anatomy: Anatomy, location: str, hemisphere: str) -> np.ndarray:
    """Template voxels where a lesion of that location may be centred."""
    world_z = anatomy.affine[2, 2] * np.arange(anatomy.shape[2]) + anatomy.affine[2, 3]
    if location == "pons":
        mask = anatomy.mask("brainstem") & ((world_z > -40) & (world_z < -20))[None, None, :]
    elif location == "thalamus":
        mask = anatomy.mask(f"thalamus_{hemisphere}")
    elif location == "cerebellum":
        mask = anatomy.mask(f"cerebellum_{hemisphere}") & (anatomy.wm > 0.3)
        if mask.sum() < 50:
            mask = anatomy.mask(f"cerebellum_{hemisphere}")
    elif location == "optic_pathway":
        mask = anatomy.mask("optic_chiasm")
    else:
        code = LOBES[location] + (10 if hemisphere == "right" else 0)
        mask = (anatomy.lobes == code) & (anatomy.wm > 0.5)
    return np.argwhere(mask)


def _radius_field(shape: tuple[int, ...], centre: np.ndarray, radius: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    squared = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    return np.sqrt(squared) / radius


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / max(float(noise.std()), 1e-9)


def make_lesion(
    rng: np.random.Generator,
    anatomy: Anatomy,
    location: str,
    volume_ml: float,
    *,
    scale: float,
    necrotic: bool,
    max_tries: int = 50,
) -> Lesion:
    """Draw a blobby lesion of ``volume_ml`` (in subject space) at a location.

    Args:
        rng: Random generator.
        anatomy: Template anatomy.
        location: Location name.
        volume_ml: Target lesion volume in the subject (mL); the template-space radius is
            divided by the subject's linear ``scale``.
        scale: Subject's linear size factor relative to the template.
        necrotic: Whether to carve a necrotic core.
        max_tries: Centres tried before giving up on one that spares both striata.

    Returns:
        The :class:`Lesion`.

    Raises:
        RuntimeError: If no centre spares the striata after ``max_tries``.
    """
    midline = location in {"pons", "optic_pathway"}
    hemisphere = "midline" if midline else str(rng.choice(["left", "right"]))
    candidates = _candidates(anatomy, location, "left" if midline else hemisphere)
    voxel_ml = abs(np.linalg.det(anatomy.affine[:3, :3])) / 1000
    radius = (3 * volume_ml / (4 * np.pi * voxel_ml)) ** (1 / 3) / scale
    striata = [anatomy.mask("striatum_left"), anatomy.mask("striatum_right")]
    half = int(np.ceil(radius * 2.2)) + 4
    for _ in range(max_tries):
        centre = candidates[rng.integers(len(candidates))].astype(np.float32)
        if midline:
            centre[0] = -anatomy.affine[0, 3] / anatomy.affine[0, 0]  # the x = 0 mm plane
        lo = np.maximum(centre.astype(int) - half, 0)
        hi = np.minimum(centre.astype(int) + half + 1, anatomy.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
        level = _radius_field(shape, centre - lo, radius)
        level += 0.18 * _smooth_noise(rng, shape, max(radius * 0.35, 1.5))
        inside = ndimage.binary_dilation(anatomy.brain[box], iterations=3)
        # Threshold the perturbed radius at the level that gives exactly the target volume.
        target = round((4 / 3) * np.pi * radius**3)
        values = np.sort(level[inside])
        if values.size <= target or values[target] > 1.6:
            continue  # the lesion would leak far out of the allowed region: try elsewhere
        threshold = float(values[target])
        tumour = np.zeros(anatomy.shape, np.float32)
        tumour[box] = (level < threshold) & inside
        overlap = [float((tumour > 0)[s].sum()) / s.sum() for s in striata]
        if max(overlap) > _MAX_STRIATUM_OVERLAP:
            continue
        necrosis = np.zeros_like(tumour)
        if necrotic:
            necrosis[box] = (level < threshold * rng.uniform(0.35, 0.55)) & (tumour[box] > 0)
        extent = np.zeros_like(tumour)
        extent[box] = (level < threshold * rng.uniform(1.3, 1.8)) & inside
        cv = float(rng.uniform(0.10, 0.20))
        heterogeneity = np.ones_like(tumour)
        heterogeneity[box] = np.clip(1 + cv * _smooth_noise(rng, shape, 2.0), 0.3, None)
        world = anatomy.affine[:3, :3] @ centre + anatomy.affine[:3, 3]
        return Lesion(
            location=location,
            hemisphere=hemisphere,
            centre_mm=tuple(float(v) for v in world),
            tumour=tumour,
            necrosis=necrosis,
            extent=np.maximum(extent, tumour),
            heterogeneity=heterogeneity,
            heterogeneity_cv=cv,
        )
    raise RuntimeError(f"no {location} lesion of {volume_ml:.1f} mL spares the striata")


def draw_volume_ml(rng: np.random.Generator, location: str) -> float:
    """Log-uniform lesion volume (mL) inside the location's range."""
    low, high = VOLUME_RANGE_ML[location]
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
