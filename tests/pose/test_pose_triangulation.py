"""Triangulation from the synthetic cameras, and the 3D errors (MPJPE, Procrustes) by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kbaselines.pose.reader import read_3d, read_cameras
from kbaselines.pose.triangulation import (
    mpjpe,
    p_mpjpe,
    procrustes_align,
    triangulate,
    triangulate_pose,
)


def _rig(pose_root: Path) -> tuple[list, list[np.ndarray]]:
    cameras = list(read_cameras(pose_root / "cameras.json").values())
    poses = []
    for file in sorted((pose_root / "annotations").glob("*_3d.json")):
        poses += list(read_3d(file)[0].values())
    return cameras, poses


def test_exact_projections_triangulate_within_a_millimetre(pose_root: Path) -> None:
    cameras, poses = _rig(pose_root)
    projections = np.stack([c.P for c in cameras])
    for pose in poses:
        pixels = np.stack([c.project(pose) for c in cameras])
        found = triangulate_pose(projections, pixels, np.ones(pixels.shape[:2]))
        assert mpjpe(found, pose).max() < 1.0


def test_pixel_noise_gives_bounded_error_that_falls_with_more_views(pose_root: Path) -> None:
    cameras, poses = _rig(pose_root)
    rng = np.random.default_rng(0)
    errors = {}
    for views in (2, 3, 4):
        chosen = cameras[:views]
        projections = np.stack([c.P for c in chosen])
        per_pose = []
        for pose in poses:
            pixels = np.stack([c.project(pose) for c in chosen]) + rng.normal(
                0, 2.0, (views, 16, 2)
            )
            found = triangulate_pose(projections, pixels, np.ones((views, 16)))
            per_pose.append(mpjpe(found, pose).mean())
        errors[views] = float(np.mean(per_pose))
    # 2 px noise at about 16 mm per pixel (f = 250 px, 4 m away): tens of millimetres at most
    assert errors[2] < 120 and errors[4] < 60
    assert errors[4] < errors[3] < errors[2], errors


def test_a_view_of_low_confidence_counts_less() -> None:
    point = np.array([100.0, -50.0, 900.0])
    K = np.array([[250.0, 0, 96], [0, 250, 72], [0, 0, 1]])
    projections, pixels = [], []
    for angle in (0.0, 1.5, 3.0):
        R = np.array(
            [[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]]
        )
        P = K @ np.hstack(
            [R, (-R @ np.array([4000 * np.sin(angle), 0, -4000 * np.cos(angle)]))[:, None]]
        )
        uvw = P @ np.append(point, 1)
        projections.append(P)
        pixels.append(uvw[:2] / uvw[2])
    pixels[2] = pixels[2] + 30.0  # a wrong view
    projections = np.stack(projections)
    even = np.linalg.norm(triangulate(projections, np.stack(pixels)) - point)
    weighted = np.linalg.norm(triangulate(projections, np.stack(pixels), [1, 1, 0.01]) - point)
    assert weighted < 5 < even
    with pytest.raises(ValueError, match="two views"):
        triangulate(projections, np.stack(pixels), [1, 0, 0])


def test_procrustes_removes_scale_rotation_and_translation() -> None:
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 300, (16, 3))
    a = 0.7
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = 1.3 * gt @ rotation.T + [500, -20, 40]
    assert mpjpe(moved, gt).mean() > 100
    assert p_mpjpe(moved, gt).max() < 1e-6
    assert procrustes_align(moved, gt) == pytest.approx(gt)


def test_mpjpe_by_hand() -> None:
    gt = np.zeros((2, 3))
    pred = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 10.0]])
    assert mpjpe(pred, gt).tolist() == [5.0, 10.0]
    # a mirrored pose is not "aligned" by a reflection: Procrustes keeps rotations proper
    gt = np.random.default_rng(1).normal(0, 100, (16, 3))
    mirrored = gt * [-1, 1, 1]
    assert p_mpjpe(mirrored, gt).mean() > 10


def test_lens_distortion_is_applied_and_removed_before_triangulating(pose_root: Path) -> None:
    import cv2

    cameras, poses = _rig(pose_root)
    dist = np.array([-0.6, 0.4, 0.002, -0.002, -0.1])  # strong barrel (a small sensor)
    lensed = [replace(c, dist=dist) for c in cameras]
    pose = poses[0]
    for camera in lensed:  # our projection is OpenCV's camera model
        rotation, _ = cv2.Rodrigues(camera.R)
        reference, _ = cv2.projectPoints(
            np.ascontiguousarray(pose), rotation, camera.t, camera.K, camera.dist
        )
        assert np.allclose(camera.project(pose), reference.reshape(-1, 2), atol=1e-6)
    observed = np.stack([c.project(pose) for c in lensed])
    assert np.abs(observed - np.stack([c.project(pose) for c in cameras])).max() > 2.0
    projections, weights = np.stack([c.P for c in lensed]), np.ones(observed.shape[:2])
    undistorted = np.stack([c.undistort(o) for c, o in zip(lensed, observed, strict=True)])
    assert mpjpe(triangulate_pose(projections, undistorted, weights), pose).max() < 1.0
    assert mpjpe(triangulate_pose(projections, observed, weights), pose).mean() > 5.0


def test_a_distortion_of_other_length_is_refused(pose_root: Path, tmp_path: Path) -> None:
    import json

    from kbaselines.pose.reader import PoseFormatError

    calibration = json.loads((pose_root / "cameras.json").read_text())
    calibration["Camera 2"]["dist"] = [0.1, 0.2, 0.3]
    (tmp_path / "cameras.json").write_text(json.dumps(calibration))
    with pytest.raises(PoseFormatError, match=r"cameras.json \[camera 'Camera 2'\]: dist has 3"):
        read_cameras(tmp_path / "cameras.json")
