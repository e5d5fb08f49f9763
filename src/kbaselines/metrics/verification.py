"""Face verification and closed-set identification on embeddings of unseen people.

Verification scores pairs of images by cosine similarity: genuine pairs (same person) should score
above impostor pairs. Identification matches each probe to the nearest of one gallery image per
person. Both follow the K-Face guideline's protocol (``kface.md``, Tasks and evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = [
    "Pairs",
    "cosine_scores",
    "make_pairs",
    "rank1_identification",
    "recognition_metrics",
    "verification_metrics",
]

FAR_TARGETS = {"tar_at_far_1e-2": 1e-2, "tar_at_far_1e-3": 1e-3}


@dataclass(frozen=True)
class Pairs:
    """Verification pairs: sample positions ``first[i] < second[i]`` and whether they match."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray

    def __len__(self) -> int:
        return len(self.same)


def _genuine_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j), i < j, of samples with the same label, grouped label by label."""
    firsts, seconds = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        i, j = np.triu_indices(len(members), k=1)
        firsts.append(members[i])
        seconds.append(members[j])
    return np.concatenate(firsts), np.concatenate(seconds)


def make_pairs(labels: np.ndarray, max_genuine: int | None, seed: int) -> Pairs:
    """Every genuine pair (capped at ``max_genuine``, sampled) and as many distinct impostor pairs.

    Deterministic for ``labels`` and ``seed``, so TAR@FAR compares between runs and folds.

    Raises:
        ValueError: fewer than two people, or nobody with two images.
    """
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("verification needs at least two people in the evaluation set")
    rng = np.random.default_rng(seed)
    first, second = _genuine_pairs(labels)
    if len(first) == 0:
        raise ValueError("verification needs at least one person with two images")
    if max_genuine is not None and len(first) > max_genuine:
        keep = np.sort(rng.choice(len(first), size=max_genuine, replace=False))
        first, second = first[keep], second[keep]
    n = len(labels)
    impostors: set[tuple[int, int]] = set()
    counts = np.unique(labels, return_counts=True)[1].astype(np.int64)
    max_impostors = (n * (n - 1)) // 2 - int((counts * (counts - 1) // 2).sum())
    wanted = min(len(first), max_impostors)
    while len(impostors) < wanted:
        i = rng.integers(0, n, size=2 * (wanted - len(impostors)) + 16)
        j = rng.integers(0, n, size=len(i))
        for a, b in zip(np.minimum(i, j), np.maximum(i, j), strict=True):
            if labels[a] != labels[b] and len(impostors) < wanted:
                impostors.add((int(a), int(b)))
    impostor = np.array(sorted(impostors), dtype=np.int64).reshape(-1, 2)
    return Pairs(
        first=np.concatenate([first, impostor[:, 0]]).astype(np.int64),
        second=np.concatenate([second, impostor[:, 1]]).astype(np.int64),
        same=np.concatenate([np.ones(len(first), bool), np.zeros(len(impostor), bool)]),
    )


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def cosine_scores(embeddings: np.ndarray, pairs: Pairs) -> np.ndarray:
    """Cosine similarity of each pair's two embeddings."""
    unit = _normalise(embeddings)
    return np.einsum("ij,ij->i", unit[pairs.first], unit[pairs.second])


def verification_metrics(scores: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """ROC AUC, EER, TAR at FAR 1e-2 and 1e-3, best-threshold accuracy.

    Conventions: the EER is read where FAR and FRR cross on the ROC curve, linearly interpolated
    between the two ROC points around the crossing. TAR@FAR is the largest TPR among ROC points
    whose FPR is at most the target; with fewer than 1/FAR impostor pairs that is the TPR at FPR 0.
    The best accuracy scans every threshold of the ROC curve.
    """
    same = np.asarray(same, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    fpr, tpr, thresholds = roc_curve(same, scores)
    fnr = 1 - tpr
    crossing = int(np.argmax(fnr <= fpr))  # first point where FRR has fallen to FAR
    if crossing == 0:
        eer = float(fpr[0])
    else:
        # FAR - FRR changes sign between crossing-1 and crossing: interpolate the zero
        d0 = fpr[crossing - 1] - fnr[crossing - 1]
        d1 = fpr[crossing] - fnr[crossing]
        t = d0 / (d0 - d1)
        eer = float(fpr[crossing - 1] + t * (fpr[crossing] - fpr[crossing - 1]))
    positives, negatives = same.sum(), (~same).sum()
    accuracy = (tpr * positives + (1 - fpr) * negatives) / len(same)
    best = int(np.argmax(accuracy))
    metrics = {
        "roc_auc": float(roc_auc_score(same, scores)),
        "eer": eer,
        "best_accuracy": float(accuracy[best]),
        "best_threshold": float(min(thresholds[best], np.finfo(np.float64).max)),
    }
    for name, far in FAR_TARGETS.items():
        metrics[name] = float(tpr[fpr <= far].max())
    return metrics


def rank1_identification(embeddings: np.ndarray, labels: np.ndarray, gallery: np.ndarray) -> float:
    """Share of probes whose nearest gallery image (cosine) shows the same person.

    Raises:
        ValueError: a person with no gallery image or with more than one.
    """
    labels, gallery = np.asarray(labels), np.asarray(gallery, dtype=bool)
    gallery_labels = labels[gallery]
    values, counts = np.unique(gallery_labels, return_counts=True)
    doubled = values[counts > 1]
    if len(doubled):
        raise ValueError(f"people {doubled.tolist()[:5]} have more than one gallery image")
    absent = np.setdiff1d(np.unique(labels), values)
    if len(absent):
        raise ValueError(f"people {absent.tolist()[:5]} have no gallery image")
    unit = _normalise(embeddings)
    probes = ~gallery
    if not probes.any():
        raise ValueError("identification needs probe images besides the gallery")
    nearest = np.argmax(unit[probes] @ unit[gallery].T, axis=1)
    return float(np.mean(gallery_labels[nearest] == labels[probes]))


def recognition_metrics(
    embeddings: np.ndarray, labels: np.ndarray, gallery: np.ndarray, pairs: Pairs
) -> dict[str, float]:
    """Verification metrics on ``pairs`` plus rank-1 identification: what a recognition task logs."""
    metrics = verification_metrics(cosine_scores(embeddings, pairs), pairs.same)
    metrics["rank1"] = rank1_identification(embeddings, labels, gallery)
    return metrics
