"""PCKh, OKS and OKS AP by hand and against the COCO evaluation of the real fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kbaselines.pose.joints import HEAD, NECK, OKS_SIGMAS
from kbaselines.pose.metrics import coco_keypoint_eval, oks, oks_ap, pckh

# COCO's 17 keypoint sigmas (cocoeval.py), for the real COCO fixture
COCO_SIGMAS = (
    np.array(
        [
            0.26,
            0.25,
            0.25,
            0.35,
            0.35,
            0.79,
            0.79,
            0.72,
            0.72,
            0.62,
            0.62,
            1.07,
            1.07,
            0.87,
            0.87,
            0.89,
            0.89,
        ]
    )
    / 10.0
)


def _person(offset: float = 0.0) -> np.ndarray:
    gt = np.zeros((16, 3))
    gt[:, 0] = np.arange(16) * 10 + offset
    gt[:, 1] = 50
    gt[:, 2] = 2
    gt[NECK, :2] = (offset, 0)
    gt[HEAD, :2] = (offset, 10)  # head segment 10 px: PCKh@0.5 threshold 5 px
    return gt


def test_pckh_by_hand() -> None:
    gt = np.stack([_person(), _person(100)])
    gt[1, 3, 2] = 0  # an unlabelled joint is not scored
    pred = gt[:, :, :2].copy()
    pred[0, 0] += (4.0, 0)  # within 5 px: correct
    pred[0, 1] += (3.0, 4.1)  # 5.08 px: wrong
    pred[1, 0] += (0, 5.0)  # exactly 5 px: correct
    result = pckh(pred, gt)
    assert result["per_joint"][0] == 1.0 and result["per_joint"][1] == 0.5
    assert result["scored"].sum() == 31 and result["mean"] == pytest.approx(30 / 31)
    # a person without a labelled neck is left out and counted
    gt[1, NECK, 2] = 0
    result = pckh(pred, gt)
    assert result["excluded"] == 1 and result["mean"] == pytest.approx(15 / 16)


def test_oks_by_hand() -> None:
    gt = _person()
    pred = gt[:, :2].copy()
    pred[0] += (3.0, 4.0)  # 5 px off on the right ankle (sigma .089)
    area = 2500.0
    e = 25.0 / (2 * (2 * 0.089) ** 2 * area)
    assert oks(pred, gt, area) == pytest.approx((15 + np.exp(-e)) / 16)
    gt[5:, 2] = 0  # only the labelled joints count
    assert oks(pred, gt, area) == pytest.approx((4 + np.exp(-e)) / 5)


def test_sigmas_are_the_documented_ones() -> None:
    assert OKS_SIGMAS.tolist() == [
        0.089,
        0.087,
        0.107,
        0.107,
        0.087,
        0.089,
        0.107,
        0.079,
        0.079,
        0.079,
        0.062,
        0.072,
        0.079,
        0.079,
        0.072,
        0.062,
    ]


def test_oks_ap_is_one_for_the_truth_and_falls_with_errors() -> None:
    rng = np.random.default_rng(0)
    gt = np.stack([_person(200 * k) for k in range(6)])
    boxes = np.array([[200 * k, 0, 200 * k + 150, 60] for k in range(6)], float)
    images = [1, 1, 2, 2, 3, 3]
    perfect = oks_ap(gt, boxes, images, gt[:, :, :2], np.ones(6))
    assert perfect["ap"] == pytest.approx(1.0) and perfect["ap50"] == pytest.approx(1.0)
    noisy = oks_ap(gt, boxes, images, gt[:, :, :2] + rng.normal(0, 6, (6, 16, 2)), np.ones(6))
    assert noisy["ap"] < 0.9


def test_oks_matches_pycocotools_on_one_person() -> None:
    gt = _person()
    pred = gt[:, :2] + np.random.default_rng(1).normal(0, 3, (16, 2))
    box = (0.0, 0.0, 150.0, 60.0)
    # with one person and one prediction, AP at threshold t is 1 exactly when OKS >= t
    value = oks(pred, gt, 150 * 60)
    ap50 = oks_ap(gt[None], np.array([box]), [1], pred[None], np.ones(1))["ap50"]
    assert (ap50 == pytest.approx(1.0)) == (value >= 0.5)


def test_coco_fixture_gives_its_published_ap(shared_real: Path) -> None:
    folder = shared_real / "coco_keypoints"
    gt = json.loads((folder / "gt_dataset.json").read_text())
    detections = json.loads((folder / "dt_dataset.json").read_text())
    stats = coco_keypoint_eval(gt, detections, COCO_SIGMAS)
    expected = {
        "ap": 0.5048844884,
        "ap50": 0.7227722772,
        "ap75": 0.6336633663,
        "ap_m": 0.4663366337,
        "ap_l": 0.7504950495,
        "ar": 0.5181818182,
        "ar50": 0.7272727273,
        "ar75": 0.6363636364,
        "ar_m": 0.4666666667,
        "ar_l": 0.75,
    }
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, abs=1e-9), name
