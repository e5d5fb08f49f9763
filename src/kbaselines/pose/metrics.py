"""2D pose metrics as pose.md fixes them: PCKh@0.5 per joint and mean, COCO-style OKS AP.

PCKh: a joint is correct when within ``0.5 x`` the head segment (ground-truth ``head`` to ``neck``
distance) of the ground truth; MPII's own 0.6 x head-box diagonal needs a head box these
annotations lack. A person whose head or neck is unlabelled is left out and counted.
OKS AP: the COCO evaluation itself (:func:`kbaselines.core.metrics.coco.evaluate_coco` with
pycocotools), with the box area (width x height) as the object area and the dataset's per-joint
sigmas, given as an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from kbaselines.core.metrics.coco import evaluate_coco

__all__ = ["match_detections", "oks_ap", "pckh"]


def pckh(
    pred: np.ndarray, gt: np.ndarray, *, head: int, neck: int, threshold: float = 0.5
) -> dict[str, Any]:
    """PCKh of predictions ``[N, J, 2]`` against ground truth ``[N, J, 3]`` (x, y, v).

    Args:
        pred: predicted joints.
        gt: ground-truth joints with their visibility flags (0: unlabelled).
        head: index of the joint at the top of the head segment (the dataset's, given so that
            the metric knows no joint order of its own).
        neck: index of the joint at its bottom.
        threshold: fraction of the head segment within which a joint is correct.

    Returns:
        ``per_joint`` ``[J]`` (NaN for a joint never labelled), ``mean`` over every labelled joint
        of the scored people, ``correct`` ``[N, J]`` booleans, ``scored`` ``[N, J]`` booleans, and
        ``excluded`` (people without a labelled head and neck).
    """
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    has_head = (gt[:, head, 2] > 0) & (gt[:, neck, 2] > 0)
    segment = np.linalg.norm(gt[:, head, :2] - gt[:, neck, :2], axis=1)
    scored = (gt[:, :, 2] > 0) & has_head[:, None]
    dist = np.linalg.norm(pred - gt[:, :, :2], axis=2)
    correct = scored & (dist <= threshold * segment[:, None])
    counts = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, correct.sum(axis=0) / counts, np.nan)
    mean = float(correct.sum() / scored.sum()) if scored.any() else float("nan")
    return {
        "per_joint": per_joint,
        "mean": mean,
        "correct": correct,
        "scored": scored,
        "excluded": int((~has_head).sum()),
    }


def match_detections(
    gt_boxes: np.ndarray,
    gt_images: Sequence[int],
    det_boxes: np.ndarray,
    det_images: Sequence[int],
    det_scores: np.ndarray,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """The detection evaluated for each ground-truth person, by box (x1 y1 x2 y2) IoU.

    Greedy as the COCO evaluation: detections in descending score each take the still unmatched
    person of their image with the highest IoU, if at least ``iou_threshold``. PCKh and the 3D
    metrics score a person with its matched detection's joints; a person without one is missed.

    Returns:
        ``[N]`` detection indices, -1 for a person no detection matched.
    """
    gt_images, det_images = np.asarray(gt_images), np.asarray(det_images)
    matched = np.full(len(gt_images), -1)
    if len(gt_images) == 0 or len(det_images) == 0:
        return matched
    iou = box_iou(
        torch.as_tensor(np.asarray(gt_boxes, float)), torch.as_tensor(np.asarray(det_boxes, float))
    ).numpy()
    iou[gt_images[:, None] != det_images[None, :]] = -1.0
    for d in np.argsort(-np.asarray(det_scores), kind="stable"):
        candidates = np.where(matched < 0, iou[:, d], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            matched[best] = d
    return matched


def oks_ap(
    gt_keypoints: np.ndarray,
    gt_boxes: np.ndarray,
    image_ids: Sequence[int],
    pred_keypoints: np.ndarray,
    pred_scores: np.ndarray,
    pred_image_ids: Sequence[int] | None = None,
    *,
    sigmas: Sequence[float],
) -> dict[str, float]:
    """COCO-style OKS AP of pose.md: people ``[N, J, 3]`` with boxes ``[N, 4]`` (x1 y1 x2 y2, whose
    area is the object area) in ``image_ids``; predictions ``[M, J, 2]`` with scores ``[M]`` in
    ``pred_image_ids`` (default: the people's, one prediction per person); ``sigmas`` ``[J]`` are
    the dataset's per-joint OKS sigmas.

    Returns:
        COCO's 10 keypoint numbers by :data:`~kbaselines.core.metrics.coco.KEYPOINT_STATS` name
        (pycocotools, the reference); -1 where COCO has no ground truth for a number.
    """
    gt_keypoints = np.asarray(gt_keypoints, float)
    images = sorted({int(i) for i in image_ids})
    annotations = []
    for k, (kp, box, image) in enumerate(zip(gt_keypoints, gt_boxes, image_ids, strict=True)):
        x1, y1, x2, y2 = (float(v) for v in box)
        flags = np.where(kp[:, 2] > 0, kp[:, 2], 0)
        flat = np.column_stack([kp[:, :2] * (flags[:, None] > 0), flags]).ravel()
        annotations.append(
            {
                "id": k + 1,
                "image_id": int(image),
                "category_id": 1,
                "keypoints": flat.tolist(),
                "num_keypoints": int((flags > 0).sum()),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
        )
    gt = {
        "images": [{"id": i} for i in images],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    pred_image_ids = image_ids if pred_image_ids is None else pred_image_ids
    detections = [
        {
            "image_id": int(image),
            "category_id": 1,
            "keypoints": np.column_stack([kp[:, :2], np.ones(len(kp))]).ravel().tolist(),
            "score": float(score),
        }
        for kp, score, image in zip(pred_keypoints, pred_scores, pred_image_ids, strict=True)
    ]
    return evaluate_coco(gt, detections, "keypoints", backend="pycocotools", sigmas=sigmas).stats
