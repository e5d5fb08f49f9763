"""YOLO, an anchor-free one-stage detector built from timm and torchvision parts.

One module per stage: ``letterbox`` (input), ``backbone`` (timm), ``neck`` (PAN-FPN), ``head``
(decoupled), ``box_coder`` (points <-> boxes), ``assigner`` (task-aligned), ``loss``,
``postprocess`` (decoding, NMS); ``yolo`` composes them and holds the builders ``yolo_n/s/m``.
"""

from kbaselines.xray.yolo.assigner import Assignment, TaskAlignedAssigner
from kbaselines.xray.yolo.backbone import Backbone
from kbaselines.xray.yolo.box_coder import PointBoxCoder, make_anchor_points
from kbaselines.xray.yolo.head import DecoupledHead, HeadOutputs
from kbaselines.xray.yolo.letterbox import (
    LetterboxParams,
    LetterboxTransform,
    boxes_from_letterbox,
    boxes_to_letterbox,
    letterbox,
)
from kbaselines.xray.yolo.loss import YOLOLoss, distribution_focal_loss
from kbaselines.xray.yolo.neck import PAN, C2f
from kbaselines.xray.yolo.postprocess import decode_detections, select_detections
from kbaselines.xray.yolo.yolo import YOLO, YOLORawOutputs, yolo_m, yolo_n, yolo_s

__all__ = [
    "PAN",
    "YOLO",
    "Assignment",
    "Backbone",
    "C2f",
    "DecoupledHead",
    "HeadOutputs",
    "LetterboxParams",
    "LetterboxTransform",
    "PointBoxCoder",
    "TaskAlignedAssigner",
    "YOLOLoss",
    "YOLORawOutputs",
    "boxes_from_letterbox",
    "boxes_to_letterbox",
    "decode_detections",
    "distribution_focal_loss",
    "letterbox",
    "make_anchor_points",
    "select_detections",
    "yolo_m",
    "yolo_n",
    "yolo_s",
]
