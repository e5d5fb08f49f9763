"""Crops and back, heatmaps and back, mirrors with left/right swapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.dataset import PoseDataset
from kbaselines.pose.joints import FLIP_PAIRS, JOINTS, flip_permutation
from kbaselines.pose.transforms import (
    box_to_center_size,
    crop_matrix,
    decode_heatmaps,
    flip_back,
    from_heatmap,
    gaussian_heatmaps,
    invert_affine,
    to_heatmap,
    transform_points,
)


def test_box_gets_the_aspect_and_the_margin() -> None:
    center, size = box_to_center_size((10, 20, 40, 140), aspect=0.75, enlarge=1.25)
    assert center.tolist() == [25, 80]
    assert size.tolist() == pytest.approx([90 * 1.25, 120 * 1.25])


@pytest.mark.parametrize("rotation", [0.0, 30.0, -75.0])
def test_crop_and_back_is_the_identity(rotation: float) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 300, (16, 2))
    matrix = crop_matrix(np.array([150.0, 120.0]), np.array([90.0, 120.0]), rotation, (48, 64))
    back = transform_points(transform_points(points, matrix), invert_affine(matrix))
    assert np.abs(back - points).max() < 1e-6
    # the box centre lands on the crop centre, its corners on the crop's
    assert transform_points(np.array([150.0, 120.0]), matrix) == pytest.approx([23.5, 31.5])
    if rotation == 0:
        corner = transform_points(np.array([150 - 45.0, 120 - 60.0]), matrix)
        assert corner == pytest.approx([-0.5, -0.5])


def test_heatmap_peak_decodes_to_its_point_within_a_quarter_cell() -> None:
    points = np.array([[5.3, 7.8], [10.0, 3.0], [0.2, 0.1]] + [[6.0, 6.0]] * 13)
    targets, weights = gaussian_heatmaps(points, np.ones(16), (12, 16), sigma=2.0)
    assert targets.shape == (16, 16, 12) and weights.min() == 1
    decoded, peaks = decode_heatmaps(targets)
    assert np.abs(decoded - points).max() <= 0.3
    assert peaks.min() > 0.8
    crop = np.array([[17.0, 33.0]])
    assert from_heatmap(to_heatmap(crop, 4), 4) == pytest.approx(crop)


def test_unlabelled_or_far_joints_get_no_weight() -> None:
    points = np.array([[5.0, 5.0], [100.0, 5.0]] + [[1.0, 1.0]] * 14)
    flags = np.ones(16)
    flags[2] = 0
    targets, weights = gaussian_heatmaps(points, flags, (12, 16))
    assert weights[:3].tolist() == [1, 0, 0] and targets[1].max() == 0 and targets[2].max() == 0


def test_flip_pairs_swap_left_and_right() -> None:
    perm = flip_permutation()
    for a, b in FLIP_PAIRS:
        assert JOINTS[a].replace("right", "left") == JOINTS[b]
        assert perm[a] == b and perm[b] == a
    assert all(perm[k] == k for k in range(6, 10))
    # a mirrored heatmap mirrored back is the original
    maps = np.random.default_rng(0).uniform(size=(16, 8, 6))
    assert np.array_equal(flip_back(flip_back(maps)), maps)


def test_mirrored_crop_maps_back_to_the_same_image_points(pose_root: Path) -> None:
    datamodule = PoseDataModule(
        root=str(pose_root), input_size=(64, 64), flip=1.0, rotation=0.0, scale=0.0
    )
    samples = list(datamodule.samples().values())[:4]
    plain = PoseDataset(datamodule.image_root, samples, (64, 64), train=False)
    mirrored = PoseDataset(
        datamodule.image_root, samples, (64, 64), train=True, flip=1.0, rotation=0.0, scale=0.0
    )
    for k, (person, _) in enumerate(samples):
        a, b = plain[k], mirrored[k]
        assert np.allclose(a["image"].numpy()[:, :, ::-1], b["image"].numpy(), atol=1e-5)
        # the targets of the mirrored crop, decoded and mapped back, are the labelled joints
        for item, swap in ((a, False), (b, True)):
            cells, _ = decode_heatmaps(item["target"].numpy())
            image_points = transform_points(from_heatmap(cells, 4), item["inverse"].numpy())
            weight = item["weight"].numpy() > 0
            truth = person.keypoints[flip_permutation()] if swap else person.keypoints
            assert np.abs(image_points - truth[:, :2])[weight].max() < 2.5
            assert (truth[:, 2] > 0)[weight].all()
        # the left wrist channel of the mirrored crop holds the right wrist
        assert np.allclose(b["target"][15].numpy(), a["target"][10].numpy()[:, ::-1], atol=0.05)
