"""A synthetic multi-view pose dataset in the real on-disk format (pose.md), for tries and tests.

Each recording films one or two actors doing one action (standing, walking, squatting, arms up,
dancing) in a capture volume, seen by several calibrated cameras on a circle. An actor is a 3D
articulated figure of 16 joints with a person's limb lengths (``head`` at the top of the head, so
that the head segment is about 25 cm), drawn as shaded capsules with a z-buffer over a textured
background (shirt, sleeves, trousers, skin and gloves in each actor's colours, so that elbows and
wrists show at small sizes); a face on the front of the head and a mark on the chest tell front
from back, so that left and right can be learned. Visibility flags come from the z-buffer (2 visible, 1 occluded,
0 outside the image). Written as images, one 2D JSON and one 3D JSON per recording,
``cameras.json``, and ``detections.json``: the person boxes of a simulated detector in COCO results
format (jittered boxes, a few people missed, a few false alarms at low scores), for evaluating with
``data.detections``. A marker file written last makes a half-written tree never look complete.

    python scripts/check_dataset.py data=pose_synthetic data.root=data/pose_synthetic   # generates it
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from kbaselines.core.data import generated
from kbaselines.pose.joints import JOINTS, NUM_JOINTS, SKELETON
from kbaselines.pose.reader import SUFFIXES_2D, SUFFIXES_3D, Camera

__all__ = [
    "GENERATOR_VERSION",
    "MARKER",
    "ensure_synthetic_pose",
    "generate_pose",
    "random_pose",
    "simulate_detections",
]

log = logging.getLogger(__name__)

MARKER = ".pose_synthetic.json"
GENERATOR_VERSION = 5
ACTIONS = ("standing", "walking", "squat", "arms_up", "dance")
# limb lengths (mm) and capsule radii (mm) of the figure
THIGH, SHIN, UPPER_ARM, FOREARM = 430.0, 420.0, 290.0, 260.0
SPINE, NECK_LEN, HEAD_LEN = 300.0, 190.0, 250.0
HIP_HALF, SHOULDER_HALF, SHOULDER_UP = 100.0, 170.0, 130.0
HEAD_RADIUS = 105.0
HAND_RADIUS = 60.0
FOOT_LENGTH, FOOT_RADIUS = 190.0, 50.0
RADIUS = {
    (0, 1): 50.0,
    (1, 2): 72.0,
    (2, 6): 80.0,
    (3, 6): 80.0,
    (3, 4): 72.0,
    (4, 5): 50.0,
    (6, 7): 135.0,
    (7, 8): 70.0,
    (8, 9): 45.0,
    (7, 12): 70.0,
    (12, 11): 58.0,
    (11, 10): 46.0,
    (7, 13): 70.0,
    (13, 14): 58.0,
    (14, 15): 46.0,
}
# (min, max) degrees per action: arm elevation from hanging, hip flexion, knee flexion
ACTION_RANGES = {
    "standing": ((0, 70), (-10, 15), (0, 15)),
    "walking": ((0, 70), (-30, 35), (0, 60)),
    "squat": ((0, 120), (60, 110), (80, 130)),
    "arms_up": ((60, 175), (-10, 20), (0, 30)),
    "dance": ((0, 175), (-30, 80), (0, 110)),
}


@dataclass(frozen=True)
class Actor:
    """Colours (RGB) of one actor's clothes and skin, and a thickness factor."""

    shirt: np.ndarray
    sleeves: np.ndarray
    gloves: np.ndarray
    shoes: np.ndarray
    trousers: np.ndarray
    skin: np.ndarray
    build: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _limb(
    rng: np.random.Generator,
    base: np.ndarray,
    front: np.ndarray,
    side: np.ndarray,
    elevation: float,
    outward: tuple[float, float],
) -> np.ndarray:
    """A unit direction ``elevation`` degrees up from ``base`` towards front/side."""
    a = np.radians(elevation)
    b = np.radians(rng.uniform(*outward))
    return _unit(base * np.cos(a) + np.sin(a) * (np.cos(b) * front + np.sin(b) * side))


def _bend(
    rng: np.random.Generator, upper: np.ndarray, towards: np.ndarray, angle: float
) -> np.ndarray:
    """``upper`` turned by ``angle`` degrees towards ``towards`` (a joint flexion)."""
    normal = towards - (towards @ upper) * upper + rng.normal(0, 0.15, 3)
    normal = _unit(normal - (normal @ upper) * upper)
    a = np.radians(angle)
    return _unit(upper * np.cos(a) + normal * np.sin(a))


def random_pose(
    rng: np.random.Generator, action: str, position: np.ndarray, yaw: float
) -> np.ndarray:
    """World joints ``[16, 3]`` (mm, z up) of a plausible pose for ``action``, feet on the floor."""
    arm_range, hip_range, knee_range = ACTION_RANGES[action]
    up = np.array([0.0, 0.0, 1.0])
    front = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    trunk = _unit(up + rng.normal(0, 0.08, 3) + front * (0.3 if action == "squat" else 0.0))
    j = np.zeros((NUM_JOINTS, 3))
    j[6] = np.zeros(3)
    j[7] = j[6] + trunk * SPINE
    j[8] = j[7] + trunk * NECK_LEN
    j[9] = j[8] + _unit(trunk + rng.normal(0, 0.12, 3)) * HEAD_LEN
    for side, hip, knee, ankle, shoulder, elbow, wrist in (
        (right, 2, 1, 0, 12, 11, 10),
        (-right, 3, 4, 5, 13, 14, 15),
    ):
        j[hip] = j[6] + side * HIP_HALF
        thigh = _limb(rng, -up, front, side, rng.uniform(*hip_range), (-25, 40))
        if thigh @ front < 0:  # extension: the thigh goes back, not out
            thigh = _unit(-up + (thigh @ front) * front * 1.0)
        j[knee] = j[hip] + thigh * THIGH
        j[ankle] = j[knee] + _bend(rng, thigh, -front, rng.uniform(*knee_range)) * SHIN
        j[shoulder] = j[7] + trunk * SHOULDER_UP + side * SHOULDER_HALF
        upper = _limb(rng, -trunk, front, side, rng.uniform(*arm_range), (-40, 110))
        j[elbow] = j[shoulder] + upper * UPPER_ARM
        j[wrist] = j[elbow] + _bend(rng, upper, front + trunk, rng.uniform(0, 130)) * FOREARM
    j += position - np.array([0.0, 0.0, j[[0, 5], 2].min() - 80.0])
    return j


def _look_at(eye: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``R, t`` of a camera at ``eye`` looking at ``target`` (x right, y down, z forward)."""
    z = _unit(target - eye)
    x = _unit(np.cross(z, [0.0, 0.0, 1.0]))
    y = np.cross(z, x)
    rotation = np.stack([x, y, z])
    return rotation, -rotation @ eye


def make_cameras(
    num_cameras: int, width: int, height: int, focal: float, rng: np.random.Generator
) -> dict[str, Camera]:
    """Cameras on a circle of 4 m around the volume, 1.2-1.9 m high, looking at its centre."""
    cameras = {}
    for c in range(num_cameras):
        angle = 2 * np.pi * c / num_cameras + rng.uniform(-0.2, 0.2)
        eye = np.array([4000 * np.cos(angle), 4000 * np.sin(angle), rng.uniform(1200, 1900)])
        rotation, t = _look_at(eye, np.array([0.0, 0.0, 850.0]) + rng.normal(0, 50, 3))
        K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
        cameras[f"Camera {c + 1}"] = Camera(K, rotation, t, np.zeros(5), width, height)
    return cameras


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A studio-like textured background: low-frequency colour noise, a floor, stripes."""
    coarse = rng.uniform(60, 190, (6, 8, 3))
    image = np.asarray(
        Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC), float
    )
    horizon = int(height * rng.uniform(0.45, 0.7))
    image[horizon:] = image[horizon:] * 0.6 + rng.uniform(40, 120, 3) * 0.4
    for _ in range(rng.integers(2, 6)):
        x = rng.integers(0, width)
        image[:, x : x + rng.integers(2, 6)] *= rng.uniform(0.6, 1.3)
    return image


def _parts(
    joints: np.ndarray, actor: Actor, front: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]:
    """Capsules ``(a, b, radius, colour)`` of the figure (feet pointing to ``front``); the head
    and the hands as spheres (a == b)."""
    legs = {(0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5)}
    upper_arms = {(12, 11), (13, 14)}
    forearms = {(11, 10), (14, 15)}
    parts = []
    for a, b in SKELETON:
        if (a, b) == (8, 9):
            colour = actor.skin
            end = joints[8] + (joints[9] - joints[8]) * 0.3
        else:
            colour = actor.trousers if (a, b) in legs else actor.shirt
            colour = actor.sleeves if (a, b) in upper_arms else colour
            colour = actor.skin if (a, b) in forearms else colour
            end = joints[b]
        parts.append((joints[a], end, RADIUS[(a, b)] * actor.build, colour))
    direction = _unit(joints[9] - joints[8])
    centre = joints[9] - direction * HEAD_RADIUS
    parts.append((centre, centre, HEAD_RADIUS, actor.skin))
    for wrist in (10, 15):  # gloved hands
        parts.append((joints[wrist], joints[wrist], HAND_RADIUS * actor.build, actor.gloves))
    for ankle in (0, 5):  # shoes: the toes show which way the person faces
        toe = joints[ankle] + front * FOOT_LENGTH - np.array([0.0, 0.0, 40.0])
        parts.append((joints[ankle], toe, FOOT_RADIUS * actor.build, actor.shoes))
    return parts


def render(
    background: np.ndarray,
    people: list[tuple[np.ndarray, Actor, np.ndarray]],
    camera: Camera,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Draw the people (``(joints, actor, front)``) with a z-buffer; return the image, each
    person's pixel mask and each joint's visibility flag (2 visible, 1 occluded, 0 outside)."""
    height, width = background.shape[:2]
    image = background.copy()
    depth = np.full((height, width), np.inf)
    owner = np.full((height, width), -1)
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    focal = camera.K[0, 0]
    light = _unit(np.array([0.4, -0.6, -0.7]))
    for index, (joints, actor, front) in enumerate(people):
        for a, b, radius, colour in _parts(joints, actor, front):
            ends = np.stack([a, b])
            cam = ends @ camera.R.T + camera.t
            uv = camera.project(ends)
            r_px = focal * radius / cam[:, 2]
            x0, y0 = np.floor(np.minimum(uv[0], uv[1]) - r_px.max()).astype(int)
            x1, y1 = np.ceil(np.maximum(uv[0], uv[1]) + r_px.max()).astype(int) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if x0 >= x1 or y0 >= y1:
                continue
            px, py = xs[y0:y1, x0:x1], ys[y0:y1, x0:x1]
            seg = uv[1] - uv[0]
            length2 = float(seg @ seg)
            s = (
                np.zeros_like(px)
                if length2 < 1e-9
                else np.clip(((px - uv[0, 0]) * seg[0] + (py - uv[0, 1]) * seg[1]) / length2, 0, 1)
            )
            dist = np.hypot(px - uv[0, 0] - s * seg[0], py - uv[0, 1] - s * seg[1])
            rad = r_px[0] + s * (r_px[1] - r_px[0])
            inside = dist < rad
            normal = np.sqrt(np.clip(1 - (dist / rad) ** 2, 0, 1))
            z = cam[0, 2] + s * (cam[1, 2] - cam[0, 2]) - radius * normal
            draw = inside & (z < depth[y0:y1, x0:x1])
            # cylinder shading: brighter towards the light and the centre line
            side = (px - uv[0, 0] - s * seg[0]) / np.maximum(rad, 1e-6)
            shade = 0.35 + 0.65 * np.clip(normal * 0.8 + side * light[0] * 0.4, 0, 1)
            region = image[y0:y1, x0:x1]
            region[draw] = colour * shade[draw, None]
            depth[y0:y1, x0:x1][draw] = z[draw]
            owner[y0:y1, x0:x1][draw] = index
        _draw_cues(image, depth, joints, front, camera)
    masks = [owner == k for k in range(len(people))]
    flags = []
    for joints, _, _ in people:
        cam = joints @ camera.R.T + camera.t
        uv = camera.project(joints)
        v = np.zeros(NUM_JOINTS)
        for k in range(NUM_JOINTS):
            x, y = np.rint(uv[k]).astype(int)
            if 0 <= x < width and 0 <= y < height:
                v[k] = 2 if depth[y, x] > cam[k, 2] - 150 else 1
        flags.append(v)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), masks, flags


def _draw_cues(
    image: np.ndarray, depth: np.ndarray, joints: np.ndarray, front: np.ndarray, camera: Camera
) -> None:
    """A dark face on the front of the head and a yellow chest mark, where the camera sees them."""
    centre = camera.R.T @ -camera.t
    direction = _unit(joints[9] - joints[8])
    head = joints[9] - direction * HEAD_RADIUS
    face_front = _unit(front - (front @ direction) * direction)
    cues = (
        (head + face_front * HEAD_RADIUS * 0.8, 0.6 * HEAD_RADIUS, np.array([30.0, 20, 15])),
        (
            joints[7] - (joints[7] - joints[6]) * 0.3 + front * 120,
            100.0,
            np.array([250.0, 230, 40]),
        ),
    )
    for point, radius, colour in cues:
        if (centre - point) @ front <= 0:
            continue
        cam = camera.R @ point + camera.t
        u, v = camera.project(point[None])[0]
        r_px = camera.K[0, 0] * radius / cam[2]
        height, width = depth.shape
        ys, xs = np.ogrid[0:height, 0:width]
        disk = ((xs - u) ** 2 + (ys - v) ** 2 < r_px**2) & (depth > cam[2] - 120)
        image[disk] = colour


def _actor(rng: np.random.Generator) -> Actor:
    return Actor(
        shirt=rng.uniform(30, 230, 3),
        sleeves=rng.uniform(30, 230, 3),
        gloves=rng.uniform(0, 255, 3),
        shoes=rng.uniform(0, 90, 3),
        trousers=rng.uniform(20, 160, 3),
        skin=np.array([230, 190, 160]) * rng.uniform(0.55, 1.05),
        build=rng.uniform(0.85, 1.15),
    )


def _category(suffixes: tuple[str, ...]) -> list[dict[str, Any]]:
    names = [f"{joint}_{s}" for joint in JOINTS for s in suffixes]
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": names}]


def generate_pose(
    root: str | Path,
    num_recordings: int = 20,
    frames_per_recording: int = 12,
    num_cameras: int = 4,
    width: int = 192,
    height: int = 144,
    focal: float = 250.0,
    second_person: float = 0.25,
    seed: int = 0,
    first_recording: int = 0,
) -> Path:
    """Write a synthetic pose dataset at ``root`` (replacing what is there); return ``root``.

    Args:
        root: the dataset folder.
        num_recordings: recordings (split groups), each one action by one or two actors.
        frames_per_recording: capture instants per recording.
        num_cameras: calibrated cameras filming every instant.
        width, height: image size in pixels.
        focal: focal length in pixels (a 1.75 m person 4 m away is about 110 px tall at 250).
        second_person: share of recordings with a second actor.
        seed: seed of everything drawn.
        first_recording: the number of the first recording: its folder names and ``img_no`` go on
            from there, so that two datasets with other numbers share no recording and no
            ``img_no`` (as the parts of a delivery).
    """
    arguments = {k: v for k, v in locals().items() if k != "root"}
    marker = {"generator_version": GENERATOR_VERSION, **arguments}
    return generated.write_generated(
        root, MARKER, marker, lambda folder: _write_dataset(folder, **arguments), "pose"
    )


def _write_dataset(
    tmp: Path,
    num_recordings: int,
    frames_per_recording: int,
    num_cameras: int,
    width: int,
    height: int,
    focal: float,
    second_person: float,
    seed: int,
    first_recording: int,
) -> None:
    """Draw every image, annotation file and the calibration into ``tmp``."""
    rng = np.random.default_rng(seed)
    cameras = make_cameras(num_cameras, width, height, focal, rng)
    (tmp / "annotations").mkdir()
    img_no = first_recording * frames_per_recording * (num_cameras + 1)  # as if generated before
    boxes: dict[int, list[list[int]]] = {}
    recordings = range(first_recording, first_recording + num_recordings)
    for rec in tqdm(recordings, desc="synthetic pose recordings", leave=False):
        action = ACTIONS[rec % len(ACTIONS)]
        name = f"{rec % len(ACTIONS) + 1}-{rec + 1}"
        folder = f"studio_S1/20260101/{name}"
        (tmp / "images" / folder).mkdir(parents=True)
        actors = [_actor(rng) for _ in range(2 if rng.uniform() < second_person else 1)]
        backgrounds = {c: _background(rng, width, height) for c in cameras}
        images_2d, people_2d, images_3d, people_3d = [], [], [], []
        for frame in range(frames_per_recording):
            people = []
            for k, actor in enumerate(actors):
                spot = np.array([rng.uniform(-700, 700), rng.uniform(-700, 700), 0.0])
                if k == 1:  # keep the second actor apart from the first
                    spot = -people[0][0][6] * np.array([1, 1, 0]) + rng.normal(0, 150, 3) * [
                        1,
                        1,
                        0,
                    ]
                yaw = rng.uniform(0, 2 * np.pi)
                joints = random_pose(rng, action, spot, yaw)
                people.append((joints, actor, np.array([np.cos(yaw), np.sin(yaw), 0.0])))
            img_no += 1
            images_3d.append(
                {
                    "video_no": rec + 1,
                    "img_no": img_no,
                    "action_category": action,
                    "img_path": f"/{folder}/{name}-01_{frame}.bvh",
                }
            )
            for number, (joints, _, _) in enumerate(people, start=1):
                rows = np.hstack([joints, np.zeros((NUM_JOINTS, 3))])
                people_3d.append(
                    {
                        "img_no": img_no,
                        "person_no": number,
                        "keypoints": np.round(rows, 2).ravel().tolist(),
                    }
                )
            for camera_id, camera in cameras.items():
                img_no += 1
                pixels, masks, flags = render(backgrounds[camera_id], people, camera, rng)
                path = f"{folder}/{name}-01-{camera_id}_{frame}.jpg"
                Image.fromarray(pixels).save(tmp / "images" / path, quality=92)
                boxes[img_no] = []
                images_2d.append(
                    {
                        "video_no": rec + 1,
                        "img_no": img_no,
                        "img_path": "/" + path,
                        "width": width,
                        "height": height,
                        "action_category": action,
                    }
                )
                for number, ((joints, _, _), mask, v) in enumerate(
                    zip(people, masks, flags, strict=True), start=1
                ):
                    if mask.sum() < 50 or (v > 0).sum() < 8:
                        continue  # a person mostly out of the picture is not annotated
                    ys, xs = np.nonzero(mask)
                    uv = camera.project(joints)
                    keypoints = np.hstack([np.round(uv, 1), v[:, None]])
                    keypoints[v == 0] = 0
                    bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                    boxes[img_no].append(bbox)
                    people_2d.append(
                        {
                            "img_no": img_no,
                            "person_no": number,
                            "bbox": bbox,
                            "keypoints": keypoints.ravel().tolist(),
                            "num_keypoints": int((v > 0).sum()),
                        }
                    )
        for kind, images, records, suffixes in (
            ("2d", images_2d, people_2d, SUFFIXES_2D),
            ("3d", images_3d, people_3d, SUFFIXES_3D),
        ):
            document = {
                "images": images,
                "categories": _category(suffixes),
                "annotations": records,
            }
            (tmp / "annotations" / f"{name}_{kind}.json").write_text(json.dumps(document))
    calibration = {
        name: {
            "K": c.K.tolist(),
            "R": c.R.tolist(),
            "t": c.t.tolist(),
            "dist": c.dist.tolist(),
            "width": c.width,
            "height": c.height,
        }
        for name, c in cameras.items()
    }
    (tmp / "cameras.json").write_text(json.dumps(calibration, indent=1))
    detector = np.random.default_rng([seed, 1])  # apart from the images' draws
    (tmp / "detections.json").write_text(
        json.dumps(simulate_detections(boxes, width, height, detector))
    )


def simulate_detections(
    boxes: dict[int, list[list[int]]],
    width: int,
    height: int,
    rng: np.random.Generator,
    miss: float = 0.03,
    jitter: float = 0.05,
    false_alarms: float = 0.15,
) -> list[dict[str, Any]]:
    """A person detector's output on images with the people ``boxes`` (``img_no`` to ``[x1, y1,
    x2, y2]`` boxes), in COCO results format: each person missed with probability ``miss``, else
    found with each edge moved by ``jitter`` x the box size (normal) and a score of 0.55-0.99; and
    a false alarm at a score under 0.6 on a ``false_alarms`` share of images."""
    found = []
    for img_no, people in sorted(boxes.items()):
        for x1, y1, x2, y2 in people:
            if rng.uniform() < miss:
                continue
            w, h = x2 - x1, y2 - y1
            dx1, dx2 = rng.normal(0, jitter * w, 2)
            dy1, dy2 = rng.normal(0, jitter * h, 2)
            left, top = max(0.0, x1 + dx1), max(0.0, y1 + dy1)
            right, bottom = min(width, x2 + dx2), min(height, y2 + dy2)
            if right - left >= 2 and bottom - top >= 2:
                found.append(
                    (img_no, [left, top, right - left, bottom - top], rng.uniform(0.55, 0.99))
                )
        if rng.uniform() < false_alarms:
            w = rng.uniform(0.1, 0.25) * width
            h = min(height - 1.0, w * rng.uniform(1.5, 3.0))
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            found.append((img_no, [x, y, w, h], rng.uniform(0.05, 0.6)))
    return [
        {
            "image_id": img_no,
            "category_id": 1,
            "bbox": [round(float(v), 2) for v in box],
            "score": round(float(score), 4),
        }
        for img_no, box, score in found
    ]


def ensure_synthetic_pose(root: str | Path, **arguments: Any) -> Path:
    """Generate the dataset unless ``root`` holds one made with the same arguments; return it."""
    wanted = generated.generator_arguments(generate_pose, arguments)
    marker = {"generator_version": GENERATOR_VERSION, **wanted}
    return generated.ensure_generated(root, MARKER, marker, lambda: generate_pose(root, **wanted))
