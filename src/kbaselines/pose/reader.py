"""Readers of the pose dataset's files (pose.md): 2D JSON, 3D JSON and ``cameras.json``.

Plain records, no torch. Each record type of the format is declared once as a
:class:`~kbaselines.core.data.schema.RecordSchema` (required keys, strict types, lengths) and every
record is validated, so that one broken record never hides the others: every problem comes back
with the file, the record (``annotations[3]``) and the key, for ``check_dataset.py`` to list and
the DataModule to refuse or skip. Beyond the schema: unmappable keypoint names, visibility flags,
box corners, annotations for a missing image record. Boxes that stick out of the image are clipped
and counted, not silently changed. Nothing is cached: the JSON files are read afresh every run, so
an edit is always seen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import AfterValidator, Field, Strict, StrictInt, StrictStr

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.schema import (
    RecordSchema,
    require_list,
    validate_record,
    validate_records,
)
from kbaselines.pose.joints import JOINTS, NUM_JOINTS

__all__ = [
    "Annotation2D",
    "Annotation3D",
    "Camera",
    "CameraRecord",
    "Category",
    "ImageRecord",
    "ImageRecord2D",
    "Number",
    "Pose2DFile",
    "PoseFormatError",
    "PoseImage",
    "PosePerson",
    "joints_outside",
    "map_keypoint_names",
    "numbers",
    "parse_img_path",
    "read_2d",
    "read_3d",
    "read_cameras",
]

_CAMERA = re.compile(r"(Camera\s*\d+)", re.IGNORECASE)
_FRAME = re.compile(r"_(\d+)$")
_BVH = {
    "rightankle": "right_ankle",
    "rightknee": "right_knee",
    "righthip": "right_hip",
    "rightupleg": "right_hip",
    "lefthip": "left_hip",
    "leftupleg": "left_hip",
    "leftknee": "left_knee",
    "leftankle": "left_ankle",
    "hips": "pelvis",
    "chest": "thorax",
    "neck": "neck",
    "head": "head",
    "rightwrist": "right_wrist",
    "rightelbow": "right_elbow",
    "rightshoulder": "right_shoulder",
    "leftshoulder": "left_shoulder",
    "leftelbow": "left_elbow",
    "leftwrist": "left_wrist",
}
SUFFIXES_2D = ("x", "y", "view")
SUFFIXES_3D = ("x", "y", "z", "roll", "pitch", "yaw")


class PoseFormatError(ValueError):
    """A pose file that cannot be used as it is; the message names the file and the records."""

    def __init__(self, file: str | Path, reason: str, record: str | None = None) -> None:
        self.problems = [Problem(str(file), reason, record)]
        super().__init__(str(self.problems[0]))

    @classmethod
    def listing(cls, problems: Sequence[Problem]) -> PoseFormatError:
        """One error for every problem that makes a file unusable, one per line."""
        error = cls(problems[0].file, problems[0].reason, problems[0].record)
        error.problems = list(problems)
        error.args = ("\n".join(str(p) for p in problems),)
        return error


#: A JSON number (an int or a float, never a string, a boolean or NaN).
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]


def _length(count: int, layout: str) -> AfterValidator:
    def check(values: list[Any]) -> list[Any]:
        if len(values) != count:
            raise ValueError(f"has {len(values)} values; expected {count} ({layout})")
        return values

    return AfterValidator(check)


def numbers(count: int, layout: str) -> Any:
    """A list of exactly ``count`` numbers; a list of another length is reported with ``layout``."""
    return Annotated[list[Number], _length(count, layout)]


Corners = numbers(4, "[x1, y1, x2, y2]")
Keypoints2D = numbers(3 * NUM_JOINTS, "16 joints x (x, y, view)")
Keypoints3D = numbers(6 * NUM_JOINTS, "16 joints x (x, y, z, roll, pitch, yaw)")
Vector3 = numbers(3, "[tx, ty, tz]")
Matrix3 = Annotated[list[numbers(3, "a row of 3")], _length(3, "3 rows of 3")]


class ImageRecord(RecordSchema):
    """An image record of a 3D file (``img_path`` names the capture instant)."""

    img_no: StrictInt
    img_path: Annotated[StrictStr, Field(min_length=1)]
    action_category: StrictStr = ""
    video_no: StrictInt | StrictStr = ""


class ImageRecord2D(ImageRecord):
    """An image record of a 2D file: also the image's size, which boxes and keypoints live in."""

    width: Annotated[StrictInt, Field(gt=0)]
    height: Annotated[StrictInt, Field(gt=0)]


class Category(RecordSchema):
    """The person category: the names of the keypoint values, in the files' order."""

    keypoints: list[StrictStr]


class Annotation2D(RecordSchema):
    """A person of a 2D file (a predictions file adds ``score``)."""

    img_no: StrictInt
    person_no: StrictInt = 1
    bbox: Corners
    keypoints: Keypoints2D
    score: Number = 1.0


class Annotation3D(RecordSchema):
    """A person of a 3D file: 16 joints x (x, y, z mm, roll, pitch, yaw)."""

    img_no: StrictInt
    person_no: StrictInt = 1
    keypoints: Keypoints3D


class CameraRecord(RecordSchema):
    """A camera of ``cameras.json``: intrinsics, world-to-camera rotation and translation (mm)."""

    K: Matrix3
    R: Matrix3
    t: Vector3
    dist: list[Number] = Field(default_factory=lambda: [0.0] * 5)
    width: StrictInt = 0
    height: StrictInt = 0


@dataclass(frozen=True)
class PoseImage:
    """One camera image: ``path`` relative to the image root, its capture facets."""

    img_no: int
    path: str
    width: int
    height: int
    action: str
    video_no: str
    camera: str
    recording: str
    frame: str

    @property
    def instant(self) -> str:
        """The capture instant (recording + frame), shared by every camera's image of it."""
        return f"{self.recording}#{self.frame}"


@dataclass(frozen=True)
class PosePerson:
    """One annotated person: box ``[x1, y1, x2, y2]`` (clipped), keypoints ``[16, 3]`` (x, y, v)."""

    img_no: int
    person_no: int
    bbox: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float = 1.0

    @property
    def id(self) -> str:
        """The sample id of the CV layer (sortable, unique in a dataset)."""
        return f"{self.img_no:010d}-{self.person_no:03d}"


@dataclass
class Pose2DFile:
    """What one 2D JSON holds: images by ``img_no``, people, problems and the clipped-box count.

    ``image_records`` (by ``img_no``) and ``person_records`` (by person id) name the record each
    came from (``images[2]``, ``annotations[7]``), for problems found later against the image
    files; ``annotations`` counts the file's annotation records, usable or not.
    """

    file: str
    images: dict[int, PoseImage] = field(default_factory=dict)
    people: list[PosePerson] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    clipped_boxes: int = 0
    image_records: dict[int, str] = field(default_factory=dict)
    person_records: dict[str, str] = field(default_factory=dict)
    annotations: int = 0


@dataclass(frozen=True)
class Camera:
    """A calibrated camera: ``K`` [3, 3], ``R`` [3, 3] and ``t`` [3] map world mm to pixels."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    dist: np.ndarray
    width: int
    height: int

    @property
    def P(self) -> np.ndarray:
        """The 3x4 projection matrix ``K [R | t]`` of the undistorted (pinhole) image."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def distorted(self) -> bool:
        return bool(np.any(self.dist != 0))

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``[N, 2]`` of world points ``[N, 3]``, with the lens distortion
        ``dist`` = ``[k1, k2, p1, p2, k3]`` (OpenCV's model) applied."""
        cam = points @ self.R.T + self.t
        x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        if self.distorted:
            k1, k2, p1, p2, k3 = np.pad(self.dist, (0, max(0, 5 - len(self.dist))))[:5]
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
            x, y = (
                x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
            )
        uvw = np.stack([x, y, np.ones_like(x)], axis=1) @ self.K.T
        return uvw[:, :2]

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """The pinhole pixel coordinates ``[N, 2]`` (those :attr:`P` projects to) of observed
        pixels ``[N, 2]``: the lens distortion removed, so that triangulation is exact."""
        if not self.distorted:
            return np.asarray(pixels, dtype=np.float64)
        points = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        return cv2.undistortPoints(points, self.K, self.dist, P=self.K).reshape(-1, 2)


def parse_img_path(img_path: str) -> tuple[str, str, str]:
    """``(recording, camera, frame)`` of an ``img_path``: the parent folder, ``Camera N``, the
    trailing ``_<frame>`` number (e.g. ``studio_B1/20190701/3-1``, ``Camera 9``, ``299``)."""
    path = Path(img_path.lstrip("/"))
    camera = _CAMERA.search(path.name)
    frame = _FRAME.search(path.stem)
    return (
        path.parent.as_posix(),
        re.sub(r"\s+", " ", camera.group(1)) if camera else "",
        frame.group(1) if frame else path.stem,
    )


def _canonical(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip()).lower()
    return _BVH.get(key.replace("_", ""), key)


def map_keypoint_names(names: list[str], suffixes: tuple[str, ...]) -> np.ndarray:
    """For a category's value names (``right_ankle_x``, ...), the index in the file of each of our
    joints' values: an array ``[16, len(suffixes)]``.

    Raises:
        ValueError: a name without one of ``suffixes``, a joint that is not one of the 16 (BVH
            names such as ``RightAnkle`` are accepted), a joint missing or given twice.
    """
    position: dict[tuple[str, str], int] = {}
    for index, name in enumerate(names):
        base, _, suffix = str(name).rpartition("_")
        if suffix not in suffixes or not base:
            raise ValueError(
                f"keypoint value name {name!r} (position {index}) does not end in one of "
                f"_{', _'.join(suffixes)}"
            )
        joint = _canonical(base)
        if joint not in JOINTS:
            raise ValueError(
                f"keypoint name {base!r} (position {index}) is not one of the 16 joints "
                f"({', '.join(JOINTS)}) nor their BVH names; rename it in the category"
            )
        if (joint, suffix) in position:
            raise ValueError(f"keypoint value {joint}_{suffix} appears twice")
        position[(joint, suffix)] = index
    missing = [f"{j}_{s}" for j in JOINTS for s in suffixes if (j, s) not in position]
    if missing:
        raise ValueError(f"keypoint values missing from the category: {', '.join(missing[:6])}")
    return np.array([[position[(j, s)] for s in suffixes] for j in JOINTS])


def joints_outside(keypoints: np.ndarray, width: int, height: int) -> list[str]:
    """The labelled joints (view > 0) of keypoints ``[16, 3]`` that lie outside a
    ``width`` x ``height`` image, as ``"name (x, y)"``.

    The image spans ``[0, width]`` in pixel-edge coordinates and ``[-0.5, width - 0.5]`` in
    pixel-centre ones; both conventions are accepted (``[-0.5, width + 0.5]``), so that only a
    joint really off the image (a wrong scale, swapped axes, a typo) is reported.
    """
    x, y, view = keypoints.T
    off = (x < -0.5) | (x > width + 0.5) | (y < -0.5) | (y > height + 0.5)
    outside = (view > 0) & off
    return [f"{JOINTS[k]} ({x[k]:g}, {y[k]:g})" for k in np.flatnonzero(outside)]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PoseFormatError(
            path, f"cannot be read as JSON ({error}): repair or replace the file"
        ) from error


def _lists(path: Path) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any]]:
    """The ``images``, ``categories`` and ``annotations`` lists of a 2D or 3D file."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise PoseFormatError(
            path, f"is a JSON {type(data).__name__}; expected an object with the layout of pose.md"
        )
    found = [require_list(data, key, str(path)) for key in ("images", "categories", "annotations")]
    problems = [p for _, bad in found for p in bad]
    if problems:
        raise PoseFormatError.listing(problems)
    images, categories, annotations = (values for values, _ in found)
    return images, categories, annotations


def _category_order(path: Path, categories: Sequence[Any], suffixes: tuple[str, ...]) -> np.ndarray:
    index = next(
        (k for k, c in enumerate(categories) if isinstance(c, dict) and "keypoints" in c), None
    )
    if index is None:
        raise PoseFormatError(path, "no category has a 'keypoints' list of names (pose.md)")
    record = f"categories[{index}]"
    category, problems = validate_record(Category, categories[index], str(path), record)
    if category is None:
        raise PoseFormatError.listing(problems)
    try:
        return map_keypoint_names(category.keypoints, suffixes)
    except ValueError as error:
        raise PoseFormatError(path, str(error), record) from error


def _images(
    path: Path, raws: Sequence[Any], schema: type[ImageRecord]
) -> tuple[dict[int, PoseImage], dict[int, str], list[Problem]]:
    """The valid image records by ``img_no``, their record names, and every problem (an invalid
    record's annotations are named by the ``img_no`` it gives, if any)."""
    valid, problems = validate_records(schema, raws, str(path), "images")
    images: dict[int, PoseImage] = {}
    records: dict[int, str] = {}
    for index, record in valid:
        where = f"images[{index}]"
        if record.img_no in images:
            problems.append(
                Problem(
                    str(path),
                    f"img_no {record.img_no} is also the img_no of {records[record.img_no]}: "
                    "give every image its own img_no",
                    where,
                )
            )
            continue
        recording, camera, frame = parse_img_path(record.img_path)
        images[record.img_no] = PoseImage(
            img_no=record.img_no,
            path=record.img_path.lstrip("/"),
            width=record.width if isinstance(record, ImageRecord2D) else 0,
            height=record.height if isinstance(record, ImageRecord2D) else 0,
            action=record.action_category,
            video_no=str(record.video_no),
            camera=camera,
            recording=recording,
            frame=frame,
        )
        records[record.img_no] = where
    usable = {index for index, _ in valid}
    for index, raw in enumerate(raws):
        img_no = raw.get("img_no") if isinstance(raw, dict) and index not in usable else None
        if isinstance(img_no, int) and img_no not in images:
            records.setdefault(img_no, f"images[{index}]")
    return images, records, problems


def _missing_image(img_no: int, records: dict[int, str]) -> str:
    """Why an annotation's image is unusable: its record is invalid, or there is none."""
    if img_no in records:
        return f"refers to img_no {img_no}, whose image record {records[img_no]} is invalid"
    return f"refers to img_no {img_no}, which no image record of the file has: add it or fix img_no"


def read_2d(path: str | Path) -> Pose2DFile:
    """Read one 2D annotation file; broken records become problems, boxes are clipped.

    Raises:
        PoseFormatError: the file is not JSON, lacks the lists, or its keypoint names cannot be
            mapped to the 16 joints (the whole file is unusable).
    """
    path = Path(path)
    image_raws, categories, annotation_raws = _lists(path)
    order = _category_order(path, categories, SUFFIXES_2D)
    images, image_records, problems = _images(path, image_raws, ImageRecord2D)
    result = Pose2DFile(str(path), annotations=len(annotation_raws))
    result.images = images
    result.image_records = {n: r for n, r in image_records.items() if n in images}
    valid, bad = validate_records(Annotation2D, annotation_raws, str(path), "annotations")
    problems += bad
    for index, record in valid:
        where = f"annotations[{index}]"
        image = images.get(record.img_no)
        if image is None:
            problems.append(Problem(str(path), _missing_image(record.img_no, image_records), where))
            continue
        try:
            person, clipped = _person(record, order, image)
        except ValueError as error:
            problems.append(Problem(str(path), str(error), where))
            continue
        if person.id in result.person_records:
            problems.append(
                Problem(
                    str(path),
                    f"img_no {person.img_no}, person_no {person.person_no} is also "
                    f"{result.person_records[person.id]}: remove one, or number the people of "
                    "an image apart",
                    where,
                )
            )
            continue
        result.clipped_boxes += clipped
        result.people.append(person)
        result.person_records[person.id] = where
    result.problems = problems
    return result


def _person(record: Annotation2D, order: np.ndarray, image: PoseImage) -> tuple[PosePerson, bool]:
    keypoints = np.asarray(record.keypoints, dtype=np.float64)[order]
    flags = ~np.isin(keypoints[:, 2], (0, 1, 2))
    if flags.any():
        names = ", ".join(JOINTS[k] for k in np.flatnonzero(flags))
        raise ValueError(f"key 'keypoints': the view flag of {names} is not 0, 1 or 2")
    x1, y1, x2, y2 = record.bbox
    if x2 <= x1 or y2 <= y1:
        raise ValueError(
            f"key 'bbox': {record.bbox} is not [x1, y1, x2, y2] with x1 < x2 and y1 < y2"
        )
    clipped = (
        max(0.0, min(x1, image.width)),
        max(0.0, min(y1, image.height)),
        max(0.0, min(x2, image.width)),
        max(0.0, min(y2, image.height)),
    )
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise ValueError(
            f"key 'bbox': {record.bbox} lies outside the {image.width}x{image.height} image"
        )
    person = PosePerson(
        img_no=record.img_no,
        person_no=record.person_no,
        bbox=clipped,
        keypoints=keypoints,
        score=record.score,
    )
    return person, clipped != (x1, y1, x2, y2)


def read_3d(path: str | Path) -> tuple[dict[tuple[str, int], np.ndarray], list[Problem]]:
    """Read one 3D annotation file: ``{(instant, person_no): [16, 3] world mm}`` and problems.

    The instant (recording + frame, from ``img_path``) joins 3D poses to every camera's image.

    Raises:
        PoseFormatError: the file is not JSON, lacks the lists, or its keypoint names cannot be
            mapped to the 16 joints.
    """
    path = Path(path)
    image_raws, categories, annotation_raws = _lists(path)
    order = _category_order(path, categories, SUFFIXES_3D)
    images, image_records, problems = _images(path, image_raws, ImageRecord)
    valid, bad = validate_records(Annotation3D, annotation_raws, str(path), "annotations")
    problems += bad
    poses: dict[tuple[str, int], np.ndarray] = {}
    for index, record in valid:
        image = images.get(record.img_no)
        if image is None:
            problems.append(
                Problem(
                    str(path),
                    _missing_image(record.img_no, image_records),
                    f"annotations[{index}]",
                )
            )
            continue
        joints = np.asarray(record.keypoints, dtype=np.float64)[order]
        poses[(image.instant, record.person_no)] = joints[:, :3]
    return poses, problems


def read_cameras(path: str | Path) -> dict[str, Camera]:
    """Read ``cameras.json``: camera id (``Camera 9``) to its calibration.

    Raises:
        PoseFormatError: the file is not a JSON object of cameras, or cameras lack ``K``, ``R``
            or ``t`` or have the wrong shapes (every such camera listed).
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise PoseFormatError(path, 'is not a JSON object {"<camera id>": {"K", "R", "t", ...}}')
    cameras = {}
    problems: list[Problem] = []
    for name, raw in data.items():
        where = f"camera {name!r}"
        record, bad = validate_record(CameraRecord, raw, str(path), where)
        problems += bad
        if record is None:
            continue
        if len(record.dist) not in (4, 5):
            problems.append(
                Problem(
                    str(path),
                    f"dist has {len(record.dist)} values; expected [k1, k2, p1, p2, k3] (pose.md)",
                    where,
                )
            )
            continue
        cameras[re.sub(r"\s+", " ", name)] = Camera(
            K=np.asarray(record.K, dtype=np.float64),
            R=np.asarray(record.R, dtype=np.float64),
            t=np.asarray(record.t, dtype=np.float64),
            dist=np.asarray(record.dist, dtype=np.float64),
            width=record.width,
            height=record.height,
        )
    if problems:
        raise PoseFormatError.listing(problems)
    return cameras
