"""The COCO evaluation, once, for boxes and keypoints: one call for every dataset that needs it.

:func:`evaluate_coco` scores COCO results against a COCO ground truth (dicts or JSON files) with
the COCO API itself, through ``faster_coco_eval`` (the same numbers at C++ speed) or
``pycocotools`` (the reference). Box evaluation gives COCO's 12 summary numbers
(:data:`BOX_STATS`), keypoint evaluation its 10 (:data:`KEYPOINT_STATS`) with the dataset's own
per-joint OKS sigmas. :func:`box_ground_truth` and :func:`box_results` turn per-image box arrays
into those structures.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "BOX_STATS",
    "KEYPOINT_STATS",
    "CocoEvaluation",
    "box_ground_truth",
    "box_results",
    "evaluate_coco",
]

#: the 12 numbers of COCO's box summary, in its order
BOX_STATS = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)
#: the 10 numbers of COCO's keypoint summary, in its order
KEYPOINT_STATS = ("ap", "ap50", "ap75", "ap_m", "ap_l", "ar", "ar50", "ar75", "ar_m", "ar_l")
BACKENDS = ("faster_coco_eval", "pycocotools")
_STATS = {"bbox": BOX_STATS, "segm": BOX_STATS, "keypoints": KEYPOINT_STATS}


def box_ground_truth(
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    categories: Sequence[str],
    file_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth dict: image ``k`` gets id ``k + 1``, label ``c`` category id ``c``.

    Args:
        boxes: per image, ``[N, 4]`` boxes ``x_min, y_min, x_max, y_max`` in pixels.
        labels: per image, ``[N]`` labels 1..C.
        sizes: per image, ``(width, height)``.
        categories: category names; label ``c`` is ``categories[c - 1]``.
        file_names: per image, its path (kept in the file for readers).
    """
    images, annotations = [], []
    for k, (image_boxes, image_labels, (width, height)) in enumerate(
        zip(boxes, labels, sizes, strict=True)
    ):
        name = file_names[k] if file_names is not None else str(k + 1)
        images.append({"id": k + 1, "width": int(width), "height": int(height), "file_name": name})
        for box, label in zip(np.asarray(image_boxes).reshape(-1, 4), image_labels, strict=True):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(categories)],
    }


def box_results(
    boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """COCO results (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``), image
    ``k`` as id ``k + 1`` as in :func:`box_ground_truth`."""
    results = []
    for k, (image_boxes, image_labels, image_scores) in enumerate(
        zip(boxes, labels, scores, strict=True)
    ):
        for box, label, score in zip(
            np.asarray(image_boxes).reshape(-1, 4), image_labels, image_scores, strict=True
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": k + 1,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    return results


@dataclass
class CocoEvaluation:
    """The outcome of a COCO evaluation.

    Args:
        stats: the summary numbers by name (:data:`BOX_STATS` or :data:`KEYPOINT_STATS`); -1
            where COCO has no ground truth for a number.
        precision: COCO's ``[T IoUs or OKS thresholds, R=101 recalls, K classes, A areas,
            M max detections]``.
        recall: ``[T, K, A, M]``.
        category_ids: the category id of each K index.
        summary: the printed summary of the COCO API.
    """

    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list[int]
    summary: str = ""

    def per_class(self) -> dict[int, dict[str, float]]:
        """AP (over every threshold), AP at the first threshold (IoU 0.5) and recall there, at
        all areas and the most detections, per category id; -1 for a category without ground
        truth."""
        out = {}
        for k, category in enumerate(self.category_ids):
            precision = self.precision[:, :, k, 0, -1]
            valid = precision[precision > -1]
            at50 = precision[0][precision[0] > -1]
            out[category] = {
                "ap": float(valid.mean()) if valid.size else -1.0,
                "ap50": float(at50.mean()) if at50.size else -1.0,
                "recall50": float(self.recall[0, k, 0, -1]),
            }
        return out


def _coco_api(backend: str) -> tuple[Any, Any]:
    """The ``COCO`` and ``COCOeval`` classes of a backend."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    from faster_coco_eval import COCO, COCOeval_faster

    return COCO, COCOeval_faster


def evaluate_coco(
    ground_truth: Mapping[str, Any] | str,
    results: Sequence[Mapping[str, Any]] | str,
    iou_type: str = "bbox",
    backend: str = "faster_coco_eval",
    sigmas: Sequence[float] | None = None,
) -> CocoEvaluation:
    """Score COCO results against a COCO ground truth (dicts or JSON file paths).

    The inputs are left as they are (the COCO API marks annotations in place, so it works on
    copies). No results at all score 0 on every number (the COCO API refuses empty results).

    Args:
        ground_truth: the COCO ground truth, or its JSON file.
        results: the COCO results, or their JSON file.
        iou_type: ``bbox``, ``segm`` or ``keypoints``.
        backend: ``faster_coco_eval`` or ``pycocotools``.
        sigmas: ``keypoints``: the per-joint OKS sigmas of the dataset (required).
    """
    if iou_type not in _STATS:
        raise ValueError(f"iou_type {iou_type!r}: choose one of {', '.join(_STATS)}")
    if iou_type == "keypoints" and sigmas is None:
        raise ValueError("keypoint evaluation needs the dataset's per-joint OKS sigmas")
    names = _STATS[iou_type]
    coco, coco_eval = _coco_api(backend)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        if isinstance(ground_truth, str):
            gt = coco(ground_truth)
        else:
            gt = coco()
            gt.dataset = copy.deepcopy(dict(ground_truth))
            gt.createIndex()
        if isinstance(results, str):
            dt = gt.loadRes(results)
        elif results:
            dt = gt.loadRes(copy.deepcopy([dict(r) for r in results]))
        else:
            category_ids = sorted(gt.getCatIds())
            areas, max_dets = (3, 1) if iou_type == "keypoints" else (4, 3)
            return CocoEvaluation(
                dict.fromkeys(names, 0.0),
                np.zeros((10, 101, len(category_ids), areas, max_dets)),
                np.zeros((10, len(category_ids), areas, max_dets)),
                category_ids,
                "no detections",
            )
        evaluation = coco_eval(gt, dt, iou_type)
        if sigmas is not None:
            evaluation.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
        if backend == "faster_coco_eval":
            evaluation.print_function = print
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [float(v) for v in evaluation.stats[: len(names)]]
    return CocoEvaluation(
        dict(zip(names, stats, strict=True)),
        np.asarray(evaluation.eval["precision"]),
        np.asarray(evaluation.eval["recall"]),
        list(evaluation.params.catIds),
        printed.getvalue(),
    )
