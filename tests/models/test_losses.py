"""The configured losses against hand computations on tiny examples."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fdopa.models.losses import MixedDiceCELoss

LOSS_DIR = Path(__file__).parents[2] / "conf" / "loss"
SMOOTH = 1e-5
REL = 1e-6  # MONAI computes the focal term in float32


def configured(name: str, **overrides):
    cfg = OmegaConf.merge(OmegaConf.load(LOSS_DIR / f"{name}.yaml"), overrides)
    return instantiate(cfg)


def known_example(seed: int = 0):
    """Probabilities p (B, C, N) with every class present, their logits and labels."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(4), size=(2, 27)).transpose(0, 2, 1)  # (B=2, C=4, N=27)
    labels = rng.integers(0, 4, size=(2, 1, 27))
    labels[0, 0, :4] = [0, 1, 2, 3]
    logits = torch.tensor(np.log(p), dtype=torch.float64).reshape(2, 4, 3, 3, 3)
    target = torch.tensor(labels, dtype=torch.int64).reshape(2, 1, 3, 3, 3)
    onehot = np.eye(4)[labels[:, 0]].transpose(0, 2, 1)  # (B, C, N)
    return p, onehot, logits, target


def soft_dice_loss(p, y):
    """1 - mean over foreground classes of the batch-pooled soft Dice."""
    inter = (p * y).sum(axis=(0, 2))[1:]
    denominator = (p + y).sum(axis=(0, 2))[1:]
    return 1 - np.mean((2 * inter + SMOOTH) / (denominator + SMOOTH))


def mixed_dice_loss(p, y, per_sample):
    """1 - mean over foreground classes: per-sample Dice (averaged) for ``per_sample``, else
    batch-pooled."""
    dices = []
    for c in range(1, p.shape[1]):
        if c in per_sample:
            inter, denominator = (p[:, c] * y[:, c]).sum(1), (p[:, c] + y[:, c]).sum(1)
            dices.append(np.mean((2 * inter + SMOOTH) / (denominator + SMOOTH)))
        else:
            inter, denominator = (p[:, c] * y[:, c]).sum(), (p[:, c] + y[:, c]).sum()
            dices.append((2 * inter + SMOOTH) / (denominator + SMOOTH))
    return 1 - np.mean(dices)


def tversky_loss(p, y, alpha, beta):
    tp = (p * y).sum(axis=(0, 2))[1:]
    fp = (p * (1 - y)).sum(axis=(0, 2))[1:]
    fn = ((1 - p) * y).sum(axis=(0, 2))[1:]
    return 1 - np.mean((tp + SMOOTH) / (tp + alpha * fp + beta * fn + SMOOTH))


def cross_entropy(p, y):
    return -(y * np.log(p)).sum(axis=1).mean()


def softmax_focal(p, y, gamma=2.0):
    return (-((1 - p) ** gamma) * np.log(p) * y).mean()  # mean over B, C and voxels


@pytest.mark.parametrize("name", ["dice_ce", "dice_ce_mixed", "dice_focal", "tversky"])
def test_perfect_prediction_gives_zero_loss(name):
    _, _, _, target = known_example()
    onehot = torch.nn.functional.one_hot(target[:, 0], 4).permute(0, 4, 1, 2, 3)
    logits = 30.0 * onehot.double() - 15.0
    assert float(configured(name)(logits, target)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "hand"),
    [
        ("dice_ce", lambda p, y: soft_dice_loss(p, y) + cross_entropy(p, y)),
        ("dice_ce_mixed", lambda p, y: mixed_dice_loss(p, y, {3}) + cross_entropy(p, y)),
        ("dice_focal", lambda p, y: soft_dice_loss(p, y) + softmax_focal(p, y)),
        ("tversky", lambda p, y: tversky_loss(p, y, alpha=0.3, beta=0.7)),
    ],
)
def test_known_probabilities_give_the_hand_computed_loss(name, hand):
    p, y, logits, target = known_example()
    assert float(configured(name)(logits, target)) == pytest.approx(hand(p, y), rel=REL)


def test_tversky_with_equal_weights_is_the_soft_dice_loss():
    p, y, logits, target = known_example(seed=3)
    tversky = configured("tversky", alpha=0.5, beta=0.5)(logits, target)
    dice_only = configured("dice_ce", lambda_ce=0.0)(logits, target)
    assert float(tversky) == pytest.approx(soft_dice_loss(p, y), rel=REL)
    assert float(tversky) == pytest.approx(float(dice_only), rel=REL)


def test_focal_term_with_gamma_zero_is_cross_entropy_over_class_count():
    p, y, logits, target = known_example(seed=5)
    loss = configured("dice_focal", gamma=0.0, lambda_dice=0.0)(logits, target)
    assert float(loss) == pytest.approx(cross_entropy(p, y) / 4, rel=REL)


@pytest.mark.parametrize(("per_sample", "batch"), [((), True), ((0, 1, 2, 3), False)])
def test_mixed_dice_ce_at_its_ends_is_monais_dice_ce(per_sample, batch):
    _, _, logits, target = known_example(seed=7)
    target[1][target[1] == 3] = 1  # one patch without tumour: the two poolings differ
    monai = configured("dice_ce", batch=batch)(logits, target)
    mixed = configured("dice_ce_mixed", per_sample=list(per_sample))(logits, target)
    assert float(mixed) == pytest.approx(float(monai), rel=REL)


def test_mixed_dice_ce_weighs_a_small_tumour_as_a_large_one():
    """Half the tumour missed in a patch where it is small: the per-patch Dice loses more."""
    labels = torch.ones(2, 1, 4, 4, 4, dtype=torch.int64)
    labels[0, 0, :, :, :2] = 3  # 32 tumour voxels
    labels[1, 0, 0, 0, :2] = 3  # 2 tumour voxels
    onehot = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 4, 1, 2, 3)
    logits = 30.0 * onehot.double() - 15.0
    logits[1, :, 0, 0, 1] = logits[1, :, 0, 0, 2]  # one of the 2 small-tumour voxels drawn brain
    pooled = configured("dice_ce_mixed", per_sample=[], lambda_ce=0.0)(logits, labels)
    mixed = configured("dice_ce_mixed", lambda_ce=0.0)(logits, labels)
    # Brain Dice 2·94/(94+95) both times (the voxel drawn brain), striatum absent (1); the
    # tumour's pooled 2·33/(33+34) against the patch mean of 1 and 2·1/(1+2).
    brain = 1 - 188 / 189
    assert float(pooled) == pytest.approx((brain + 1 - 66 / 67) / 3, rel=1e-4)
    assert float(mixed) == pytest.approx((brain + 1 - (1 + 2 / 3) / 2) / 3, rel=1e-4)


def test_mixed_dice_ce_rejects_bad_settings():
    with pytest.raises(ValueError, match="lambda_dice"):
        MixedDiceCELoss(lambda_dice=-1.0)
    _, _, logits, target = known_example()
    with pytest.raises(ValueError, match=r"loss\.per_sample"):
        MixedDiceCELoss(per_sample=[4])(logits, target)
