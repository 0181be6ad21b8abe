"""Quality control of a prediction: the reasons to review a case, and its picture.

The checks: an SUV scale that cannot be FDOPA's (no indices at all), and the reasons for a
human to look at a case with indices (:func:`review_reasons`): the mirrored and plain tumour
masks disagree, a region is empty, the tumour volume lies outside the training range, the labels
are not one plausible brain, the tumour's hottest voxel touches the striatum, a tenth of the
striatum lies outside its two parts, or a tumour drawn from PET alone is no hotter than healthy
brain.

The picture: labels over the PET in three planes, and the TACs.

Sagittal, coronal and axial slices through the tumour centroid (the brain's centre without a
tumour), drawn in RAS+ orientation (neurological: the patient's right on the right, anterior and
superior up) with the voxel aspect of the image; the TACs of tumour, hot tumour, contralateral
striatum and reference when the scan is dynamic. Drawn with matplotlib's Agg canvas, no pyplot
state.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from nibabel.affines import voxel_sizes
from scipy import ndimage

from fdopa.kinetics import INDEX_KEYS, TAC_REGIONS, IndexResult
from fdopa.kinetics.regions import bounding_box
from fdopa.kinetics.static import suv_peak_fft
from fdopa.labels import BRAIN, CONNECTIVITY, STRIATUM, TUMOUR, label_rgb

if TYPE_CHECKING:  # the predictor imports torch; the hospital QC pictures do not need it
    from fdopa.export.predictor import Prediction

__all__ = [
    "BRAIN_ML_RANGE",
    "FOCUS_MARGIN_MM",
    "STRIATUM_STRAY_FRACTION",
    "SUV_RANGE",
    "pet_alone_reason",
    "qc_figure",
    "review_reasons",
    "slice_centre",
    "striatum_contact_reason",
    "striatum_stray_reason",
    "tracer_scale_reason",
    "unanalysable_indices",
]

ALPHA = 0.4
"""Opacity of the label colours."""
SUV_RANGE = (0.5, 50.0)
"""Plausible SUVmax of the FDOPA striatum (of the head when no striatum was found): outside it
the image is not in SUV (wrong units, dose or weight) and is not analysed."""
BRAIN_ML_RANGE = (700.0, 2200.0)
"""Plausible volume (mL) of brain, striatum and tumour together, from a 2-year-old to an adult
(the synthetic children: 1048–1783 mL). Outside it the labels cover more than one brain (face,
neck or salivary glands taken for brain or tumour in a whole-head scan) or less: flagged."""

FOCUS_MARGIN_MM = 12.0
"""Healthy brain this far (mm) from the striatum and the tumour is what :func:`pet_alone_reason`
compares the tumour with: about twice a clinical PET's resolution (FWHM 4.5–6.5 mm), so that
the spill-out of the hot striatum and of the tumour itself stays out of the comparison."""

STRIATUM_STRAY_FRACTION = 0.1
"""Share of the striatum label outside its two largest connected parts (the left and the right
striatum) from which :func:`striatum_stray_reason` flags a case."""

_REGION_EMPTY = re.compile(r"^(tumour|striatum|reference)_empty$")


def tracer_scale_reason(pet: np.ndarray, labels: np.ndarray, head: np.ndarray) -> str | None:
    """Flag an SUV image whose scale cannot be FDOPA's (see :data:`SUV_RANGE`).

    Args:
        pet: Static PET in SUV on its native grid.
        labels: Predicted label map on the same grid.
        head: Boolean mask of the located head region (used when no striatum was found).

    Returns:
        ``tracer_scale striatum SUVmax … outside [0.5, 50]`` or None when plausible.
    """
    striatum = labels == STRIATUM
    region, values = ("striatum", pet[striatum]) if striatum.any() else ("head", pet[head])
    if values.size == 0:
        return None
    top = float(values.max() if region == "striatum" else np.percentile(values, 99.5))
    low, high = SUV_RANGE
    if low <= top <= high:
        return None
    return f"tracer_scale {region} SUVmax {top:.3g} outside [{low:g}, {high:g}]"


def striatum_contact_reason(pet: np.ndarray, labels: np.ndarray) -> str | None:
    """Flag a tumour whose hottest voxel touches the striatum (26-neighbourhood).

    FDOPA's striatum is as hot as many tumours: when the automatic tumour's SUVmax lies next to
    a striatum voxel, the tumour mask may have taken in striatal uptake, and T/S and TBRmax with
    it. On the held-out children this fired on none of the reference delineations.

    Args:
        pet: Static PET on its native grid.
        labels: Predicted label map on the same grid.

    Returns:
        ``tumour_max_at_striatum …`` or None (also without a tumour).
    """
    tumour = labels == TUMOUR
    if not tumour.any():
        return None
    hottest = np.unravel_index(np.argmax(np.where(tumour, pet, -np.inf)), pet.shape)
    around = tuple(slice(max(i - 1, 0), i + 2) for i in hottest)
    if not (labels[around] == STRIATUM).any():
        return None
    return (
        f"tumour_max_at_striatum SUVmax {float(pet[hottest]):.3g} at voxel "
        f"{tuple(int(i) for i in hottest)}: T/S and TBRmax may include striatal uptake"
    )


def striatum_stray_reason(labels: np.ndarray) -> str | None:
    """Flag a striatum label of which a tenth or more lies outside its two largest parts.

    The striatum is two structures, left and right (caudate and putamen joined on each side),
    and its uptake is the reference of T/S. On 72 held-out children (with and without FLAIR) the
    default model kept all but 0–3 % of the label in its two largest 26-connected parts, and
    all but 0–2 % on 104 more (8 children as 2 mm and 1.2 mm scanner images, the 36 training
    children); on PET alone it labelled part of one child's hot pontine tumour striatum (22 % of
    the label), which took T/S from 2.82 to 1.15 with no other reason raised.

    Args:
        labels: Predicted label map.

    Returns:
        ``striatum_stray …`` or None (also with one or two parts, or no striatum).
    """
    box = bounding_box(labels == STRIATUM)
    if box is None:
        return None
    striatum = labels[box] == STRIATUM
    parts, count = ndimage.label(striatum, structure=CONNECTIVITY)
    if count <= 2:
        return None
    sizes = np.sort(np.bincount(parts.ravel())[1:])
    share = float(sizes[:-2].sum()) / float(sizes.sum())
    if share < STRIATUM_STRAY_FRACTION:
        return None
    return (
        f"striatum_stray {share:.0%} of the striatum outside its two largest parts: T/S's "
        "reference region may hold other uptake"
    )


def pet_alone_reason(
    pet: np.ndarray, labels: np.ndarray, zooms: tuple[float, float, float]
) -> str | None:
    """Flag a tumour drawn from PET alone that is no hotter than healthy brain.

    Without FLAIR the network can find a tumour only by its uptake. When the tumour it drew
    has an SUVpeak (1 mL sphere) no higher than healthy brain's (the brain label further than
    :data:`FOCUS_MARGIN_MM` from striatum and tumour), the PET does not show that region as a
    tumour: on held-out children these were tumours missed on PET alone, with the tumour label
    on cold brain elsewhere, and their indices came from the wrong region. With FLAIR a tumour
    without uptake is legitimate (low-uptake gliomas), so the predictor asks only on PET alone.

    Args:
        pet: Static PET on its native grid.
        labels: Predicted label map on the same grid.
        zooms: Voxel size (mm).

    Returns:
        ``tumour_not_above_brain …`` or None (also without a tumour or without healthy brain
        far enough from it).
    """
    box = bounding_box(labels > 0)
    if box is None:
        return None
    labels, pet = labels[box], pet[box]
    tumour = labels == TUMOUR
    if not tumour.any():
        return None
    near = ndimage.distance_transform_edt(~(tumour | (labels == STRIATUM)), sampling=zooms)
    healthy = (labels == BRAIN) & (near > FOCUS_MARGIN_MM)
    if not healthy.any():
        return None
    peak = suv_peak_fft(pet, np.nonzero(tumour), zooms, 1.0)
    brain = suv_peak_fft(pet, np.nonzero(healthy), zooms, 1.0)
    if peak > brain:  # type: ignore[operator]  # both regions are non-empty
        return None
    return (
        f"tumour_not_above_brain SUVpeak {peak:.3g} <= {brain:.3g} of healthy brain "
        f"{FOCUS_MARGIN_MM:g} mm from tumour and striatum: PET alone does not show this tumour"
    )


def review_reasons(
    indices: IndexResult,
    disagreement: float | None,
    *,
    tta_bound: float,
    tumour_ml_range: tuple[float, float] | None = None,
    labelled_ml: float | None = None,
    findings: tuple[str | None, ...] = (),
) -> list[str]:
    """Reasons for a human to review a case with indices (empty: nothing to flag).

    Args:
        indices: The case's indices (``tumour_ml`` and the ``missing`` reasons are read).
        disagreement: 1 − Dice of the mirrored and plain tumour masks, None without TTA.
        tta_bound: Largest tolerated ``disagreement``.
        tumour_ml_range: ``[min, max]`` tumour volume (mL) of the training children, None to
            skip.
        labelled_ml: Volume of brain, striatum and tumour together (mL), None to skip.
        findings: The reasons found in the image (:func:`striatum_contact_reason`,
            :func:`striatum_stray_reason`, :func:`pet_alone_reason`); None entries are left
            out.

    Returns:
        ``tta_disagreement …``, ``missing_region <tumour|striatum|reference>``,
        ``tumour_volume … outside the training range …``, ``brain_volume … outside
        [low, high] mL`` (:data:`BRAIN_ML_RANGE`) and the ``findings`` entries, in that order.
    """
    reasons = []
    if disagreement is not None and disagreement > tta_bound:
        reasons.append(f"tta_disagreement {disagreement:.3f} > {tta_bound:g}")
    empty = sorted({m for m in indices.missing.values() if _REGION_EMPTY.match(m)})
    reasons += [f"missing_region {reason.removesuffix('_empty')}" for reason in empty]
    volume = indices.tumour_ml
    if tumour_ml_range is not None and volume is not None:
        low, high = tumour_ml_range
        if not low <= volume <= high:
            reasons.append(
                f"tumour_volume {volume:.2f} mL outside the training range "
                f"[{low:.2f}, {high:.2f}] mL"
            )
    low, high = BRAIN_ML_RANGE
    if labelled_ml is not None and not low <= labelled_ml <= high:
        reasons.append(f"brain_volume {labelled_ml:.0f} mL outside [{low:g}, {high:g}] mL")
    reasons += [finding for finding in findings if finding is not None]
    return reasons


def unanalysable_indices(participant_id: str, preset: str, reason: str) -> IndexResult:
    """An index result with every index absent for ``reason`` (no number from such an image)."""
    keys = INDEX_KEYS[2:-1]
    return IndexResult(participant_id, preset, missing=dict.fromkeys(keys, reason))


def slice_centre(labels: np.ndarray, tumour: int = TUMOUR) -> tuple[int, int, int]:
    """Voxel of the tumour centroid; of the labelled voxels without tumour; else the centre."""
    for mask in (labels == tumour, labels > 0):
        if mask.any():
            return tuple(round(float(c)) for c in np.argwhere(mask).mean(axis=0))  # type: ignore[return-value]
    return tuple(n // 2 for n in labels.shape)  # type: ignore[return-value]


def _rgba(pet_slice: np.ndarray, label_slice: np.ndarray, top: float) -> np.ndarray:
    grey = np.clip(pet_slice / top, 0.0, 1.0)[..., None] * np.ones(3)
    colours = label_rgb(label_slice)
    mask = (label_slice > 0)[..., None]
    return np.where(mask, (1 - ALPHA) * grey + ALPHA * colours, grey)


def qc_figure(prediction: Prediction, path: str | Path, dpi: int = 100) -> Path:
    """Draw the QC picture of a prediction to a PNG file.

    Args:
        prediction: The prediction (native PET, labels, affine, indices, QC verdict).
        path: Target PNG.
        dpi: Resolution.

    Returns:
        The written path.
    """
    ornt = nib.orientations.io_orientation(prediction.affine)
    pet = nib.orientations.apply_orientation(prediction.pet, ornt)
    labels = nib.orientations.apply_orientation(prediction.labels, ornt).astype(int)
    flip = nib.orientations.inv_ornt_aff(ornt, prediction.pet.shape)
    zooms = voxel_sizes(prediction.affine @ flip)
    x, y, z = slice_centre(labels)
    brain = pet[labels > 0] if (labels > 0).any() else pet
    top = float(np.percentile(brain, 99.5)) or 1.0
    # (name, PET slice, label slice, horizontal and vertical voxel sizes); rows = 2nd axis.
    planes = (
        ("sagittal", pet[x], labels[x], zooms[1], zooms[2]),
        ("coronal", pet[:, y], labels[:, y], zooms[0], zooms[2]),
        ("axial", pet[:, :, z], labels[:, :, z], zooms[0], zooms[1]),
    )
    tacs = prediction.indices.tacs
    figure = Figure(figsize=(4.0 * (3 + (tacs is not None)), 4.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3 + (tacs is not None))
    for ax, (name, pet_slice, label_slice, dx, dy) in zip(axes, planes, strict=False):
        ax.imshow(
            np.transpose(_rgba(pet_slice, label_slice, top), (1, 0, 2)),
            origin="lower", aspect=dy / dx, interpolation="nearest",
        )  # fmt: skip
        ax.set_title(name)
        ax.set_axis_off()
    if tacs is not None:
        ax = axes[-1]
        for region in TAC_REGIONS:
            mean = tacs.mean.get(region)
            if mean is not None:
                ax.plot(tacs.frame_mid_min, mean, marker="o", ms=3, label=region)
        ax.set_xlabel("time after injection (min)")
        ax.set_ylabel("mean uptake (image units)")
        ax.legend(fontsize=8)
        ax.set_title("time-activity curves")
    result = prediction.indices
    shown = (("T/S", result.tsr), ("TBRmax", result.tbr_max), ("tumour mL", result.tumour_ml))
    summary = ", ".join(f"{label} {value:.2f}" for label, value in shown if value is not None)
    verdict = "QC: review — " + "; ".join(prediction.qc_reasons) if prediction.qc_flag else "QC: ok"
    figure.suptitle(f"{prediction.stem}   {summary}\n{verdict}", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=dpi, format="png")
    return path
