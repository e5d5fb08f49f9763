"""PCKh, OKS and OKS AP by hand and against the COCO evaluation of the real fixture."""

from __future__ import annotations

import numpy as np
import pytest

from kbaselines.pose.joints import HEAD, NECK, OKS_SIGMAS
from kbaselines.pose.metrics import oks_ap, pckh


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
    result = pckh(pred, gt, head=HEAD, neck=NECK)
    assert result["per_joint"][0] == 1.0 and result["per_joint"][1] == 0.5
    assert result["scored"].sum() == 31 and result["mean"] == pytest.approx(30 / 31)
    # a person without a labelled neck is left out and counted
    gt[1, NECK, 2] = 0
    result = pckh(pred, gt, head=HEAD, neck=NECK)
    assert result["excluded"] == 1 and result["mean"] == pytest.approx(15 / 16)


def _oks_by_hand(pred: np.ndarray, gt: np.ndarray, area: float) -> float:
    """COCO's OKS written out: mean over labelled joints of exp(-d^2 / (2 area (2 sigma)^2))."""
    labelled = gt[:, 2] > 0
    d2 = ((pred - gt[:, :2]) ** 2).sum(axis=1)
    return float(np.exp(-d2 / (2 * area * (2 * OKS_SIGMAS) ** 2))[labelled].mean())


@pytest.mark.parametrize("noise", [3.0, 8.0, 15.0])
def test_oks_ap_of_one_person_follows_the_hand_computed_oks(noise: float) -> None:
    """One person, one prediction: AP at an OKS threshold t is 1 exactly when OKS >= t, so the
    mean AP over 0.50:0.05:0.95 is the share of thresholds the hand-computed OKS reaches."""
    gt = _person()
    gt[5:8, 2] = 0  # unlabelled joints do not count
    pred = gt[:, :2] + np.random.default_rng(1).normal(0, noise, (16, 2))
    box = (0.0, 0.0, 150.0, 60.0)
    value = _oks_by_hand(pred, gt, 150 * 60)
    stats = oks_ap(gt[None], np.array([box]), [1], pred[None], np.ones(1), sigmas=OKS_SIGMAS)
    thresholds = np.linspace(0.5, 0.95, 10)
    assert stats["ap"] == pytest.approx(np.mean(value >= thresholds))
    assert stats["ap50"] == pytest.approx(float(value >= 0.5))


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
    perfect = oks_ap(gt, boxes, images, gt[:, :, :2], np.ones(6), sigmas=OKS_SIGMAS)
    assert perfect["ap"] == pytest.approx(1.0) and perfect["ap50"] == pytest.approx(1.0)
    noisy = oks_ap(
        gt,
        boxes,
        images,
        gt[:, :, :2] + rng.normal(0, 6, (6, 16, 2)),
        np.ones(6),
        sigmas=OKS_SIGMAS,
    )
    assert noisy["ap"] < 0.9
