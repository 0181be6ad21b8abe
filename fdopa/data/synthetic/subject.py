"""One synthetic subject: anatomy → kinetics → image formation → labels, truth and outcome.

Every tissue class is a *compartment*: a 1 mm fractional map with one kinetic curve. Because
the PSF blur and the block-average resampling are linear and each compartment's curve is
spatially constant, the noise-free image of frame ``f`` is exactly ``Σ_k W_k · TAC_k(f)`` with
``W_k`` the blurred, resampled map — one blur per compartment instead of one per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fdopa.data.synthetic import geometry, imaging, lesion, outcomes, scanner
from fdopa.data.synthetic.anatomy import load_anatomy
from fdopa.data.synthetic.delineation import manual_delineation
from fdopa.data.synthetic.synth_config import SynthConfig
from fdopa.data.synthetic.tracer import (
    Framing,
    KineticParams,
    decay_correction_factors,
    sample_parameters,
    simulate_tacs,
    static_window_mean,
)
from fdopa.kinetics.names import DYNAMIC_KEYS
from fdopa.kinetics.presets import PRESETS
from fdopa.kinetics.reference import reference_indices
from fdopa.labels import BRAIN, TUMOUR

#: Compartments of the image model, in the order of the weight maps.
COMPARTMENTS: tuple[str, ...] = ("cortex", "white_matter", "striatum", "tumour", "necrosis")


@dataclass
class SyntheticSubject:
    """Everything written for one subject (arrays on the output grid, float32 SUV).

    Attributes:
        participant_id: BIDS label with the ``sub-`` prefix.
        affine: Output-grid affine.
        static: Noisy static image.
        static_clean: Noise-free static image.
        labels: Reference label map (values 0–3), uint8.
        manual: Manual-delineation variant of the label map, uint8.
        dynamic: Noisy 4D image, or ``None`` for a static-only subject.
        dynamic_clean: Noise-free 4D image, or ``None``.
        flair: FLAIR-like channel, or ``None``.
        framing: Frame timing of the dynamic image (also used for the kinetic truth).
        participant: Row of ``participants.tsv``.
        truth: Ground-truth record (JSON-serialisable).
    """

    participant_id: str
    affine: np.ndarray
    static: np.ndarray
    static_clean: np.ndarray
    labels: np.ndarray
    manual: np.ndarray
    dynamic: np.ndarray | None
    dynamic_clean: np.ndarray | None
    flair: np.ndarray | None
    framing: Framing
    participant: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)


def _compartment_maps(
    rng: np.random.Generator,
    cohort: str,
    age: float,
    location: str,
    volume_ml: float,
    necrotic: bool,
) -> tuple[dict[str, np.ndarray], geometry.Warp, lesion.Lesion]:
    """Warp the template and a new lesion into a subject; 1 mm fractional maps."""
    anatomy = load_anatomy()
    scale = geometry.age_scale(age, rng) if cohort == "paediatric" else geometry.age_scale(99, rng)
    warp = geometry.Warp.random(rng, scale)
    found = lesion.make_lesion(
        rng, anatomy, location, volume_ml, scale=float(np.mean(warp.scale)), necrotic=necrotic
    )
    coords = warp.template_coordinates(anatomy.affine)

    def pull(volume: np.ndarray) -> np.ndarray:
        return np.clip(geometry.pull(volume, coords), 0.0, 1.0)

    tumour, necrosis = pull(found.tumour), pull(found.necrosis)
    active = np.clip(
        geometry.pull((found.tumour - found.necrosis) * found.heterogeneity, coords), 0, None
    )
    striatum_raw = pull(anatomy.mask("striatum_left") | anatomy.mask("striatum_right"))
    gm, wm, brain = pull(anatomy.gm), pull(anatomy.wm), pull(anatomy.brain)
    healthy = 1.0 - tumour
    maps = {
        "cortex": np.clip(gm - striatum_raw, 0, 1) * healthy,
        "white_matter": wm * healthy,
        "striatum": striatum_raw * healthy,
        "tumour": active,
        "necrosis": necrosis,
        # Label fractions and the FLAIR channel (not compartments).
        "label_tumour": tumour,
        "label_brain": np.clip(np.clip(gm + wm, 0, 1) - striatum_raw, 0, 1) * healthy,
        "csf": np.clip(brain - gm - wm, 0, 1) * healthy,
        "extent": pull(found.extent),
    }
    return maps, warp, found


def _label_map(maps: dict[str, np.ndarray], grid: geometry.BoxGrid | scanner.Scan) -> np.ndarray:
    """Label of the class with the largest volume fraction in each output voxel.

    The fractions are stacked in label order (background, brain, striatum, tumour), so the index
    of the largest one is the label value.
    """
    fractions = np.stack(
        [grid.resample(maps[k]) for k in ("label_brain", "striatum", "label_tumour")]
    )
    background = 1.0 - fractions.sum(axis=0, keepdims=True)
    return np.argmax(np.concatenate([background, fractions]), axis=0).astype(np.uint8)


#: Blur (FWHM, mm) of the synthetic FLAIR.
_FLAIR_FWHM_MM = 2.0


def _flair(
    rng: np.random.Generator, maps: dict[str, np.ndarray], grid: geometry.BoxGrid | scanner.Scan
) -> np.ndarray:
    """FLAIR-like image: GM > WM > CSF, the lesion extent hyperintense, 2 % noise.

    A brain box holds the brain only; a scanner image also the head around it (scalp, skull,
    face, neck: :func:`fdopa.data.synthetic.head.flair_map`), as a registered FLAIR shows it.
    """
    tissue = 0.75 * (maps["cortex"] + maps["striatum"]) + 0.5 * maps["white_matter"]
    tissue += 0.15 * maps["csf"]
    extent = maps["extent"]
    image = tissue * (1 - extent) + 1.25 * extent
    image = grid.resample(image, _FLAIR_FWHM_MM) * 1000.0
    if isinstance(grid, scanner.Scan):
        image += grid.head_flair(_FLAIR_FWHM_MM)
    image += rng.normal(0.0, 10.0, image.shape) * (image > 1.0)
    return image.astype(np.float32)


def _noise(
    rng: np.random.Generator,
    clean: np.ndarray,
    framing: Framing,
    normal_brain: np.ndarray,
    target_cov: float,
    config: SynthConfig,
    voxel_mm: float,
) -> tuple[np.ndarray, float]:
    """Noisy frames with the gain solved so the static image has the target CoV."""
    fwhm = float(rng.uniform(*config.noise_fwhm_mm))
    unit = imaging.noisy_frames(
        rng,
        clean,
        decay_correction_factors(framing),
        np.asarray(framing.durations_s),
        fwhm_mm=fwhm,
        voxel_mm=voxel_mm,
    )
    starts, durations = np.asarray(framing.starts_s), np.asarray(framing.durations_s)
    window = config.static_window_s
    static_clean = imaging.window_mean(clean, starts, durations, window)
    static_noise = imaging.window_mean(unit, starts, durations, window)
    gain = imaging.noise_gain(static_noise, static_clean, normal_brain, target_cov)
    return clean + np.float32(gain) * unit, gain


def _kinetics(
    rng: np.random.Generator,
    config: SynthConfig,
    kinetic_class: str,
    weights: np.ndarray,
    head: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, KineticParams], dict[str, Any], np.ndarray, np.ndarray]:
    """Draw each compartment's microparameters and form the noise-free 4D and static images.

    ``head`` (scanner realism) adds the head's compartments: their weight maps (static SUV) and
    frame curves normalised to a static-window mean of 1; the images are then formed in float32.

    Returns:
        ``(params, sim, clean4d, static_clean)``; ``sim`` is :func:`simulate_tacs`'s output plus
        ``static_window`` (each compartment's exact mean over the static window).
    """
    regions = {"tumour": kinetic_class}
    params = {
        c: sample_parameters(rng, regions.get(c, c), config.parameter_cv) for c in COMPARTMENTS
    }
    sim = simulate_tacs(params, Framing.from_spec(config.framing))
    start, end = config.static_window_s
    sim["static_window"] = static_window_mean(sim, start_min=start / 60, end_min=end / 60)
    frame_tacs = np.stack([sim["frames"][c] for c in COMPARTMENTS])  # (K, F)
    window = np.array([sim["static_window"][c] for c in COMPARTMENTS])
    if head is not None:
        weights = np.concatenate([weights, head[0]])
        frame_tacs = np.concatenate([frame_tacs, head[1]]).astype(np.float32)
        window = np.concatenate([window, np.ones(len(head[1]))]).astype(np.float32)
    clean4d = np.tensordot(weights, frame_tacs, axes=([0], [0])).astype(np.float32)
    static_clean = np.tensordot(weights, window, axes=([0], [0])).astype(np.float32)
    return params, sim, clean4d, static_clean


def _true_indices(
    static_clean: np.ndarray, clean4d: np.ndarray, labels: np.ndarray, affine: np.ndarray,
    framing: Framing, dynamic: bool, participant_id: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """PET indices of the noise-free images with the true labels.

    Returns:
        ``(indices, kinetic)``: per preset, the indices of the data the subject has (dynamic
        ones only for dynamic subjects); and the guideline indices with the noise-free 4D image
        whatever the subject has — the kinetic truth that drives the outcomes.
    """
    timing = {
        "dynamic": clean4d,
        "frame_start_s": np.asarray(framing.starts_s),
        "frame_duration_s": np.asarray(framing.durations_s),
    }
    indices = {
        name: reference_indices(static_clean, labels, affine, preset,
                                **(timing if dynamic else {}), participant_id=participant_id)
        for name, preset in PRESETS.items()
    }  # fmt: skip
    kinetic = indices["guideline"] if dynamic else reference_indices(
        static_clean, labels, affine, PRESETS["guideline"], **timing,
        participant_id=participant_id,
    )  # fmt: skip
    return indices, kinetic


def build_subject(
    config: SynthConfig, participant_id: str, seed: np.random.SeedSequence, dynamic: bool
) -> SyntheticSubject:
    """Generate one subject.

    Args:
        config: Generator configuration.
        participant_id: BIDS label with the ``sub-`` prefix.
        seed: The subject's own seed sequence (independent of generation order).
        dynamic: Whether the subject has a 4D dynamic image.

    Returns:
        The :class:`SyntheticSubject`.
    """
    rng = np.random.default_rng(seed)
    cohort, factor = config.cohort, geometry.grid_factor(config.grid)
    age = outcomes.draw_age(rng, cohort)
    weight = outcomes.draw_body_weight(rng, age)
    site = str(rng.choice(list(outcomes.SITES)))
    psf = outcomes.draw_psf_fwhm(rng, site)
    location = lesion.draw_location(rng, cohort)
    grade, kinetic_class = lesion.draw_kinetic_class(rng, location)
    volume_ml = lesion.draw_volume_ml(rng, location)
    necrotic = grade == "HGG" and volume_ml > 6.0 and bool(rng.random() < 0.6)
    maps, warp, found = _compartment_maps(rng, cohort, age, location, volume_ml, necrotic)

    # Scanner realism: the scanner's grid, PSF and noise level, and the head around the brain.
    scan = scanner.Scan.draw(config, seed, warp) if config.realism == "scanner" else None
    grid = scan or geometry.BoxGrid(factor)
    psf = scan.profile.psf_fwhm_mm if scan else psf
    weights = np.stack([grid.resample(maps[c], psf) for c in COMPARTMENTS])
    labels = _label_map(maps, grid)
    affine = grid.affine
    voxel_mm = float(np.cbrt(np.prod(grid.voxel_mm))) if scan else float(factor)

    head = (scan.head_weights(), scan.head_frames) if scan else None
    params, sim, clean4d, static_clean = _kinetics(rng, config, kinetic_class, weights, head)
    framing = Framing.from_spec(config.framing)

    target_cov = float(rng.uniform(*config.cov_range))
    if cohort == "paediatric":
        target_cov *= float(rng.uniform(1.2, 1.5))
    target_cov *= scan.profile.noise if scan else 1.0
    static_framing = Framing((config.static_window_s[0],), (np.diff(config.static_window_s)[0],))
    normal_brain = labels == BRAIN
    if dynamic:
        noisy4d, gain = _noise(rng, clean4d, framing, normal_brain, target_cov, config, voxel_mm)
        static = imaging.window_mean(
            noisy4d,
            np.asarray(framing.starts_s),
            np.asarray(framing.durations_s),
            config.static_window_s,
        )
    else:
        noisy, gain = _noise(
            rng, static_clean[..., None], static_framing, normal_brain, target_cov, config, voxel_mm
        )
        noisy4d, static = None, noisy[..., 0]
    if not config.noise:
        static, noisy4d = static_clean.copy(), (clean4d.copy() if dynamic else None)

    # The truth and the manual delineation need only the labelled part of a scanner's field.
    crop = scanner.brain_crop(labels) if scan else (slice(None),) * 3
    crop_affine = scanner.crop_affine(affine, crop) if scan else affine
    manual = np.zeros_like(labels)
    manual[crop] = manual_delineation(rng, labels[crop], static[crop], crop_affine)
    flair = _flair(rng, maps, grid) if config.flair else None

    indices, kinetic = _true_indices(
        static_clean[crop], clean4d[crop], labels[crop], crop_affine, framing, dynamic,
        participant_id,
    )  # fmt: skip
    tsr, ttp = kinetic["indices"]["tsr"], kinetic["indices"]["ttp_min"]
    outcome = outcomes.draw_outcome(rng, tsr, ttp, grade)
    dose = outcomes.injected_mbq(rng, weight, cohort)

    voxel_ml = factor**3 / 1000.0 if scan is None else float(np.prod(grid.voxel_mm)) / 1000.0
    participant = {
        "participant_id": participant_id,
        "cohort": cohort,
        "age": age,
        "sex": str(rng.choice(["F", "M"])),
        "grade": grade,
        **vars(outcome),
        "site": site,
        "location": location,
        "hemisphere": found.hemisphere,
        "kinetic_class": kinetic_class,
        "dynamic": int(dynamic),
        "weight_kg": weight,
        "injected_mbq": dose,
    }
    truth = {
        "participant_id": participant_id,
        "cohort": cohort,
        "grid": config.grid,
        "microparameters": {c: {**vars(p), "Ki": p.ki} for c, p in params.items()},
        "kinetic_classes": {"tumour": kinetic_class},
        "input_function": {"mid_min": sim["mid_min"].tolist(), "cp": sim["cp_frames"].tolist()},
        "tacs_model": {
            "mid_min": sim["mid_min"].tolist(),
            **{c: sim["frames"][c].tolist() for c in COMPARTMENTS},
        },
        "static_window_model": sim["static_window"],
        "indices": {name: result["indices"] for name, result in indices.items()},
        "tacs_image": kinetic["tacs"],
        "kinetic_truth": {k: kinetic["indices"][k] for k in ("tsr", *DYNAMIC_KEYS)},
        "outcome_model": {"log_hazard": outcomes.log_hazard(tsr, ttp, grade)},
        "lesion": {
            "location": location,
            "hemisphere": found.hemisphere,
            "centre_template_mm": found.centre_mm,
            "target_volume_ml": volume_ml,
            "necrotic": necrotic,
            "heterogeneity_cv": found.heterogeneity_cv,
            "volume_ml_1mm": float(maps["label_tumour"].sum() / 1000.0),
            "volume_ml_labels": float((labels == TUMOUR).sum() * voxel_ml),
        },
        "imaging": {
            "psf_fwhm_mm": psf,
            "target_cov": target_cov,
            "noise_gain": gain,
            "noise": config.noise,
        },
        "warp": {k: v for k, v in vars(warp).items() if k != "seed"},
        "brain_ml": float((labels > 0).sum() * voxel_ml),
        **({"scanner": scan.record()} if scan else {}),
    }
    subject = SyntheticSubject(
        participant_id=participant_id,
        affine=affine,
        static=static.astype(np.float32),
        static_clean=static_clean,
        labels=labels,
        manual=manual,
        dynamic=None if noisy4d is None else noisy4d.astype(np.float32),
        dynamic_clean=clean4d if dynamic else None,
        flair=flair,
        framing=framing,
        participant=participant,
        truth=truth,
    )
    if (config.orientation, config.units) != ("ras", "suv"):
        subject = scanner.store(subject, config.orientation, config.units)
    return subject
