"""The YOLO head: decoupled, anchor-free, one point per cell of each stride-8/16/32 map.

Decoupled (YOLOX, Ge et al. 2021): classification and box regression have their own two 3x3
convolutions per level, since the two tasks want different features. The box branch predicts,
per side, ``reg_max`` logits of the distance distribution (see ``box_coder``); the class branch
one logit per class (sigmoid, no objectness: the IoU-aware targets make the score a quality).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.layers import ConvNormAct
from torch import nn

__all__ = ["DecoupledHead", "HeadOutputs"]


@dataclass
class HeadOutputs:
    """Dense predictions of a batch, levels flattened and concatenated (``A = sum(h * w)``).

    Attributes:
        cls_logits: FloatTensor[B, A, C].
        box_logits: FloatTensor[B, A, 4 * reg_max].
        sizes: ``(h, w)`` of every level, to rebuild the anchor points.
    """

    cls_logits: torch.Tensor
    box_logits: torch.Tensor
    sizes: list[tuple[int, int]]


def _branch(in_chs: int, hidden: int, out_chs: int, act_layer: str) -> nn.Sequential:
    return nn.Sequential(
        ConvNormAct(in_chs, hidden, 3, act_layer=act_layer),
        ConvNormAct(hidden, hidden, 3, act_layer=act_layer),
        nn.Conv2d(hidden, out_chs, 1),
    )


class DecoupledHead(nn.Module):
    """Per-level class and box branches.

    Args:
        in_channels: channels of the neck maps, shallow to deep.
        num_classes: object classes (no background).
        strides: stride of each map (for the class-bias prior).
        reg_max: bins per box side.
        image_size: typical input side, for the class-bias prior (YOLOv8's ``5 / C / (size / s)^2``:
            about five objects per image spread over the cells).
        act_layer: activation name.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int = 16,
        image_size: int = 640,
        act_layer: str = "silu",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.strides = tuple(strides)
        box_hidden = max(16, in_channels[0] // 4, 4 * reg_max)
        cls_hidden = max(in_channels[0], min(num_classes, 100))
        self.box_branches = nn.ModuleList(
            _branch(c, box_hidden, 4 * reg_max, act_layer) for c in in_channels
        )
        self.cls_branches = nn.ModuleList(
            _branch(c, cls_hidden, num_classes, act_layer) for c in in_channels
        )
        for box, cls, stride in zip(
            self.box_branches, self.cls_branches, self.strides, strict=True
        ):
            nn.init.constant_(box[-1].bias, 1.0)
            prior = 5 / num_classes / (image_size / stride) ** 2
            nn.init.constant_(cls[-1].bias, math.log(prior / (1 - prior)))

    def forward(self, features: Sequence[torch.Tensor]) -> HeadOutputs:
        """Dense logits of the maps ``[B, C_i, H_i, W_i]``."""
        cls_logits, box_logits, sizes = [], [], []
        for x, box, cls in zip(features, self.box_branches, self.cls_branches, strict=True):
            sizes.append((x.shape[-2], x.shape[-1]))
            cls_logits.append(cls(x).flatten(2).transpose(1, 2))
            box_logits.append(box(x).flatten(2).transpose(1, 2))
        return HeadOutputs(torch.cat(cls_logits, 1), torch.cat(box_logits, 1), sizes)
