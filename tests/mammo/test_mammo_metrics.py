"""Case-level classification metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from kbaselines.core.metrics.classification import (
    binary_rates,
    bootstrap_ci,
    case_metrics,
    delong_test,
    operating_point,
    roc_auc,
)


@pytest.fixture()
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(targets * 0.8, 1.0), 2)  # rounded: ties included
    return scores, targets


def test_auc_and_rates_agree_with_sklearn(scored) -> None:
    scores, targets = scored
    assert roc_auc(scores, targets) == pytest.approx(roc_auc_score(targets, scores))
    predicted = (scores >= 0.3).astype(int)
    tn, fp, _, _ = confusion_matrix(targets, predicted).ravel()
    rates = binary_rates(scores, targets, 0.3)
    assert rates["sensitivity"] == pytest.approx(recall_score(targets, predicted))
    assert rates["specificity"] == pytest.approx(tn / (tn + fp))
    assert rates["precision"] == pytest.approx(precision_score(targets, predicted))
    assert math.isnan(roc_auc(scores, np.ones_like(targets)))


def test_operating_points(scored) -> None:
    scores, targets = scored
    fpr, tpr, thresholds = roc_curve(targets, scores)
    youden = operating_point(scores, targets, "youden")
    assert youden == pytest.approx(thresholds[np.argmax(tpr - fpr)])
    at_spec = operating_point(scores, targets, "specificity", target_specificity=0.9)
    rates = binary_rates(scores, targets, at_spec)
    assert rates["specificity"] >= 0.9
    # the next lower threshold would fall below the target: the most sensitive one is chosen
    lower = thresholds[thresholds < at_spec].max()
    assert binary_rates(scores, targets, lower)["specificity"] < 0.9
    # hand-made: perfectly separated scores, Youden picks the lowest positive score
    assert operating_point(np.array([0.1, 0.2, 0.7, 0.9]), np.array([0, 0, 1, 1])) == 0.7


def test_delong_hand_computed() -> None:
    """2 positives, 3 negatives; worked by hand: AUC_A 5/6, AUC_B 2/3, var(A-B) 1/18, z = 1/sqrt(2)."""
    targets = np.array([1, 1, 0, 0, 0])
    a = np.array([0.9, 0.6, 0.7, 0.2, 0.1])
    b = np.array([0.8, 0.3, 0.4, 0.5, 0.1])
    result = delong_test(a, b, targets)
    assert result["auc_a"] == pytest.approx(5 / 6)
    assert result["auc_b"] == pytest.approx(2 / 3)
    assert result["z"] == pytest.approx(1 / math.sqrt(2))
    assert result["p_value"] == pytest.approx(0.47950012, abs=1e-7)
    same = delong_test(a, a, targets)
    assert same["p_value"] == 1.0


def test_delong_aucs_match_sklearn(scored) -> None:
    scores, targets = scored
    other = scores + np.random.default_rng(0).normal(0, 1.0, len(scores))
    result = delong_test(scores, other, targets)
    assert result["auc_a"] == pytest.approx(roc_auc_score(targets, scores))
    assert result["auc_b"] == pytest.approx(roc_auc_score(targets, other))
    assert 0 < result["p_value"] < 1


def test_bootstrap_interval_covers_the_estimate(scored) -> None:
    scores, targets = scored
    low, high = bootstrap_ci(roc_auc, scores, targets, num_samples=300, seed=1)
    auc = roc_auc(scores, targets)
    assert low < auc < high and high - low < 0.25
    assert bootstrap_ci(roc_auc, scores, targets, 300, 1) == (low, high)  # seeded
    metrics = case_metrics(scores, targets, 0.3, num_bootstrap=100)
    assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
    assert set(metrics) >= {"sensitivity_ci_low", "specificity_ci_high", "precision", "threshold"}
