"""Verification and identification metrics: against scikit-learn and against cases worked by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

from kbaselines.kface.verification import (
    Pairs,
    cosine_scores,
    make_pairs,
    rank1_identification,
    recognition_metrics,
    verification_metrics,
)

METRIC_KEYS = {
    "roc_auc",
    "eer",
    "tar_at_far_1e-2",
    "tar_at_far_1e-3",
    "oracle_accuracy",
    "oracle_threshold",
}


# --- verification metrics -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scikit_learn_on_random_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    same = rng.random(3000) < 0.4
    scores = same * 1.2 + rng.normal(0, 1, 3000)
    metrics = verification_metrics(scores, same)
    assert set(metrics) == METRIC_KEYS
    assert all(isinstance(v, float) for v in metrics.values())

    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(same, scores))
    fpr, tpr, _ = roc_curve(same, scores)  # default drop_intermediate=True: same answers
    assert metrics["tar_at_far_1e-2"] == pytest.approx(tpr[fpr <= 1e-2].max())
    assert metrics["tar_at_far_1e-3"] == pytest.approx(tpr[fpr <= 1e-3].max())

    # oracle accuracy: brute force over every score as threshold, and rejecting everything
    candidates = np.append(np.unique(scores), np.inf)
    accuracy = [np.mean((scores >= t) == same) for t in candidates]
    assert metrics["oracle_accuracy"] == pytest.approx(max(accuracy))
    assert np.mean((scores >= metrics["oracle_threshold"]) == same) == pytest.approx(
        metrics["oracle_accuracy"]
    )

    # EER: the usual face-recognition recipe, root of 1 - FAR - TAR(FAR) on the interpolated ROC
    reference = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert metrics["eer"] == pytest.approx(reference, abs=1e-6)
    # and FAR, FRR at the thresholds around it bracket it
    far = np.array([np.mean(scores[~same] >= t) for t in np.unique(scores)])
    frr = np.array([np.mean(scores[same] < t) for t in np.unique(scores)])
    k = int(np.argmax(far <= frr))  # thresholds increase: first one where FAR <= FRR
    assert min(far[k], frr[k - 1]) - 1e-12 <= metrics["eer"] <= max(far[k - 1], frr[k]) + 1e-12


def test_perfect_separation() -> None:
    metrics = verification_metrics(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]))
    assert metrics["roc_auc"] == 1.0
    assert metrics["eer"] == 0.0
    assert metrics["oracle_accuracy"] == 1.0
    assert metrics["tar_at_far_1e-2"] == 1.0 and metrics["tar_at_far_1e-3"] == 1.0
    assert metrics["oracle_threshold"] == pytest.approx(0.8)  # the highest threshold reaching 1.0


def test_hand_computed_case() -> None:
    # genuine 0.9 0.7 0.4 0.3, impostor 0.8 0.5 0.2 0.1; in decreasing order: G I G I G G I I
    # ROC points (FAR, TAR): (0,0) (0,.25) (.25,.25) (.25,.5) (.5,.5) (.5,.75) (.5,1) (.75,1) (1,1)
    scores = np.array([0.9, 0.7, 0.4, 0.3, 0.8, 0.5, 0.2, 0.1])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    metrics = verification_metrics(scores, same)
    # AUC: genuine above impostor: 0.9 beats 4, 0.7 beats 3, 0.4 and 0.3 beat 2 each -> 11/16
    assert metrics["roc_auc"] == pytest.approx(11 / 16)
    # FRR - FAR along the points: 1, .75, .5, .25, 0 -> FAR = FRR = .5 exactly at threshold 0.5
    assert metrics["eer"] == pytest.approx(0.5)
    # 4 impostors: any false accept is FAR .25 > 1e-2, so only FAR 0 counts: TAR 1/4 (threshold .9)
    assert metrics["tar_at_far_1e-2"] == pytest.approx(0.25)
    assert metrics["tar_at_far_1e-3"] == pytest.approx(0.25)
    # accuracy per threshold: .9 -> 1+4, .8 -> 1+3, .7 -> 2+3, .5 -> 2+2, .4 -> 3+2, .3 -> 4+2,
    # .2 -> 4+1, .1 -> 4+0 (out of 8): best 6/8 at .3
    assert metrics["oracle_accuracy"] == pytest.approx(6 / 8)
    assert metrics["oracle_threshold"] == pytest.approx(0.3)


def test_eer_on_a_vertical_segment_is_not_the_midpoint() -> None:
    # genuine .9 .6 .4, impostor .7 .3: order G I G G I
    # ROC (FAR, FRR): (0,1) (0,2/3) (.5,2/3) (.5,1/3) (.5,0) (1,0)
    # FRR falls from 2/3 to 1/3 at FAR .5: the crossing is at FAR = FRR = .5. The "mean of FAR and
    # FRR at the threshold of smallest |FAR - FRR|" convention would give 5/12 or 7/12 instead.
    metrics = verification_metrics(np.array([0.9, 0.6, 0.4, 0.7, 0.3]), np.array([1, 1, 1, 0, 0]))
    assert metrics["eer"] == pytest.approx(0.5)
    assert metrics["roc_auc"] == pytest.approx(4 / 6)
    # thresholds: .9 -> 1+2, .7 -> 1+1, .6 -> 2+1, .4 -> 3+1, .3 -> 3+0 (of 5): best 4/5 at .4
    assert metrics["oracle_accuracy"] == pytest.approx(4 / 5)
    assert metrics["oracle_threshold"] == pytest.approx(0.4)


def test_eer_interpolated_on_a_tie() -> None:
    # genuine .8 .5, impostor .5 .2: the tie at .5 makes a slanted ROC segment (0,.5) -> (.5,1);
    # FRR - FAR goes .5 -> -.5 along it, zero halfway: FAR = .25, FRR = .25
    metrics = verification_metrics(np.array([0.8, 0.5, 0.5, 0.2]), np.array([1, 1, 0, 0]))
    assert metrics["eer"] == pytest.approx(0.25)
    assert metrics["roc_auc"] == pytest.approx(0.875)  # 3 wins + 1 tie (half) out of 4
    # .8 and .5 both give 3/4; the first (highest) threshold is kept
    assert metrics["oracle_accuracy"] == pytest.approx(0.75)
    assert metrics["oracle_threshold"] == pytest.approx(0.8)


def test_tar_at_far_by_hand() -> None:
    # 100 impostors: 98 below .5, two high ones at .95 and .85; 10 genuine from 1.0 down
    impostor = np.concatenate([np.linspace(0.0, 0.5, 98), [0.95, 0.85]])
    genuine = np.array([1.0, 0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.58, 0.56, 0.54])
    scores = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(10, bool), np.zeros(100, bool)])
    metrics = verification_metrics(scores, same)
    # threshold .9: TAR 2/10 with one false accept (FAR 1/100, equal to the target: allowed)
    assert metrics["tar_at_far_1e-2"] == pytest.approx(0.2)
    # 100 < 1/1e-3 impostors: only FAR 0 fits, TAR at threshold 1.0 is 1/10
    assert metrics["tar_at_far_1e-3"] == pytest.approx(0.1)
    # threshold .54: all genuine accepted, 2 false accepts -> 108/110
    assert metrics["oracle_accuracy"] == pytest.approx(108 / 110)
    assert metrics["oracle_threshold"] == pytest.approx(0.54)


def test_oracle_threshold_when_rejecting_everything_is_best() -> None:
    # one genuine pair scoring lowest among many impostors: accepting nothing is best
    scores = np.array([0.1, 0.5, 0.6, 0.7])
    metrics = verification_metrics(scores, np.array([1, 0, 0, 0]))
    assert metrics["oracle_accuracy"] == pytest.approx(0.75)
    assert np.isfinite(metrics["oracle_threshold"]) and metrics["oracle_threshold"] > 0.7
    assert not np.any(scores >= metrics["oracle_threshold"])


def test_verification_errors() -> None:
    with pytest.raises(ValueError, match="genuine and impostor"):
        verification_metrics(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        verification_metrics(np.array([0.1, np.nan]), np.array([1, 0]))
    with pytest.raises(ValueError, match="3 scores for 2"):
        verification_metrics(np.array([0.1, 0.2, 0.3]), np.array([1, 0]))


# --- pairs ----------------------------------------------------------------------------------


def _pair_set(pairs: Pairs, genuine: bool) -> set[tuple[int, int]]:
    mask = pairs.same == genuine
    return set(zip(pairs.first[mask].tolist(), pairs.second[mask].tolist(), strict=True))


def _check_valid(pairs: Pairs, labels: np.ndarray) -> None:
    assert pairs.first.dtype == np.int64 and pairs.same.dtype == bool
    assert np.all(pairs.first < pairs.second)
    assert np.all((labels[pairs.first] == labels[pairs.second]) == pairs.same)
    keys = list(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
    assert len(set(keys)) == len(keys), "duplicate pairs"


def test_pairs_uncapped_are_every_genuine_pair() -> None:
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.repeat(np.arange(5), [4, 1, 3, 6, 2]))  # interleaved, uneven
    pairs = make_pairs(labels, max_genuine=None, seed=0)
    _check_valid(pairs, labels)
    expected = {
        (i, j) for i, j in itertools.combinations(range(len(labels)), 2) if labels[i] == labels[j]
    }
    assert _pair_set(pairs, True) == expected
    assert pairs.num_genuine == 6 + 0 + 3 + 15 + 1 == len(expected)
    assert pairs.num_impostor == pairs.num_genuine
    assert np.all(pairs.same[: pairs.num_genuine]) and not np.any(pairs.same[pairs.num_genuine :])


def test_pairs_caps_and_determinism() -> None:
    labels = np.repeat(np.arange(5), 4)  # 5 people x 4 images: 5 * 6 = 30 genuine pairs
    capped = make_pairs(labels, max_genuine=10, seed=1)
    _check_valid(capped, labels)
    assert capped.num_genuine == 10 and capped.num_impostor == 10
    again = make_pairs(labels.copy(), max_genuine=10, seed=1)
    assert np.array_equal(capped.first, again.first)
    assert np.array_equal(capped.second, again.second)
    assert np.array_equal(capped.same, again.same)
    other = make_pairs(labels, max_genuine=10, seed=2)
    assert _pair_set(capped, True) != _pair_set(other, True)
    assert _pair_set(capped, False) != _pair_set(other, False)
    # a cap above the count keeps them all
    assert make_pairs(labels, max_genuine=1000, seed=0).num_genuine == 30


def test_pairs_sampling_reaches_every_pair() -> None:
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2])  # 3 + 1 + 3 = 7 genuine, 28 - 7 = 21 impostor
    genuine, impostor = set(), set()
    for seed in range(60):
        pairs = make_pairs(labels, max_genuine=3, seed=seed)
        _check_valid(pairs, labels)
        genuine |= _pair_set(pairs, True)
        impostor |= _pair_set(pairs, False)
    assert len(genuine) == 7 and len(impostor) == 21


def test_pairs_fewer_impostors_than_genuine() -> None:
    labels = np.array(["b", "b", "b", "b", "b", "a"])  # 10 genuine, only 5 impostor pairs exist
    pairs = make_pairs(labels, max_genuine=None, seed=0)
    _check_valid(pairs, labels)
    assert pairs.num_genuine == 10
    assert _pair_set(pairs, False) == {(i, 5) for i in range(5)}


def test_pairs_on_a_large_set() -> None:
    """20,000 images (about 10^8 candidate pairs): sampled without listing every pair."""
    rng = np.random.default_rng(0)
    for labels in (rng.integers(0, 400, 20000), np.repeat([0, 1], 10000)):
        pairs = make_pairs(labels, max_genuine=20000, seed=0)
        assert pairs.num_genuine == 20000 and pairs.num_impostor == 20000
        _check_valid(pairs, labels)


def test_pairs_errors() -> None:
    with pytest.raises(ValueError, match="two people"):
        make_pairs(np.zeros(5), None, 0)
    with pytest.raises(ValueError, match="two or more samples"):
        make_pairs(np.arange(5), None, 0)
    with pytest.raises(ValueError, match="max_genuine"):
        make_pairs(np.array([0, 0, 1]), 0, 0)


def test_pairs_to_rows() -> None:
    pairs = Pairs(np.array([0, 1]), np.array([2, 2]), np.array([True, False]))
    assert pairs.to_rows() == [
        {"first": 0, "second": 2, "target": 1},
        {"first": 1, "second": 2, "target": 0},
    ]
    rows = pairs.to_rows(names=["a.jpg", "b.jpg", "c.jpg"], scores=np.array([0.5, -0.25]))
    assert rows[1] == {"first": "b.jpg", "second": "c.jpg", "score": -0.25, "target": 0}
    with pytest.raises(ValueError, match="differ in length"):
        Pairs(np.array([0]), np.array([1, 2]), np.array([True]))


def test_cosine_scores() -> None:
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    pairs = Pairs(np.array([0, 0, 1]), np.array([1, 2, 3]), np.array([True, False, False]))
    assert cosine_scores(embeddings, pairs) == pytest.approx([1.0, 0.0, -np.sqrt(0.5)])


# --- identification -------------------------------------------------------------------------


def _three_people() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # gallery of three people on the unit circle at 0, 90 and 180 degrees; the probe of person 1
    # at (-0.8, 0.7) is closer in angle to person 2 (cosines 0.7 vs 0.8 over its norm): it fails
    embeddings = np.array(
        [[0.9, 0.1], [1, 0], [0.1, 0.9], [0, 1], [-0.8, 0.7], [-1, 0], [-0.9, -0.1]], dtype=float
    )
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    gallery = np.array([0, 1, 0, 1, 0, 1, 0], bool)
    return embeddings, labels, gallery


def test_rank1_by_hand() -> None:
    embeddings, labels, gallery = _three_people()
    assert rank1_identification(embeddings, labels, gallery) == pytest.approx(3 / 4)
    # cosine: scaling each embedding changes nothing
    scale = np.arange(1, len(labels) + 1, dtype=float)[:, None]
    assert rank1_identification(embeddings * scale, labels, gallery) == pytest.approx(3 / 4)
    # moving the failing probe next to its own reference fixes it
    embeddings[4] = [0.2, 0.8]
    assert rank1_identification(embeddings, labels, gallery) == pytest.approx(1.0)


def test_rank1_string_labels() -> None:
    embeddings, labels, gallery = _three_people()
    names = np.array(["kim", "lee", "park"])[labels]
    assert rank1_identification(embeddings, names, gallery) == pytest.approx(3 / 4)


def test_rank1_gallery_errors() -> None:
    embeddings = np.eye(4)
    with pytest.raises(ValueError, match=r"\[7\] have no gallery image"):
        rank1_identification(embeddings, np.array([0, 7, 7, 0]), np.array([1, 0, 0, 0], bool))
    with pytest.raises(ValueError, match=r"\[3\] have more than one"):
        rank1_identification(embeddings, np.array([3, 3, 1, 1]), np.array([1, 1, 1, 0], bool))
    with pytest.raises(ValueError, match="probe"):
        rank1_identification(np.eye(2), np.array([0, 1]), np.array([1, 1], bool))
    with pytest.raises(ValueError, match="differ"):
        rank1_identification(embeddings, np.array([0, 1]), np.array([1, 1], bool))


def test_recognition_metrics_combines() -> None:
    embeddings, labels, gallery = _three_people()
    pairs = make_pairs(labels, None, seed=0)
    metrics = recognition_metrics(embeddings, labels, gallery, pairs)
    assert set(metrics) == METRIC_KEYS | {"rank1"}
    assert metrics["rank1"] == pytest.approx(3 / 4)
    expected = verification_metrics(cosine_scores(embeddings, pairs), pairs.same)
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)
