"""The pose readers on the synthetic dataset and on broken files: every problem names file and record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.joints import JOINTS
from kbaselines.pose.reader import (
    PoseFormatError,
    map_keypoint_names,
    parse_img_path,
    read_2d,
    read_3d,
    read_cameras,
)


def test_img_path_gives_recording_camera_and_frame() -> None:
    path = "/studio_B1/20190701/3-1/3-1-08-Camera 9 (805316625)_299.jpg"
    assert parse_img_path(path) == ("studio_B1/20190701/3-1", "Camera 9", "299")


def test_bvh_and_shuffled_names_map_to_the_16_joints() -> None:
    bvh = [
        "RightAnkle",
        "RightKnee",
        "RightHip",
        "LeftHip",
        "LeftKnee",
        "LeftAnkle",
        "Hips",
        "Chest",
        "Neck",
        "Head",
        "RightWrist",
        "RightElbow",
        "RightShoulder",
        "LeftShoulder",
        "LeftElbow",
        "LeftWrist",
    ]
    names = [f"{n}_{s}" for n in reversed(bvh) for s in ("x", "y", "view")]
    order = map_keypoint_names(names, ("x", "y", "view"))
    # right_ankle is the last joint of the reversed list
    assert order[0].tolist() == [45, 46, 47] and order[15].tolist() == [0, 1, 2]


def test_synthetic_2d_agrees_with_3d_through_the_cameras(pose_root: Path) -> None:
    cameras = read_cameras(pose_root / "cameras.json")
    poses = {}
    for file in sorted((pose_root / "annotations").glob("*_3d.json")):
        found, problems = read_3d(file)
        assert not problems
        poses.update(found)
    checked = 0
    for file in sorted((pose_root / "annotations").glob("*_2d.json")):
        content = read_2d(file)
        assert not content.problems and content.clipped_boxes == 0
        for person in content.people:
            image = content.images[person.img_no]
            uv = cameras[image.camera].project(poses[(image.instant, person.person_no)])
            labelled = person.keypoints[:, 2] > 0
            assert np.abs(uv[labelled] - person.keypoints[labelled, :2]).max() < 0.06
            checked += 1
    assert checked > 50


def _write(folder: Path, document: dict) -> Path:
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    path = folder / "annotations" / "bad_2d.json"
    path.write_text(json.dumps(document))
    return path


def _document(pose_root: Path) -> dict:
    first = sorted((pose_root / "annotations").glob("*_2d.json"))[0]
    return json.loads(first.read_text())


def test_broken_records_are_named_with_file_and_record(pose_root: Path, tmp_path: Path) -> None:
    document = _document(pose_root)
    annotations = document["annotations"]
    annotations[0]["keypoints"] = annotations[0]["keypoints"][:-3]
    annotations[1]["img_no"] = 99999
    annotations[2]["bbox"] = [-50, -10, 60, 5000]
    annotations[3]["bbox"] = [5000, 5000, 6000, 6000]
    path = _write(tmp_path, document)
    content = read_2d(path)
    reasons = {p.record: p.reason for p in content.problems}
    assert set(reasons) == {"annotations[0]", "annotations[1]", "annotations[3]"}
    assert "key 'keypoints'" in reasons["annotations[0]"]
    assert "has 45 values; expected 48" in reasons["annotations[0]"]
    assert "img_no 99999, which no image record" in reasons["annotations[1]"]
    assert "key 'bbox'" in reasons["annotations[3]"] and "outside" in reasons["annotations[3]"]
    assert content.clipped_boxes == 1
    clipped = next(
        p
        for p in content.people
        if p.person_no == annotations[2]["person_no"] and p.img_no == annotations[2]["img_no"]
    )
    assert clipped.bbox[0] == 0 and clipped.bbox[3] == 144
    assert all(str(path) == p.file for p in content.problems)


def test_unmappable_names_refuse_the_file(pose_root: Path, tmp_path: Path) -> None:
    document = _document(pose_root)
    document["categories"][0]["keypoints"][0] = "nose_x"
    path = _write(tmp_path, document)
    with pytest.raises(PoseFormatError, match=r"bad_2d.json.*'nose'.*not one of the 16"):
        read_2d(path)


def test_datamodule_refuses_or_skips_broken_records(pose_root: Path, tmp_path: Path) -> None:
    document = _document(pose_root)
    document["annotations"][0]["keypoints"] = [1, 2]
    _write(tmp_path, document)
    (tmp_path / "images").symlink_to(pose_root / "images")
    with pytest.raises(PoseFormatError, match=r"(?s)1 problems.*annotations\[0\].*skip_broken"):
        PoseDataModule(root=str(tmp_path)).sample_table()
    table = PoseDataModule(root=str(tmp_path), skip_broken=True).sample_table()
    assert len(table.ids) == len(document["annotations"]) - 1


def test_sample_table_and_check(pose_root: Path) -> None:
    datamodule = PoseDataModule(root=str(pose_root), domain_key="camera")
    table = datamodule.sample_table()
    assert len(set(table.groups)) == 6 and table.ids == sorted(table.ids)
    assert set(table.domains) == {"Camera 1", "Camera 2", "Camera 3", "Camera 4"}
    assert all(f[0].startswith("images/studio_S1/") for f in table.files)
    assert len({d[0] for d in table.digests}) == len({f[0] for f in table.files})
    report = datamodule.check()
    assert report.ok, report.render()
    counts = report.counts
    assert counts["image files opened"] == counts["images"] and counts["people left out"] == 0
    assert counts["people"] == len(table.ids)
    assert set(counts["visible joints per joint"]) == set(JOINTS)
    assert counts["3D"]["people with a 3D pose"] == len(table.ids)
    assert counts["3D"]["calibrated cameras"] == 4
    assert sum(counts["images per camera"].values()) == counts["images"]


def test_missing_root_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.root"):
        PoseDataModule(root=str(tmp_path / "nowhere")).sample_table()
