"""The YOLO training loss: IoU-aware classification, CIoU box regression, distribution focal loss.

Targets come from :class:`~kbaselines.xray.yolo.assigner.TaskAlignedAssigner`. As in YOLOv8:
- classification: binary cross-entropy of every (point, class) logit against the soft
  task-aligned target (0 on background), so the score learns to predict localisation quality;
- box: ``torchvision.ops.complete_box_iou_loss`` (or ``generalized_box_iou_loss``) of positive
  points, weighted by their target score;
- DFL (Li et al., Generalized Focal Loss, NeurIPS 2020): cross-entropy of the two bins around each
  target distance, weighted by distance to them.
All three are normalised by the sum of target scores of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import complete_box_iou_loss, generalized_box_iou_loss

from kbaselines.xray.yolo.assigner import TaskAlignedAssigner
from kbaselines.xray.yolo.box_coder import PointBoxCoder

__all__ = ["YOLOLoss", "distribution_focal_loss"]

BOX_LOSSES = {"ciou": complete_box_iou_loss, "giou": generalized_box_iou_loss}


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL per box (Tensor[N]) from bin logits ``[N, 4, reg_max]`` and distances ``[N, 4]`` in
    bins (``0 <= target < reg_max - 1``), averaged over the four sides."""
    left = target.long()
    right = left + 1
    weight_left = right.to(target.dtype) - target
    weight_right = 1 - weight_left
    logits = logits.flatten(0, 1)
    loss_left = F.cross_entropy(logits, left.flatten(), reduction="none")
    loss_right = F.cross_entropy(logits, right.flatten(), reduction="none")
    loss = loss_left * weight_left.flatten() + loss_right * weight_right.flatten()
    return loss.view(target.shape).mean(-1)


class YOLOLoss(nn.Module):
    """Assigns targets and computes the three YOLO losses.

    Args:
        box_coder: the head's point-box coder (its ``reg_max``).
        assigner: the label assigner.
        cls_weight: gain of the classification loss.
        box_weight: gain of the box IoU loss.
        dfl_weight: gain of the distribution focal loss (0 turns it off).
        box_loss: ``"ciou"`` or ``"giou"``.
    """

    def __init__(
        self,
        box_coder: PointBoxCoder,
        assigner: TaskAlignedAssigner | None = None,
        cls_weight: float = 0.5,
        box_weight: float = 7.5,
        dfl_weight: float = 1.5,
        box_loss: str = "ciou",
    ) -> None:
        super().__init__()
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {sorted(BOX_LOSSES)}, got {box_loss!r}")
        self.box_coder = box_coder
        self.assigner = assigner if assigner is not None else TaskAlignedAssigner()
        self.cls_weight = cls_weight
        self.box_weight = box_weight
        self.dfl_weight = dfl_weight
        self.box_loss = BOX_LOSSES[box_loss]

    def forward(
        self,
        cls_logits: torch.Tensor,
        box_logits: torch.Tensor,
        points: torch.Tensor,
        strides: torch.Tensor,
        targets: list[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """The losses of a batch.

        Args:
            cls_logits: FloatTensor[B, A, C].
            box_logits: FloatTensor[B, A, 4 * reg_max].
            points: FloatTensor[A, 2], anchor points in input pixels.
            strides: FloatTensor[A, 1].
            targets: per image ``boxes`` (FloatTensor[M, 4], xyxy input pixels) and ``labels``
                (Int64Tensor[M], ``1..C``).

        Returns:
            ``loss_cls``, ``loss_box``, ``loss_dfl``: weighted scalar tensors.
        """
        pred_boxes = self.box_coder.decode(points, strides, self.box_coder.expectation(box_logits))
        pred_scores = cls_logits.detach().sigmoid()
        assignments = [
            self.assigner(
                pred_scores[i],
                pred_boxes[i].detach(),
                points,
                t["boxes"].to(pred_boxes.dtype),
                t["labels"] - 1,
            )
            for i, t in enumerate(targets)
        ]
        target_scores = torch.stack([a.scores for a in assignments])
        foreground = torch.stack([a.foreground for a in assignments])
        target_boxes = torch.stack([a.boxes for a in assignments])
        normaliser = target_scores.sum().clamp(min=1)

        loss_cls = (
            F.binary_cross_entropy_with_logits(cls_logits, target_scores, reduction="sum")
            / normaliser
        )
        weight = target_scores.sum(-1)[foreground]
        if foreground.any():
            loss_box = (
                self.box_loss(pred_boxes[foreground], target_boxes[foreground], reduction="none")
                * weight
            ).sum() / normaliser
            fg_points = points.expand(len(targets), -1, -1)[foreground]
            fg_strides = strides.expand(len(targets), -1, -1)[foreground]
            target_dist = self.box_coder.encode(fg_points, fg_strides, target_boxes[foreground])
            fg_logits = box_logits[foreground].unflatten(-1, (4, self.box_coder.reg_max))
            loss_dfl = (distribution_focal_loss(fg_logits, target_dist) * weight).sum() / normaliser
        else:  # keep the graph connected so every parameter gets a (zero) gradient
            loss_box = loss_dfl = box_logits.sum() * 0.0
        return {
            "loss_cls": loss_cls * self.cls_weight,
            "loss_box": loss_box * self.box_weight,
            "loss_dfl": loss_dfl * self.dfl_weight,
        }
