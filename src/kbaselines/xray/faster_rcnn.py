"""Faster R-CNN (Ren et al. 2015) builders: torchvision's detectors, and a small one for CPU tests.

Every builder returns a torchvision :class:`~torchvision.models.detection.FasterRCNN`, whose
interface the detection task relies on: ``net(images, targets)`` gives the loss dict in training,
``net(images)`` the ``[{"boxes", "labels", "scores"}]`` detections in eval. ``num_classes`` counts
the object categories without the background (labels are 1..num_classes); it is kept as
``net.num_classes`` so that a checkpoint can be rebuilt. ``min_size``/``max_size`` are
torchvision's own resize of the input. No weights are downloaded: networks start from scratch
unless a checkpoint is loaded.

- :func:`fasterrcnn_resnet50_fpn_v2`: the default (COCO box AP 46.7 with ImageNet training).
- :func:`fasterrcnn_mobilenet_v3_large_fpn`: the fast one (COCO box AP 32.8).
- :func:`fasterrcnn_small`: a small timm backbone with an FPN and a light box head, trainable on a
  CPU in minutes (the learning test).

:class:`SingleImageDetector` is the graph an export holds: one image in, its detections out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import timm
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn as _tv_mobilenet,
)
from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2 as _tv_resnet50_v2
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

__all__ = [
    "SingleImageDetector",
    "TimmFPNBackbone",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_small",
]


def _sized(net: FasterRCNN, num_classes: int) -> FasterRCNN:
    net.num_classes = num_classes
    return net


def _from_scratch(
    builder: Callable[..., FasterRCNN],
    num_classes: int,
    min_size: int,
    max_size: int,
    trainable_layers: int | None,
    **kwargs,
) -> FasterRCNN:
    """A torchvision detector builder called without weights (no download), sized for
    ``num_classes`` object classes plus torchvision's background class."""
    net = builder(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
        trainable_backbone_layers=trainable_layers,
        **kwargs,
    )
    return _sized(net, num_classes)


def fasterrcnn_resnet50_fpn_v2(
    num_classes: int,
    min_size: int = 800,
    max_size: int = 1333,
    trainable_layers: int | None = None,
    **kwargs,
) -> FasterRCNN:
    """torchvision's ResNet-50-FPN v2 Faster R-CNN, from scratch (no download).

    ``trainable_layers`` freezes the first backbone stages (it matters with loaded weights; None:
    torchvision's choice, all layers without weights)."""
    return _from_scratch(
        _tv_resnet50_v2, num_classes, min_size, max_size, trainable_layers, **kwargs
    )


def fasterrcnn_mobilenet_v3_large_fpn(
    num_classes: int,
    min_size: int = 800,
    max_size: int = 1333,
    trainable_layers: int | None = None,
    **kwargs,
) -> FasterRCNN:
    """torchvision's MobileNetV3-Large-FPN Faster R-CNN, from scratch (no download); see
    :func:`fasterrcnn_resnet50_fpn_v2` for ``trainable_layers``."""
    return _from_scratch(_tv_mobilenet, num_classes, min_size, max_size, trainable_layers, **kwargs)


class TimmFPNBackbone(nn.Module):
    """A timm feature extractor with a torchvision FPN on top: ``images -> {"0", "1", ..., "pool"}``.

    Args:
        name: a timm model name (``resnet18``, ``resnet10t``, ``cspdarknet53`` ...).
        out_indices: which feature levels of the timm model feed the FPN.
        out_channels: FPN width (``self.out_channels``, as torchvision's detectors expect).
        backbone_kwargs: further timm arguments (``channels=(32, 64, 128, 256)`` narrows a ResNet).
    """

    def __init__(
        self,
        name: str = "resnet18",
        out_indices: tuple[int, ...] = (2, 3, 4),
        out_channels: int = 64,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        extra = {
            k: tuple(v) if isinstance(v, list) else v for k, v in (backbone_kwargs or {}).items()
        }
        self.body = timm.create_model(
            name, pretrained=False, features_only=True, out_indices=tuple(out_indices), **extra
        )
        self.fpn = FeaturePyramidNetwork(
            self.body.feature_info.channels(), out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels
        self.strides = tuple(self.body.feature_info.reduction())

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(images)
        return self.fpn(OrderedDict((str(k), f) for k, f in enumerate(features)))


def fasterrcnn_small(
    num_classes: int,
    backbone: str = "resnet18",
    backbone_kwargs: dict[str, Any] | None = None,
    out_indices: tuple[int, ...] = (2, 3, 4),
    fpn_channels: int = 64,
    representation_size: int = 256,
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128),
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    min_size: int = 256,
    max_size: int = 256,
    **kwargs,
) -> FasterRCNN:
    """Faster R-CNN with a small timm backbone, a narrow FPN and a light two-layer box head.

    Args:
        num_classes: object categories, without the background.
        backbone: timm model name (created with ``pretrained=False``).
        backbone_kwargs: further timm arguments, e.g. ``channels`` of a narrower ResNet.
        out_indices: timm feature levels used (one FPN level each, plus a max-pooled one).
        fpn_channels: FPN width.
        representation_size: width of the box head's two fully connected layers.
        anchor_sizes: one anchor size per FPN level (``len(out_indices) + 1`` of them).
        aspect_ratios: anchor aspect ratios at every level.
        min_size, max_size: torchvision's resize of the input.
        kwargs: further :class:`FasterRCNN` settings (``rpn_batch_size_per_image`` ...).
    """
    body = TimmFPNBackbone(backbone, tuple(out_indices), fpn_channels, backbone_kwargs)
    levels = len(out_indices) + 1
    if len(anchor_sizes) != levels:
        raise ValueError(
            f"anchor_sizes needs {levels} sizes (one per FPN level: {len(out_indices)} feature "
            f"levels + the pooled one), got {list(anchor_sizes)}"
        )
    anchors = AnchorGenerator(
        sizes=tuple((int(s),) for s in anchor_sizes),
        aspect_ratios=(tuple(float(a) for a in aspect_ratios),) * levels,
    )
    pooler = MultiScaleRoIAlign(
        featmap_names=[str(k) for k in range(len(out_indices))], output_size=7, sampling_ratio=2
    )
    head = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
    net = FasterRCNN(
        body,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=pooler,
        box_head=head,
        box_predictor=FastRCNNPredictor(representation_size, num_classes + 1),
        **kwargs,
    )
    return _sized(net, num_classes)


class SingleImageDetector(nn.Module):
    """A torchvision detector on one image ``[3, H, W]`` (0..1) returning ``boxes`` ``[K, 4]``
    (xyxy, the image's pixels), ``labels`` ``[K]`` (1..num_classes) and ``scores`` ``[K]``:
    the graph an export holds, with torchvision's resize, normalisation and NMS inside.

    One image, since the detector loops over a list of images, which the ONNX exporter unrolls
    into a fixed count.
    """

    def __init__(self, detector: FasterRCNN) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        detections = self.detector([image])[0]
        return detections["boxes"], detections["labels"], detections["scores"]
