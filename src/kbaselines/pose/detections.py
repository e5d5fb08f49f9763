"""Detected person boxes for evaluation (pose.md: "a file of detected person boxes, COCO results
format, as an option, as the paper evaluates with a detector").

The file is a COCO results list::

    [{"image_id": 17991, "category_id": 1, "bbox": [x, y, w, h], "score": 0.98}, ...]

``image_id`` is the 2D file's ``img_no``. Records of other categories (a general detector's cars and
dogs) are left out and counted; boxes that stick out of their image are clipped and counted; a
record that cannot be used (no box, a box of zero size or outside its image, an image the dataset
does not have) is a problem naming the file and the record. Each detection becomes a
:class:`~kbaselines.pose.reader.PosePerson` without keypoints, numbered per image by
descending score, so that the crop pipeline treats it as any person.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kbaselines.core.data.dataset_report import Problem
from kbaselines.pose.joints import NUM_JOINTS
from kbaselines.pose.reader import PoseFormatError, PoseImage, PosePerson

__all__ = ["DETECTION_NUMBERS", "Detections", "read_detections"]

#: Detections are numbered from here within an image, apart from annotated ``person_no``.
DETECTION_NUMBERS = 1001


@dataclass
class Detections:
    """The usable detections by ``img_no`` and what was left out of the file."""

    file: str
    by_image: dict[int, list[PosePerson]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    other_categories: int = 0
    below_score: int = 0
    clipped_boxes: int = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_image.values())


def _box(raw: dict, image: PoseImage) -> tuple[tuple[float, float, float, float], bool]:
    """The clipped ``[x1, y1, x2, y2]`` of a record's ``[x, y, w, h]`` and whether it was clipped."""
    bbox = raw.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError("has no bbox [x, y, width, height]")
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0):
        raise ValueError(f"bbox {bbox} has no area (COCO results boxes are [x, y, width, height])")
    corners = (x, y, x + w, y + h)
    clipped = (
        max(0.0, min(x, image.width)),
        max(0.0, min(y, image.height)),
        max(0.0, min(x + w, image.width)),
        max(0.0, min(y + h, image.height)),
    )
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise ValueError(f"bbox {bbox} lies outside the {image.width}x{image.height} image")
    return clipped, clipped != corners


def read_detections(
    path: str | Path,
    images: dict[int, PoseImage],
    category_id: int = 1,
    min_score: float = 0.0,
) -> Detections:
    """Read a COCO results file of person boxes for the images ``images`` (by ``img_no``).

    Args:
        path: the JSON file.
        images: the dataset's images; a detection on another image is a problem.
        category_id: the person category of the detector; other records are counted and left out.
        min_score: detections scoring below it are counted and left out.

    Raises:
        PoseFormatError: the file is missing, not JSON, or not a list of records.
    """
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PoseFormatError(
            path, f"cannot be read as a JSON detections file ({error}); set data.detections"
        ) from error
    if not isinstance(records, list):
        raise PoseFormatError(
            path, 'is not a COCO results list [{"image_id", "category_id", "bbox", "score"}, ...]'
        )
    result = Detections(str(path))
    found: dict[int, list[tuple[float, tuple[float, float, float, float]]]] = defaultdict(list)
    for number, raw in enumerate(records):
        record = f"detection {number}"
        try:
            if not isinstance(raw, dict):
                raise ValueError("is not an object")
            record = f"detection {number} (image_id {raw.get('image_id')})"
            if int(raw.get("category_id", category_id)) != category_id:
                result.other_categories += 1
                continue
            score = float(raw["score"])
            if score < min_score:
                result.below_score += 1
                continue
            image = images.get(int(raw["image_id"]))
            if image is None:
                raise ValueError(
                    "refers to an image_id that is no img_no of the dataset's 2D files"
                )
            box, clipped = _box(raw, image)
        except KeyError as error:
            result.problems.append(Problem(str(path), f"lacks {error}", record))
            continue
        except (TypeError, ValueError) as error:
            result.problems.append(Problem(str(path), str(error), record))
            continue
        result.clipped_boxes += clipped
        found[image.img_no].append((score, box))
    for img_no, boxes in sorted(found.items()):
        ranked = sorted(boxes, key=lambda sb: -sb[0])
        result.by_image[img_no] = [
            PosePerson(
                img_no=img_no,
                person_no=DETECTION_NUMBERS + k,
                bbox=box,
                keypoints=np.zeros((NUM_JOINTS, 3)),
                score=score,
            )
            for k, (score, box) in enumerate(ranked)
        ]
    return result
