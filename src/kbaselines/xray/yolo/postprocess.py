"""From the head's raw outputs to a short list of detections per image.

:func:`decode_detections` reads the box distributions at every anchor point and turns the class
logits into scores; :func:`select_detections` keeps, per image, every (point, class) pair above a
score threshold as a candidate (multi-label, as YOLOv8 and torchvision's RetinaNet), puts the best
``pre_nms_top_n`` through class-wise NMS (``torchvision.ops.batched_nms``) and keeps the best
``detections_per_img`` survivors. The evaluation runs both inside :class:`~kbaselines.xray.yolo.YOLO`;
an exported YOLO (raw head outputs) runs :func:`decode_detections` after the graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms, remove_small_boxes

from kbaselines.xray.yolo.box_coder import PointBoxCoder, make_anchor_points

__all__ = ["decode_detections", "select_detections"]


def decode_detections(
    cls_logits: torch.Tensor,
    box_logits: torch.Tensor,
    sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    reg_max: int,
    score_thresh: float = 0.001,
    nms_thresh: float = 0.7,
    detections_per_img: int = 300,
) -> list[dict[str, torch.Tensor]]:
    """Detections of a batch from the head's raw outputs, boxes in the letterboxed square's pixels.

    Args:
        cls_logits: FloatTensor[B, A, C], class logits per anchor point.
        box_logits: FloatTensor[B, A, 4 * reg_max], logits of the four box-side distributions.
        sizes: ``(h, w)`` of each level's map (``S / stride`` for an ``S x S`` input).
        strides: the stride of each level (8, 16, 32).
        reg_max: bins per box side.
        score_thresh, nms_thresh, detections_per_img: as :func:`select_detections`.

    Returns:
        per image, :func:`select_detections`'s ``boxes``, ``scores`` and ``labels``; map the boxes
        to the original image with :func:`~kbaselines.xray.yolo.letterbox.boxes_from_letterbox`.
    """
    coder = PointBoxCoder(reg_max)
    points, point_strides = make_anchor_points(sizes, strides, box_logits.device, box_logits.dtype)
    boxes = coder.decode(points, point_strides, coder.expectation(box_logits))
    scores = cls_logits.sigmoid()
    return [
        select_detections(b, s, score_thresh, nms_thresh, detections_per_img)
        for b, s in zip(boxes, scores, strict=True)
    ]


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
