"""Simple Baseline for 2D human pose (Xiao, Wu, Wei, ECCV 2018).

A ResNet backbone (timm; published ImageNet weights from a file or cache, never a download), three deconvolution layers
(kernel 4, stride 2, BatchNorm, ReLU) that bring stride 32 back to stride 4, and a 1x1 convolution
to one heatmap per joint. ResNet-50 at 256x192 has 34.0M parameters, as the paper's table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kbaselines.core.pretrained import TimmWeights, create_timm_model

__all__ = [
    "DeconvHead",
    "SimpleBaseline",
    "simple_baseline_resnet18",
    "simple_baseline_resnet50",
    "simple_baseline_resnet101",
    "simple_baseline_resnet152",
]


class DeconvHead(nn.Module):
    """Deconvolution stages ``[B, C, h, w] -> [B, channels[-1], h * 2^n, w * 2^n]``.

    Args:
        in_chans: channels of the backbone's last feature map.
        channels: output channels of each deconvolution (the paper: 256, 256, 256).
        kernel_size: 4 (the paper), 3 or 2; the padding keeps an exact doubling.
    """

    def __init__(
        self, in_chans: int, channels: Sequence[int] = (256, 256, 256), kernel_size: int = 4
    ) -> None:
        super().__init__()
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel_size]
        layers: list[nn.Module] = []
        for out in channels:
            layers += [
                nn.ConvTranspose2d(
                    in_chans,
                    out,
                    kernel_size,
                    stride=2,
                    padding=padding,
                    output_padding=output_padding,
                    bias=False,
                ),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            in_chans = out
        self.layers = nn.Sequential(*layers)
        self.out_chans = in_chans
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SimpleBaseline(nn.Module):
    """Backbone -> deconvolution head -> 1x1 conv to ``num_joints`` heatmaps at stride 4.

    Args:
        backbone: a timm model name (``resnet50``); its unpooled last stage is used.
        num_joints: heatmaps out (16 for the pose dataset).
        deconv_channels: channels of the deconvolution layers.
        deconv_kernel: kernel size of the deconvolutions.
        in_chans: image channels.
        weights_backbone: published weights of ``backbone`` to start from (the paper: torchvision's
            ImageNet ResNet, ``resnet50.tv_in1k``), found offline; None: from scratch.
        feature_stage: take the features of this backbone stage (timm ``out_indices``: 2 is
            stride 8, 3 stride 16) instead of the last (stride 32): small inputs keep a feature
            map of several cells; the deconvolutions then bring it to ``stride``.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_joints: int = 16,
        deconv_channels: Sequence[int] = (256, 256, 256),
        deconv_kernel: int = 4,
        in_chans: int = 3,
        weights_backbone: TimmWeights | None = None,
        feature_stage: int | None = None,
    ) -> None:
        super().__init__()
        if num_joints < 1:
            raise ValueError(f"num_joints must be positive, got {num_joints}")
        if feature_stage is None:
            self.backbone = create_timm_model(
                backbone, weights_backbone, num_classes=0, global_pool="", in_chans=in_chans
            )
            channels, reduction = self.backbone.num_features, 32
        else:
            self.backbone = create_timm_model(
                backbone,
                weights_backbone,
                features_only=True,
                out_indices=(feature_stage,),
                in_chans=in_chans,
            )
            channels = self.backbone.feature_info.channels()[-1]
            reduction = self.backbone.feature_info.reduction()[-1]
        self.feature_stage = feature_stage
        self.head = DeconvHead(channels, deconv_channels, deconv_kernel)
        self.final = nn.Conv2d(self.head.out_chans, num_joints, kernel_size=1)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)
        self.num_joints = num_joints
        self.in_chans = in_chans
        self.stride = reduction // 2 ** len(tuple(deconv_channels))
        if self.stride < 1:
            raise ValueError(f"{len(tuple(deconv_channels))} deconvolutions on stride {reduction}")
        self.feature_info = [
            {"num_chs": channels, "reduction": reduction, "module": "backbone"},
            {"num_chs": self.head.out_chans, "reduction": self.stride, "module": "head"},
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``[B, C, H/r, W/r]`` (r = 32, or the chosen stage's reduction)."""
        if self.feature_stage is None:
            return self.backbone.forward_features(x)
        return self.backbone(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Heatmaps ``[B, num_joints, H/4, W/4]`` (or the deconvolved features if ``pre_logits``)."""
        x = self.head(x)
        return x if pre_logits else self.final(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The 1x1 heatmap layer (the part that depends on the joint set)."""
        return self.final

    def summary_lines(self) -> list[str]:
        """The lines ``scripts/model_summary.py`` prints: parameters per stage, and the total."""
        groups = {"backbone": self.backbone, "deconv head": self.head, "heatmap layer": self.final}
        counts = {name: sum(p.numel() for p in part.parameters()) for name, part in groups.items()}
        total = sum(counts.values())
        return [
            f"input:         {self.in_chans} x H x W (heatmaps at stride {self.stride})",
            *(f"{name + ':':<14} {n:,} parameters" for name, n in counts.items()),
            f"total:         {total:,} parameters ({total / 1e6:.2f}M)",
        ]

    def reset_classifier(self, num_joints: int) -> None:
        """A new 1x1 heatmap layer for ``num_joints`` joints."""
        self.final = nn.Conv2d(self.head.out_chans, num_joints, kernel_size=1)
        self.num_joints = num_joints


def _create(backbone: str, defaults: dict[str, Any], **kwargs: Any) -> SimpleBaseline:
    return SimpleBaseline(backbone=backbone, **dict(defaults, **kwargs))


def simple_baseline_resnet18(**kwargs: Any) -> SimpleBaseline:
    """Light variant for tests and CPU tries: ResNet-18 up to its stride-16 stage, two
    128-channel deconvolutions (a 64x64 crop keeps a 4x4 feature map, not 2x2)."""
    return _create("resnet18", {"deconv_channels": (128, 128), "feature_stage": 3}, **kwargs)


def simple_baseline_resnet50(**kwargs: Any) -> SimpleBaseline:
    """The paper's ResNet-50 model (34.0M parameters)."""
    return _create("resnet50", {}, **kwargs)


def simple_baseline_resnet101(**kwargs: Any) -> SimpleBaseline:
    """The paper's ResNet-101 model (53.0M parameters)."""
    return _create("resnet101", {}, **kwargs)


def simple_baseline_resnet152(**kwargs: Any) -> SimpleBaseline:
    """The paper's ResNet-152 model (68.6M parameters)."""
    return _create("resnet152", {}, **kwargs)
