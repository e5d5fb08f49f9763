"""Multi-view 3D: confidence-weighted DLT triangulation, MPJPE and P-MPJPE (Procrustes), in mm.

Each view contributes two rows ``u P3 - P1`` and ``v P3 - P2`` of the linear system, scaled by the
view's confidence (the heatmap peak of the joint), so that an occluded or doubtful view counts
less; the point is the right singular vector of the smallest singular value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kbaselines.pose.reader import Camera

__all__ = [
    "mpjpe",
    "p_mpjpe",
    "procrustes_align",
    "triangulate",
    "triangulate_pose",
    "triangulate_views",
]


def triangulate(
    projections: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """One 3D point ``[3]`` from ``V`` views: projection matrices ``[V, 3, 4]``, pixels ``[V, 2]``,
    confidences ``[V]`` (default all 1). Needs two views of positive weight."""
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, float)
    if (weights > 0).sum() < 2:
        raise ValueError("triangulation needs at least two views with positive weight")
    rows = []
    for P, (u, v), w in zip(projections, points, weights, strict=True):
        rows.append(w * (u * P[2] - P[0]))
        rows.append(w * (v * P[2] - P[1]))
    A = np.stack(rows)
    _, _, vt = np.linalg.svd(A)
    X = vt[-1]
    return X[:3] / X[3]


def triangulate_pose(
    projections: np.ndarray, joints: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Every joint of a person: pixels ``[V, J, 2]`` and confidences ``[V, J]`` -> ``[J, 3]``."""
    return np.stack(
        [triangulate(projections, joints[:, j], weights[:, j]) for j in range(joints.shape[1])]
    )


def triangulate_views(
    cameras: Sequence[Camera], joints: np.ndarray, peaks: np.ndarray
) -> np.ndarray:
    """A person's joints ``[J, 3]`` (world mm) from ``V`` calibrated views: the cameras, the joints
    ``[V, J, 2]`` in observed (distorted) pixels and their heatmap peaks ``[V, J]`` as weights,
    floored at 1e-3 so that a flat heatmap lowers a view's say without removing it."""
    points = np.stack([c.undistort(j) for c, j in zip(cameras, joints, strict=True)])
    return triangulate_pose(np.stack([c.P for c in cameras]), points, np.maximum(peaks, 1e-3))


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-joint position error ``[..., J]`` (Protocol #1: no alignment)."""
    return np.linalg.norm(np.asarray(pred) - np.asarray(gt), axis=-1)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` ``[J, 3]`` moved by the similarity (scale, rotation, translation) that best fits
    ``gt`` in least squares (Umeyama), reflections excluded."""
    mu_p, mu_g = pred.mean(axis=0), gt.mean(axis=0)
    p, g = pred - mu_p, gt - mu_g
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    flip = np.diag([1.0, 1.0, d])
    rotation = u @ flip @ vt
    scale = (s * np.diag(flip)).sum() / (p**2).sum()
    return scale * p @ rotation + mu_g


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-joint error ``[J]`` after Procrustes alignment (Protocol #2)."""
    return mpjpe(procrustes_align(np.asarray(pred, float), np.asarray(gt, float)), gt)
