"""The decision side of K-Face recognition: accuracy at a threshold fixed beforehand, the oracle
metrics' names, and flip fusion of embeddings (the task, predict.py and export.py alike)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kbaselines.kface.lightcnn import lightcnn9
from kbaselines.kface.predict import Embedding, ensemble_embeddings
from kbaselines.kface.recognition import DECISION_METRICS, RecognitionTask, embed
from kbaselines.kface.verification import RECOGNITION_METRICS, accuracy_at, verification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def test_accuracy_at_a_given_threshold_by_hand() -> None:
    scores = np.array([0.9, 0.6, 0.5, 0.4, 0.2, 0.1])
    same = np.array([1, 1, 0, 1, 0, 0], bool)
    # at .45: accepted .9 .6 .5 -> right, right, wrong; rejected .4 .2 .1 -> wrong, right, right
    assert accuracy_at(scores, same, 0.45) == pytest.approx(4 / 6)
    assert accuracy_at(scores, same, 0.5) == pytest.approx(4 / 6)  # score == threshold accepts
    assert accuracy_at(scores, same, 0.55) == pytest.approx(5 / 6)
    assert accuracy_at(scores, same, 1.0) == pytest.approx(3 / 6)  # nothing accepted
    assert np.isnan(accuracy_at(scores, same, float("nan")))
    with pytest.raises(ValueError, match="6 scores for 2 targets"):
        accuracy_at(scores, same[:2], 0.5)


def test_a_threshold_from_other_pairs_scores_below_the_oracle() -> None:
    """The oracle threshold of validation pairs, applied to test pairs whose own best threshold
    differs: the test accuracy is the one at the validation threshold, below the test oracle."""
    val_scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    val_same = np.array([1, 1, 1, 0, 0, 0], bool)
    threshold = verification_metrics(val_scores, val_same)["oracle_threshold"]
    assert threshold == pytest.approx(0.7)
    test_scores = np.array([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    test_same = np.array([1, 1, 1, 0, 0, 0], bool)
    test = verification_metrics(test_scores, test_same)
    assert test["oracle_accuracy"] == 1.0 and test["oracle_threshold"] == pytest.approx(0.4)
    assert accuracy_at(test_scores, test_same, threshold) == pytest.approx(3 / 6)


def test_the_oracle_metrics_are_named_so() -> None:
    assert {"oracle_accuracy", "oracle_threshold"} <= set(RECOGNITION_METRICS)
    assert not any(name.startswith("best_") for name in RECOGNITION_METRICS)
    assert set(DECISION_METRICS) == {"accuracy", "threshold"}
    assert not set(DECISION_METRICS) & set(RECOGNITION_METRICS)


def _task(flip_fusion: bool) -> RecognitionTask:
    torch.manual_seed(0)
    net = lightcnn9(num_classes=4, input_size=16)
    return RecognitionTask(net, optimizer=torch.optim.SGD, flip_fusion=flip_fusion).eval()


def test_flip_fusion_sums_the_image_and_mirror_embeddings() -> None:
    images = torch.rand(3, 1, 16, 16)
    images[..., :8] *= 0.2  # darker on the left: the mirror is another image
    plain, fused = _task(False), _task(True)
    with torch.inference_mode():
        alone = embed(fused.net, images)
        mirrored = embed(fused.net, images.flip(-1))
        assert torch.allclose(embed(fused.net, images, flip_fusion=True), alone + mirrored)
        assert torch.allclose(fused(images), alone + mirrored)  # what validation and test embed
        assert torch.allclose(plain(images), alone)
        # the mirror's embedding differs far beyond allclose's tolerance (~1e-6 here)
        assert (alone - mirrored).abs().max() > 1e-4
        # export.py's module and predict.py's embeddings are the task's
        assert torch.allclose(Embedding(fused.net, flip_fusion=True)(images), fused(images))
        model = type("Loaded", (), {"task": fused})()
        unit = ensemble_embeddings([model], images)
        expected = (alone + mirrored) / (alone + mirrored).norm(dim=1, keepdim=True)
        assert torch.allclose(unit, expected, atol=1e-6)
