"""Heatmaps and back, mirrors with left/right swapped, the data's joints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kbaselines.pose.codec import HeatmapCodec, flip_back
from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.dataset import PoseDataset
from kbaselines.pose.info import PoseInfo
from kbaselines.pose.joints import FLIP_PAIRS, HEAD, JOINTS, NECK, OKS_SIGMAS, flip_permutation
from kbaselines.pose.transforms import transform_points

#: Crops of 64x48 px at stride 4: heatmaps of 16x12 cells.
CODEC = HeatmapCodec((64, 48), stride=4, sigma=2.0)


def test_heatmap_peak_decodes_to_its_point_within_a_quarter_cell() -> None:
    points = np.array([[5.3, 7.8], [10.0, 3.0], [0.2, 0.1]] + [[6.0, 6.0]] * 13)
    targets, weights = CODEC.encode(CODEC.from_heatmap(points), np.ones(16))
    assert targets.shape == (16, 16, 12) and weights.min() == 1
    decoded, peaks = CODEC.decode(targets)
    assert np.abs(CODEC.to_heatmap(decoded) - points).max() <= 0.3
    assert peaks.min() > 0.8
    crop = np.array([[17.0, 33.0]])
    assert CODEC.from_heatmap(CODEC.to_heatmap(crop)) == pytest.approx(crop)


def test_unlabelled_or_far_joints_get_no_weight() -> None:
    points = np.array([[5.0, 5.0], [100.0, 5.0]] + [[1.0, 1.0]] * 14)
    flags = np.ones(16)
    flags[2] = 0
    targets, weights = CODEC.encode(CODEC.from_heatmap(points), flags)
    assert weights[:3].tolist() == [1, 0, 0] and targets[1].max() == 0 and targets[2].max() == 0


def test_heatmaps_of_another_size_are_refused() -> None:
    with pytest.raises(ValueError, match=r"data\.stride"):
        CODEC.decode(np.zeros((16, 32, 24)))


def test_flip_pairs_swap_left_and_right() -> None:
    perm = flip_permutation()
    for a, b in FLIP_PAIRS:
        assert JOINTS[a].replace("right", "left") == JOINTS[b]
        assert perm[a] == b and perm[b] == a
    assert all(perm[k] == k for k in range(6, 10))
    # a mirrored heatmap mirrored back is the original
    maps = np.random.default_rng(0).uniform(size=(16, 8, 6))
    assert np.array_equal(flip_back(flip_back(maps, perm), perm), maps)


def test_the_datamodule_gives_the_datasets_joints() -> None:
    info = PoseDataModule().info
    assert info.joint_names == JOINTS and info.num_joints == 16 and info.class_names == ("person",)
    assert (info.head, info.neck) == (HEAD, NECK) and list(info.sigmas) == OKS_SIGMAS.tolist()
    assert np.array_equal(info.flip_permutation(), flip_permutation())
    with pytest.raises(ValueError, match="15 OKS sigmas"):
        PoseInfo(joint_names=JOINTS, sigmas=info.sigmas[1:], head=9, neck=8, flip_pairs=())


def test_mirrored_crop_maps_back_to_the_same_image_points(pose_root: Path) -> None:
    datamodule = PoseDataModule(
        root=str(pose_root), input_size=(64, 64), flip=1.0, rotation=0.0, scale=0.0
    )
    samples = list(datamodule.samples().values())[:4]
    codec = datamodule.codec
    plain = PoseDataset(datamodule.image_root, samples, codec, train=False)
    mirrored = PoseDataset(
        datamodule.image_root, samples, codec, train=True, flip=1.0, rotation=0.0, scale=0.0
    )
    for k, (person, _) in enumerate(samples):
        a, b = plain[k], mirrored[k]
        assert np.allclose(a["image"].numpy()[:, :, ::-1], b["image"].numpy(), atol=1e-5)
        # the targets of the mirrored crop, decoded and mapped back, are the labelled joints
        for item, swap in ((a, False), (b, True)):
            crop, _ = codec.decode(item["target"].numpy())
            image_points = transform_points(crop, item["inverse"].numpy())
            weight = item["weight"].numpy() > 0
            truth = person.keypoints[flip_permutation()] if swap else person.keypoints
            assert np.abs(image_points - truth[:, :2])[weight].max() < 2.5
            assert (truth[:, 2] > 0)[weight].all()
        # the left wrist channel of the mirrored crop holds the right wrist
        assert np.allclose(b["target"][15].numpy(), a["target"][10].numpy()[:, ::-1], atol=0.05)
