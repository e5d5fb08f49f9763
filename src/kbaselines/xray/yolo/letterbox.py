"""Letterbox: resize keeping the aspect ratio, pad to a square, and map boxes both ways.

The YOLO input is a fixed ``size x size`` square: the image is scaled by
``min(size / H, size / W)``, centred, and padded with grey (114/255, as the YOLO family), so
objects keep their shape. Targets go in with :func:`boxes_to_letterbox`; detections come back to
the original pixels with :func:`boxes_from_letterbox`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LetterboxParams",
    "LetterboxTransform",
    "boxes_from_letterbox",
    "boxes_to_letterbox",
    "letterbox",
]

PAD_VALUE = 114 / 255


@dataclass(frozen=True)
class LetterboxParams:
    """How one image was placed in its square: ``new = old * scale + pad`` per axis."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    height: int
    width: int


def letterbox(
    image: torch.Tensor, size: int, fill: float = PAD_VALUE
) -> tuple[torch.Tensor, LetterboxParams]:
    """Resize ``image`` (Tensor[C, H, W]) into a ``size x size`` square without distortion.

    Returns:
        the square image (Tensor[C, size, size]) and the mapping parameters.
    """
    if image.dim() != 3:
        raise ValueError(f"expected an image [C, H, W], got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    ratio = min(size / height, size / width)
    new_h, new_w = max(1, round(height * ratio)), max(1, round(width * ratio))
    resized = image
    if (new_h, new_w) != (height, width):
        resized = F.interpolate(
            image[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )[0]
    pad_y, pad_x = (size - new_h) // 2, (size - new_w) // 2
    out = image.new_full((image.shape[0], size, size), fill)
    out[:, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return out, LetterboxParams(new_w / width, new_h / height, pad_x, pad_y, height, width)


def boxes_to_letterbox(boxes: torch.Tensor, params: LetterboxParams) -> torch.Tensor:
    """Boxes (Tensor[N, 4], xyxy original pixels) in the letterboxed square's pixels."""
    scale = boxes.new_tensor([params.scale_x, params.scale_y] * 2)
    pad = boxes.new_tensor([params.pad_x, params.pad_y] * 2)
    return boxes * scale + pad


def boxes_from_letterbox(boxes: torch.Tensor, params: LetterboxParams) -> torch.Tensor:
    """Boxes (Tensor[N, 4], xyxy square pixels) in the original image, clipped to it."""
    scale = boxes.new_tensor([params.scale_x, params.scale_y] * 2)
    pad = boxes.new_tensor([params.pad_x, params.pad_y] * 2)
    out = (boxes - pad) / scale
    limits = boxes.new_tensor([params.width, params.height] * 2)
    return torch.minimum(out.clamp(min=0), limits)


class LetterboxTransform(nn.Module):
    """Batches a list of images as letterboxed squares; the YOLO counterpart of torchvision's
    ``GeneralizedRCNNTransform``.

    Args:
        size: side of the square input in pixels; a multiple of the largest stride (32).
    """

    def __init__(self, size: int = 640) -> None:
        super().__init__()
        if size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {size}")
        self.size = size

    def forward(
        self,
        images: list[torch.Tensor],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]] | None, list[LetterboxParams]]:
        """Letterbox every image and its target boxes.

        Args:
            images: Tensor[C, H, W] floats in 0..1, any sizes.
            targets: optional dicts with ``boxes`` (FloatTensor[N, 4], xyxy pixels) and ``labels``.

        Returns:
            the batch (Tensor[B, C, size, size]), the targets with boxes in square pixels, and
            one :class:`LetterboxParams` per image for :meth:`postprocess`.
        """
        squares, params = zip(*(letterbox(image, self.size) for image in images), strict=True)
        if targets is not None:
            targets = [
                {**t, "boxes": boxes_to_letterbox(t["boxes"], p)}
                for t, p in zip(targets, params, strict=True)
            ]
        return torch.stack(squares), targets, list(params)

    def postprocess(
        self, detections: list[dict[str, torch.Tensor]], params: list[LetterboxParams]
    ) -> list[dict[str, torch.Tensor]]:
        """Detections with boxes mapped back to each original image."""
        return [
            {**d, "boxes": boxes_from_letterbox(d["boxes"], p)}
            for d, p in zip(detections, params, strict=True)
        ]
