"""Readers of the pose dataset's files (pose.md): 2D JSON, 3D JSON and ``cameras.json``.

Plain records, no torch. Problems are collected with the file and the record they concern (an
unmappable keypoint name, an array of the wrong length, an annotation for a missing image, a box
outside the image), so that ``check_dataset.py`` can list them all and the DataModule can refuse
or skip them; boxes that stick out of the image are clipped and counted, not silently changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kbaselines.core.data.dataset_report import Problem
from kbaselines.pose.joints import JOINTS, NUM_JOINTS

__all__ = [
    "Camera",
    "Pose2DFile",
    "PoseFormatError",
    "PoseImage",
    "PosePerson",
    "map_keypoint_names",
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
    """A pose file that cannot be used as it is; the message names the file and the record."""

    def __init__(self, file: str | Path, reason: str, record: str | None = None) -> None:
        self.problem = Problem(str(file), reason, record)
        super().__init__(str(self.problem))


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
    """What one 2D JSON holds: images by ``img_no``, people, problems and the clipped-box count."""

    file: str
    images: dict[int, PoseImage] = field(default_factory=dict)
    people: list[PosePerson] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    clipped_boxes: int = 0


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


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PoseFormatError(path, f"cannot be read as JSON ({error})") from error
    for key in ("images", "categories", "annotations"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise PoseFormatError(path, f"has no {key!r} list; expected the layout of pose.md")
    return data


def _category_order(path: Path, data: dict[str, Any], suffixes: tuple[str, ...]) -> np.ndarray:
    people = [c for c in data["categories"] if isinstance(c, dict) and "keypoints" in c]
    if not people:
        raise PoseFormatError(path, "no category has a 'keypoints' list of names")
    try:
        return map_keypoint_names(list(people[0]["keypoints"]), suffixes)
    except ValueError as error:
        raise PoseFormatError(path, str(error), f"category {people[0].get('id')}") from error


def _image(path: Path, raw: dict[str, Any]) -> PoseImage:
    try:
        img_no = int(raw["img_no"])
        recording, camera, frame = parse_img_path(str(raw["img_path"]))
        return PoseImage(
            img_no=img_no,
            path=str(raw["img_path"]).lstrip("/"),
            width=int(raw["width"]),
            height=int(raw["height"]),
            action=str(raw.get("action_category", "")),
            video_no=str(raw.get("video_no", "")),
            camera=camera,
            recording=recording,
            frame=frame,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PoseFormatError(
            path, f"image record lacks or has a bad {error} (needs img_no, img_path, width, height)"
        ) from error


def read_2d(path: str | Path) -> Pose2DFile:
    """Read one 2D annotation file; broken records become problems, boxes are clipped.

    Raises:
        PoseFormatError: the file is not JSON, lacks the lists, or its keypoint names cannot be
            mapped to the 16 joints (the whole file is unusable).
    """
    path = Path(path)
    data = _load_json(path)
    order = _category_order(path, data, SUFFIXES_2D)
    result = Pose2DFile(str(path))
    for raw in data["images"]:
        try:
            image = _image(path, raw)
        except PoseFormatError as error:
            result.problems.append(error.problem)
            continue
        result.images[image.img_no] = image
    for number, raw in enumerate(data["annotations"]):
        record = (
            f"annotation {number} (img_no {raw.get('img_no')}, person_no {raw.get('person_no')})"
        )
        try:
            person, clipped = _person(raw, order, result.images)
        except ValueError as error:
            result.problems.append(Problem(str(path), str(error), record))
            continue
        result.clipped_boxes += clipped
        result.people.append(person)
    return result


def _person(
    raw: dict[str, Any], order: np.ndarray, images: dict[int, PoseImage]
) -> tuple[PosePerson, bool]:
    img_no = int(raw["img_no"])
    image = images.get(img_no)
    if image is None:
        raise ValueError(f"refers to img_no {img_no}, which no image record of the file has")
    values = raw.get("keypoints")
    if not isinstance(values, list) or len(values) != 3 * NUM_JOINTS:
        length = len(values) if isinstance(values, list) else "no"
        raise ValueError(
            f"has {length} keypoint values; expected {3 * NUM_JOINTS} (16 joints x (x, y, view))"
        )
    keypoints = np.asarray(values, dtype=np.float64)[order]
    if not np.isin(keypoints[:, 2], (0, 1, 2)).all():
        raise ValueError("has a visibility flag other than 0, 1, 2")
    bbox = raw.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError("has no bbox [x1, y1, x2, y2]")
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bbox {bbox} is not [x1, y1, x2, y2] with x1 < x2, y1 < y2")
    clipped = (
        max(0.0, min(x1, image.width)),
        max(0.0, min(y1, image.height)),
        max(0.0, min(x2, image.width)),
        max(0.0, min(y2, image.height)),
    )
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise ValueError(f"bbox {bbox} lies outside the {image.width}x{image.height} image")
    person = PosePerson(
        img_no=img_no,
        person_no=int(raw.get("person_no", 1)),
        bbox=clipped,
        keypoints=keypoints,
        score=float(raw.get("score", 1.0)),
    )
    return person, clipped != (x1, y1, x2, y2)


def read_3d(path: str | Path) -> tuple[dict[tuple[str, int], np.ndarray], list[Problem]]:
    """Read one 3D annotation file: ``{(instant, person_no): [16, 3] world mm}`` and problems.

    The instant (recording + frame, from ``img_path``) joins 3D poses to every camera's image.
    """
    path = Path(path)
    data = _load_json(path)
    order = _category_order(path, data, SUFFIXES_3D)
    images: dict[int, PoseImage] = {}
    problems: list[Problem] = []
    for raw in data["images"]:
        try:
            image = _image(path, {"width": 0, "height": 0, **raw})
        except PoseFormatError as error:
            problems.append(error.problem)
            continue
        images[image.img_no] = image
    poses: dict[tuple[str, int], np.ndarray] = {}
    for number, raw in enumerate(data["annotations"]):
        record = (
            f"annotation {number} (img_no {raw.get('img_no')}, person_no {raw.get('person_no')})"
        )
        values = raw.get("keypoints")
        image = images.get(int(raw.get("img_no", -1)))
        if image is None:
            problems.append(Problem(str(path), "refers to an img_no no image record has", record))
        elif not isinstance(values, list) or len(values) != 6 * NUM_JOINTS:
            problems.append(
                Problem(str(path), f"expected {6 * NUM_JOINTS} values (16 joints x 6)", record)
            )
        else:
            joints = np.asarray(values, dtype=np.float64)[order]
            poses[(image.instant, int(raw.get("person_no", 1)))] = joints[:, :3]
    return poses, problems


def read_cameras(path: str | Path) -> dict[str, Camera]:
    """Read ``cameras.json``: camera id (``Camera 9``) to its calibration.

    Raises:
        PoseFormatError: a camera lacks ``K``, ``R`` or ``t`` or has the wrong shapes.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PoseFormatError(path, f"cannot be read as JSON ({error})") from error
    cameras = {}
    for name, raw in data.items():
        try:
            camera = Camera(
                K=np.asarray(raw["K"], dtype=np.float64).reshape(3, 3),
                R=np.asarray(raw["R"], dtype=np.float64).reshape(3, 3),
                t=np.asarray(raw["t"], dtype=np.float64).reshape(3),
                dist=np.asarray(raw.get("dist", [0, 0, 0, 0, 0]), dtype=np.float64),
                width=int(raw.get("width", 0)),
                height=int(raw.get("height", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PoseFormatError(
                path, f"bad or missing {error}: needs K 3x3, R 3x3, t 3", f"camera {name!r}"
            ) from error
        if camera.dist.shape not in ((4,), (5,)):
            raise PoseFormatError(
                path,
                f"dist has {camera.dist.size} values; expected [k1, k2, p1, p2, k3] (pose.md)",
                f"camera {name!r}",
            )
        cameras[re.sub(r"\s+", " ", name)] = camera
    return cameras
