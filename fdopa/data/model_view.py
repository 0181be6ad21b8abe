"""What the network sees of a scan: the located head, on the model grid.

Training (with ``data.spacing_mm``) and prediction map a scan to the network the same way:
the head is located on the native grid (:func:`fdopa.data.localise.locate_head`), the scan is
cut to that box, and the box is mapped to the *model grid* (:func:`fdopa.data.resample.model_grid`:
RAS+, the training voxel size; images smoothed where the model grid is coarser, then
interpolated linearly; labels by nearest neighbour).
A prediction on the model grid goes back to the native grid by the inverse mapping, background
outside the box. :class:`ModelView` holds one scan's mapping; :class:`ToModelGrid` applies it to
every image of a TorchIO subject, so a cohort of scanner images of any field of view, voxel size
and orientation trains on what the predictor will feed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchio as tio

from fdopa.data.localise import HeadBox, full_box, locate_head
from fdopa.data.resample import map_to_grid, model_grid

__all__ = ["ModelView", "ToModelGrid"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ModelView:
    """One scan's mapping between its native grid and the model grid.

    Attributes:
        box: The head box on the native grid (``full`` when not cropped).
        native_affine: Voxel-to-world affine of the native grid.
        affine: Voxel-to-world affine of the model grid.
        shape: Spatial shape of the model grid.
    """

    box: HeadBox
    native_affine: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def of(
        cls,
        pet: np.ndarray,
        affine: np.ndarray,
        spacing_mm: Sequence[float],
        *,
        crop: bool = True,
    ) -> ModelView:
        """Locate the head of a static PET (``crop``) and the model grid over that box.

        A failed localisation is kept in ``box.failure``; the grid then covers the box
        :func:`~fdopa.data.localise.locate_head` returned (the data extent).
        """
        box = locate_head(pet, affine) if crop else full_box(pet.shape)
        grid, shape = model_grid(box.affine(affine), box.size, spacing_mm)
        return cls(box, np.asarray(affine, float), grid, shape)

    @property
    def box_affine(self) -> np.ndarray:
        """Voxel-to-world affine of the cropped native grid."""
        return self.box.affine(self.native_affine)

    def to_model(self, volume: np.ndarray, order: int) -> np.ndarray:
        """A native ``(X, Y, Z)`` or ``(C, X, Y, Z)`` array cut to the box, on the model grid.

        Images (``order`` 1) are anti-aliased where the model grid is coarser
        (:func:`~fdopa.data.resample.map_to_grid`).
        """
        cut = volume[(..., *self.box.slices)]
        return map_to_grid(cut, self.box_affine, self.affine, self.shape, order, antialias=True)

    def to_native(self, volume: np.ndarray, order: int, outside: float = 0.0) -> np.ndarray:
        """A model-grid array on the native grid; ``outside`` beyond the box (see :meth:`paste`)."""
        return self.paste(self.to_box(volume, order), outside)

    def to_box(self, volume: np.ndarray, order: int) -> np.ndarray:
        """A model-grid ``(X, Y, Z)`` or ``(C, X, Y, Z)`` array on the native grid of the box."""
        return map_to_grid(volume, self.affine, self.box_affine, self.box.size, order)

    def paste(self, volume: np.ndarray, outside: float = 0.0) -> np.ndarray:
        """A box-grid array in the whole native grid; ``outside`` beyond the box.

        For a ``(C, X, Y, Z)`` stack, ``outside`` fills channel 0 and zeros the others (the
        softmax of background).
        """
        lead = volume.shape[:-3]
        native = np.zeros((*lead, *self.box.shape), volume.dtype)
        if lead:
            native[0] = outside
        else:
            native[...] = outside
        native[(..., *self.box.slices)] = volume
        return native


_Mapped = dict[str, tuple[torch.Tensor, np.ndarray]]
"""Model-grid data and affine of each image of a subject, by image name."""


class ToModelGrid(tio.Transform):
    """Map every image of a subject to its :class:`ModelView` (head box, model grid).

    The view is computed from the image named ``reference`` (the static PET); intensity images
    are interpolated linearly, label maps by nearest neighbour. A subject whose head is not
    found keeps the whole data extent (logged). Applied before the intensity normalisation, it
    makes training volumes what :class:`~fdopa.export.Predictor` feeds the network.

    Args:
        spacing_mm: Voxel size (mm) of the model grid along the RAS axes.
        reference: Name of the image the head is located on.
        **kwargs: See :class:`torchio.transforms.Transform`.
    """

    def __init__(self, spacing_mm: Sequence[float], reference: str = "pet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.spacing_mm = tuple(float(v) for v in spacing_mm)
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"data.spacing_mm: expected 3 sizes > 0, got {list(spacing_mm)}")
        self.reference = reference
        self.args_names = ["spacing_mm", "reference"]
        self._cache: dict[tuple[tuple[str, str], ...], _Mapped] = {}

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        """Replace every image's data and affine by its model-grid version.

        The mapping is deterministic, so the model-grid volumes of a subject read from files
        are kept (a few MB at 4 mm) and handed out again in later epochs: the scan is neither
        read nor resampled twice. Images held in memory are mapped every time.
        """
        images = subject.get_images_dict(intensity_only=False)
        key = tuple(sorted((name, str(image.path)) for name, image in images.items()))
        from_files = all(image.path is not None for image in images.values())
        mapped = self._cache.get(key) if from_files else None
        if mapped is None:
            mapped = self._map(images)
            if from_files:
                self._cache[key] = mapped
        for name, (data, affine) in mapped.items():
            images[name].set_data(data.clone())
            images[name].affine = affine.copy()
        return subject

    def _map(self, images: dict[str, tio.Image]) -> _Mapped:
        image = images[self.reference]
        view = ModelView.of(image.data[0].numpy(), image.affine, self.spacing_mm)
        if view.box.failure is not None:
            log.warning("%s: %s; the network sees its whole data extent",
                        image.path, view.box.failure)  # fmt: skip
        return {
            name: (
                torch.from_numpy(
                    view.to_model(item.data.numpy(), 0 if isinstance(item, tio.LabelMap) else 1)
                ),
                view.affine,
            )
            for name, item in images.items()
        }
