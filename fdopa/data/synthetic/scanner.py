"""Scanner-realistic synthetic scans: vendor-like field of view, head pose, head, storage.

The brain-box subject (1 mm maps in the subject frame) is placed in a scanner's field of view:
the head is tilted and shifted (:class:`Placement`), the scanner grid is axis-aligned in world
(scanner) coordinates with the matrix, voxel size, PSF and noise level of a named profile
(:data:`PROFILES`), and the head around the brain (:mod:`fdopa.data.synthetic.head`) adds its
own compartments. Every map is blurred once on its own grid by the PSF combined with a Gaussian
equivalent of the voxel's box (σ² = σ_PSF² + Δ²/12 per axis) and sampled at the scanner voxel
centres, so the label map, FLAIR, noise-free and noisy images share one grid.

Storage options apply to both realism modes: ``lps`` stores the arrays with the first two axes
reversed (``nibabel.aff2axcodes`` gives L, P, S), ``bqml`` stores the PET images in Bq/mL
decay-corrected to the injection, with the sidecar keys the hospital import reads
(``Units: Bq/mL``, ``InjectedRadioactivity`` in MBq, ``BodyWeight`` in kg,
``ImageDecayCorrected: true``, ``ImageDecayCorrectionTime: 0``): SUV = Bq/mL ×
:func:`fdopa.hospital.suv.suv_per_bqml` (``BodyWeight``, ``InjectedRadioactivity`` × 10⁶).
Ground truth (indices, curves) stays in SUV.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from fdopa.data.synthetic import head
from fdopa.data.synthetic.geometry import BRAIN_CENTRE, Warp, build_affine
from fdopa.data.synthetic.imaging import gaussian_blur
from fdopa.data.synthetic.tracer import Framing
from fdopa.physics import FWHM_TO_SIGMA

if TYPE_CHECKING:
    from fdopa.data.synthetic.subject import SyntheticSubject
    from fdopa.data.synthetic.synth_config import SynthConfig

REALISMS: tuple[str, ...] = ("brainbox", "scanner", "mixed")
#: Revision of the scanner images' head model, recorded with a cohort that has scanner images
#: so that one made by an earlier model is not reused (2: the FLAIR shows the whole head).
HEAD_MODEL_REVISION = 2
ORIENTATIONS: tuple[str, ...] = ("ras", "lps")
#: ``--units`` choice → sidecar ``Units``.
UNITS: dict[str, str] = {"suv": "g/mL", "bqml": "Bq/mL"}
#: World z (mm, scanner frame) of the top of every field of view: above the vertex of any pose.
FOV_TOP_MM = 115.0
#: World y (mm) of the field-of-view centre (the head's front-back middle).
FOV_CENTRE_Y_MM = -10.0


@dataclass(frozen=True)
class ScannerProfile:
    """Reconstruction geometry of one scanner protocol.

    Attributes:
        matrix: In-plane matrix (square).
        pixel_mm: In-plane voxel size (mm).
        slices: Number of slices.
        slice_mm: Slice thickness and spacing (mm).
        psf_fwhm_mm: Resolution of the reconstructed image (Gaussian FWHM, mm).
        noise: Factor on the subject's target noise CoV in normal brain.
        description: What the profile stands for.
    """

    matrix: int
    pixel_mm: float
    slices: int
    slice_mm: float
    psf_fwhm_mm: float
    noise: float
    description: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape of the images."""
        return (self.matrix, self.matrix, self.slices)

    @property
    def voxel_mm(self) -> np.ndarray:
        """Voxel size (mm) along each axis."""
        return np.array([self.pixel_mm, self.pixel_mm, self.slice_mm])


#: Named scanner profiles; every field of view covers the whole head and the neck (≥ 320 mm).
PROFILES: dict[str, ScannerProfile] = {
    "hr-256": ScannerProfile(
        256, 1.2, 160, 2.0, 3.5, 1.25, "high-resolution brain protocol with PSF modelling"
    ),
    "std-256": ScannerProfile(256, 2.0, 110, 3.0, 5.0, 1.0, "256 matrix over a 512 mm field"),
    "std-200": ScannerProfile(200, 2.0, 100, 3.27, 5.5, 1.0, "200 matrix over a 400 mm field"),
    "wb-200": ScannerProfile(
        200, 4.07, 100, 3.27, 6.5, 1.3, "whole-body reconstruction (815 mm field)"
    ),
    "tiny": ScannerProfile(64, 5.0, 64, 5.0, 6.0, 1.0, "coarse 320 mm cube for tests and demos"),
}
DEFAULT_PROFILE = "std-200"
RANDOM_PROFILE = "random"
"""``scanner`` value drawing each subject's profile (:func:`draw_profile`)."""
JITTER = 0.15
"""Largest relative change of a drawn profile's pixel size, slice thickness, PSF and noise."""


def draw_profile(rng: np.random.Generator) -> tuple[str, ScannerProfile]:
    """A clinical profile (any but ``tiny``) with its geometry and noise jittered.

    Pixel size, slice thickness, PSF FWHM and noise factor are each multiplied by a factor drawn
    uniformly in 1 ± :data:`JITTER`; the matrix and slice count stay, so the field of view
    changes with the voxel size. The name is the base profile's with a ``~`` suffix.
    """
    name = str(rng.choice([k for k in PROFILES if k != "tiny"]))
    base = PROFILES[name]
    pixel, slice_mm, psf, noise = (
        v * float(rng.uniform(1 - JITTER, 1 + JITTER))
        for v in (base.pixel_mm, base.slice_mm, base.psf_fwhm_mm, base.noise)
    )
    profile = dataclasses.replace(
        base, pixel_mm=round(pixel, 3), slice_mm=round(slice_mm, 3),
        psf_fwhm_mm=round(psf, 3), noise=round(noise, 3), description=f"{name}, jittered",
    )  # fmt: skip
    return f"{name}~", profile


@dataclass(frozen=True)
class Placement:
    """Head pose in the scanner: rotation about the brain centre, then a shift.

    Attributes:
        tilt_deg: Rotation about x (nodding), y (rolling) and z (turning), degrees.
        offset_mm: Shift of the head from the field-of-view axis (mm).
    """

    tilt_deg: tuple[float, float, float]
    offset_mm: tuple[float, float, float]

    @classmethod
    def random(cls, rng: np.random.Generator) -> Placement:
        """Nod of 2–15° either way, roll and turn within ±5°, shifts of ±20 mm (±10 mm in z)."""
        nod = float(rng.uniform(2.0, 15.0) * rng.choice([-1.0, 1.0]))
        roll, turn = rng.uniform(-5.0, 5.0, 2)
        shift = rng.uniform(-1.0, 1.0, 3) * [20.0, 20.0, 10.0]
        return cls(
            tilt_deg=(round(nod, 3), round(float(roll), 3), round(float(turn), 3)),
            offset_mm=tuple(float(v) for v in shift.round(3)),
        )

    def world_to_subject(self) -> np.ndarray:
        """Scanner world → subject frame (mm), 4×4: ``u = Rᵀ(p − c − o) + c``."""
        rotation = Rotation.from_euler("xyz", self.tilt_deg, degrees=True).as_matrix()
        inverse = np.eye(4)
        inverse[:3, :3] = rotation.T
        inverse[:3, 3] = BRAIN_CENTRE - rotation.T @ (BRAIN_CENTRE + np.asarray(self.offset_mm))
        return inverse


def scanner_affine(profile: ScannerProfile) -> np.ndarray:
    """RAS voxel-to-world affine of a profile's grid (x, y centred, top at :data:`FOV_TOP_MM`)."""
    voxel = profile.voxel_mm
    shape = np.asarray(profile.shape)
    affine = np.diag([*voxel, 1.0])
    centre = np.array([0.0, FOV_CENTRE_Y_MM, FOV_TOP_MM - voxel[2] * shape[2] / 2])
    affine[:3, 3] = centre - voxel * (shape - 1) / 2
    return affine


def _scanner_rng(seed: np.random.SeedSequence) -> np.random.Generator:
    """A generator for the scanner draws, independent of the subject's own stream."""
    return np.random.default_rng(
        np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, 7919))
    )


@dataclass
class Scan:
    """One subject's scanner: profile, pose, head and the grid maps are sampled on.

    Attributes:
        name: Profile name.
        profile: The :class:`ScannerProfile`.
        placement: Head pose.
        warp: The subject's template warp (the head follows its affine part).
        head_suvs: Static SUV of every head structure.
        head_frames: Head compartment curves ``(K, F)``, static-window mean 1.
        head_record: JSON record of the head kinetics.
    """

    name: str
    profile: ScannerProfile
    placement: Placement
    warp: Warp
    head_suvs: dict[str, float]
    head_frames: np.ndarray
    head_record: dict[str, Any]

    @classmethod
    def draw(cls, config: SynthConfig, seed: np.random.SeedSequence, warp: Warp) -> Scan:
        """Draw the pose, head SUVs and head kinetics from the subject's seed."""
        rng = _scanner_rng(seed)
        name, profile = config.scanner, PROFILES.get(config.scanner)
        if profile is None:  # RANDOM_PROFILE
            name, profile = draw_profile(rng)
        placement = Placement.random(rng)
        suvs = head.draw_suvs(rng)
        frames, record = head.head_tacs(
            rng, Framing.from_spec(config.framing), config.static_window_s, config.parameter_cv
        )
        return cls(name, profile, placement, warp, suvs, frames, record)

    @property
    def affine(self) -> np.ndarray:
        """RAS voxel-to-world affine of the scanner grid."""
        return scanner_affine(self.profile)

    @property
    def voxel_mm(self) -> np.ndarray:
        """Voxel size (mm) along each axis."""
        return self.profile.voxel_mm

    def _sigma_mm(self, fwhm_mm: float) -> np.ndarray:
        return np.sqrt((fwhm_mm * FWHM_TO_SIGMA) ** 2 + self.voxel_mm**2 / 12.0)

    def _sample(
        self, volume: np.ndarray, to_source: np.ndarray, sigma_vox: np.ndarray
    ) -> np.ndarray:
        """Blur ``volume`` by ``sigma_vox`` and sample it at the scanner voxels (0 outside it)."""
        volume = volume.astype(np.float32, copy=False)
        blurred = gaussian_blur(volume, sigma_vox)
        shape = np.asarray(self.profile.shape)
        corners = np.stack(np.meshgrid(*[(0, n - 1) for n in volume.shape], [1], indexing="ij"))
        inside = np.linalg.inv(to_source)[:3] @ corners.reshape(4, -1)
        low = np.clip(np.floor(inside.min(axis=1)).astype(int), 0, shape)
        high = np.clip(np.ceil(inside.max(axis=1)).astype(int) + 1, 0, shape)
        out = np.zeros(self.profile.shape, np.float32)
        if np.any(high <= low):
            return out
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        out[box] = ndimage.affine_transform(
            blurred, to_source[:3, :3], to_source[:3, :3] @ low + to_source[:3, 3],
            output_shape=tuple(high - low), order=1, mode="constant", cval=0.0,
        )  # fmt: skip
        return out

    def resample(self, volume: np.ndarray, fwhm_mm: float = 0.0) -> np.ndarray:
        """A 1 mm build-grid map (subject frame) seen on the scanner grid.

        Blurred by the PSF ``fwhm_mm`` (0: the voxel box only), then sampled; the pose's
        small rotation of the blur axes is neglected.
        """
        to_build = np.linalg.inv(build_affine()) @ self.placement.world_to_subject() @ self.affine
        return self._sample(volume, to_build, self._sigma_mm(fwhm_mm))

    def _from_head(self, volume: np.ndarray, fwhm_mm: float) -> np.ndarray:
        """A head-grid map (template mm) seen on the scanner grid, blurred by ``fwhm_mm``."""
        to_head = (
            np.linalg.inv(head.head_affine()) @ self.warp.inverse_affine()
            @ self.placement.world_to_subject() @ self.affine
        )  # fmt: skip
        sigma = self._sigma_mm(fwhm_mm) / (head.HEAD_VOXEL_MM * float(np.mean(self.warp.scale)))
        return self._sample(volume, to_head, sigma)

    def head_weights(self) -> np.ndarray:
        """Weight map of each head compartment on the scanner grid (static SUV), (K, X, Y, Z)."""
        maps = head.compartment_maps(self.head_suvs)
        return np.stack([self._from_head(m, self.profile.psf_fwhm_mm) for m in maps])

    def head_flair(self, fwhm_mm: float) -> np.ndarray:
        """FLAIR signal of the head around the brain on the scanner grid (0 inside the skull)."""
        return self._from_head(head.flair_map(), fwhm_mm)

    def record(self) -> dict[str, Any]:
        """JSON record of the scanner for the truth file."""
        return {
            "profile": self.name,
            "matrix": list(self.profile.shape),
            "voxel_mm": self.voxel_mm.tolist(),
            "psf_fwhm_mm": self.profile.psf_fwhm_mm,
            "noise_factor": self.profile.noise,
            "tilt_deg": list(self.placement.tilt_deg),
            "offset_mm": list(self.placement.offset_mm),
            "head_suv": self.head_suvs,
            "head_compartments": list(head.HEAD_COMPARTMENTS),
            **self.head_record,
        }


def brain_crop(labels: np.ndarray, margin: int = 3) -> tuple[slice, ...]:
    """Bounding box of the labelled voxels plus ``margin`` voxels (the indices need no more)."""
    where = np.argwhere(labels > 0)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + margin + 1, labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def crop_affine(affine: np.ndarray, crop: tuple[slice, ...]) -> np.ndarray:
    """Affine of a cropped array."""
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [s.start for s in crop] + affine[:3, 3]
    return shifted


def bqml_per_suv(weight_kg: float, injected_mbq: float) -> float:
    """Bq/mL of SUV 1, from the sidecar's ``BodyWeight`` (kg) and ``InjectedRadioactivity`` (MBq).

    The inverse of the hospital import's conversion (:func:`fdopa.hospital.suv.suv_per_bqml`).
    """
    from fdopa.hospital.suv import suv_per_bqml  # lazy: fdopa.hospital imports this package

    return 1.0 / suv_per_bqml(weight_kg, injected_mbq * 1e6)


#: PET images of a :class:`~fdopa.data.synthetic.subject.SyntheticSubject` (SUV or Bq/mL).
_IMAGES = ("static", "static_clean", "dynamic", "dynamic_clean")


def _lps(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else np.ascontiguousarray(array[::-1, ::-1])


def store(subject: SyntheticSubject, orientation: str, units: str) -> SyntheticSubject:
    """The subject as written: storage order ``ras``/``lps`` and PET units ``suv``/``bqml``."""
    if units == "bqml":
        scale = np.float32(
            bqml_per_suv(subject.participant["weight_kg"], subject.participant["injected_mbq"])
        )
        subject = dataclasses.replace(
            subject,
            **{
                name: None if getattr(subject, name) is None else getattr(subject, name) * scale
                for name in _IMAGES
            },
        )
    if orientation == "lps":
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = np.asarray(subject.labels.shape[:2]) - 1
        subject = dataclasses.replace(
            subject,
            affine=subject.affine @ flip,
            **{
                name: _lps(getattr(subject, name))
                for name in (*_IMAGES, "labels", "manual", "flair")
            },
        )
    subject.truth["storage"] = {"orientation": orientation, "units": UNITS[units]}
    return subject
