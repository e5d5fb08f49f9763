"""The five real MPII photographs converted to the dataset's format: read, cropped, scored.

The MPII order is the dataset's joint order; ``head`` is MPII's head top and ``neck`` its upper
neck. Boxes come from MPII's person centre and scale (height / 200 px), clipped to the photo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kbaselines.core.config import PROJECT_ROOT
from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.joints import JOINTS
from kbaselines.pose.scoring import score_files
from kbaselines.pose.transforms import transform_points


def mpii_to_pose(mpii: Path, root: Path) -> Path:
    """Write ``root/annotations/mpii_2d.json`` and link the photos under ``root/images``."""
    records = json.loads((mpii / "test_mpii.json").read_text())
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for number, record in enumerate(records, start=1):
        (root / "images" / record["image"]).symlink_to(mpii / record["image"])
        width, height = Image.open(mpii / record["image"]).size
        images.append(
            {
                "video_no": 1,
                "img_no": number,
                "img_path": "/" + record["image"],
                "width": width,
                "height": height,
                "action_category": "mpii",
            }
        )
        joints = np.asarray(record["joints"], float)
        flags = np.where(np.asarray(record["joints_vis"]) > 0, 2, 0)
        keypoints = np.column_stack([joints * (flags[:, None] > 0), flags])
        cx, cy = record["center"]
        half = 100 * record["scale"]
        annotations.append(
            {
                "img_no": number,
                "person_no": 1,
                "bbox": [cx - half, cy - half, cx + half, cy + half],
                "keypoints": keypoints.ravel().tolist(),
                "num_keypoints": 16,
            }
        )
    names = [f"{j}_{s}" for j in JOINTS for s in ("x", "y", "view")]
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": "person", "id": 1, "name": "person", "keypoints": names}],
    }
    path = root / "annotations" / "mpii_2d.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture()
def mpii_root(shared_real: Path, tmp_path: Path) -> Path:
    mpii_to_pose(shared_real / "mpii_sample", tmp_path / "mpii")
    return tmp_path / "mpii"


def test_real_photos_read_and_the_truth_scores_one(mpii_root: Path) -> None:
    datamodule = PoseDataModule(root=str(mpii_root))
    report = datamodule.check()
    assert report.ok, report.render()
    assert report.counts["people"] == 5 and report.counts["images"] == 5
    gt = mpii_root / "annotations" / "mpii_2d.json"
    scores = score_files(gt, gt)
    assert scores["pckh"] == 1.0 and scores["oks_ap"] == pytest.approx(1.0)
    assert scores["people"] == 5 and scores["unmatched_people"] == 0


def test_real_photos_crop_and_map_back(mpii_root: Path) -> None:
    datamodule = PoseDataModule(root=str(mpii_root))
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    for k, (person, _) in enumerate(dataset.samples):
        item = dataset[k]
        crop, _ = datamodule.codec.decode(item["target"].numpy())
        back = transform_points(crop, item["inverse"].numpy())
        weight = item["weight"].numpy() > 0
        assert weight.sum() >= 10
        # decoding is exact to a quarter cell: 4 crop px per cell, crop px -> image px
        pixel = np.abs(np.linalg.det(item["inverse"].numpy()[:, :2])) ** 0.5
        error = np.abs(back - person.keypoints[:, :2])[weight].max()
        assert error < 0.3 * 4 * pixel + 0.5


@pytest.mark.cli
def test_score_script_prints_the_scores(mpii_root: Path) -> None:
    gt = mpii_root / "annotations" / "mpii_2d.json"
    prediction = json.loads(gt.read_text())
    prediction["annotations"][0]["keypoints"][0] += 500.0  # right ankle far off
    pred = mpii_root / "pred.json"
    pred.write_text(json.dumps(prediction))
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "score.py"),
            "family=pose",
            f"gt={gt}",
            f"pred={pred}",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    lines = dict(line.split() for line in result.stdout.splitlines())
    expected = score_files(gt, pred)
    assert float(lines["pckh_right_ankle"]) == pytest.approx(expected["pckh_right_ankle"], abs=1e-4)
    assert float(lines["pckh_right_ankle"]) < 1.0 and float(lines["pckh_left_ankle"]) == 1.0
    assert float(lines["oks_ap"]) == pytest.approx(expected["oks_ap"], abs=1e-4)
