"""Binary classification metrics at the case level: ROC AUC, an operating point, rates, CIs, DeLong.

AUC is scikit-learn's; the operating point is chosen on validation scores (Youden's J, or the
lowest threshold reaching a target specificity) and applied unchanged to test scores; confidence
intervals are percentile bootstraps over cases; two AUCs on the same cases are compared with
DeLong's test (DeLong et al. 1988, the fast midrank form of Sun and Xu 2014).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = [
    "binary_rates",
    "bootstrap_ci",
    "case_metrics",
    "delong_test",
    "operating_point",
    "roc_auc",
]


def roc_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    targets = np.asarray(targets)
    if len(np.unique(targets)) < 2:
        return float("nan")
    return float(roc_auc_score(targets, scores))


def operating_point(
    scores: np.ndarray, targets: np.ndarray, method: str = "youden", target_specificity: float = 0.8
) -> float:
    """The threshold (predict positive when ``score >= threshold``) chosen on these scores.

    Args:
        method: ``youden`` (maximise sensitivity + specificity - 1) or ``specificity`` (the most
            sensitive threshold whose specificity is at least ``target_specificity``).
    """
    targets = np.asarray(targets)
    if len(np.unique(targets)) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(targets, scores)
    # sklearn's first threshold (nothing positive) is inf: the next value above the top score
    thresholds[0] = np.nextafter(float(np.max(scores)), np.inf)
    if method == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    if method == "specificity":
        allowed = np.nonzero(1.0 - fpr >= target_specificity)[0]
        return float(thresholds[allowed[-1]])
    raise ValueError(f"operating point method {method!r}: youden or specificity")


def binary_rates(scores: np.ndarray, targets: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity and precision of ``score >= threshold`` (NaN when undefined)."""
    predicted = np.asarray(scores) >= threshold
    targets = np.asarray(targets).astype(bool)
    tp = float(np.sum(predicted & targets))
    fp = float(np.sum(predicted & ~targets))
    tn = float(np.sum(~predicted & ~targets))
    fn = float(np.sum(~predicted & targets))
    ratio = lambda a, b: a / (a + b) if a + b else float("nan")  # noqa: E731
    return {"sensitivity": ratio(tp, fn), "specificity": ratio(tn, fp), "precision": ratio(tp, fp)}


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    targets: np.ndarray,
    num_samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(scores, targets)``, resampling cases.

    Resamples where the metric is undefined (NaN, e.g. one class only) are left out.
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_samples):
        pick = rng.integers(0, len(scores), len(scores))
        value = metric(scores[pick], targets[pick])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _midrank_components(
    scores: np.ndarray, targets: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components V10 (per positive) and V01 (per negative)."""
    positives, negatives = scores[targets == 1], scores[targets == 0]
    m, n = len(positives), len(negatives)
    all_ranks = rankdata(np.concatenate([positives, negatives]))
    v10 = (all_ranks[:m] - rankdata(positives)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(negatives)) / m
    return float(v10.mean()), v10, v01


def delong_test(
    scores_a: np.ndarray, scores_b: np.ndarray, targets: np.ndarray
) -> dict[str, float]:
    """DeLong's test of two correlated AUCs on the same cases: AUCs, z and the two-sided p-value."""
    targets = np.asarray(targets).astype(int)
    auc_a, v10_a, v01_a = _midrank_components(np.asarray(scores_a, float), targets)
    auc_b, v10_b, v01_b = _midrank_components(np.asarray(scores_b, float), targets)
    s10 = np.cov(np.stack([v10_a, v10_b]))
    s01 = np.cov(np.stack([v01_a, v01_b]))
    covariance = s10 / len(v10_a) + s01 / len(v01_a)
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    if variance <= 0:
        z = 0.0 if auc_a == auc_b else float("inf")
    else:
        z = (auc_a - auc_b) / np.sqrt(variance)
    return {"auc_a": auc_a, "auc_b": auc_b, "z": float(z), "p_value": float(2 * norm.sf(abs(z)))}


def case_metrics(
    scores: np.ndarray,
    targets: np.ndarray,
    threshold: float,
    num_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """AUC, sensitivity, specificity, precision at ``threshold``, each with a bootstrap 95% CI."""
    scores, targets = np.asarray(scores, float), np.asarray(targets, int)
    metrics: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"roc_auc": roc_auc}
    for name in ("sensitivity", "specificity", "precision"):
        metrics[name] = lambda s, t, name=name: binary_rates(s, t, threshold)[name]
    result = {"threshold": float(threshold)}
    for name, metric in metrics.items():
        result[name] = metric(scores, targets)
        if num_bootstrap:
            low, high = bootstrap_ci(metric, scores, targets, num_bootstrap, seed)
            result[f"{name}_ci_low"], result[f"{name}_ci_high"] = low, high
    return result
