"""The heatmap codec of the Simple Baseline: joints in crop pixels to Gaussian heatmaps and back.

One object holds the geometry that the Dataset encodes targets with and the task decodes
predictions with (as mmpose's ``MSRAHeatmap``), so that the two cannot disagree.

Coordinates: pixel centres are integers in the crop; heatmap cell ``i`` covers crop pixels
``stride * i ... stride * i + stride - 1``, so its centre is ``stride * i + (stride - 1) / 2``.
:meth:`HeatmapCodec.to_heatmap` and :meth:`HeatmapCodec.from_heatmap` use that convention both
ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kbaselines.pose.transforms import transform_points

__all__ = ["HeatmapCodec", "flip_back"]


@dataclass(frozen=True)
class HeatmapCodec:
    """Gaussian heatmap targets of a crop's joints, and the joints of predicted heatmaps.

    Args:
        input_size: the crop ``(height, width)`` in pixels.
        stride: crop pixels per heatmap cell (4 for three deconvolutions on a stride-32 backbone).
        sigma: Gaussian sigma in heatmap cells.
    """

    input_size: tuple[int, int]
    stride: int = 4
    sigma: float = 2.0

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """The heatmaps' ``(height, width)`` in cells."""
        height, width = self.input_size
        return height // self.stride, width // self.stride

    def to_heatmap(self, points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates to heatmap cell coordinates."""
        return (points - (self.stride - 1) / 2) / self.stride

    def from_heatmap(self, points: np.ndarray) -> np.ndarray:
        """Heatmap cell coordinates to crop pixel coordinates."""
        return points * self.stride + (self.stride - 1) / 2

    def encode(self, joints: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets ``[J, h, w]`` and weights ``[J]`` of joints ``[J, 2]`` in crop pixels.

        The targets are unnormalised Gaussians (peak 1) at the joints; a joint unlabelled
        (weight 0) or more than 3 sigma outside the heatmap gets weight 0 and no Gaussian, so
        that the loss does not pull it towards the border.
        """
        h, w = self.heatmap_size
        sigma = self.sigma
        xs = np.arange(w, dtype=np.float32)
        ys = np.arange(h, dtype=np.float32)[:, None]
        targets = np.zeros((len(joints), h, w), dtype=np.float32)
        out = weights.astype(np.float32).copy()
        for j, (x, y) in enumerate(self.to_heatmap(joints)):
            if out[j] <= 0 or not (
                -3 * sigma <= x < w + 3 * sigma and -3 * sigma <= y < h + 3 * sigma
            ):
                out[j] = 0
                continue
            targets[j] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
        return targets, out

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints ``[..., J, 2]`` in crop pixels (x y) and peak values ``[..., J]`` of heatmaps
        ``[..., J, h, w]``.

        The argmax is moved a quarter cell towards the higher neighbour (the paper's sub-pixel
        step), then mapped from its cell to crop pixels.

        Raises:
            ValueError: the heatmaps are not of this codec's size (a net of another stride).
        """
        *lead, h, w = heatmaps.shape
        if (h, w) != self.heatmap_size:
            raise ValueError(
                f"heatmaps of {h}x{w} cells, but crops of {self.input_size[0]}x"
                f"{self.input_size[1]} px at stride {self.stride} give "
                f"{self.heatmap_size[0]}x{self.heatmap_size[1]}: the net's output stride must "
                "be data.stride"
            )
        flat = heatmaps.reshape(-1, h * w)
        index = flat.argmax(axis=1)
        maxvals = flat[np.arange(len(flat)), index]
        x, y = (index % w).astype(np.float64), (index // w).astype(np.float64)
        maps = heatmaps.reshape(-1, h, w)
        xi, yi = x.astype(int), y.astype(int)
        rows = np.arange(len(flat))
        inner_x = (xi > 0) & (xi < w - 1)
        inner_y = (yi > 0) & (yi < h - 1)
        dx = np.where(
            inner_x,
            maps[rows, yi, np.minimum(xi + 1, w - 1)] - maps[rows, yi, np.maximum(xi - 1, 0)],
            0,
        )
        dy = np.where(
            inner_y,
            maps[rows, np.minimum(yi + 1, h - 1), xi] - maps[rows, np.maximum(yi - 1, 0), xi],
            0,
        )
        cells = np.stack([x + 0.25 * np.sign(dx), y + 0.25 * np.sign(dy)], axis=-1)
        return self.from_heatmap(cells.reshape(*lead, 2)), maxvals.reshape(lead)

    def decode_image(
        self, heatmaps: np.ndarray, inverses: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Joints ``[N, J, 2]`` in image pixels and peak values ``[N, J]`` of the heatmaps
        ``[N, J, h, w]`` of ``N`` crops: :meth:`decode`, then each crop's inverse warp
        ``inverses`` ``[N, 2, 3]`` (crop to image pixels)."""
        crop, peaks = self.decode(heatmaps)
        joints = np.stack([transform_points(c, m) for c, m in zip(crop, inverses, strict=True)])
        return joints, peaks


def flip_back(heatmaps: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Heatmaps ``[..., J, h, w]`` of a mirrored crop, mirrored back with the joints permuted by
    ``permutation`` (left/right swapped).

    A mirror of a crop ``w`` cells wide maps ``x`` to ``stride * w - 1 - x`` in crop pixels,
    which is a mirror of the heatmap cells exactly (the cell convention of
    :class:`HeatmapCodec`), so no shift is needed.
    """
    return heatmaps[..., permutation, :, ::-1]
