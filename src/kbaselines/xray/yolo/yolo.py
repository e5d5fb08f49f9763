"""YOLO: a present-day one-stage, anchor-free detector in the YOLOv8 mould, from timm parts.

Design (each part its own module): letterbox input (``letterbox``) -> timm CSP-Darknet backbone at
strides 8/16/32 (``backbone``) -> PAN-FPN neck with C2f blocks (``neck``) -> decoupled head with
distribution box regression (``head``, ``box_coder``) -> training: task-aligned assignment
(``assigner``) and BCE + CIoU + DFL losses (``loss``); inference: score threshold, class-wise
``torchvision.ops.batched_nms``, boxes mapped back to the original image (``postprocess``).

References: Jocher et al., Ultralytics YOLOv8 (2023); Ge et al., YOLOX (arXiv:2107.08430); Feng et
al., TOOD (ICCV 2021); Li et al., Generalized Focal Loss (NeurIPS 2020); Zheng et al., CIoU (AAAI 2020).

It follows torchvision's detection interface, so the same LightningModule trains it and Faster
R-CNN: in training ``net(images, targets)`` returns a dict of losses, in eval ``net(images)``
returns one dict of ``boxes`` (xyxy, original pixels), ``labels`` (``1..num_classes``), ``scores``
per image.

Sizes (width / depth multipliers of the backbone, neck depth); parameter counts for 80 classes
(COCO) at 640 px, for comparison with YOLOv8 n/s/m (3.2M / 11.2M / 25.9M):
``yolo_n`` cs3darknet 0.25 / 0.33, neck depth 1: 2,526,104;
``yolo_s`` ``cs3darknet_s`` (0.5 / 0.5), neck depth 1: 8,850,176;
``yolo_m`` ``cs3darknet_m`` (0.75 / 0.67), neck depth 2: 26,275,944.
The counts do not depend on the input size (the head's class-bias prior does).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kbaselines.xray.yolo.assigner import TaskAlignedAssigner
from kbaselines.xray.yolo.backbone import Backbone
from kbaselines.xray.yolo.box_coder import PointBoxCoder, make_anchor_points
from kbaselines.xray.yolo.head import DecoupledHead, HeadOutputs
from kbaselines.xray.yolo.letterbox import LetterboxTransform
from kbaselines.xray.yolo.loss import YOLOLoss
from kbaselines.xray.yolo.neck import PAN
from kbaselines.xray.yolo.postprocess import decode_detections

__all__ = ["YOLO", "YOLORawOutputs", "yolo_m", "yolo_n", "yolo_s"]


class YOLO(nn.Module):
    """Anchor-free YOLO detector.

    Args:
        num_classes: object classes, background excluded (labels are ``1..num_classes``).
        backbone: timm model name of the backbone.
        width_multiplier: backbone width multiplier (cs3darknet family only).
        depth_multiplier: backbone depth multiplier (cs3darknet family only).
        neck_depth: bottlenecks per C2f block of the neck.
        in_chans: input channels.
        image_size: side of the letterboxed square input (multiple of 32).
        reg_max: bins of the box-side distributions (largest box side about
            ``2 * (reg_max - 1) * 32`` pixels).
        topk: task-aligned assigner positives per object.
        alpha: assigner class-score exponent.
        beta: assigner IoU exponent.
        cls_weight: classification loss gain.
        box_weight: box IoU loss gain.
        dfl_weight: distribution focal loss gain.
        box_loss: ``"ciou"`` or ``"giou"``.
        score_thresh: inference score threshold.
        nms_thresh: inference NMS IoU threshold.
        detections_per_img: inference detections kept per image.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "cs3darknet_s",
        width_multiplier: float | None = None,
        depth_multiplier: float | None = None,
        neck_depth: int = 1,
        in_chans: int = 3,
        image_size: int = 640,
        reg_max: int = 16,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        cls_weight: float = 0.5,
        box_weight: float = 7.5,
        dfl_weight: float = 1.5,
        box_loss: str = "ciou",
        score_thresh: float = 0.001,
        nms_thresh: float = 0.7,
        detections_per_img: int = 300,
    ) -> None:
        super().__init__()
        if not num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive number, got {num_classes}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = image_size
        self.transform = LetterboxTransform(image_size)
        self.backbone = Backbone(backbone, width_multiplier, depth_multiplier, in_chans)
        self.neck = PAN(self.backbone.out_channels, depth=neck_depth)
        self.head = DecoupledHead(
            self.neck.out_channels, num_classes, self.backbone.strides, reg_max, image_size
        )
        self.box_coder = PointBoxCoder(reg_max)
        self.loss = YOLOLoss(
            self.box_coder,
            TaskAlignedAssigner(topk, alpha, beta),
            cls_weight=cls_weight,
            box_weight=box_weight,
            dfl_weight=dfl_weight,
            box_loss=box_loss,
        )
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img

    def get_classifier(self) -> nn.ModuleList:
        """The last class convolution of every level (the only data-sized layers)."""
        return nn.ModuleList(branch[-1] for branch in self.head.cls_branches)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Neck maps at strides 8, 16, 32 of a letterboxed batch ``[B, C, S, S]``."""
        return self.neck(self.backbone(x))

    def head_outputs(self, x: torch.Tensor) -> HeadOutputs:
        """The head's raw logits of a letterboxed batch ``[B, C, S, S]``: what an export returns,
        decoded by :func:`~kbaselines.xray.yolo.postprocess.decode_detections`."""
        return self.head(self.forward_features(x))

    def forward(
        self,
        images: list[torch.Tensor],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Losses (training) or detections (eval).

        Args:
            images: Tensor[C, H, W] floats in 0..1, any sizes.
            targets: training only; per image ``boxes`` (FloatTensor[N, 4], xyxy pixels) and
                ``labels`` (Int64Tensor[N], ``1..num_classes``).

        Returns:
            training: ``{"loss_cls", "loss_box", "loss_dfl"}``; eval: per image ``boxes``
            (FloatTensor[K, 4], xyxy original pixels), ``labels`` (Int64Tensor[K]), ``scores``.
        """
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            self._check_targets(targets)
        batch, targets, params = self.transform(images, targets)
        outputs = self.head_outputs(batch)
        if self.training:
            points, strides = make_anchor_points(
                outputs.sizes, self.head.strides, batch.device, outputs.box_logits.dtype
            )
            return self.loss(outputs.cls_logits, outputs.box_logits, points, strides, targets)
        detections = decode_detections(
            outputs.cls_logits,
            outputs.box_logits,
            outputs.sizes,
            self.head.strides,
            self.box_coder.reg_max,
            self.score_thresh,
            self.nms_thresh,
            self.detections_per_img,
        )
        return self.transform.postprocess(detections, params)

    def _check_targets(self, targets: list[dict[str, torch.Tensor]]) -> None:
        for i, target in enumerate(targets):
            boxes, labels = target["boxes"], target["labels"]
            if boxes.dim() != 2 or boxes.shape[-1] != 4 or len(boxes) != len(labels):
                raise ValueError(
                    f"target {i}: expected boxes [N, 4] and N labels, got boxes "
                    f"{tuple(boxes.shape)} and labels {tuple(labels.shape)}"
                )
            if len(labels) and (labels.min() < 1 or labels.max() > self.num_classes):
                raise ValueError(
                    f"target {i}: labels must lie in 1..{self.num_classes}, got "
                    f"{labels.min().item()}..{labels.max().item()}"
                )
            if len(boxes) and not (boxes[:, 2:] > boxes[:, :2]).all():
                raise ValueError(f"target {i}: every box needs x2 > x1 and y2 > y1 (xyxy)")


class YOLORawOutputs(nn.Module):
    """A YOLO from a letterboxed batch ``[B, C, S, S]`` (0..1) to its raw head outputs,
    ``cls_logits`` ``[B, A, C]`` and ``box_logits`` ``[B, A, 4 * reg_max]``: the graph an export
    holds; :func:`~kbaselines.xray.yolo.postprocess.decode_detections` decodes them after it."""

    def __init__(self, yolo: YOLO) -> None:
        super().__init__()
        self.yolo = yolo

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.yolo.head_outputs(x)
        return outputs.cls_logits, outputs.box_logits


def _create_yolo(variant_args: dict[str, Any], **kwargs: Any) -> YOLO:
    return YOLO(**dict(variant_args, **kwargs))


def yolo_n(num_classes: int, **kwargs: Any) -> YOLO:
    """YOLO nano: cs3darknet at width 0.25, depth 0.33; neck depth 1."""
    args = dict(backbone="cs3darknet_s", width_multiplier=0.25, depth_multiplier=0.33, neck_depth=1)
    return _create_yolo(args, num_classes=num_classes, **kwargs)


def yolo_s(num_classes: int, **kwargs: Any) -> YOLO:
    """YOLO small: timm ``cs3darknet_s`` (width 0.5, depth 0.5); neck depth 1."""
    return _create_yolo(
        dict(backbone="cs3darknet_s", neck_depth=1), num_classes=num_classes, **kwargs
    )


def yolo_m(num_classes: int, **kwargs: Any) -> YOLO:
    """YOLO medium: timm ``cs3darknet_m`` (width 0.75, depth 0.67); neck depth 2."""
    return _create_yolo(
        dict(backbone="cs3darknet_m", neck_depth=2), num_classes=num_classes, **kwargs
    )
