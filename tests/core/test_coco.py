"""The shared COCO evaluation against the published numbers of the real COCO fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kbaselines.core.config import PROJECT_ROOT
from kbaselines.core.metrics.coco import BOX_STATS, KEYPOINT_STATS, evaluate_coco

REAL = PROJECT_ROOT.parent / "shared" / "real"
# shared/real/README.md: the 12 COCO numbers of the fake bbox results
BOX_EXPECTED = [
    0.5045806987, 0.6969727247, 0.5729816670, 0.5856257209, 0.5193996948, 0.5013978986,
    0.3868127796, 0.5936795763, 0.5953529829, 0.6398109626, 0.5664205979, 0.5642905983,
]  # fmt: skip
# and the 10 numbers of its keypoint fixture
KEYPOINT_EXPECTED = [
    0.5048844884, 0.7227722772, 0.6336633663, 0.4663366337, 0.7504950495,
    0.5181818182, 0.7272727273, 0.6363636364, 0.4666666667, 0.75,
]  # fmt: skip
# COCO's 17 keypoint sigmas (cocoeval.py), which the keypoint fixture is scored with
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
     0.89, 0.89]
) / 10.0  # fmt: skip


def _fixture(*parts: str) -> Path:
    path = REAL.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared reference data)")
    return path


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_boxes_give_the_published_numbers(backend: str) -> None:
    gt = _fixture("coco_eval", "instances_val2014_100.json")
    results = gt.parent / "instances_val2014_fakebbox100_results.json"
    evaluation = evaluate_coco(str(gt), str(results), backend=backend)
    np.testing.assert_allclose([evaluation.stats[k] for k in BOX_STATS], BOX_EXPECTED, atol=1e-9)


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_keypoints_give_the_published_numbers(backend: str) -> None:
    folder = _fixture("coco_keypoints", "gt_dataset.json").parent
    gt = json.loads((folder / "gt_dataset.json").read_text())
    results = json.loads((folder / "dt_dataset.json").read_text())
    before = json.dumps([gt, results], sort_keys=True)
    evaluation = evaluate_coco(gt, results, "keypoints", backend=backend, sigmas=COCO_SIGMAS)
    np.testing.assert_allclose(
        [evaluation.stats[k] for k in KEYPOINT_STATS], KEYPOINT_EXPECTED, atol=1e-9
    )
    assert json.dumps([gt, results], sort_keys=True) == before  # the COCO API worked on copies


def test_no_results_score_zero_and_keypoints_need_sigmas() -> None:
    gt = {
        "images": [{"id": 1, "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25,
             "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "knife"}],
    }  # fmt: skip
    evaluation = evaluate_coco(gt, [])
    assert set(evaluation.stats.values()) == {0.0} and evaluation.category_ids == [1]
    with pytest.raises(ValueError, match="sigmas"):
        evaluate_coco(gt, [], "keypoints")
    with pytest.raises(ValueError, match="iou_type"):
        evaluate_coco(gt, [], "boxes")
