"""Metrics, checked against independent references (scikit-learn, pycocotools) in the tests."""

from kbaselines.metrics.verification import (
    Pairs,
    cosine_scores,
    make_pairs,
    rank1_identification,
    recognition_metrics,
    verification_metrics,
)

__all__ = [
    "Pairs",
    "cosine_scores",
    "make_pairs",
    "rank1_identification",
    "recognition_metrics",
    "verification_metrics",
]
