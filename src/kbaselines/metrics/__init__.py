"""Evaluation metrics, each checked in the tests against an independent reference (scikit-learn).

- ``verification``: face verification (ROC AUC, EER, TAR@FAR, best-threshold accuracy) on
  genuine/impostor pairs and closed-set rank-1 identification, on embeddings of unseen people.
"""

from kbaselines.metrics.verification import (
    FAR_TARGETS,
    Pairs,
    cosine_scores,
    make_pairs,
    rank1_identification,
    recognition_metrics,
    verification_metrics,
)

__all__ = [
    "FAR_TARGETS",
    "Pairs",
    "cosine_scores",
    "make_pairs",
    "rank1_identification",
    "recognition_metrics",
    "verification_metrics",
]
