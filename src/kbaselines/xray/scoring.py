"""Score COCO detection results against COCO ground truth with the framework's COCO evaluation.

    python scripts/score.py family=xray gt=<COCO json> pred=<COCO results json>
        [iou_type=bbox|segm] [backend=faster_coco_eval|pycocotools]

Prints the 12 COCO numbers (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) and
per-category AP, AP50 and recall at IoU 0.5. A run's ``fold_<k>/coco_gt_test.json`` and
``coco_results_test.json`` are such a pair.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kbaselines.core.metrics.coco import BACKENDS, BOX_STATS, CocoEvaluation, evaluate_coco

__all__ = ["LABELS", "main", "score_files"]

#: the COCO summary's names of :data:`~kbaselines.core.metrics.coco.BOX_STATS`
LABELS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def score_files(
    gt: str | Path, pred: str | Path, iou_type: str = "bbox", backend: str = "faster_coco_eval"
) -> CocoEvaluation:
    """The COCO evaluation of a results file against a ground-truth file.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is not JSON of its kind, or results name images the ground truth does
            not have (the COCO API would stop on a bare assertion).
    """
    ground_truth, results = (_load(role, path) for role, path in (("gt", gt), ("pred", pred)))
    if not isinstance(ground_truth, dict) or not isinstance(ground_truth.get("images"), list):
        raise ValueError(f"gt={gt}: not a COCO ground truth (an object with an 'images' list)")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError(f"pred={pred}: not COCO results (a list of objects with image_id ...)")
    known = {image.get("id") for image in ground_truth["images"] if isinstance(image, dict)}
    unknown = sorted(
        {str(r.get("image_id")) for r in results if r.get("image_id") not in known},
        key=lambda name: (len(name), name),
    )
    if unknown:
        shown = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        raise ValueError(
            f"pred={pred} names image_id {shown}, which gt={gt} does not have among its "
            f"{len(known)} images: score results against the ground truth they were made for "
            "(a run's fold_<k>/coco_results_test.json with its coco_gt_test.json)"
        )
    return evaluate_coco(ground_truth, results, iou_type=iou_type, backend=backend)


def _load(role: str, path: str | Path) -> object:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{role}={path}: no such file")
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{role}={path}: not JSON ({error})") from error


def _names(gt: str | Path) -> dict[int, str]:
    return {int(c["id"]): str(c["name"]) for c in json.loads(Path(gt).read_text())["categories"]}


def main(options: dict[str, str]) -> int:
    """Print the COCO numbers and the per-category table; 2 on missing or unknown options."""
    unknown = sorted(set(options) - {"gt", "pred", "iou_type", "backend"})
    if unknown or "gt" not in options or "pred" not in options:
        print(
            f"score.py family=xray: needs gt=... pred=...; unknown {unknown}\n{__doc__}",
            file=sys.stderr,
        )
        return 2
    backend = options.get("backend", "faster_coco_eval")
    if backend not in BACKENDS:
        print(f"backend={backend}: choose one of {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    try:
        result = score_files(
            options["gt"], options["pred"], options.get("iou_type", "bbox"), backend
        )
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"score.py family=xray: {error}", file=sys.stderr)
        return 1
    for label, key in zip(LABELS, BOX_STATS, strict=True):
        print(f"{label:<6} {result.stats[key]:.10f}")
    names = _names(options["gt"])
    print(f"\n{'category':<24} {'AP':>7} {'AP50':>7} {'recall50':>9}")
    for category, row in result.per_class().items():
        print(
            f"{names.get(category, str(category)):<24} {row['ap']:>7.4f} {row['ap50']:>7.4f} {row['recall50']:>9.4f}"
        )
    return 0
