"""Top-down crops by affine warp (Simple Baseline): the box's crop, its matrix and its inverse.

Coordinates: pixel centres are integers in the image and in the crop. The heatmaps of a crop and
their decoding are :mod:`kbaselines.pose.codec`'s.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "box_to_center_size",
    "crop_matrix",
    "crop_person",
    "invert_affine",
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


def crop_person(
    pixels: np.ndarray,
    bbox: tuple[float, float, float, float],
    input_size: tuple[int, int],
    enlarge: float = 1.25,
    scale: float = 1.0,
    rotation: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The crop ``[h, w, C]`` of a person's box ``[x1, y1, x2, y2]`` at the network's
    ``input_size`` ``(h, w)``, and its image-to-crop matrix: the box at the input's aspect,
    enlarged, then scaled and turned by the training augmentation (1 and 0 at evaluation and in
    ``predict.py``, which thus crop alike)."""
    height, width = input_size
    center, size = box_to_center_size(bbox, width / height, enlarge)
    matrix = crop_matrix(center, size * scale, rotation, (width, height))
    return warp(pixels, matrix, (width, height)), matrix
