"""Detection metrics: COCO mAP with the COCO API, VOC all-point AP, per-class AP and recall.

The framework's predictions (per image: boxes ``x_min, y_min, x_max, y_max``, labels 1..C,
scores) and ground truth are turned into COCO ground-truth and results structures
(:func:`coco_ground_truth`, :func:`coco_results`) and scored by the COCO evaluation
(:func:`evaluate_coco`), with ``faster_coco_eval`` (same numbers, C++ speed) or ``pycocotools``.
VOC mAP@0.5 uses all-point interpolation (VOC 2010 and later, :func:`voc_ap`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

__all__ = [
    "BACKENDS",
    "COCO_STATS",
    "CocoEvaluation",
    "DetectionScores",
    "coco_ground_truth",
    "coco_results",
    "detection_metrics",
    "evaluate_coco",
    "voc_ap",
    "voc_class_ap",
]

#: the 12 numbers of the COCO summary, in its order
COCO_STATS = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)
BACKENDS = ("faster_coco_eval", "pycocotools")


def coco_ground_truth(
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    categories: Sequence[str],
    file_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth dict: image ``k`` gets id ``k + 1``, label ``c`` category id ``c``.

    Args:
        boxes: per image, ``[N, 4]`` boxes ``x_min, y_min, x_max, y_max`` in pixels.
        labels: per image, ``[N]`` labels 1..C.
        sizes: per image, ``(width, height)``.
        categories: category names; label ``c`` is ``categories[c - 1]``.
        file_names: per image, its path (kept in the file for readers).
    """
    images, annotations = [], []
    for k, (image_boxes, image_labels, (width, height)) in enumerate(
        zip(boxes, labels, sizes, strict=True)
    ):
        name = file_names[k] if file_names is not None else str(k + 1)
        images.append({"id": k + 1, "width": int(width), "height": int(height), "file_name": name})
        for box, label in zip(np.asarray(image_boxes).reshape(-1, 4), image_labels, strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(categories)],
    }


def coco_results(
    boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """COCO results (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``), image
    ``k`` as id ``k + 1`` as in :func:`coco_ground_truth`."""
    results = []
    for k, (image_boxes, image_labels, image_scores) in enumerate(
        zip(boxes, labels, scores, strict=True)
    ):
        for box, label, score in zip(
            np.asarray(image_boxes).reshape(-1, 4), image_labels, image_scores, strict=True
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": k + 1,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    return results


@dataclass
class CocoEvaluation:
    """The outcome of a COCO evaluation.

    Args:
        stats: the 12 summary numbers by name (:data:`COCO_STATS`); -1 where undefined.
        precision: COCO's ``[T=10 IoUs, R=101 recalls, K classes, A=4 areas, M=3 max dets]``.
        recall: ``[T, K, A, M]``.
        category_ids: the category id of each K index.
        summary: the printed summary of the COCO API.
    """

    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list[int]
    summary: str = ""

    def per_class(self) -> dict[int, dict[str, float]]:
        """AP (0.5:0.95), AP50 and recall at IoU 0.5 (100 detections) per category id; -1 for a
        category without ground truth."""
        out = {}
        for k, category in enumerate(self.category_ids):
            precision = self.precision[:, :, k, 0, -1]
            valid = precision[precision > -1]
            at50 = precision[0][precision[0] > -1]
            out[category] = {
                "ap": float(valid.mean()) if valid.size else -1.0,
                "ap50": float(at50.mean()) if at50.size else -1.0,
                "recall50": float(self.recall[0, k, 0, -1]),
            }
        return out


def evaluate_coco(
    ground_truth: Mapping[str, Any] | str,
    results: Sequence[Mapping[str, Any]] | str,
    iou_type: str = "bbox",
    backend: str = "faster_coco_eval",
) -> CocoEvaluation:
    """Score COCO results against COCO ground truth (dicts or JSON file paths).

    No detections at all score 0 on every defined number (the COCO API refuses empty results).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        if isinstance(ground_truth, str):
            gt = COCO(ground_truth)
        else:
            gt = COCO()
            gt.dataset = dict(ground_truth)
            gt.createIndex()
        if isinstance(results, str):
            dt = gt.loadRes(results)
        elif results:
            dt = gt.loadRes([dict(r) for r in results])
        else:
            dt = None
        if dt is None:
            category_ids = sorted(gt.getCatIds())
            zeros = [0.0] * len(COCO_STATS)
            shape = (10, 101, len(category_ids), 4, 3)
            return CocoEvaluation(
                dict(zip(COCO_STATS, zeros, strict=True)),
                np.zeros(shape),
                np.zeros((10, len(category_ids), 4, 3)),
                category_ids,
                "no detections",
            )
        evaluation = COCOeval(gt, dt, iou_type)
        if backend == "faster_coco_eval":
            evaluation.print_function = print
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [float(v) for v in evaluation.stats[: len(COCO_STATS)]]
    return CocoEvaluation(
        dict(zip(COCO_STATS, stats, strict=True)),
        np.asarray(evaluation.eval["precision"]),
        np.asarray(evaluation.eval["recall"]),
        list(evaluation.params.catIds),
        printed.getvalue(),
    )


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
    gt = coco_ground_truth(
        [t["boxes"] for t in targets], [t["labels"] for t in targets], sizes, categories, file_names
    )
    results = coco_results(
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
