"""Several bundles side by side: each scan goes to the bundle made for what it comes with.

A centre that images some children with MRI and some without can keep two models: a PET +
FLAIR bundle and a PET-only one, which reads PET alone better than a FLAIR-dropout model fed a
blank FLAIR does. :class:`BundleChoice` holds both and, for each scan, picks the bundle that

1. can run on the channels given (every channel it requires is there),
2. reads the most of them, and then
3. leaves the fewest of its own channels blank;

a tie goes to the bundle given first. Two bundles with the same channels, the same of them
optional, are refused: which one a scan got would be arbitrary. One bundle alone is the plain
:class:`~fdopa.export.predictor.Predictor`.

Examples:
    >>> choice = BundleChoice.from_bundles(["pet_flair/", "pet_only/"])  # doctest: +SKIP
    >>> prediction = choice.predict("sub-01_pet.nii.gz")  # doctest: +SKIP
    >>> prediction.bundle, prediction.channels  # no FLAIR given  # doctest: +SKIP
    ('pet_only', ('pet',))
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from fdopa.export.inputs import ImageInput
from fdopa.export.predictor import Prediction, Predictor

__all__ = ["BundleChoice"]

log = logging.getLogger(__name__)


class BundleChoice:
    """Predict each scan with the bundle that fits its channels best (module docstring).

    Args:
        predictors: One predictor per bundle, in order of preference for ties.

    Raises:
        ValueError: If no predictor is given, or two read the same channels with the same of
            them optional.
    """

    def __init__(self, predictors: Sequence[Predictor]) -> None:
        if not predictors:
            raise ValueError("bundle: give at least one")
        seen: dict[tuple[tuple[str, ...], tuple[str, ...]], Predictor] = {}
        for predictor in predictors:
            key = (predictor.config.channels, predictor.required_channels)
            if key in seen:
                raise ValueError(
                    f"{predictor.bundle.path}: reads the same channels "
                    f"({'+'.join(key[0])}) as {seen[key].bundle.path}; give one of them"
                )
            seen[key] = predictor
        self.predictors = tuple(predictors)

    @classmethod
    def from_bundles(cls, paths: Sequence[str | Path], **kwargs: Any) -> BundleChoice:
        """Read and verify every bundle directory (``kwargs`` as for :class:`Predictor`)."""
        return cls([Predictor.from_bundle(path, **kwargs) for path in paths])

    @property
    def required_channels(self) -> tuple[str, ...]:
        """Channels every scan needs: those that every bundle requires."""
        first, *others = (p.required_channels for p in self.predictors)
        return tuple(c for c in first if all(c in other for other in others))

    def choose(self, given: Collection[str]) -> Predictor:
        """The bundle for a scan that comes with the channels ``given``.

        Raises:
            ValueError: Naming the channel every bundle needs and the scan lacks.
        """
        given = set(given)
        usable = [p for p in self.predictors if set(p.required_channels) <= given]
        if not usable:  # one bundle that needs a FLAIR (two such are refused): its refusal
            self.predictors[0].require(given)
        # max() keeps the first of equals: ties go to the bundle given first
        return max(usable, key=lambda p: (len(given & set(p.config.channels)),
                                          -len(set(p.config.channels) - given)))  # fmt: skip

    def predict(
        self, pet: ImageInput, affine: Any = None, *, flair: ImageInput | None = None,
        **kwargs: Any,
    ) -> Prediction:  # fmt: skip
        """Predict with the bundle chosen for the channels given.

        Takes the arguments of :meth:`Predictor.predict`; a FLAIR that the chosen bundle does
        not read is left unread.
        """
        predictor = self.choose({"pet"} if flair is None else {"pet", "flair"})
        if flair is not None and "flair" not in predictor.config.channels:
            log.info("%s reads PET alone: the FLAIR given is not used", predictor.bundle.path)
            flair = None
        return predictor.predict(pet, affine, flair=flair, **kwargs)
