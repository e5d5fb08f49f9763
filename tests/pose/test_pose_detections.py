"""Evaluation on detected person boxes (``data.detections``): the COCO results reader, the
box matching, and the evaluation path against the ground-truth-box one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.detections import DETECTION_NUMBERS, read_detections
from kbaselines.pose.metrics import match_detections
from kbaselines.pose.reader import PoseFormatError, PoseImage
from kbaselines.pose.simple_baseline import SimpleBaseline
from kbaselines.pose.task import PoseTask

IMAGE = PoseImage(7, "r/a-Camera 1_0.jpg", 200, 100, "walk", "1", "Camera 1", "r", "0")


def _write(folder: Path, records: object) -> Path:
    path = folder / "detections.json"
    path.write_text(json.dumps(records))
    return path


def test_reader_keeps_persons_and_names_every_unusable_record(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            {"image_id": 7, "category_id": 1, "bbox": [10, 10, 40, 80], "score": 0.5},
            {"image_id": 7, "category_id": 1, "bbox": [150, -5, 70, 50], "score": 0.9},  # clipped
            {"image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.9},  # a car
            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.01},  # low
            {"image_id": 7, "category_id": 1, "score": 0.9},  # no box
            {"image_id": 7, "category_id": 1, "bbox": [10, 10, 0, 5], "score": 0.9},
            {"image_id": 7, "category_id": 1, "bbox": [300, 10, 20, 20], "score": 0.9},
            {"image_id": 8, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 20]},  # no score
            "not a record",
        ],
    )
    found = read_detections(path, {7: IMAGE}, min_score=0.05)
    assert len(found) == 2 and found.other_categories == 1 and found.below_score == 1
    assert found.clipped_boxes == 1
    first, second = found.by_image[7]  # by descending score
    assert (first.score, first.bbox, first.person_no) == (0.9, (150, 0, 200, 45), DETECTION_NUMBERS)
    assert second.bbox == (10, 10, 50, 90) and not second.keypoints.any()
    reasons = {p.record: p.reason for p in found.problems}
    assert set(reasons) == {f"detections[{k}]" for k in range(4, 10)}
    assert "key 'bbox' is missing" in reasons["detections[4]"]
    assert "no area" in reasons["detections[5]"]
    assert "outside the 200x100 image" in reasons["detections[6]"]
    assert "key 'image_id': 8 is no img_no" in reasons["detections[7]"]
    assert "key 'score' is missing" in reasons["detections[8]"]
    assert "not an object" in reasons["detections[9]"]
    assert all(p.file == str(path) for p in found.problems)


@pytest.mark.parametrize("content", ["{not json", '{"image_id": 1}'])
def test_a_file_that_is_no_results_list_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "detections.json"
    path.write_text(content)
    with pytest.raises(PoseFormatError, match=r"detections\.json"):
        read_detections(path, {7: IMAGE})


def test_matching_by_hand() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 10, 10]], float)
    gt_images = [1, 1, 2]
    det = np.array(
        [
            [0, 0, 10, 11],  # IoU 10/11 with person 0
            [1, 0, 11, 10],  # IoU 9/11 with person 0, taken first by its higher score
            [21, 0, 31, 10],  # person 1 (IoU 9/11)
            [0, 0, 10, 10],  # on image 3: nobody
            [5, 0, 15, 10],  # image 2, IoU 1/3 < 0.5: no match
        ],
        float,
    )
    scores = np.array([0.5, 0.9, 0.8, 1.0, 0.7])
    matched = match_detections(gt, gt_images, det, [1, 1, 1, 3, 2], scores)
    assert matched.tolist() == [1, 2, -1]
    assert match_detections(gt, gt_images, det[:0], [], scores[:0]).tolist() == [-1, -1, -1]


def _datamodule(root: Path, **settings: object) -> PoseDataModule:
    plain = PoseDataModule(root=str(root), input_size=(64, 64), batch_size=16)
    ids = list(plain.samples())
    module = PoseDataModule(
        root=str(root), input_size=(64, 64), batch_size=16, split={"test": ids}, **settings
    )
    module.setup("test")
    return module


def _test_metrics(module: PoseDataModule) -> tuple[dict[str, float], PoseTask]:
    pl.seed_everything(0)
    task = PoseTask(
        SimpleBaseline("resnet18", deconv_channels=(32, 32, 32)),
        optimizer=lambda params: torch.optim.Adam(params),
        info=module.info,
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    metrics = trainer.test(task, datamodule=module, verbose=False)[0]
    return metrics, task


def _ground_truth_as_detections(module: PoseDataModule, folder: Path) -> Path:
    return _write(
        folder,
        [
            {
                "image_id": p.img_no,
                "category_id": 1,
                "bbox": [p.bbox[0], p.bbox[1], p.bbox[2] - p.bbox[0], p.bbox[3] - p.bbox[1]],
                "score": 1.0,
            }
            for p, _ in module.eval_records("test")
        ],
    )


def test_ground_truth_boxes_as_detections_score_as_the_ground_truth(
    pose_root: Path, tmp_path: Path
) -> None:
    module = _datamodule(pose_root)
    truth, _ = _test_metrics(module)
    detected = _datamodule(pose_root, detections=str(_ground_truth_as_detections(module, tmp_path)))
    assert detected.uses_detections("test") and not module.uses_detections("test")
    metrics, task = _test_metrics(detected)
    assert metrics["test/matched_people"] == 1.0
    for name in ("test/pckh", "test/oks_ap", "test/mpjpe", "test/p_mpjpe"):
        assert metrics[name] == pytest.approx(truth[name], abs=1e-6), name
    # the predictions carry their person's person_no, so that score.py pairs them as the run did
    numbers = {(r["img_no"], r["person_no"]) for r in task.test_predictions}
    assert numbers == {(p.img_no, p.person_no) for p, _ in module.eval_records("test")}


def test_the_simulated_detector_misses_people_and_adds_false_alarms(pose_root: Path) -> None:
    module = _datamodule(pose_root, detections="detections.json")
    people = module.ground_truth("test")
    detections = module.eval_records("test")
    metrics, task = _test_metrics(module)
    assert 0.9 <= metrics["test/matched_people"] < 1.0
    unmatched = [r for r in task.test_predictions if r["person_no"] >= DETECTION_NUMBERS]
    assert len(detections) == len(task.test_predictions) and unmatched
    assert len(detections) - len(unmatched) == round(metrics["test/matched_people"] * len(people))


def test_broken_detections_stop_or_are_skipped(pose_root: Path, tmp_path: Path) -> None:
    module = _datamodule(pose_root)
    path = _ground_truth_as_detections(module, tmp_path)
    records = json.loads(path.read_text())
    records.append({"image_id": 10**9, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.3})
    path.write_text(json.dumps(records))
    with pytest.raises(PoseFormatError, match=r"\[detections\[\d+\]\]: key 'image_id': 1000000000"):
        _datamodule(pose_root, detections=str(path))
    skipped = _datamodule(pose_root, detections=str(path), skip_broken=True)
    assert len(skipped.eval_records("test")) == len(records) - 1
    report = PoseDataModule(root=str(pose_root), detections=str(path)).check()
    assert report.counts["detections"]["boxes"] == len(records) - 1
    assert any("'image_id': 1000000000" in str(p) for p in report.problems)
