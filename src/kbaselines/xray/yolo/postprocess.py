"""From dense per-point scores and boxes to a short list of detections per image.

Every (point, class) pair above a score threshold is a candidate (multi-label, as YOLOv8 and
torchvision's RetinaNet); the best ``pre_nms_top_n`` go through class-wise NMS
(``torchvision.ops.batched_nms``) and the best ``detections_per_img`` survivors are kept.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, remove_small_boxes

__all__ = ["select_detections"]


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    score_thresh: float = 0.001,
    nms_thresh: float = 0.7,
    detections_per_img: int = 300,
    pre_nms_top_n: int = 10000,
    min_size: float = 1e-2,
) -> dict[str, torch.Tensor]:
    """Detections of one image.

    Args:
        boxes: FloatTensor[A, 4], one xyxy box per point.
        scores: FloatTensor[A, C], class probabilities per point.
        score_thresh: candidates must score above this.
        nms_thresh: IoU above which a lower-scored box of the same class is suppressed.
        detections_per_img: at most this many detections are returned.
        pre_nms_top_n: at most this many candidates enter NMS.
        min_size: boxes narrower or lower than this (pixels) are dropped.

    Returns:
        ``boxes`` (FloatTensor[K, 4]), ``scores`` (FloatTensor[K]) and ``labels``
        (Int64Tensor[K], ``1..C``: 0 is the background in torchvision's convention), by score.
    """
    flat = scores.flatten()
    keep = torch.nonzero(flat > score_thresh).squeeze(1)
    if keep.numel() > pre_nms_top_n:
        keep = keep[flat[keep].topk(pre_nms_top_n).indices]
    num_classes = scores.shape[1]
    point_idx, class_idx = keep // num_classes, keep % num_classes
    cand_boxes, cand_scores = boxes[point_idx], flat[keep]
    valid = remove_small_boxes(cand_boxes, min_size)
    cand_boxes, cand_scores, class_idx = cand_boxes[valid], cand_scores[valid], class_idx[valid]
    kept = batched_nms(cand_boxes, cand_scores, class_idx, nms_thresh)[:detections_per_img]
    return {
        "boxes": cand_boxes[kept],
        "scores": cand_scores[kept],
        "labels": class_idx[kept] + 1,
    }
