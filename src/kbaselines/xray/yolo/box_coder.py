"""Anchor points and the point-to-box coding of an anchor-free head.

Every cell of a feature map of stride ``s`` is one anchor point at the cell centre
``((i + 0.5) s, (j + 0.5) s)``. A box is coded as its distances to that point, left, top, right
and bottom, in units of the stride (FCOS, YOLOv6/v8). With distribution focal loss each distance is
predicted as a discrete distribution over ``0 .. reg_max - 1`` and read as its expectation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["PointBoxCoder", "make_anchor_points"]


def make_anchor_points(
    sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The anchor points of several feature maps, in the order the head flattens them.

    Args:
        sizes: ``(height, width)`` of each feature map.
        strides: the stride of each feature map in input pixels.
        device: where to build the tensors.
        dtype: their floating type.

    Returns:
        ``points`` (Tensor[A, 2], ``x, y`` in input pixels) and ``strides`` (Tensor[A, 1]), with
        ``A = sum(h * w)``, row-major within a level, levels in the given order.
    """
    if len(sizes) != len(strides):
        raise ValueError(f"{len(sizes)} feature sizes but {len(strides)} strides")
    points, point_strides = [], []
    for (height, width), stride in zip(sizes, strides, strict=True):
        ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) * stride
        xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1))
        point_strides.append(
            torch.full((height * width, 1), float(stride), device=device, dtype=dtype)
        )
    return torch.cat(points), torch.cat(point_strides)


class PointBoxCoder:
    """Codes ``xyxy`` boxes as ``ltrb`` distances from anchor points, in stride units.

    Args:
        reg_max: number of bins of the distance distribution; encoded distances are clamped to
            ``[0, reg_max - 1 - eps]`` so that both neighbouring bins exist for the DFL target.
            A box can thus reach at most ``(reg_max - 1) * stride`` pixels from its point.
        eps: the clamp margin below ``reg_max - 1``.
    """

    def __init__(self, reg_max: int = 16, eps: float = 0.01) -> None:
        if reg_max < 2:
            raise ValueError(f"reg_max must be at least 2, got {reg_max}")
        self.reg_max = reg_max
        self.eps = eps

    def encode(
        self, points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor
    ) -> torch.Tensor:
        """Distances ``[..., 4]`` (left, top, right, bottom, in strides) of ``boxes`` ``[..., 4]``
        xyxy pixels from ``points`` ``[..., 2]``; clamped to the representable range."""
        left_top = points - boxes[..., :2]
        right_bottom = boxes[..., 2:] - points
        distances = torch.cat([left_top, right_bottom], dim=-1) / strides
        return distances.clamp(0, self.reg_max - 1 - self.eps)

    def decode(
        self, points: torch.Tensor, strides: torch.Tensor, distances: torch.Tensor
    ) -> torch.Tensor:
        """Boxes ``[..., 4]`` xyxy pixels from ``distances`` ``[..., 4]`` in strides."""
        distances = distances * strides
        return torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)

    def expectation(self, logits: torch.Tensor) -> torch.Tensor:
        """Distances ``[..., 4]`` as the expectation of the bin distributions ``[..., 4 * reg_max]``."""
        probs = logits.unflatten(-1, (4, self.reg_max)).softmax(-1)
        bins = torch.arange(self.reg_max, device=logits.device, dtype=probs.dtype)
        return probs @ bins
