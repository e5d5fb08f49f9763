"""The YOLO backbone: any timm feature extractor, cut at strides 8, 16 and 32.

Default family: timm's ``cs3darknet`` (CSP-Darknet with CSP3 stages and SiLU, the YOLOv5 backbone
layout). timm registers it only at width/depth multipliers 0.5/0.5 (``cs3darknet_s``), 0.75/0.67
(``_m``), 1.0/1.0 (``_l``) and 1.25/1.33 (``_x``); other multipliers (the nano size, 0.25/0.33)
are built from the same timm classes by overriding the stem and stage configs. Any other timm model
with ``features_only`` support (``cspdarknet53``, ``resnet18``, ``resnet50``...) works too, without
multipliers. Weights are never downloaded (``pretrained=False``).
"""

from __future__ import annotations

import math

import timm
import torch
from timm.models.cspnet import CspStagesCfg, CspStemCfg
from torch import nn

__all__ = ["Backbone", "cs3darknet_overrides"]

STRIDES = (8, 16, 32)
CS3_STEM = (32, 64)
CS3_CHANNELS = (128, 256, 512, 1024)
CS3_DEPTHS = (3, 6, 9, 3)


def _divisible(value: float, divisor: int = 8) -> int:
    return max(divisor, int(math.ceil(value / divisor) * divisor))


def cs3darknet_overrides(width_multiplier: float, depth_multiplier: float) -> dict:
    """``stem`` and ``stages`` configs of a cs3darknet scaled by width and depth, as in
    ``timm.models.cspnet._cs3_cfg`` except that every stage keeps at least one block."""
    return {
        "stem": CspStemCfg(
            out_chs=tuple(_divisible(c * width_multiplier) for c in CS3_STEM),
            kernel_size=3,
            stride=2,
            pool="",
        ),
        "stages": CspStagesCfg(
            out_chs=tuple(_divisible(c * width_multiplier) for c in CS3_CHANNELS),
            depth=tuple(max(1, round(d * depth_multiplier)) for d in CS3_DEPTHS),
            stride=2,
            bottle_ratio=1.0,
            block_ratio=0.5,
            stage_type="cs3",
            block_type="dark",
        ),
    }


class Backbone(nn.Module):
    """A timm model returning its stride 8, 16 and 32 feature maps.

    Args:
        model_name: a timm model name (``cs3darknet_s``, ``cspdarknet53``, ``resnet18``...).
        width_multiplier: channel multiplier; only for the ``cs3darknet`` family.
        depth_multiplier: block-count multiplier; only with ``width_multiplier``.
        in_chans: input channels.

    Attributes:
        out_channels: channels of the three maps, shallow to deep.
        strides: ``(8, 16, 32)``.
    """

    def __init__(
        self,
        model_name: str = "cs3darknet_s",
        width_multiplier: float | None = None,
        depth_multiplier: float | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        overrides = {}
        if (width_multiplier is None) != (depth_multiplier is None):
            raise ValueError("give both width_multiplier and depth_multiplier, or neither")
        if width_multiplier is not None:
            if not model_name.startswith("cs3darknet"):
                raise ValueError(
                    f"width/depth multipliers apply to the cs3darknet family, not {model_name!r}"
                )
            overrides = cs3darknet_overrides(width_multiplier, depth_multiplier)
        probe = timm.create_model(
            model_name, pretrained=False, features_only=True, in_chans=in_chans, **overrides
        )
        reductions = probe.feature_info.reduction()
        missing = [s for s in STRIDES if s not in reductions]
        if missing:
            raise ValueError(f"{model_name} has no feature map at stride(s) {missing}")
        out_indices = tuple(reductions.index(s) for s in STRIDES)
        # rebuilt with only the needed maps, so that unused deeper stages are not created
        self.body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            in_chans=in_chans,
            out_indices=out_indices,
            **overrides,
        )
        self.out_channels = tuple(self.body.feature_info.channels())
        self.strides = STRIDES

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps ``[B, C_i, H / s_i, W / s_i]`` for ``s_i`` in 8, 16, 32."""
        return self.body(x)
