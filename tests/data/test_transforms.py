"""Preprocessing (orientation, normalisation), the PET augmentations and the augment configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchio as tio
from helpers import compose_train
from hydra.utils import instantiate
from scipy import stats

from fdopa.data.transforms import (
    IntensityScale,
    RandomChannelDropout,
    RandomIntensityScale,
    RandomRegionalUptake,
    build_preprocessing,
    pet_normalisation,
)

AFFINE = np.diag([20.0, 20.0, 20.0, 1.0])  # a 240 x 200 x 160 mm head-sized field of view


def subject(pet: torch.Tensor | None = None, **extra: tio.Image) -> tio.Subject:
    """A subject with a random PET, a FLAIR and a 0–3 label map on a 12×10×8 grid."""
    generator = torch.Generator().manual_seed(0)
    shape = (1, 12, 10, 8)
    pet = torch.rand(shape, generator=generator) * 4 if pet is None else pet
    flair = torch.rand(shape, generator=generator) * 100
    label = torch.randint(0, 4, shape, generator=generator, dtype=torch.uint8)
    return tio.Subject(
        pet=tio.ScalarImage(tensor=pet, affine=AFFINE),
        flair=tio.ScalarImage(tensor=flair, affine=AFFINE),
        label=tio.LabelMap(tensor=label, affine=AFFINE),
        **extra,
    )


def factor_of(transformed: tio.Subject) -> float:
    (applied,) = transformed.get_applied_transforms()
    assert isinstance(applied, IntensityScale)
    return applied.factor


def test_random_intensity_scale_exact_and_reproducible():
    original = subject()
    transform = RandomIntensityScale((0.8, 1.25), include=["pet"])
    torch.manual_seed(11)
    first = transform(original)
    torch.manual_seed(11)
    again = transform(original)
    factor = factor_of(first)

    assert 0.8 <= factor <= 1.25 and factor == factor_of(again)
    assert torch.equal(first["pet"].data, again["pet"].data)
    assert torch.equal(first["pet"].data, original["pet"].data * factor)
    assert torch.equal(first["flair"].data, original["flair"].data)  # not included
    assert torch.equal(first["label"].data, original["label"].data)  # label maps never
    torch.manual_seed(12)
    assert factor_of(transform(original)) != factor


def test_random_intensity_scale_without_include_spares_labels():
    original = subject()
    torch.manual_seed(0)
    out = RandomIntensityScale(2.0)(original)
    factor = factor_of(out)
    assert 0.5 <= factor <= 2.0
    assert torch.equal(out["flair"].data, original["flair"].data * factor)
    assert torch.equal(out["label"].data, original["label"].data)


def test_random_intensity_scale_is_log_uniform():
    transform = RandomIntensityScale((0.5, 2.0))
    torch.manual_seed(0)
    logs = np.log([transform.get_params() for _ in range(2000)])
    # log-factor uniform on [log 0.5, log 2]: Kolmogorov–Smirnov against the exact law
    result = stats.kstest(logs, stats.uniform(math.log(0.5), math.log(4.0)).cdf)
    assert result.pvalue > 0.01
    assert abs(np.median(logs)) < 0.05  # scales up and down equally often


def test_random_intensity_scale_probability_zero_is_identity():
    original = subject()
    out = RandomIntensityScale((0.5, 2.0), p=0.0)(original)
    assert torch.equal(out["pet"].data, original["pet"].data)


def test_channel_dropout_blanks_only_the_named_channel_at_its_rate():
    transform = RandomChannelDropout({"flair": 0.3})
    original = subject()
    torch.manual_seed(0)
    blanked = 0
    for _ in range(400):
        out = transform(original)
        assert torch.equal(out["pet"].data, original["pet"].data)
        assert torch.equal(out["label"].data, original["label"].data)
        flair = out["flair"].data
        assert torch.equal(flair, original["flair"].data) or not flair.any()
        blanked += not flair.any()
    # binomial(400, 0.3): two-sided p of the observed count
    assert stats.binomtest(blanked, 400, 0.3).pvalue > 0.01
    assert RandomChannelDropout({"flair": 1.0})(original)["flair"].data.abs().sum() == 0


def test_channel_dropout_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="channel_dropout"):
        RandomChannelDropout({"flair": 1.5})


@pytest.mark.parametrize("scale_range", [(0.0, 1.0), (1.5, 1.2), -2.0])
def test_random_intensity_scale_rejects_bad_range(scale_range):
    with pytest.raises(ValueError, match="scale_range"):
        RandomIntensityScale(scale_range)


def half_space_subject(noise: float = 0.0) -> tio.Subject:
    """Brain (1, SUV 1) with a striatum (2, SUV 3) filling x >= 20 of a 40×6×6 grid, 2 mm."""
    label = torch.ones(1, 40, 6, 6, dtype=torch.uint8)
    label[0, 20:] = 2
    pet = 1.0 + 2.0 * (label == 2).float()
    pet = pet + noise * torch.randn(pet.shape, generator=torch.Generator().manual_seed(3))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    return tio.Subject(
        pet=tio.ScalarImage(tensor=pet, affine=affine),
        label=tio.LabelMap(tensor=label, affine=affine),
    )


def test_regional_uptake_spreads_the_scaled_excess_like_a_blurred_edge():
    original = half_space_subject()
    fwhm, factor = 8.0, 1.5
    out = RandomRegionalUptake({2: (factor, factor)}, fwhm_mm=fwhm, include=["pet"])(original)
    change = (out["pet"].data - original["pet"].data)[0, :, 3, 3].numpy()
    # Analytic truth: excess 2 × (f − 1) times the Gaussian CDF of the distance to the edge
    # (at x = 19.5 voxels), in voxels of 2 mm; far from the grid's ends, within the sampled
    # kernel's departure from the continuous one.
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) / 2.0
    x = np.arange(40)
    expected = 2.0 * (factor - 1.0) * stats.norm.cdf((x - 19.5) / sigma)
    np.testing.assert_allclose(change[5:33], expected[5:33], atol=5e-3)
    assert torch.equal(out["label"].data, original["label"].data)


def test_regional_uptake_leaves_the_noise_and_other_regions_alone():
    noisy = half_space_subject(noise=0.1)
    torch.manual_seed(0)
    out = RandomRegionalUptake({2: (0.5, 2.0), 3: (0.5, 2.0)}, fwhm_mm=0.0, include=["pet"])(noisy)
    change = (out["pet"].data - noisy["pet"].data)[0]
    # Without blur the brain is untouched and the striatum shifted by one constant (its
    # excess × (f − 1)): the voxel-to-voxel noise survives unscaled.
    assert change[:20].abs().max() == 0
    inside = change[20:]
    assert float(inside.max() - inside.min()) < 1e-5 and abs(float(inside.mean())) > 0.01
    # A label absent from the map (3, no tumour) changes nothing.
    assert RandomRegionalUptake({3: (2.0, 2.0)}, include=["pet"])(noisy)["pet"].data.equal(
        noisy["pet"].data
    )


@pytest.mark.parametrize(("factors", "fwhm"), [({2: (0.0, 1.0)}, 6.0), ({2: (2, 1)}, 6.0),
                                               ({2: (1, 2)}, -1.0)])  # fmt: skip
def test_regional_uptake_rejects_bad_settings(factors, fwhm):
    with pytest.raises(ValueError, match=r"factors|fwhm_mm"):
        RandomRegionalUptake(factors, fwhm_mm=fwhm)


@pytest.mark.parametrize(
    ("suv", "scale", "expected"), [(6.0, 3.0, 2.0), (6.0, 2.0, 3.0), (1.5, 3.0, 0.5)]
)
def test_suv_normalisation_divides_by_scale(suv, scale, expected):
    out = build_preprocessing(("pet",), "suv", suv_scale=scale)(
        subject(torch.full((1, 12, 10, 8), suv))
    )
    assert torch.allclose(out["pet"].data, torch.full((1, 12, 10, 8), expected))


def test_zscore_normalisation_over_foreground():
    pet = torch.zeros(1, 12, 10, 8)
    values = torch.arange(1.0, 1.0 + 12 * 10 * 4).reshape(1, 12, 10, 4)
    pet[..., 4:] = values  # background 0 in z < 4, foreground 1..480 above
    out = build_preprocessing(("pet",), "zscore")(subject(pet))["pet"].data
    # foreground = voxels above the image mean (480 · 481 / 2 / 960 = 120.25): 121..480;
    # statistics with the sample SD (ddof 1), as TorchIO's ZNormalization
    fg = np.arange(121.0, 481.0)
    mean, sd = fg.mean(), fg.std(ddof=1)
    mask = pet > pet.mean()
    assert int(mask.sum()) == fg.size
    expected = (pet.numpy() - mean) / sd
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-5


def test_brain_ratio_normalisation_over_foreground():
    pet = torch.zeros(1, 12, 10, 8)
    pet[..., 4:] = torch.arange(1.0, 1.0 + 12 * 10 * 4).reshape(1, 12, 10, 4)
    out = build_preprocessing(("pet",), "brain_ratio")(subject(pet))["pet"].data
    # foreground 121..480 as in the z-score test: its median is (300 + 301) / 2
    median = 300.5
    np.testing.assert_allclose(out.numpy(), (pet.numpy() / median - 1) * 3, rtol=1e-6, atol=1e-6)


def test_a_hot_tumour_moves_the_brain_ratio_less_than_the_zscore():
    # a brain of uptake 1 ± 0.3 in air, a striatum at 2, then a tumour at 5 over 4 % of it
    rng = np.random.default_rng(0)
    head = np.zeros((1, 30, 30, 30))
    head[0, 5:25, 5:25, 5:25] = 1 + 0.3 * rng.standard_normal((20, 20, 20)).clip(-3, 3)
    striatum = (0, slice(5, 11), slice(5, 11), 5)
    head[striatum] = 2.0
    hot = head.copy()
    hot[0, 15:25, 15:25, 5:8] = 5.0

    def striatum_value(image: np.ndarray, name: str) -> float:
        out = build_preprocessing(("pet",), name)(subject(torch.tensor(image).float()))
        return float(out["pet"].data[striatum].mean())

    contrast = {
        name: striatum_value(hot, name) / striatum_value(head, name)
        for name in ("zscore", "brain_ratio")
    }
    # the tumour raises the mean and widens the SD: the striatum's z falls to a third; the
    # median moves by about half the tumour's share over the density at it (0.019 / 1.33),
    # 1.4 %, which (2 / m - 1) turns into 3 %
    assert contrast["zscore"] < 0.5
    assert abs(contrast["brain_ratio"] - 1) < 0.05


def test_brain_ratio_refuses_an_image_without_uptake():
    with pytest.raises(RuntimeError, match="brain_ratio: no uptake"):
        build_preprocessing(("pet",), "brain_ratio")(subject(-torch.ones(1, 12, 10, 8)))


def test_none_normalisation_and_flair_zscore():
    original = subject()
    out = build_preprocessing(("pet", "flair"), "none")(original)
    assert torch.equal(out["pet"].data, original["pet"].data)
    flair = out["flair"].data
    mask = original["flair"].data > original["flair"].data.mean()
    assert abs(float(flair[mask].mean())) < 1e-5 and abs(float(flair[mask].std()) - 1) < 1e-5
    assert torch.equal(out["label"].data, original["label"].data)


def test_other_images_keep_their_intensities():
    raw = tio.ScalarImage(tensor=torch.full((1, 12, 10, 8), 6.0), affine=AFFINE)
    out = build_preprocessing(("pet",), "suv")(subject(torch.full((1, 12, 10, 8), 6.0), raw=raw))
    assert torch.equal(out["raw"].data, raw.data) and float(out["pet"].data.max()) == 2.0


def test_preprocessing_reorients_to_canonical():
    pet = torch.rand(1, 12, 10, 8)
    las = AFFINE.copy()
    las[0, 0] = -20.0
    label = (pet > 0.5).to(torch.uint8)
    image = tio.Subject(
        pet=tio.ScalarImage(tensor=pet, affine=las), label=tio.LabelMap(tensor=label, affine=las)
    )
    out = build_preprocessing(("pet",), "none")(image)
    assert out["pet"].orientation == out["label"].orientation == ("R", "A", "S")
    assert torch.equal(out["pet"].data, pet.flip(1))
    assert torch.equal(out["label"].data, label.flip(1))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pet_normalisation("minmax"), "normalisation"),
        (lambda: pet_normalisation("suv", suv_scale=0.0), "suv_scale"),
        (lambda: build_preprocessing(("pet", "pet")), "channels"),
        (lambda: build_preprocessing(()), "channels"),
    ],
)
def test_invalid_preprocessing(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("name", ["none", "default", "strong", "uptake"])
def test_augment_configs_instantiate_to_transforms(name):
    transform = instantiate(compose_train([f"augment={name}"]).augment)
    assert isinstance(transform, tio.Transform)
    original = subject()
    torch.manual_seed(0)
    out = transform(original)
    assert out["pet"].shape == original["pet"].shape
    assert set(out["label"].data.unique().tolist()) <= {0, 1, 2, 3}  # nearest-neighbour labels
    if name == "none":
        assert torch.equal(out["pet"].data, original["pet"].data)
    else:
        names = {type(t).__name__ for t in transform.transforms}
        assert {
            "RandomAffine",
            "RandomElasticDeformation",
            "RandomFlip",
            "RandomGamma",
            "RandomNoise",
            "RandomBlur",
            "RandomBiasField",
            "RandomIntensityScale",
        } <= names
        flips = [t for t in transform.transforms if isinstance(t, tio.RandomFlip)]
        assert flips[0].axes == ("LR",)
        last = transform.transforms[-1]
        assert isinstance(last, RandomRegionalUptake) == (name == "uptake")


def test_strong_augmentation_is_default_with_stronger_settings():
    default, strong = (compose_train([f"augment={n}"]).augment for n in ("default", "strong"))
    # The same steps in the same order, from default.yaml's one list ...
    assert list(strong.transforms) == list(default.transforms)
    assert len(default.transforms) == 8
    # ... each at a probability at least as high, and the affine, elastic and noise ranges wider.
    for name, step in default.transforms.items():
        assert strong.transforms[name]._target_ == step._target_, name
        assert strong.transforms[name].get("p", 1) >= step.get("p", 1), name
    assert strong.transforms.affine.degrees > default.transforms.affine.degrees
    assert strong.transforms.elastic.max_displacement > default.transforms.elastic.max_displacement
    assert strong.transforms.noise.std[1] > default.transforms.noise.std[1]
    # Named steps can be tuned or dropped from the command line.
    tuned = compose_train(["augment.transforms.noise.p=0.9", "~augment.transforms.elastic"])
    composed = instantiate(tuned.augment)
    assert [type(t).__name__ for t in composed.transforms][:2] == ["RandomAffine", "RandomFlip"]
    assert composed.transforms[-1].probability == 0.9
