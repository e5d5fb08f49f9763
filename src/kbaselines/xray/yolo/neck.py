"""The YOLO neck: a path-aggregation network (PAN, Liu et al. 2018) over FPN, with C2f blocks.

Top-down (FPN), the stride-32 map is upsampled and fused into stride 16, then 8; bottom-up (PAN),
the fused stride-8 map is strided back into 16 and 32, so every output mixes deep semantics with
fine localisation. Fusion is concatenation followed by a C2f block (YOLOv8's CSP block with
two 3x3 convolutions per bottleneck and every partial output concatenated).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import ConvNormAct
from torch import nn

__all__ = ["PAN", "C2f"]


class Bottleneck(nn.Module):
    """Two 3x3 conv-BN-SiLU, with a residual connection when ``shortcut``."""

    def __init__(self, channels: int, shortcut: bool = True, act_layer: str = "silu") -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 3, act_layer=act_layer)
        self.conv2 = ConvNormAct(channels, channels, 3, act_layer=act_layer)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """CSP block: 1x1 split into two halves, ``depth`` bottlenecks on the second, every
    intermediate concatenated, 1x1 fuse.

    Args:
        in_chs: input channels.
        out_chs: output channels.
        depth: number of bottlenecks.
        shortcut: residual bottlenecks (backbone style) or plain (neck style).
        act_layer: activation name for timm's ``ConvNormAct``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        depth: int = 1,
        shortcut: bool = False,
        act_layer: str = "silu",
    ) -> None:
        super().__init__()
        hidden = out_chs // 2
        self.split = ConvNormAct(in_chs, 2 * hidden, 1, act_layer=act_layer)
        self.blocks = nn.ModuleList(Bottleneck(hidden, shortcut, act_layer) for _ in range(depth))
        self.fuse = ConvNormAct((2 + depth) * hidden, out_chs, 1, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.split(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


class PAN(nn.Module):
    """FPN + PAN over three maps (strides 8, 16, 32).

    Args:
        in_channels: channels of the backbone maps, shallow to deep.
        out_channels: channels of the three outputs; defaults to ``in_channels``.
        depth: bottlenecks per C2f block.
        act_layer: activation name.

    Shapes:
        three maps ``[B, in_i, H_i, W_i]`` -> three maps ``[B, out_i, H_i, W_i]``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int] | None = None,
        depth: int = 1,
        act_layer: str = "silu",
    ) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"PAN takes three feature maps, got {len(in_channels)} channels")
        c3, c4, c5 = in_channels
        o3, o4, o5 = out_channels if out_channels is not None else in_channels
        self.out_channels = (o3, o4, o5)
        self.top_down4 = C2f(c5 + c4, o4, depth, act_layer=act_layer)
        self.top_down3 = C2f(o4 + c3, o3, depth, act_layer=act_layer)
        self.down3 = ConvNormAct(o3, o3, 3, stride=2, act_layer=act_layer)
        self.bottom_up4 = C2f(o3 + o4, o4, depth, act_layer=act_layer)
        self.down4 = ConvNormAct(o4, o4, 3, stride=2, act_layer=act_layer)
        self.bottom_up5 = C2f(o4 + c5, o5, depth, act_layer=act_layer)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = features
        t4 = self.top_down4(torch.cat([F.interpolate(p5, size=p4.shape[-2:]), p4], 1))
        n3 = self.top_down3(torch.cat([F.interpolate(t4, size=p3.shape[-2:]), p3], 1))
        n4 = self.bottom_up4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bottom_up5(torch.cat([self.down4(n4), p5], 1))
        return [n3, n4, n5]
