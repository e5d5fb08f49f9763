"""X-ray detection metrics: COCO mAP, VOC all-point AP, per-class AP and recall.

The framework's predictions (per image: boxes ``x_min, y_min, x_max, y_max``, labels 1..C,
scores) and ground truth are turned into COCO ground-truth and results structures and scored by
the shared COCO evaluation (:func:`kbaselines.core.metrics.coco.evaluate_coco`), with
``faster_coco_eval`` (same numbers, C++ speed) or ``pycocotools``. VOC mAP@0.5 uses all-point
interpolation (VOC 2010 and later, :func:`voc_ap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from kbaselines.core.metrics.coco import (
    CocoEvaluation,
    box_ground_truth,
    box_results,
    evaluate_coco,
)

__all__ = ["DetectionScores", "detection_metrics", "voc_ap", "voc_class_ap"]


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point interpolated AP (VOC 2010+): area under the precision envelope.

    Args:
        recall: cumulative recall after each detection (sorted by score, descending).
        precision: cumulative precision after each detection.
    """
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=float), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, dtype=float), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_class_ap(
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    iou_threshold: float = 0.5,
) -> tuple[float, float]:
    """VOC AP and final recall of one class: detections sorted by score, each matched greedily to
    the unmatched ground-truth box of its image with the highest IoU >= ``iou_threshold``.

    Returns:
        ``(ap, recall)``; ``(nan, nan)`` when the class has no ground truth.
    """
    total = sum(len(g) for g in gt_boxes)
    if total == 0:
        return float("nan"), float("nan")
    ious = [
        box_iou(
            torch.as_tensor(np.asarray(p, dtype=np.float64).reshape(-1, 4)),
            torch.as_tensor(np.asarray(g, dtype=np.float64).reshape(-1, 4)),
        ).numpy()
        for p, g in zip(pred_boxes, gt_boxes, strict=True)
    ]
    order = [(float(s), i, j) for i, scores in enumerate(pred_scores) for j, s in enumerate(scores)]
    order.sort(key=lambda t: -t[0])
    used = [np.zeros(len(g), dtype=bool) for g in gt_boxes]
    hits = np.zeros(len(order))
    for n, (_, i, j) in enumerate(order):
        if len(gt_boxes[i]) == 0:
            continue
        best = int(ious[i][j].argmax())
        if ious[i][j][best] >= iou_threshold and not used[i][best]:
            used[i][best] = True
            hits[n] = 1
    tp = np.cumsum(hits)
    recall = tp / total
    precision = tp / np.arange(1, len(order) + 1)
    if not order:
        return 0.0, 0.0
    return voc_ap(recall, precision), float(recall[-1])


@dataclass
class DetectionScores:
    """Every number of a detection evaluation, and the COCO evaluation behind them.

    ``metrics`` are flat (``map``, ``map50`` ..., ``voc_map50``, ``ap/<category>``,
    ``ap50/<category>``, ``recall50/<category>``); ``per_class`` has one row per category.
    """

    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    coco: CocoEvaluation
    ground_truth: dict[str, Any] = field(repr=False)
    results: list[dict[str, Any]] = field(repr=False)


def detection_metrics(
    predictions: Sequence[Mapping[str, np.ndarray]],
    targets: Sequence[Mapping[str, np.ndarray]],
    sizes: Sequence[tuple[int, int]],
    categories: Sequence[str],
    file_names: Sequence[str] | None = None,
    backend: str = "faster_coco_eval",
) -> DetectionScores:
    """COCO and VOC metrics of per-image predictions ``{"boxes", "labels", "scores"}`` against
    targets ``{"boxes", "labels"}`` (numpy, pixels of the ``(width, height)`` images)."""
    gt = box_ground_truth(
        [t["boxes"] for t in targets], [t["labels"] for t in targets], sizes, categories, file_names
    )
    results = box_results(
        [p["boxes"] for p in predictions],
        [p["labels"] for p in predictions],
        [p["scores"] for p in predictions],
    )
    coco = evaluate_coco(gt, results, backend=backend)
    metrics = dict(coco.stats)
    per_class_coco = coco.per_class()
    rows, voc = [], []
    for label, name in enumerate(categories, start=1):
        chosen = [np.asarray(p["labels"]) == label for p in predictions]
        ap, _ = voc_class_ap(
            [
                np.asarray(p["boxes"]).reshape(-1, 4)[m]
                for p, m in zip(predictions, chosen, strict=True)
            ],
            [np.asarray(p["scores"])[m] for p, m in zip(predictions, chosen, strict=True)],
            [
                np.asarray(t["boxes"]).reshape(-1, 4)[np.asarray(t["labels"]) == label]
                for t in targets
            ],
        )
        num_gt = int(sum(int((np.asarray(t["labels"]) == label).sum()) for t in targets))
        row = {"category": name, "num_gt": num_gt, **per_class_coco.get(label, {}), "voc_ap50": ap}
        rows.append(row)
        if num_gt:
            voc.append(ap)
            for key in ("ap", "ap50", "recall50"):
                metrics[f"{key}/{name}"] = float(row.get(key, 0.0))
    metrics["voc_map50"] = float(np.mean(voc)) if voc else 0.0
    return DetectionScores(metrics, rows, coco, gt, results)
