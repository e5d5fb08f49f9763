"""Score pose predictions in the dataset's own 2D format against a 2D annotation file.

    python scripts/score.py family=pose gt=<2D json> pred=<predictions json> [threshold=0.5]

The predictions file has the annotation file's layout plus an optional per-person ``score``
(default 1), as ``predictions_test.json`` of a run. PCKh pairs each ground-truth person with the
prediction of the same ``img_no`` and ``person_no`` (a person without one counts as missed); OKS
AP ranks every prediction of an image by ``score`` as the COCO evaluation does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from kbaselines.pose.joints import HEAD, JOINTS, NECK, OKS_SIGMAS
from kbaselines.pose.metrics import oks_ap, pckh
from kbaselines.pose.reader import PoseFormatError, read_2d

__all__ = ["main", "score_files"]


def score_files(gt: str | Path, pred: str | Path, threshold: float = 0.5) -> dict[str, float]:
    """PCKh (mean and per joint), OKS AP / AP50 / AP75 and the counts of a predictions file.

    Raises:
        PoseFormatError: either file is unreadable or has broken records (listed).
    """
    truth, guess = read_2d(gt), read_2d(pred)
    for content in (truth, guess):
        if content.problems:
            listing = "\n  ".join(str(p) for p in content.problems[:20])
            raise PoseFormatError(content.file, f"{len(content.problems)} problems:\n  {listing}")
    by_key = {(p.img_no, p.person_no): p for p in guess.people}
    gt_points = np.stack([p.keypoints for p in truth.people])
    matched = np.stack(
        [
            by_key[(p.img_no, p.person_no)].keypoints[:, :2]
            if (p.img_no, p.person_no) in by_key
            else np.full((len(JOINTS), 2), np.inf)
            for p in truth.people
        ]
    )
    pck = pckh(matched, gt_points, head=HEAD, neck=NECK, threshold=threshold)
    coco = oks_ap(
        gt_points,
        np.array([p.bbox for p in truth.people]),
        [p.img_no for p in truth.people],
        np.stack([p.keypoints[:, :2] for p in guess.people]),
        np.array([p.score for p in guess.people]),
        [p.img_no for p in guess.people],
        sigmas=OKS_SIGMAS,
    )
    result = {
        "people": float(len(truth.people)),
        "predictions": float(len(guess.people)),
        "unmatched_people": float(
            sum(k not in by_key for k in ((p.img_no, p.person_no) for p in truth.people))
        ),
        "pckh_excluded_people": float(pck["excluded"]),
        "pckh": pck["mean"],
        "oks_ap": coco["ap"],
        "oks_ap50": coco["ap50"],
        "oks_ap75": coco["ap75"],
    }
    result.update({f"pckh_{j}": float(v) for j, v in zip(JOINTS, pck["per_joint"], strict=True)})
    return result


def main(options: dict[str, str]) -> int:
    """Print the scores of ``pred`` against ``gt``; exit code 2 on missing options or bad files."""
    unknown = sorted(set(options) - {"gt", "pred", "threshold"})
    if "gt" not in options or "pred" not in options or unknown:
        print(
            f"score.py family=pose needs gt=<2D json> pred=<predictions json> [threshold=0.5]; "
            f"unknown: {unknown}",
            file=sys.stderr,
        )
        return 2
    try:
        scores = score_files(options["gt"], options["pred"], float(options.get("threshold", 0.5)))
    except PoseFormatError as error:
        print(error, file=sys.stderr)
        return 2
    width = max(len(k) for k in scores)
    for name, value in scores.items():
        print(f"{name:<{width}}  {value:.4f}")
    return 0
