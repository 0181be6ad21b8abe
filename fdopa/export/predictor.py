"""Prediction with a bundle: label map, probabilities, PET indices and a QC verdict.

The head is located first (:func:`fdopa.data.localise.locate_head`: a classical mask of the
uptake) and the network runs only in that box; the labels outside it are background. The box's
part of the scan is mapped to the bundle's model grid (RAS+, training spacing; exact copies when
only axes are permuted or flipped, else anti-aliased linear interpolation:
:class:`fdopa.data.model_view.ModelView`, which training with ``data.spacing_mm`` applies too),
preprocessed by the very transforms of training
(:func:`fdopa.data.transforms.build_preprocessing`), segmented by sliding windows with the
validation code (:func:`fdopa.models.inference.predict_volume`, Hann-weighted blending by
default), optionally averaged with its left-right mirror (test-time augmentation), and mapped
back to the native grid: the probabilities linearly and the labels decided there (the bundle's
``native_grid``), or the labels decided on the model grid and carried by nearest neighbour
(:meth:`Predictor.decide`). The indices are
computed on the native PET with the native label map.

QC flags a case for human review (:func:`fdopa.export.qc.review_reasons`) when the tumour masks
of the mirrored (TTA) and the plain pass disagree (1 − Dice above a bound), when the tumour
volume lies outside the training range recorded in the bundle, when a region (tumour,
contralateral striatum, reference) is empty, when the labels are not one plausible brain,
when the tumour's hottest voxel touches the striatum, when a tenth of the striatum lies outside
its two largest parts, or, when the network saw PET alone, when the tumour is no hotter than
healthy brain.
A scan with no head in it, a failed localisation and an SUV scale that cannot be FDOPA's
(:func:`fdopa.export.qc.tracer_scale_reason`) are flagged and get no indices at all.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchio as tio
from nibabel.affines import voxel_sizes

from fdopa.data.localise import HeadBox
from fdopa.data.model_view import ModelView
from fdopa.data.transforms import build_preprocessing
from fdopa.export.bundle import Bundle, read_bundle
from fdopa.export.inputs import ImageInput, ScanInput, SidecarInput, load_scan
from fdopa.export.metadata import tumour_ml_range
from fdopa.export.qc import (
    pet_alone_reason,
    review_reasons,
    striatum_contact_reason,
    striatum_stray_reason,
    tracer_scale_reason,
    unanalysable_indices,
)
from fdopa.kinetics import IndexResult, Preset, compute_indices
from fdopa.kinetics.validation import UnanalysableRegion
from fdopa.labels import TUMOUR
from fdopa.models.inference import predict_volume
from fdopa.models.postprocess import PostProcess, labels_from_probabilities, postprocess_labels

__all__ = ["DEFAULT_TTA_BOUND", "Engine", "Prediction", "Predictor", "tumour_dice"]

log = logging.getLogger(__name__)

Engine = Literal["eager", "torchscript"]
DEFAULT_TTA_BOUND = 0.2
"""Largest 1 − Dice between the mirrored and plain tumour masks before a case is flagged."""


def tumour_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


@dataclass(frozen=True, eq=False)
class Prediction:
    """The outcome of :meth:`Predictor.predict`, on the input's native grid.

    Attributes:
        labels: Label map (values 0–3; uint8, the input's spatial shape).
        affine: The input's affine.
        pet: The static PET in stored units (for pictures).
        indices: PET indices of the image with ``labels``.
        qc_flag: Whether a human should review the case.
        qc_reasons: Why (empty when ``qc_flag`` is false).
        tta_disagreement: 1 − Dice of the mirrored and plain tumour masks (None without TTA).
        probabilities: Softmax per class ``(C, X, Y, Z)`` float32, when requested.
        stem: Output name stem of the input.
        crop: The head box the network was run in (native voxels and method).
        bundle: The bundle directory that made it.
        channels: The input channels the network was given (a channel it was trained to do
            without and fed blank is not listed).
    """

    labels: np.ndarray
    affine: np.ndarray
    pet: np.ndarray
    indices: IndexResult
    qc_flag: bool
    qc_reasons: tuple[str, ...]
    tta_disagreement: float | None = None
    probabilities: np.ndarray | None = None
    stem: str = "prediction"
    crop: HeadBox | None = None
    bundle: str | None = None
    channels: tuple[str, ...] = ("pet",)

    def to_dict(self) -> dict[str, Any]:
        """The index fields and extras, then the QC verdict, the head box and the model.

        The model is the bundle and the channels its network was given.
        """
        return {
            **self.indices.to_dict(),
            "qc_flag": self.qc_flag,
            "qc_reasons": list(self.qc_reasons),
            "tta_disagreement": self.tta_disagreement,
            "crop": None if self.crop is None else self.crop.to_dict(),
            "bundle": self.bundle,
            "channels": list(self.channels),
        }

    def to_json(self) -> str:
        """JSON of :meth:`to_dict` followed by ``tacs`` (None without a dynamic scan)."""
        payload = self.to_dict()
        tacs = self.indices.tacs
        payload["tacs"] = None if tacs is None else tacs.to_dict()
        return json.dumps(payload, indent=2, allow_nan=False) + "\n"

    def to_row(self) -> dict[str, Any]:
        """A CSV row: the index row, the QC verdict and the model.

        ``qc_reasons`` are joined by ``; ``, the channels by ``+``.
        """
        return {
            **self.indices.to_row(),
            "qc_flag": self.qc_flag,
            "qc_reasons": "; ".join(self.qc_reasons),
            "tta_disagreement": self.tta_disagreement,
            "bundle": self.bundle,
            "channels": "+".join(self.channels),
        }


class Predictor:
    """Segment FDOPA PET scans with an exported bundle and compute their indices.

    Args:
        bundle: A verified bundle (:func:`~fdopa.export.bundle.read_bundle`).
        device: Torch device of the network.
        tta: Average the softmax with that of the left-right mirrored input (default: the
            bundle's ``inference.tta``).
        engine: ``eager`` (network rebuilt from ``model.pt``) or ``torchscript`` (``model.ts``,
            no fdopa network code needed).
        tta_bound: Largest tolerated 1 − Dice between the mirrored and plain tumour masks.
        postprocess: Label decision and clean-up (default: the bundle's
            ``inference.postprocess``; ``PostProcess()`` is the plain model-grid argmax).
        crop: Run the network only in the located head box (:mod:`fdopa.data.localise`);
            False runs it on the whole image.

    Examples:
        >>> predictor = Predictor.from_bundle("bundle/", tta=True)  # doctest: +SKIP
        >>> result = predictor.predict("sub-01_desc-static_pet.nii.gz")  # doctest: +SKIP
        >>> result.indices.tsr, result.qc_flag, result.qc_reasons  # doctest: +SKIP
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        device: str | torch.device = "cpu",
        tta: bool | None = None,
        engine: Engine = "eager",
        tta_bound: float = DEFAULT_TTA_BOUND,
        postprocess: PostProcess | None = None,
        crop: bool = True,
    ) -> None:
        if engine not in ("eager", "torchscript"):
            raise ValueError(f"engine: expected 'eager' or 'torchscript', got {engine!r}")
        self.bundle, self.config = bundle, bundle.config
        self.tta = bundle.config.tta if tta is None else bool(tta)
        self.tta_bound = float(tta_bound)
        self.postprocess = postprocess or PostProcess(**bundle.config.postprocess)
        self.device, self.engine, self.crop = device, engine, bool(crop)
        self.preprocess = build_preprocessing(
            self.config.channels, self.config.normalisation, suv_scale=self.config.suv_scale
        )

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        tta: bool | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Read and verify a bundle directory, then build a predictor (see the class)."""
        return cls(read_bundle(path), device=device, tta=tta, **kwargs)

    @functools.cached_property
    def net(self) -> torch.nn.Module:
        """The network, built on first use: inputs are checked before it is loaded."""
        if self.engine == "eager":
            return self.bundle.load_network(self.device)
        return self.bundle.load_torchscript(self.device)

    @property
    def input_spec(self) -> Mapping[str, Any]:
        """The bundle's input contract (metadata ``input``)."""
        return self.bundle.metadata["input"]

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """Sliding-window logits ``(classes, X, Y, Z)`` of a preprocessed model-grid volume."""
        config = self.config
        return predict_volume(
            self.net, image, config.patch_size, overlap=config.overlap,
            batch_size=config.batch_size, overlap_mode=config.overlap_mode,
        )  # fmt: skip

    @property
    def required_channels(self) -> tuple[str, ...]:
        """Input channels a scan must have: the bundle's, less those trained with dropout."""
        return tuple(c for c in self.config.channels if c not in self.config.optional_channels)

    def view(self, scan: ScanInput) -> ModelView:
        """The scan's head box (when :attr:`crop`) and model grid."""
        return ModelView.of(scan.pet, scan.affine, self.config.spacing_mm, crop=self.crop)

    def require(self, given: Collection[str]) -> None:
        """Refuse a scan that comes without a channel the bundle cannot do without.

        Args:
            given: The channels the scan comes with.

        Raises:
            ValueError: Naming the missing channel (one of :attr:`required_channels`).
        """
        missing = "/".join(c for c in self.required_channels if c not in given)
        if missing:
            raise ValueError(
                f"{missing}: the bundle was trained with a {missing.upper()} channel (without "
                f"{missing.upper()} dropout); give one, or a PET-only bundle beside this one "
                "(--bundle twice; python train.py +experiment=pretrain_pet, then "
                "+experiment=finetune_pet)"
            )

    def given_channels(self, scan: ScanInput) -> tuple[str, ...]:
        """The bundle's channels that ``scan`` comes with, in the bundle's order."""
        return tuple(c for c in self.config.channels if getattr(scan, c) is not None)

    def model_input(
        self, scan: ScanInput, view: ModelView | None = None
    ) -> tuple[torch.Tensor, ModelView]:
        """Preprocessed channels on the model grid, and the :class:`ModelView` they came by.

        An optional channel (see :attr:`required_channels`) that the scan lacks is fed as
        zeros, its value after preprocessing, as it was blanked in training.
        """
        view = view or self.view(scan)
        given = self.given_channels(scan)
        images = {}
        for channel in given:
            volume = view.to_model(getattr(scan, channel).astype(np.float32), 1)
            images[channel] = tio.ScalarImage(
                tensor=torch.from_numpy(volume[None]), affine=view.affine
            )
        subject = self.preprocess(tio.Subject(**images))
        blank = torch.zeros((1, *view.shape), dtype=torch.float32)
        image = torch.cat(
            [subject[c].data.float() if c in given else blank for c in self.config.channels]
        )
        return image, view

    def predict(
        self,
        pet: ImageInput,
        affine: np.ndarray | None = None,
        *,
        dynamic: ImageInput | None = None,
        sidecar: SidecarInput | None = None,
        flair: ImageInput | None = None,
        pet_sidecar: SidecarInput | None = None,
        preset: Preset | str = "guideline",
        probabilities: bool = False,
        participant_id: str | None = None,
    ) -> Prediction:
        """Segment one scan, compute its indices and judge it.

        Args:
            pet: 3-D static PET: NIfTI path, or array with ``affine``.
            affine: Voxel-to-world affine of array inputs.
            dynamic: Optional 4-D PET on the same grid (path or array) for the TAC indices.
            sidecar: Sidecar of ``dynamic`` (path or mapping; default beside the file).
            flair: FLAIR channel; required when the bundle was trained with one and without
                FLAIR dropout, used when given otherwise (fed as blank when left out).
            pet_sidecar: Sidecar of ``pet`` (default: ``<pet>.json`` beside the file).
            preset: Index preset (``guideline`` or ``genoa2024``, or a :class:`Preset`).
            probabilities: Also return the softmax maps on the native grid.
            participant_id: Default: the ``sub-XXX`` prefix of the input's name.

        Returns:
            The :class:`Prediction`.

        Raises:
            fdopa.kinetics.InputError: For input that contradicts the bundle or is malformed.
            FileNotFoundError: If an input file is missing.
            ValueError: If the bundle needs a FLAIR channel and none is given.
        """
        self.require({"pet"} if flair is None else {"pet", "flair"})
        if "flair" in self.config.channels and flair is None:
            log.warning("no FLAIR given: the PET + FLAIR model runs on PET alone (trained for "
                        "it with FLAIR dropout, but less accurate than with FLAIR or than a "
                        "PET-only bundle given beside it)")  # fmt: skip
        scan = load_scan(
            pet, self.input_spec, affine, dynamic=dynamic, sidecar=sidecar, flair=flair,
            pet_sidecar=pet_sidecar, stem=participant_id if isinstance(pet, np.ndarray) else None,
        )  # fmt: skip
        pid = participant_id or scan.stem.split("_")[0]
        native = scan.pet.shape
        view = self.view(scan)
        box = view.box
        if box.failure is not None:
            return self._unanalysable(scan, np.zeros(native, np.uint8), box, pid, preset, [])
        image, _ = self.model_input(scan, view)
        probs = torch.softmax(self.logits(image), dim=0)
        disagreement = None
        if self.tta:
            mirrored = torch.softmax(self.logits(image.flip(1)).flip(1), dim=0)
            plain_tumour = (probs.argmax(0) == TUMOUR).numpy()
            tta_tumour = (mirrored.argmax(0) == TUMOUR).numpy()
            disagreement = 1.0 - tumour_dice(plain_tumour, tta_tumour)
            probs = (probs + mirrored) / 2
        labels, maps = self.decide(probs.numpy(), view, probabilities)
        if self.input_spec.get("units"):  # absolute SUV: its scale can be checked
            head = np.zeros(native, bool)
            head[box.slices] = True
            scale = tracer_scale_reason(scan.pet, labels, head)
            if scale is not None:
                return self._unanalysable(scan, labels, box, pid, preset, [scale], maps)
        try:
            indices = compute_indices(
                scan.pet, labels, scan.affine, preset, dynamic=scan.dynamic,
                frame_start_s=scan.frame_start_s, frame_duration_s=scan.frame_duration_s,
                participant_id=pid, source=scan.source,
            )  # fmt: skip
        except UnanalysableRegion as err:  # the scan has uptake (load_scan): the mask erred
            reason = f"region_without_uptake {err.region}: mean uptake {err.mean:.3g}"
            return self._unanalysable(scan, labels, box, pid, preset, [reason], maps)
        zooms = tuple(float(z) for z in voxel_sizes(scan.affine))
        labelled_ml = float((labels > 0).sum() * np.prod(zooms)) / 1000.0
        pet_alone = "flair" not in self.given_channels(scan)
        findings = (
            striatum_contact_reason(scan.pet, labels),
            striatum_stray_reason(labels),
            pet_alone_reason(scan.pet, labels, zooms) if pet_alone else None,
        )
        reasons = review_reasons(
            indices, disagreement, tta_bound=self.tta_bound,
            tumour_ml_range=tumour_ml_range(self.bundle.metadata), labelled_ml=labelled_ml,
            findings=findings,
        )  # fmt: skip
        log.info("%s: tumour %s mL, qc %s", pid, indices.tumour_ml, "; ".join(reasons) or "ok")
        return Prediction(
            labels=labels, affine=scan.affine, pet=scan.pet, indices=indices,
            qc_flag=bool(reasons), qc_reasons=tuple(reasons), tta_disagreement=disagreement,
            probabilities=maps, stem=scan.stem, crop=box, bundle=str(self.bundle.path),
            channels=self.given_channels(scan),
        )  # fmt: skip

    def decide(
        self, probs: np.ndarray, view: ModelView, probabilities: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The native label map of model-grid probabilities, and the native maps if asked.

        Where :attr:`postprocess` decides on the native grid, the probabilities are resampled
        linearly and the labels decided there; otherwise the model-grid labels are carried
        over by nearest neighbour. Outside the head box everything is background.
        """
        rules = self.postprocess
        if rules.native_grid:
            box_probs = view.to_box(probs, 1)
            labels = labels_from_probabilities(box_probs, rules.tumour_threshold)
            spacing = voxel_sizes(view.native_affine)
        else:
            labels = labels_from_probabilities(probs, rules.tumour_threshold)
            spacing = self.config.spacing_mm
        if rules.active:
            labels = postprocess_labels(labels, float(np.prod(spacing)) / 1000.0, rules)
        labels = view.paste(labels) if rules.native_grid else view.to_native(labels, 0)
        if not probabilities:
            return labels, None
        maps = box_probs if rules.native_grid else view.to_box(probs, 1)
        return labels, view.paste(maps, outside=1.0)

    def _unanalysable(
        self,
        scan: ScanInput,
        labels: np.ndarray,
        box: HeadBox,
        pid: str,
        preset: Preset | str,
        reasons: list[str],
        maps: np.ndarray | None = None,
    ) -> Prediction:
        """A flagged prediction without indices.

        The head was not found, the tracer scale is wrong, or the automatic tumour or reference
        region lies where the scan has no uptake.
        """
        reasons = [box.failure] if box.failure is not None else reasons
        log.warning("%s: not analysable (%s); no indices reported", scan.source, reasons[0])
        name = preset if isinstance(preset, str) else preset.name
        return Prediction(
            labels=labels, affine=scan.affine, pet=scan.pet, qc_flag=True,
            indices=unanalysable_indices(pid, name, reasons[0].split()[0]),
            qc_reasons=tuple(reasons), probabilities=maps, stem=scan.stem, crop=box,
            bundle=str(self.bundle.path), channels=self.given_channels(scan),
        )  # fmt: skip
