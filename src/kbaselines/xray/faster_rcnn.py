"""Faster R-CNN (Ren et al. 2015) builders: torchvision's detectors, and a small one for CPU tests.

Every builder returns a torchvision :class:`~torchvision.models.detection.FasterRCNN`, whose
interface the detection task relies on: ``net(images, targets)`` gives the loss dict in training,
``net(images)`` the ``[{"boxes", "labels", "scores"}]`` detections in eval. ``num_classes`` counts
the object categories without the background (labels are 1..num_classes); it is kept as
``net.num_classes`` so that a checkpoint can be rebuilt. ``min_size``/``max_size`` are
torchvision's own resize of the input. No weights are downloaded: networks start from scratch, or
from published weights (a COCO detector or an ImageNet backbone) found offline by
:mod:`kbaselines.core.pretrained`.

- :func:`fasterrcnn_resnet50_fpn_v2`: the default (COCO box AP 46.7 with ImageNet training).
- :func:`fasterrcnn_mobilenet_v3_large_fpn`: the fast one (COCO box AP 32.8).
- :func:`fasterrcnn_small`: a small timm backbone with an FPN and a light box head, trainable on a
  CPU in minutes (the learning test).

:class:`SingleImageDetector` is the graph an export holds: one image in, its detections out.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import timm
import torch
from timm.layers import freeze_batch_norm_2d
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

from kbaselines.core.pretrained import TorchvisionWeights
from kbaselines.core.weights import fit_problems

__all__ = [
    "SingleImageDetector",
    "TimmFPNBackbone",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_small",
]

log = logging.getLogger(__name__)


def _sized(net: FasterRCNN, num_classes: int) -> FasterRCNN:
    net.num_classes = num_classes
    return net


# the box predictor's layers, whose shape depends on the class count
PREDICTOR_PREFIX = "roi_heads.box_predictor."


def _torchvision_detector(
    builder: Callable[..., FasterRCNN],
    freeze: Callable[[nn.Module, int], None],
    backbone_prefix: str,
    num_classes: int,
    min_size: int,
    max_size: int,
    trainable_layers: int | None,
    weights: TorchvisionWeights | None,
    weights_backbone: TorchvisionWeights | None,
    **kwargs,
) -> FasterRCNN:
    """A torchvision detector for ``num_classes`` object classes (plus the background), built
    without downloading, then initialised from published weights read here (weights-only).

    As torchvision does: full ``weights`` (a COCO detector) override ``weights_backbone`` (an
    ImageNet classifier); the box predictor of another class count keeps its fresh layers; and
    only when something is pretrained are the first backbone stages frozen (all but
    ``trainable_layers``, 3 by default). ``backbone_prefix`` is where the backbone body's layers
    are in the classifier's file (``features.`` for MobileNet).
    """
    net = builder(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
        **kwargs,
    )
    if weights is not None or weights_backbone is not None:
        # first: the frozen batch norm of a pretrained backbone changes what the file must hold
        freeze(net.backbone.body, 3 if trainable_layers is None else trainable_layers)
    if weights is not None:
        _load_detector(net, weights)
    elif weights_backbone is not None:
        _load_backbone(net.backbone.body, weights_backbone, backbone_prefix)
    return _sized(net, num_classes)


def _load_detector(net: FasterRCNN, weights: TorchvisionWeights) -> None:
    """A published detector's weights, but its box predictor when the class counts differ."""
    state = weights.state_dict()
    own = net.state_dict()
    predictor = [k for k in state if k.startswith(PREDICTOR_PREFIX)]
    if any(k in own and state[k].shape != own[k].shape for k in predictor):
        for key in predictor:
            del state[key]
        state.update({k: v for k, v in own.items() if k.startswith(PREDICTOR_PREFIX)})
        log.info(
            "%s: box predictor of %d classes left out; the model's (%d classes) starts fresh",
            weights.description,
            weights.num_classes,
            net.roi_heads.box_predictor.cls_score.out_features,
        )
    _load_into(net, weights, state)


def _load_backbone(body: nn.Module, weights: TorchvisionWeights, prefix: str) -> None:
    """A published classifier's weights in a detector's backbone body: its layers under
    ``prefix``, without the classifier head (``fc``, ``classifier``) the body does not have."""
    state = {
        k.removeprefix(prefix): v
        for k, v in weights.state_dict().items()
        if k.startswith(prefix) and not k.startswith(("fc.", "classifier."))
    }
    _load_into(body, weights, state)


def _load_into(module: nn.Module, weights: TorchvisionWeights, state: dict) -> None:
    """Load ``state`` into ``module`` if every key and shape fits (batch-norm step counters,
    which frozen batch norm has not, aside)."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.endswith("num_batches_tracked")}
    problems = fit_problems(state, own)
    if problems:
        raise ValueError(f"{weights.locate()} does not fit {weights.description}:\n{problems}")
    module.load_state_dict(state)


def _freeze_resnet(body: nn.Module, trainable_layers: int) -> None:
    """torchvision's ``_resnet_fpn_extractor`` freezing: train only the last stages."""
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, parameter in body.named_parameters():
        if not name.startswith(tuple(train)):
            parameter.requires_grad_(False)


def _freeze_mobilenet(body: nn.Module, trainable_layers: int) -> None:
    """torchvision's pretrained MobileNetV3 detector: frozen batch norm everywhere in the backbone,
    and the first stages (cut where the stride changes) frozen."""
    for name, child in list(body.named_children()):
        body.add_module(name, freeze_batch_norm_2d(child))
    blocks = list(body.children())
    stages = (
        [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    )
    cut = len(blocks) if trainable_layers == 0 else stages[len(stages) - trainable_layers]
    for block in blocks[:cut]:
        block.requires_grad_(False)


def fasterrcnn_resnet50_fpn_v2(
    num_classes: int,
    min_size: int = 800,
    max_size: int = 1333,
    trainable_layers: int | None = None,
    *,
    weights: TorchvisionWeights | None = None,
    weights_backbone: TorchvisionWeights | None = None,
    **kwargs,
) -> FasterRCNN:
    """torchvision's ResNet-50-FPN v2 Faster R-CNN, from scratch or from published weights
    (``FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1`` or ``ResNet50_Weights.IMAGENET1K_V1``).

    ``trainable_layers`` (0-5) backbone stages are trained when something is pretrained (None:
    torchvision's 3); from scratch, all are."""
    return _torchvision_detector(
        _tv_resnet50_v2,
        _freeze_resnet,
        "",
        num_classes,
        min_size,
        max_size,
        trainable_layers,
        weights,
        weights_backbone,
        **kwargs,
    )


def fasterrcnn_mobilenet_v3_large_fpn(
    num_classes: int,
    min_size: int = 800,
    max_size: int = 1333,
    trainable_layers: int | None = None,
    *,
    weights: TorchvisionWeights | None = None,
    weights_backbone: TorchvisionWeights | None = None,
    **kwargs,
) -> FasterRCNN:
    """torchvision's MobileNetV3-Large-FPN Faster R-CNN (published weights:
    ``FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1``, ``MobileNet_V3_Large_Weights.IMAGENET1K_V1``);
    see :func:`fasterrcnn_resnet50_fpn_v2` for ``trainable_layers`` (0-6 here)."""
    return _torchvision_detector(
        _tv_mobilenet,
        _freeze_mobilenet,
        "features.",
        num_classes,
        min_size,
        max_size,
        trainable_layers,
        weights,
        weights_backbone,
        **kwargs,
    )


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
