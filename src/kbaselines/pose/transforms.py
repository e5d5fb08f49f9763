"""Top-down crops by affine warp, Gaussian heatmap targets and their decoding (Simple Baseline).

Coordinates: pixel centres are integers in the image and in the crop; heatmap cell ``i`` covers
crop pixels ``stride * i ... stride * i + stride - 1``, so its centre is ``stride * i +
(stride - 1) / 2``. :func:`to_heatmap` and :func:`from_heatmap` use that convention both ways.
"""

from __future__ import annotations

import cv2
import numpy as np

from kbaselines.pose.joints import flip_permutation

__all__ = [
    "box_to_center_size",
    "crop_matrix",
    "decode_heatmaps",
    "flip_back",
    "from_heatmap",
    "gaussian_heatmaps",
    "invert_affine",
    "to_heatmap",
    "transform_points",
    "warp",
]


def box_to_center_size(
    bbox: tuple[float, float, float, float], aspect: float, enlarge: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and ``(width, height)`` of the crop of box ``[x1, y1, x2, y2]``: widened to the
    ``aspect`` (width / height, 3/4 for 192x256) and enlarged ``enlarge`` times, as the paper."""
    x1, y1, x2, y2 = bbox
    center = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    w, h = x2 - x1, y2 - y1
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * enlarge


def crop_matrix(
    center: np.ndarray, size: np.ndarray, rotation: float, output: tuple[int, int]
) -> np.ndarray:
    """The 2x3 affine map from image to crop pixels: the ``size`` box around ``center``, turned by
    ``rotation`` degrees (counter-clockwise in the picture), onto an ``output`` (width, height)."""
    out_w, out_h = output
    a = np.radians(rotation)
    # image-space directions of the crop's x and y axes
    ux = np.array([np.cos(a), -np.sin(a)]) * size[0] / out_w
    uy = np.array([np.sin(a), np.cos(a)]) * size[1] / out_h
    dst_center = np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    src = np.float32([center, center + ux * out_w / 2, center + uy * out_h / 2])
    half_x, half_y = np.array([out_w / 2, 0.0]), np.array([0.0, out_h / 2])
    dst = np.float32([dst_center, dst_center + half_x, dst_center + half_y])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine map."""
    return cv2.invertAffineTransform(matrix).astype(np.float64)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points ``[..., 2]`` mapped by a 2x3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, matrix: np.ndarray, output: tuple[int, int]) -> np.ndarray:
    """The crop ``[out_h, out_w, C]`` of ``image`` under ``matrix`` (bilinear, black outside)."""
    return cv2.warpAffine(image, matrix, output, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def to_heatmap(points: np.ndarray, stride: int) -> np.ndarray:
    """Crop pixel coordinates to heatmap cell coordinates."""
    return (points - (stride - 1) / 2) / stride


def from_heatmap(points: np.ndarray, stride: int) -> np.ndarray:
    """Heatmap cell coordinates to crop pixel coordinates."""
    return points * stride + (stride - 1) / 2


def gaussian_heatmaps(
    points: np.ndarray, weights: np.ndarray, size: tuple[int, int], sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``[J, h, w]`` (unnormalised Gaussians, peak 1, at heatmap coordinates ``points``
    ``[J, 2]``) and weights ``[J]``: a joint unlabelled or more than 3 sigma outside gets 0."""
    w, h = size
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    targets = np.zeros((len(points), h, w), dtype=np.float32)
    out = weights.astype(np.float32).copy()
    for j, (x, y) in enumerate(points):
        if out[j] <= 0 or not (-3 * sigma <= x < w + 3 * sigma and -3 * sigma <= y < h + 3 * sigma):
            out[j] = 0
            continue
        targets[j] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return targets, out


def flip_back(heatmaps: np.ndarray) -> np.ndarray:
    """Heatmaps ``[..., J, h, w]`` of a mirrored crop, mirrored back with left/right swapped.

    A mirror of an image ``w`` wide maps ``x`` to ``w - 1 - x`` in crop pixels, which is a mirror of
    the heatmap cells exactly (same convention as :func:`to_heatmap`), so no shift is needed.
    """
    return heatmaps[..., flip_permutation(), :, ::-1]


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak locations ``[..., J, 2]`` (heatmap cells, x y) and values ``[..., J]``.

    The argmax moved a quarter cell towards the higher neighbour (the paper's sub-pixel step).
    """
    *lead, h, w = heatmaps.shape
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
    coords = np.stack([x + 0.25 * np.sign(dx), y + 0.25 * np.sign(dy)], axis=-1)
    return coords.reshape(*lead, 2), maxvals.reshape(lead)
