"""Verification and identification metrics: against scikit-learn and against cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from kbaselines.metrics.verification import (
    Pairs,
    cosine_scores,
    make_pairs,
    rank1_identification,
    verification_metrics,
)


def test_against_scikit_learn_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(2000) < 0.4
    scores = same * 0.8 + rng.normal(0, 1, 2000)
    metrics = verification_metrics(scores, same)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(same, scores))
    fpr, tpr, thresholds = roc_curve(same, scores)
    assert metrics["tar_at_far_1e-2"] == pytest.approx(tpr[fpr <= 1e-2].max())
    accuracy = [np.mean((scores >= t) == same) for t in thresholds[1:]]
    assert metrics["best_accuracy"] == pytest.approx(max(accuracy))
    # at the EER, FAR and FRR meet: check against a brute-force threshold scan
    gaps = [abs(np.mean(scores[~same] >= t) - np.mean(scores[same] < t)) for t in np.sort(scores)]
    t_best = np.sort(scores)[int(np.argmin(gaps))]
    assert metrics["eer"] == pytest.approx(np.mean(scores[~same] >= t_best), abs=2e-3)


def test_perfect_separation() -> None:
    metrics = verification_metrics(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]))
    assert metrics["roc_auc"] == 1.0 and metrics["eer"] == 0.0 and metrics["best_accuracy"] == 1.0
    assert metrics["tar_at_far_1e-3"] == 1.0


def test_hand_computed_case() -> None:
    # genuine scores 0.9 0.7 0.4 0.3; impostor scores 0.8 0.5 0.2 0.1
    scores = np.array([0.9, 0.7, 0.4, 0.3, 0.8, 0.5, 0.2, 0.1])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    metrics = verification_metrics(scores, same)
    # AUC: genuine-above-impostor pairs: 0.9 beats 4, 0.7 beats 3, 0.4 beats 2, 0.3 beats 2 -> 11/16
    assert metrics["roc_auc"] == pytest.approx(11 / 16)
    # threshold 0.7: TAR 2/4, FAR 1/4 ; threshold 0.5: TAR 2/4, FAR 2/4; threshold 0.4: TAR 3/4, FAR 2/4
    # FRR falls to FAR between (FAR .25, FRR .5) and (FAR .5, FRR .5): FRR - FAR goes .25 -> 0 -> EER 0.5
    assert metrics["eer"] == pytest.approx(0.5)
    # only FAR 0 admits TAR 1/4 (threshold 0.9)
    assert metrics["tar_at_far_1e-2"] == pytest.approx(0.25)
    # best threshold 0.3 -> 4 genuine accepted, impostors 0.8 and 0.5 accepted: 6/8; or 0.7 -> 2 + 3 = 5/8
    assert metrics["best_accuracy"] == pytest.approx(6 / 8)
    assert metrics["best_threshold"] == pytest.approx(0.3)


def test_pairs_counts_caps_and_determinism() -> None:
    labels = np.repeat(np.arange(5), 4)  # 5 people x 4 images: 5 * 6 = 30 genuine pairs
    pairs = make_pairs(labels, max_genuine=None, seed=0)
    assert pairs.same.sum() == 30 and (~pairs.same).sum() == 30
    assert np.all(pairs.first < pairs.second)
    assert np.all((labels[pairs.first] == labels[pairs.second]) == pairs.same)
    assert len({(a, b) for a, b in zip(pairs.first, pairs.second, strict=True)}) == 60
    capped = make_pairs(labels, max_genuine=10, seed=1)
    assert capped.same.sum() == 10 and (~capped.same).sum() == 10
    again = make_pairs(labels, max_genuine=10, seed=1)
    other = make_pairs(labels, max_genuine=10, seed=2)
    assert np.array_equal(capped.first, again.first) and np.array_equal(capped.second, again.second)
    assert not (
        np.array_equal(capped.first, other.first) and np.array_equal(capped.second, other.second)
    )


def test_pairs_need_two_people() -> None:
    with pytest.raises(ValueError, match="two people"):
        make_pairs(np.zeros(5), None, 0)


def test_cosine_scores() -> None:
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    pairs = Pairs(np.array([0, 0]), np.array([1, 2]), np.array([True, False]))
    assert cosine_scores(embeddings, pairs) == pytest.approx([1.0, 0.0])


def test_rank1_by_hand() -> None:
    # three people on the unit circle at 0, 90 and 180 degrees; one probe of person 1 lies near person 2
    embeddings = np.array(
        [[1, 0], [0, 1], [-1, 0], [0.9, 0.1], [0.1, 0.9], [-0.8, 0.7], [-0.9, -0.1]], dtype=float
    )
    labels = np.array([0, 1, 2, 0, 1, 1, 2])
    gallery = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    assert rank1_identification(embeddings, labels, gallery) == pytest.approx(3 / 4)


def test_rank1_gallery_errors() -> None:
    embeddings = np.eye(3)
    with pytest.raises(ValueError, match="no gallery image"):
        rank1_identification(embeddings, np.array([0, 1, 1]), np.array([1, 0, 0], bool))
    with pytest.raises(ValueError, match="more than one"):
        rank1_identification(embeddings, np.array([0, 0, 1]), np.array([1, 1, 1], bool))
