"""Label clean-up: islands outside the brain and small tumour fragments, counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fdopa.models.postprocess import PostProcess, labels_from_probabilities, postprocess_labels

VOXEL_ML = 0.064  # 4 mm voxels


def _scene() -> np.ndarray:
    """A brain block with a 27-voxel tumour, a 2-voxel fragment, and islands outside it."""
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = 1
    labels[3:5, 3:5, 3:5] = 2
    labels[6:9, 6:9, 6:9] = 3  # 27 voxels = 1.728 mL
    labels[10, 3, 10:12] = 3  # 2 voxels = 0.128 mL, inside the brain, not touching the tumour
    labels[15:17, 15:17, 15:17] = 3  # 8 voxels outside the brain
    labels[18, 2, 2] = 2  # a striatum island outside the brain
    return labels


def test_off_changes_nothing():
    labels = _scene()
    assert not PostProcess().active
    assert np.array_equal(postprocess_labels(labels, VOXEL_ML, PostProcess()), labels)


def test_brain_component_drops_every_island_outside_the_brain():
    labels = _scene()
    out = postprocess_labels(labels, VOXEL_ML, PostProcess(keep_brain_component=True))
    assert (out[13:, 13:, 13:] == 0).all() and out[18, 2, 2] == 0
    assert int((out == 3).sum()) == 27 + 2
    assert np.array_equal(out[:13, :13, :13], labels[:13, :13, :13])


def test_small_fragments_become_brain_but_the_largest_tumour_stays():
    labels = _scene()
    out = postprocess_labels(labels, VOXEL_ML, PostProcess(min_tumour_ml=0.2))
    assert (out[10, 3, 10:12] == 1).all()  # 0.128 mL < 0.2 mL
    assert (out[6:9, 6:9, 6:9] == 3).all() and (out[15:17, 15:17, 15:17] == 3).all()  # 0.512 mL
    # a threshold above every component keeps the largest one only
    out = postprocess_labels(labels, VOXEL_ML, PostProcess(min_tumour_ml=100.0))
    assert int((out == 3).sum()) == 27


def test_negative_threshold_is_refused():
    with pytest.raises(ValueError, match="min_tumour_ml"):
        PostProcess(min_tumour_ml=-1.0)


def _probabilities(shape: tuple[int, int, int] = (6, 5, 4)) -> np.ndarray:
    """Random softmax maps, seeded: 4 classes."""
    logits = np.random.default_rng(3).normal(size=(4, *shape))
    return np.exp(logits) / np.exp(logits).sum(0, keepdims=True)


def test_label_decision_without_threshold_is_the_argmax():
    probs = _probabilities()
    out = labels_from_probabilities(probs)
    assert out.dtype == np.uint8 and out.shape == probs.shape[1:]
    for index in np.ndindex(out.shape):  # voxel by voxel, the largest probability's class
        column = [probs[(c, *index)] for c in range(4)]
        assert out[index] == column.index(max(column))


@pytest.mark.parametrize("threshold", [0.2, 0.4, 0.6])
def test_tumour_threshold_decides_tumour_and_argmax_of_the_rest_elsewhere(threshold):
    probs = _probabilities()
    out = labels_from_probabilities(probs, threshold)
    for index in np.ndindex(out.shape):
        if probs[(3, *index)] >= threshold:
            assert out[index] == 3
        else:
            rest = [probs[(c, *index)] for c in range(3)]
            assert out[index] == rest.index(max(rest))
    # a higher threshold never adds tumour
    assert ((out == 3) <= (labels_from_probabilities(probs, threshold - 0.1) == 3)).all()


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2])
def test_tumour_threshold_outside_zero_one_is_refused(threshold):
    with pytest.raises(ValueError, match="tumour_threshold"):
        PostProcess(tumour_threshold=threshold)
    assert not PostProcess(tumour_threshold=0.6).active  # not a label-map rule
