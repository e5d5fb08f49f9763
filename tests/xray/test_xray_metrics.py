"""Detection metrics against pycocotools, the real COCO fixture and hand-computed VOC cases."""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from kbaselines.core.config import PROJECT_ROOT
from kbaselines.core.metrics.coco import BOX_STATS
from kbaselines.xray.metrics import detection_metrics, voc_ap, voc_class_ap

COCO_EVAL = PROJECT_ROOT.parent / "shared" / "real" / "coco_eval"
# shared/real/README.md: the 12 COCO numbers of the fake bbox results
EXPECTED = [
    0.5045806987, 0.6969727247, 0.5729816670, 0.5856257209, 0.5193996948, 0.5013978986,
    0.3868127796, 0.5936795763, 0.5953529829, 0.6398109626, 0.5664205979, 0.5642905983,
]  # fmt: skip


@pytest.fixture(scope="module")
def coco_files() -> tuple[Path, Path]:
    gt = COCO_EVAL / "instances_val2014_100.json"
    if not gt.is_file():
        pytest.skip(f"{COCO_EVAL} is absent (the shared reference data)")
    return gt, COCO_EVAL / "instances_val2014_fakebbox100_results.json"


def test_framework_path_matches_plain_pycocotools(coco_files, tmp_path: Path) -> None:
    """Per-image arrays through detection_metrics == pycocotools on the same boxes as JSON files
    (crowd regions left out, areas of boxes: the framework's ground truth is boxes only)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(coco_files[0].read_text())
    results = json.loads(coco_files[1].read_text())
    gt["annotations"] = [a for a in gt["annotations"] if not a["iscrowd"]]
    for a in gt["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    images = sorted(gt["images"], key=lambda i: i["id"])
    categories = sorted(gt["categories"], key=lambda c: c["id"])
    label_of = {c["id"]: k + 1 for k, c in enumerate(categories)}
    boxes_gt, boxes_dt = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        boxes_gt[a["image_id"]].append(a)
    for r in results:
        boxes_dt[r["image_id"]].append(r)

    def xyxy(rows):
        return np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rows)]).reshape(
            -1, 4
        )

    targets = [
        {
            "boxes": xyxy(boxes_gt[i["id"]]),
            "labels": np.array([label_of[a["category_id"]] for a in boxes_gt[i["id"]]]),
        }
        for i in images
    ]
    predictions = [
        {
            "boxes": xyxy(boxes_dt[i["id"]]),
            "labels": np.array([label_of[r["category_id"]] for r in boxes_dt[i["id"]]]),
            "scores": np.array([r["score"] for r in boxes_dt[i["id"]]]),
        }
        for i in images
    ]
    ours = detection_metrics(
        predictions,
        targets,
        [(i["width"], i["height"]) for i in images],
        [c["name"] for c in categories],
    )
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(str(coco_files[1])), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    np.testing.assert_allclose([ours.metrics[k] for k in BOX_STATS], evaluation.stats, atol=1e-9)
    person = evaluation.eval["precision"][:, :, 0, 0, -1]
    assert ours.metrics["ap/person"] == pytest.approx(person[person > -1].mean())


def test_voc_all_point_ap_hand_computed() -> None:
    # 3 ground-truth boxes in 2 images; detections by score: TP, FP (duplicate), TP, FP (miss)
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10]])]
    pred = [np.array([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60]]), np.array([[0, 0, 10, 10]])]
    scores = [np.array([0.9, 0.8, 0.6]), np.array([0.7])]
    # precision 1, 1/2, 2/3, 2/4 at recall 1/3, 1/3, 2/3, 2/3: envelope 1 up to 1/3, 2/3 up to 2/3
    ap, recall = voc_class_ap(pred, scores, gt)
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)


def test_perfect_and_empty_predictions() -> None:
    targets = [{"boxes": np.array([[5.0, 5, 40, 30]]), "labels": np.array([1])},
               {"boxes": np.array([[10.0, 10, 50, 60]]), "labels": np.array([2])}]  # fmt: skip
    perfect = [{**t, "scores": np.array([0.9])} for t in targets]
    scores = detection_metrics(perfect, targets, [(64, 64)] * 2, ["a", "b"])
    assert scores.metrics["map"] == pytest.approx(1.0) and scores.metrics[
        "voc_map50"
    ] == pytest.approx(1.0)
    assert scores.metrics["recall50/b"] == pytest.approx(1.0)
    empty = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0), "scores": np.zeros(0)}] * 2
    assert detection_metrics(empty, targets, [(64, 64)] * 2, ["a", "b"]).metrics["map50"] == 0.0


@pytest.mark.cli
def test_score_script_prints_the_twelve_numbers(coco_files, run_entry_point) -> None:
    result = run_entry_point(
        "scripts/score.py", "family=xray", f"gt={coco_files[0]}", f"pred={coco_files[1]}"
    )
    lines = result.stdout.splitlines()[:12]
    assert [line.split()[0] for line in lines][:3] == ["AP", "AP50", "AP75"]
    np.testing.assert_allclose([float(line.split()[1]) for line in lines], EXPECTED, atol=1e-9)
