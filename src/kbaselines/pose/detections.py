"""Detected person boxes for evaluation (pose.md: "a file of detected person boxes, COCO results
format, as an option, as the paper evaluates with a detector").

The file is a COCO results list::

    [{"image_id": 17991, "category_id": 1, "bbox": [x, y, w, h], "score": 0.98}, ...]

``image_id`` is the 2D file's ``img_no`` (for ``predict.py`` on a folder of images: the file name
without its suffix). Every record is validated against
:class:`DetectionRecord` (every problem of every record reported, named ``detections[4]``).
Records of other categories (a general detector's cars and dogs) are left out and counted; boxes
that stick out of their image are clipped and counted; a record that cannot be used (no box, a box
of zero size or outside its image, an image the dataset does not have) is a problem naming the
file, the record and the key. Each detection becomes a
:class:`~kbaselines.pose.reader.PosePerson` without keypoints, numbered per image by
descending score, so that the crop pipeline treats it as any person.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import StrictInt, StrictStr

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.schema import RecordSchema, validate_records
from kbaselines.pose.joints import NUM_JOINTS
from kbaselines.pose.reader import Number, PoseFormatError, PoseImage, PosePerson, numbers

__all__ = ["DETECTION_NUMBERS", "DetectionRecord", "Detections", "read_detections"]

#: Detections are numbered from here within an image, apart from annotated ``person_no``.
DETECTION_NUMBERS = 1001


#: A COCO results box, corner and size.
Box = numbers(4, "[x, y, width, height]")


class DetectionRecord(RecordSchema):
    """A COCO result: the image (``img_no``, or a file name), the category (default: the
    person's), the box, the score."""

    image_id: StrictInt | StrictStr
    category_id: StrictInt | None = None
    bbox: Box
    score: Number


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


def _box(
    record: DetectionRecord, image: PoseImage
) -> tuple[tuple[float, float, float, float], bool]:
    """The clipped ``[x1, y1, x2, y2]`` of a record's ``[x, y, w, h]`` and whether it was clipped."""
    x, y, w, h = record.bbox
    if not (w > 0 and h > 0):
        raise ValueError(
            f"key 'bbox': {record.bbox} has no area (COCO results boxes are [x, y, width, height])"
        )
    corners = (x, y, x + w, y + h)
    clipped = (
        max(0.0, min(x, image.width)),
        max(0.0, min(y, image.height)),
        max(0.0, min(x + w, image.width)),
        max(0.0, min(y + h, image.height)),
    )
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise ValueError(
            f"key 'bbox': {record.bbox} lies outside the {image.width}x{image.height} image"
        )
    return clipped, clipped != corners


def read_detections(
    path: str | Path,
    images: Mapping[int | str, PoseImage],
    category_id: int = 1,
    min_score: float = 0.0,
    images_of: str = "img_no of the dataset's 2D files",
    setting: str = "data.detections",
) -> Detections:
    """Read a COCO results file of person boxes for the images ``images`` (by ``image_id``: the
    ``img_no``, or a name); ``by_image`` is keyed by the images' ``img_no``.

    Args:
        path: the JSON file.
        images: the images by the ``image_id`` the file uses; a detection on another image is a
            problem.
        category_id: the person category of the detector; other records are counted and left out.
        min_score: detections scoring below it are counted and left out.
        images_of: what the ids of ``images`` are, for the problem of an unknown ``image_id``.
        setting: the setting that names the file, for the error of an unreadable one.

    Raises:
        PoseFormatError: the file is missing, not JSON, or not a list of records.
    """
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PoseFormatError(
            path, f"cannot be read as a JSON detections file ({error}); set {setting}"
        ) from error
    if not isinstance(records, list):
        raise PoseFormatError(
            path, 'is not a COCO results list [{"image_id", "category_id", "bbox", "score"}, ...]'
        )
    result = Detections(str(path))
    valid, result.problems = validate_records(DetectionRecord, records, str(path), "detections")
    found: dict[int, list[tuple[float, tuple[float, float, float, float]]]] = defaultdict(list)
    for index, record in valid:
        if record.category_id not in (None, category_id):
            result.other_categories += 1
            continue
        if record.score < min_score:
            result.below_score += 1
            continue
        where = f"detections[{index}]"
        image = images.get(record.image_id)
        if image is None:
            result.problems.append(
                Problem(
                    str(path),
                    f"key 'image_id': {record.image_id!r} is no {images_of}",
                    where,
                )
            )
            continue
        try:
            box, clipped = _box(record, image)
        except ValueError as error:
            result.problems.append(Problem(str(path), str(error), where))
            continue
        result.clipped_boxes += clipped
        found[image.img_no].append((record.score, box))
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
