"""Task-aligned label assignment (TOOD, Feng et al., ICCV 2021; as used by YOLOv8).

Which anchor points learn which object is decided from the predictions themselves: for every
ground-truth box, the points inside it are ranked by the alignment metric
``t = s^alpha * u^beta`` (``s`` the predicted score of the box's class, ``u`` the IoU of the
predicted box with the ground truth) and the ``topk`` best become positives. A point chosen by
several boxes keeps the one it overlaps most. Classification targets are soft: the point's ``t``,
rescaled so that the best point of each object gets that object's best IoU; the loss thus asks
for scores that rank boxes by localisation quality (IoU-aware classification).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import box_iou

__all__ = ["Assignment", "TaskAlignedAssigner"]


@dataclass
class Assignment:
    """Targets of one image's ``A`` points.

    Attributes:
        foreground: BoolTensor[A], the positive points.
        gt_index: Int64Tensor[A], the assigned ground-truth box (meaningful where foreground).
        boxes: FloatTensor[A, 4], the assigned box (xyxy; meaningful where foreground).
        scores: FloatTensor[A, C], soft class targets (zero on background points).
    """

    foreground: torch.Tensor
    gt_index: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor


class TaskAlignedAssigner(nn.Module):
    """Assigns ground-truth boxes to anchor points by the task-alignment metric.

    Args:
        topk: positives per object (before resolving points claimed twice).
        alpha: exponent of the class score in the metric.
        beta: exponent of the IoU in the metric.
        eps: guards divisions and the point-inside-box test.
    """

    def __init__(
        self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9
    ) -> None:
        super().__init__()
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def forward(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        points: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
    ) -> Assignment:
        """Assign one image.

        Args:
            pred_scores: FloatTensor[A, C], predicted class probabilities (after sigmoid).
            pred_boxes: FloatTensor[A, 4], predicted xyxy boxes.
            points: FloatTensor[A, 2], anchor points ``x, y``, same pixels as the boxes.
            gt_boxes: FloatTensor[M, 4], xyxy ground-truth boxes.
            gt_labels: Int64Tensor[M], their classes ``0..C-1``.

        Returns:
            the :class:`Assignment` of every point.
        """
        num_points, num_classes = pred_scores.shape
        if gt_boxes.numel() == 0:
            return Assignment(
                foreground=torch.zeros(num_points, dtype=torch.bool, device=points.device),
                gt_index=torch.zeros(num_points, dtype=torch.long, device=points.device),
                boxes=pred_boxes.new_zeros(num_points, 4),
                scores=pred_scores.new_zeros(num_points, num_classes),
            )
        inside = self._inside(points, gt_boxes)  # [M, A]
        ious = box_iou(gt_boxes, pred_boxes).clamp(min=0) * inside  # [M, A]
        class_scores = pred_scores[:, gt_labels].T  # [M, A]
        metric = class_scores.pow(self.alpha) * ious.pow(self.beta) * inside
        topk = min(self.topk, num_points)
        top_idx = metric.topk(topk, dim=1).indices  # [M, k]
        candidates = torch.zeros_like(inside).scatter_(1, top_idx, True) & inside  # [M, A]

        # a point claimed by several objects keeps the one it overlaps most
        claimed = candidates.sum(0) > 1
        if claimed.any():
            best = ious.argmax(0)  # [A]
            only_best = torch.zeros_like(candidates).scatter_(0, best[None], True)
            candidates = torch.where(claimed[None], only_best & candidates, candidates)

        foreground = candidates.any(0)
        gt_index = candidates.to(torch.uint8).argmax(0)
        metric = metric * candidates
        best_metric = metric.amax(1, keepdim=True)  # [M, 1]
        best_iou = (ious * candidates).amax(1, keepdim=True)  # [M, 1]
        quality = (metric * best_iou / (best_metric + self.eps)).amax(0)  # [A]
        scores = torch.zeros_like(pred_scores)
        scores[torch.arange(num_points, device=points.device), gt_labels[gt_index]] = quality
        scores = scores * foreground[:, None]
        return Assignment(foreground, gt_index, gt_boxes[gt_index], scores)

    def _inside(self, points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """BoolTensor[M, A]: point ``a`` lies strictly inside box ``m``."""
        left_top = points[None] - boxes[:, None, :2]
        right_bottom = boxes[:, None, 2:] - points[None]
        return torch.cat([left_top, right_bottom], dim=-1).amin(-1) > self.eps
