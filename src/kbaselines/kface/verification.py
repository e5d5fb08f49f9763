"""Face verification and closed-set identification on embeddings of people a model has not seen.

Verification scores pairs of images by cosine similarity: genuine pairs (same person) should score
above impostor pairs (different people). Identification matches each probe image to the nearest of
one gallery image per person. Both follow the K-Face guideline's protocol (``kface.md``, "Tasks and
evaluation", Recognition): every genuine pair among the held-out people (capped, sampled with the
fold's seed), as many impostor pairs drawn with the same generator, the pair list written to the
run folder so that TAR@FAR compares between runs.

Conventions, fixed here once for every task and test:

- A pair is *accepted* when its score is ``>= threshold``; higher scores mean "same person".
- FAR (false accept rate) = FPR of the ROC curve, TAR (true accept rate) = TPR, FRR = 1 - TAR.
- The ROC curve is scikit-learn's ``roc_curve`` with every threshold kept
  (``drop_intermediate=False``): one point per distinct score, plus the point (0, 0).
- ``eer``: where the ROC curve, taken as the polyline through those points, crosses FAR = FRR;
  linearly interpolated between the two ROC points around the crossing (see
  :func:`verification_metrics`).
- ``tar_at_far_<x>``: the largest TAR among ROC points with FAR ``<=`` x (no interpolation).
- ``oracle_accuracy``: the accuracy at the threshold chosen on the very pairs it is measured on;
  an upper bound no face-recognition paper reports. The honest figure is :func:`accuracy_at` a
  threshold chosen on other people (the recognition task's ``test/accuracy``).

Only numpy and scikit-learn; no Lightning, no torch required (a CPU tensor passed in is read through
``np.asarray``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = [
    "FAR_TARGETS",
    "RECOGNITION_METRICS",
    "Pairs",
    "accuracy_at",
    "cosine_scores",
    "make_pairs",
    "rank1_identification",
    "recognition_metrics",
    "verification_metrics",
]

#: metric name -> false accept rate at which the true accept rate is reported
FAR_TARGETS: dict[str, float] = {"tar_at_far_1e-2": 1e-2, "tar_at_far_1e-3": 1e-3}

#: the keys of :func:`recognition_metrics`
RECOGNITION_METRICS = (
    "roc_auc",
    "eer",
    *FAR_TARGETS,
    "oracle_accuracy",
    "oracle_threshold",
    "rank1",
)

# probes scored against the gallery per block, to bound memory on large evaluation sets
_PROBE_BLOCK = 4096


@dataclass(frozen=True)
class Pairs:
    """Verification pairs of sample positions, ``first[k] < second[k]``, and whether they match.

    Attributes:
        first: ``int64 [P]`` position of the first sample of each pair.
        second: ``int64 [P]`` position of the second sample, always greater than ``first``.
        same: ``bool [P]`` True for a genuine pair (same person), False for an impostor pair.
    """

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray

    def __post_init__(self) -> None:
        first = np.asarray(self.first, dtype=np.int64).reshape(-1)
        second = np.asarray(self.second, dtype=np.int64).reshape(-1)
        same = np.asarray(self.same, dtype=bool).reshape(-1)
        if not len(first) == len(second) == len(same):
            raise ValueError(
                f"Pairs arrays differ in length: first {len(first)}, second {len(second)}, "
                f"same {len(same)}"
            )
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "second", second)
        object.__setattr__(self, "same", same)

    def __len__(self) -> int:
        return len(self.same)

    @property
    def num_genuine(self) -> int:
        """Number of genuine (same-person) pairs."""
        return int(self.same.sum())

    @property
    def num_impostor(self) -> int:
        """Number of impostor (different-person) pairs."""
        return int(len(self.same) - self.same.sum())

    def to_rows(
        self, names: Sequence[str] | None = None, scores: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """One dict per pair, ready for ``csv.DictWriter``.

        Args:
            names: optional name of every sample (e.g. its image path), indexed by position; the
                ``first`` and ``second`` columns then hold names instead of positions.
            scores: optional score of every pair, added as a ``score`` column.

        Returns:
            Rows with keys ``first``, ``second``, (``score``,) ``target`` (1 genuine, 0 impostor).
        """
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            if len(scores) != len(self):
                raise ValueError(f"{len(scores)} scores for {len(self)} pairs")
        rows: list[dict[str, Any]] = []
        for k, (i, j, same) in enumerate(zip(self.first, self.second, self.same, strict=True)):
            row: dict[str, Any] = {
                "first": names[i] if names is not None else int(i),
                "second": names[j] if names is not None else int(j),
            }
            if scores is not None:
                row["score"] = float(scores[k])
            row["target"] = int(same)
            rows.append(row)
        return rows


def _unrank(row_lengths: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ranks in ``[0, row_lengths.sum())`` to (row, offset within the row).

    The pairs are laid out row after row, row ``p`` holding ``row_lengths[p]`` of them; rows may be
    empty. Only the ``N`` row starts are materialised, never the pairs themselves.
    """
    ends = np.cumsum(row_lengths)
    starts = ends - row_lengths
    rows = np.searchsorted(starts, ranks, side="right") - 1  # last row starting at or before
    return rows, ranks - starts[rows]


def make_pairs(labels: np.ndarray, max_genuine: int | None, seed: int) -> Pairs:
    """Every genuine pair (capped at ``max_genuine``, sampled) and as many distinct impostor pairs.

    Genuine pairs are all ``(i, j)``, ``i < j``, with ``labels[i] == labels[j]``. When there are
    more than ``max_genuine``, ``max_genuine`` of them are sampled uniformly without replacement
    with ``np.random.default_rng(seed)``. Then as many impostor pairs (``i < j``, different labels)
    are sampled uniformly without replacement with the same generator, or all of them when there
    are fewer impostor pairs than genuine ones. The result depends only on ``labels``,
    ``max_genuine`` and ``seed`` (and on numpy's ``Generator.choice``), so the same fold gives the
    same pair list in every run.

    Pairs are numbered without being materialised (the samples grouped by label, each sample's
    genuine and impostor partners counted), so a small cap on ~20k samples costs O(N) memory and
    time, not O(N^2). Uncapped, the genuine pairs are all built, which is O(sum of squared
    per-person counts).

    Args:
        labels: ``[N]`` person of each sample (ints or strings).
        max_genuine: cap on the number of genuine pairs, or None for all of them.
        seed: seed of the sampling.

    Returns:
        Genuine pairs first, then impostor pairs, each block sorted by ``(first, second)``.

    Raises:
        ValueError: ``labels`` not 1-D, fewer than two people, no person with two samples, or a
            cap below 1.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if max_genuine is not None and max_genuine < 1:
        raise ValueError(f"max_genuine must be at least 1 or None, got {max_genuine}")
    _, group, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) < 2:
        raise ValueError(
            f"verification needs at least two people in the evaluation set, got {len(counts)}"
        )
    n = len(labels)
    # sample positions grouped by person; within a person in increasing index order, so that
    # a pair of sorted positions p < q of one person is also a pair of indices order[p] < order[q]
    order = np.argsort(group, kind="stable").astype(np.int64)
    group_end = np.cumsum(counts).astype(np.int64)[group[order]]  # per sorted position
    positions = np.arange(n, dtype=np.int64)
    # sorted position p pairs with the later positions of its own person (genuine) ...
    genuine_rows = group_end - 1 - positions
    # ... and with every position of the people sorted after its own (impostor)
    impostor_rows = n - group_end
    num_genuine = int(genuine_rows.sum())
    num_impostor = int(impostor_rows.sum())
    if num_genuine == 0:
        raise ValueError("verification needs at least one person with two or more samples")

    rng = np.random.default_rng(seed)
    if max_genuine is not None and num_genuine > max_genuine:
        genuine_ranks = rng.choice(num_genuine, size=max_genuine, replace=False)
    else:
        genuine_ranks = np.arange(num_genuine, dtype=np.int64)
    p, offset = _unrank(genuine_rows, np.asarray(genuine_ranks, dtype=np.int64))
    genuine = (order[p], order[p + 1 + offset])

    wanted = min(len(genuine_ranks), num_impostor)
    impostor_ranks = rng.choice(num_impostor, size=wanted, replace=False)
    p, offset = _unrank(impostor_rows, np.asarray(impostor_ranks, dtype=np.int64))
    impostor = (order[p], order[group_end[p] + offset])

    blocks = []
    for a, b in (genuine, impostor):
        first, second = np.minimum(a, b), np.maximum(a, b)
        sort = np.lexsort((second, first))
        blocks.append((first[sort], second[sort]))
    return Pairs(
        first=np.concatenate([blocks[0][0], blocks[1][0]]),
        second=np.concatenate([blocks[0][1], blocks[1][1]]),
        same=np.concatenate([np.ones(len(blocks[0][0]), bool), np.zeros(len(blocks[1][0]), bool)]),
    )


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64; an all-zero row stays zero (cosine 0 to anything)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [N, D], got shape {embeddings.shape}")
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def cosine_scores(embeddings: np.ndarray, pairs: Pairs) -> np.ndarray:
    """Cosine similarity of each pair's two embeddings.

    Args:
        embeddings: ``[N, D]`` one embedding per sample, indexed by the positions in ``pairs``.
        pairs: the pairs to score.

    Returns:
        ``float64 [P]`` scores in ``[-1, 1]``.
    """
    unit = _normalise(embeddings)
    if len(pairs) and max(pairs.first.max(), pairs.second.max()) >= len(unit):
        raise ValueError(f"pairs refer to samples beyond the {len(unit)} embeddings")
    return np.einsum("ij,ij->i", unit[pairs.first], unit[pairs.second])


def verification_metrics(scores: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """ROC AUC, EER, TAR at FAR 1e-2 and 1e-3, the oracle accuracy and its threshold.

    Conventions (a pair is accepted when ``score >= threshold``):

    - ``roc_auc``: ``sklearn.metrics.roc_auc_score`` (ties count one half).
    - ``eer``: the equal error rate. On the ROC curve (every threshold kept, points joined by
      straight lines), the first segment along which FRR - FAR changes sign from positive to
      non-positive is found, and the point where FAR = FRR on it is linearly interpolated; the EER is
      the FAR (= FRR) there. On a vertical segment (one genuine score between two impostor scores)
      this is the FAR of that segment; on a slanted segment (tied genuine and impostor scores) it lies
      between the two thresholds' rates. It is not the mean of FAR and FRR at the nearest threshold.
    - ``tar_at_far_1e-2`` / ``tar_at_far_1e-3``: the largest TAR among ROC points whose FAR is at most
      the target (FAR exactly equal to the target counts), without interpolation. The value is
      always defined since the point (0, 0) qualifies. With fewer than 1/FAR impostor pairs no
      false accept fits under the target, so the value is the TAR at zero false accepts (e.g.
      TAR@FAR=1e-3 on 500 impostor pairs); it is then a stricter number than its name says and only
      compares between runs on the same pair list.
    - ``oracle_accuracy``: the highest ``mean((score >= t) == same)`` over every threshold ``t`` of
      the ROC curve, including accepting nothing; ``oracle_threshold`` is that ``t`` (the highest
      one on a tie). An oracle: the threshold is chosen on the pairs it is scored on, so it is an
      upper bound of :func:`accuracy_at` any threshold fixed beforehand; on validation pairs it is
      how a threshold is chosen for the test. When accepting nothing is best, the threshold is the
      next float above the largest score, so that it stays finite in JSON.

    Args:
        scores: ``[P]`` pair scores, higher meaning more likely the same person.
        same: ``[P]`` True (or 1) for genuine pairs.

    Returns:
        ``roc_auc``, ``eer``, ``tar_at_far_1e-2``, ``tar_at_far_1e-3``, ``oracle_accuracy``,
        ``oracle_threshold``, as Python floats.

    Raises:
        ValueError: mismatched lengths, non-finite scores, or only one kind of pair.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    same = np.asarray(same).reshape(-1).astype(bool)
    if len(scores) != len(same):
        raise ValueError(f"{len(scores)} scores for {len(same)} targets")
    if not np.all(np.isfinite(scores)):
        raise ValueError("verification scores contain NaN or infinity (a diverged model?)")
    positives = int(same.sum())
    negatives = len(same) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"verification needs genuine and impostor pairs, got {positives} genuine and "
            f"{negatives} impostor"
        )
    fpr, tpr, thresholds = roc_curve(same, scores, drop_intermediate=False)
    fnr = 1.0 - tpr

    # first ROC point where FRR has fallen to FAR; point 0 is (FAR 0, FRR 1), the last (1, 0)
    crossing = int(np.argmax(fnr <= fpr))
    d0 = fpr[crossing - 1] - fnr[crossing - 1]  # < 0
    d1 = fpr[crossing] - fnr[crossing]  # >= 0
    t = d0 / (d0 - d1)
    eer = fpr[crossing - 1] + t * (fpr[crossing] - fpr[crossing - 1])

    accuracy = (tpr * positives + (1.0 - fpr) * negatives) / len(same)
    best = int(np.argmax(accuracy))  # first maximum: the highest threshold
    threshold = thresholds[best]
    if not np.isfinite(threshold):  # roc_curve's "accept nothing" point
        threshold = np.nextafter(scores.max(), np.inf)

    metrics = {
        "roc_auc": float(roc_auc_score(same, scores)),
        "eer": float(eer),
    }
    for name, far in FAR_TARGETS.items():
        metrics[name] = float(tpr[fpr <= far].max())
    metrics["oracle_accuracy"] = float(accuracy[best])
    metrics["oracle_threshold"] = float(threshold)
    return metrics


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Verification accuracy ``mean((score >= threshold) == same)`` at a threshold fixed beforehand
    (chosen on other people's pairs): the accuracy face-recognition papers report. NaN for a NaN
    threshold (none could be chosen)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    same = np.asarray(same).reshape(-1).astype(bool)
    if len(scores) != len(same):
        raise ValueError(f"{len(scores)} scores for {len(same)} targets")
    if np.isnan(threshold):
        return float("nan")
    return float(np.mean((scores >= threshold) == same))


def rank1_identification(embeddings: np.ndarray, labels: np.ndarray, gallery: np.ndarray) -> float:
    """Closed-set rank-1 identification rate: probes matched to the nearest gallery image.

    The gallery is the samples with ``gallery[i]`` True, exactly one per person. Every other sample
    is a probe; a probe is correct when the gallery image of highest cosine similarity shows its
    person (on an exact tie, the gallery image with the lowest sample index wins).

    Args:
        embeddings: ``[N, D]`` one embedding per sample.
        labels: ``[N]`` person of each sample.
        gallery: ``[N]`` True for the reference image of each person.

    Returns:
        Fraction of probes identified correctly.

    Raises:
        ValueError: mismatched lengths, a person with no gallery image or with several (the message
            names them), or no probe at all.
    """
    unit = _normalise(embeddings)
    labels = np.asarray(labels).reshape(-1)
    gallery = np.asarray(gallery).reshape(-1).astype(bool)
    if not len(unit) == len(labels) == len(gallery):
        raise ValueError(
            f"{len(unit)} embeddings, {len(labels)} labels and {len(gallery)} gallery flags differ"
        )
    people = np.unique(labels)
    gallery_labels = labels[gallery]
    values, counts = np.unique(gallery_labels, return_counts=True)
    doubled = values[counts > 1]
    if len(doubled):
        raise ValueError(
            f"one gallery image per person expected; people {_show(doubled)} have more than one"
        )
    absent = np.setdiff1d(people, values)
    if len(absent):
        raise ValueError(f"people {_show(absent)} have no gallery image")
    probes = np.flatnonzero(~gallery)
    if len(probes) == 0:
        raise ValueError("identification needs probe images besides the gallery")
    reference = unit[gallery].T
    correct = 0
    for start in range(0, len(probes), _PROBE_BLOCK):
        block = probes[start : start + _PROBE_BLOCK]
        nearest = np.argmax(unit[block] @ reference, axis=1)
        correct += int(np.sum(gallery_labels[nearest] == labels[block]))
    return correct / len(probes)


def _show(values: np.ndarray, limit: int = 10) -> str:
    """A short list of labels for an error message."""
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"[{shown}{more}]"


def recognition_metrics(
    embeddings: np.ndarray, labels: np.ndarray, gallery: np.ndarray, pairs: Pairs
) -> dict[str, float]:
    """Verification metrics on ``pairs`` and rank-1 identification: what a recognition task logs.

    Args:
        embeddings: ``[N, D]`` one embedding per sample.
        labels: ``[N]`` person of each sample.
        gallery: ``[N]`` True for the reference image of each person.
        pairs: verification pairs over the same samples (see :func:`make_pairs`).

    Returns:
        The keys of :func:`verification_metrics` plus ``rank1``.
    """
    metrics = verification_metrics(cosine_scores(embeddings, pairs), pairs.same)
    metrics["rank1"] = rank1_identification(embeddings, labels, gallery)
    return metrics
