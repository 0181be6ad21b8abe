"""The configured losses against hand computations on tiny examples."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

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


def tversky_loss(p, y, alpha, beta):
    tp = (p * y).sum(axis=(0, 2))[1:]
    fp = (p * (1 - y)).sum(axis=(0, 2))[1:]
    fn = ((1 - p) * y).sum(axis=(0, 2))[1:]
    return 1 - np.mean((tp + SMOOTH) / (tp + alpha * fp + beta * fn + SMOOTH))


def cross_entropy(p, y):
    return -(y * np.log(p)).sum(axis=1).mean()


def softmax_focal(p, y, gamma=2.0):
    return (-((1 - p) ** gamma) * np.log(p) * y).mean()  # mean over B, C and voxels


@pytest.mark.parametrize("name", ["dice_ce", "dice_focal", "tversky"])
def test_perfect_prediction_gives_zero_loss(name):
    _, _, _, target = known_example()
    onehot = torch.nn.functional.one_hot(target[:, 0], 4).permute(0, 4, 1, 2, 3)
    logits = 30.0 * onehot.double() - 15.0
    assert float(configured(name)(logits, target)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "hand"),
    [
        ("dice_ce", lambda p, y: soft_dice_loss(p, y) + cross_entropy(p, y)),
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
