"""The breast's box in a mammogram (``data.crop=breast``): background cut away before resizing.

On a large detector the breast may fill a fifth of the image; resized whole, most of the network's
input pixels are background. The box is found on the displayed image (after the window, the
MONOCHROME1 inversion, the padding and the flip, so the chest wall is on the left): pixels above
:data:`TISSUE_LEVEL`, the largest connected component (markers, labels and noise are smaller and
apart), its bounding box widened by :data:`MARGIN`, then to the cache's aspect ratio, so that a
full-resolution pixel stays square in the cache and a patch of ``patch_size`` full-resolution
pixels keeps its shape. Boxes are in full-resolution pixels of that oriented image; one may reach
past the image where the aspect ratio asks for more than the image has (cut as black).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["CROPS", "CROP_KEY", "MARGIN", "TISSUE_LEVEL", "CropBox", "check_crop", "find_breast"]

#: The values of ``data.crop``.
CROPS = ("none", "breast")
#: Displayed values (in [0, 1]) above this are breast, below background (air is black).
TISSUE_LEVEL = 0.06
#: The margin around the breast's component, as a share of the image's longer side.
MARGIN = 0.02
#: The settings of the breast crop, part of the cache entries' keys: a change makes new entries.
CROP_KEY = f"breast-level{TISSUE_LEVEL}-margin{MARGIN}-v1"
_MASK_ROWS = 512  # the component is found on the image shrunk to about this many rows


def check_crop(crop: str) -> str:
    """``crop`` when it is one of :data:`CROPS`, else a ValueError naming the setting."""
    if crop not in CROPS:
        raise ValueError(f"data.crop={crop!r}: set data.crop to one of {', '.join(CROPS)}")
    return crop


@dataclass(frozen=True)
class CropBox:
    """A box ``[x0, x1) x [y0, y1)`` in full-resolution pixels of an oriented ``rows x columns``
    image (chest wall left); it may reach past the image (see the module)."""

    x0: int
    y0: int
    x1: int
    y1: int
    rows: int
    columns: int

    @classmethod
    def whole(cls, rows: int, columns: int) -> CropBox:
        """The whole image (``data.crop=none``)."""
        return cls(0, 0, columns, rows, rows, columns)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CropBox:
        return cls(**{key: int(data[key]) for key in ("x0", "y0", "x1", "y1", "rows", "columns")})

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def cut(self, pixels: np.ndarray) -> np.ndarray:
        """The box's pixels of the whole image ``pixels``, black where it reaches past the image
        (a view, without a copy, when it lies inside)."""
        rows, columns = pixels.shape
        if self.x0 >= 0 and self.y0 >= 0 and self.x1 <= columns and self.y1 <= rows:
            return pixels[self.y0 : self.y1, self.x0 : self.x1]
        out = np.zeros((self.height, self.width), dtype=pixels.dtype)
        r0, r1 = max(self.y0, 0), min(self.y1, rows)
        c0, c1 = max(self.x0, 0), min(self.x1, columns)
        out[r0 - self.y0 : r1 - self.y0, c0 - self.x0 : c1 - self.x0] = pixels[r0:r1, c0:c1]
        return out

    def map_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A box ``(x0, y0, x1, y1)`` in [0, 1] of the whole oriented image (a lesion's, see
        :class:`~kbaselines.mammo.contours.Lesion`) as the same share of the crop, clipped to it."""
        x0, y0, x1, y1 = box
        xs = np.clip((np.array([x0, x1]) * self.columns - self.x0) / self.width, 0.0, 1.0)
        ys = np.clip((np.array([y0, y1]) * self.rows - self.y0) / self.height, 0.0, 1.0)
        return (float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))

    def map_points(
        self, xs: np.ndarray, ys: np.ndarray, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points in full-resolution pixels of the oriented image (a contour's, flipped like its
        view) as pixels of the crop resized to ``size`` = (rows, columns), pixel centres kept."""
        rows, columns = size
        x = (np.asarray(xs, float) - self.x0 + 0.5) * columns / self.width - 0.5
        y = (np.asarray(ys, float) - self.y0 + 0.5) * rows / self.height - 0.5
        return x, y


def _fit(start: int, end: int, length: int, limit: int) -> tuple[int, int]:
    """``[start, end)`` grown (or kept) to ``length`` about its centre, moved inside ``[0, limit)``
    when it fits there, else centred on it."""
    if length > limit:
        first = (limit - length) // 2
        return first, first + length
    first = (start + end - length) // 2
    first = min(max(first, 0), limit - length)
    return first, first + length


def find_breast(pixels: np.ndarray, size: tuple[int, int]) -> CropBox:
    """The box of the breast in the displayed, oriented image ``pixels`` (values in [0, 1]),
    shaped like ``size`` = (rows, columns) of the cache; the whole image when nothing is above
    :data:`TISSUE_LEVEL`.
    """
    rows, columns = pixels.shape
    factor = max(1, rows // _MASK_ROWS)
    small = pixels
    if factor > 1:
        small = cv2.resize(
            pixels, (columns // factor, rows // factor), interpolation=cv2.INTER_AREA
        )
    mask = (small > TISSUE_LEVEL).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # lines, speckles
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return CropBox.whole(rows, columns)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    left, top, width, height = (int(v) for v in stats[largest, :4])
    scale_x, scale_y = columns / small.shape[1], rows / small.shape[0]
    margin = round(MARGIN * max(rows, columns))
    x0 = max(math.floor(left * scale_x) - margin, 0)
    x1 = min(math.ceil((left + width) * scale_x) + margin, columns)
    y0 = max(math.floor(top * scale_y) - margin, 0)
    y1 = min(math.ceil((top + height) * scale_y) + margin, rows)
    aspect = size[0] / size[1]  # rows per column of the cache
    if (y1 - y0) < aspect * (x1 - x0):
        y0, y1 = _fit(y0, y1, round(aspect * (x1 - x0)), rows)
    else:
        x0, x1 = _fit(x0, x1, round((y1 - y0) / aspect), columns)
    return CropBox(x0, y0, x1, y1, rows, columns)
