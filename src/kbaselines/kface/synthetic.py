"""A synthetic K-Face tree in the real on-disk format, for tries and tests without the real data.

Each person has a stable identity: a face-like drawing with person-specific geometry (face width
and height, jaw, eye spacing and size, eyebrow tilt and thickness, nose length and width, mouth
width and position, ears, hairline, fringe) and texture (skin tone, hair colour, freckles, moles).
The facets change the pixels as the real capture does: sessions add accessories (S001 none, S002
glasses, S003 hat, S004 sunglasses, S005 glasses and hat, S006 sunglasses and hat), lights change
brightness, direction and tint (L1 brightest and even), expressions change mouth, eyes and brows
(E01 neutral, E02 smile, E03 surprise), cameras turn the head (C7 frontal). Each shot also gets
its own background, white balance, placement jitter and noise.

Identity is spread over many cues so that a network must learn it, and raw pixels do not give it
away: on unseen people, raw-pixel verification is near chance (ROC AUC about 0.58) while a small
CNN trained on other people reaches about 0.95 in a few seconds (``tests/kface/test_kface_synthetic.py``).

    python scripts/check_dataset.py data=kface_synthetic data.root=data/kface_synthetic \
        data.synthetic.num_people=100      # generates the tree (once), then checks it
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from kbaselines.core.data import generated
from kbaselines.kface.reader import parse_name

__all__ = [
    "FIRST_PERSON",
    "GENERATOR_VERSION",
    "MARKER",
    "ensure_synthetic_kface",
    "generate_kface",
    "read_marker",
]

log = logging.getLogger(__name__)

#: The marker file of a finished tree: the generator arguments, written last.
MARKER = ".kface_synthetic.json"
#: Bumped when the drawing changes, so that trees drawn by an older generator are made again.
GENERATOR_VERSION = 2
#: The id of person 0; person ``i`` is ``FIRST_PERSON + i``.
FIRST_PERSON = "19062000"
SUPERSAMPLE = 2
# accessories per session: (glasses, sunglasses, hat); colours are the session's, not the person's
SESSIONS = {
    "S001": (False, False, False),
    "S002": (True, False, False),
    "S003": (False, False, True),
    "S004": (False, True, False),
    "S005": (True, False, True),
    "S006": (False, True, True),
}


@dataclass(frozen=True)
class Identity:
    """The drawing parameters of one person, in units of the image side."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    face_w: float
    face_h: float
    jaw: float
    hairline: float
    fringe: bool
    side_hair: float
    eye_gap: float
    eye_y: float
    eye_r: float
    brow_tilt: float
    brow_w: int
    nose_len: float
    nose_w: float
    mouth_w: float
    mouth_y: float
    lip: int
    ear: float
    moles: tuple[tuple[float, float], ...]
    freckles: float
    marks_seed: int


def _identity(rng: np.random.Generator) -> Identity:
    """A person drawn from ``rng``: many independent cues, none of which identifies alone."""
    tone = rng.uniform(0.55, 0.95)
    skin = tuple(
        int(c) for c in np.clip(np.array([235, 190, 160]) * tone + rng.normal(0, 8, 3), 0, 255)
    )
    hair_level = rng.uniform(10, 150)
    hair = tuple(
        int(c)
        for c in np.clip(hair_level * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 10, 3), 0, 255)
    )
    moles = tuple(
        (float(rng.uniform(-0.7, 0.7)), float(rng.uniform(-0.2, 0.7)))
        for _ in range(rng.integers(0, 4))
    )
    return Identity(
        skin=skin,
        hair=hair,
        face_w=rng.uniform(0.22, 0.31),
        face_h=rng.uniform(0.29, 0.37),
        jaw=rng.uniform(0.0, 1.0),
        hairline=rng.uniform(0.05, 0.30),
        fringe=bool(rng.random() < 0.4),
        side_hair=rng.uniform(0.0, 0.5),
        eye_gap=rng.uniform(0.28, 0.48),
        eye_y=rng.uniform(-0.22, -0.02),
        eye_r=rng.uniform(0.035, 0.07),
        brow_tilt=rng.uniform(-0.35, 0.35),
        brow_w=int(rng.integers(1, 5)),
        nose_len=rng.uniform(0.10, 0.28),
        nose_w=rng.uniform(0.05, 0.13),
        mouth_w=rng.uniform(0.22, 0.48),
        mouth_y=rng.uniform(0.38, 0.58),
        lip=int(rng.integers(1, 5)),
        ear=rng.uniform(0.05, 0.13),
        moles=moles,
        freckles=rng.uniform(0.0, 1.0),
        marks_seed=int(rng.integers(0, 2**31)),
    )


def _camera_yaw(camera: str) -> float:
    """Head turn of a camera of the ring: C7 frontal, about 20 degrees more per camera away."""
    return max(-1.2, min(1.2, (int(camera[1:]) - 7) * 0.35))


def _light(light: str, size: int) -> np.ndarray:
    """A multiplicative light field ``float[size, size, 3]``: L1 bright, even and white; higher
    numbers dimmer, lit from their own side and tinted, as the capture's lamps."""
    k = int(light[1:])
    if k == 1:
        return np.full((size, size, 3), 1.05)
    angle = k * 2.39996  # golden angle: every light from its own direction
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    ramp = np.cos(angle) * xs + np.sin(angle) * ys
    brightness = max(0.35, 1.0 - 0.03 * (k - 1))
    tint = 1.0 + 0.10 * np.cos(k * 1.3 + np.array([0.0, 2.1, 4.2]))
    return (brightness * (1.0 + 1.1 * ramp))[..., None] * tint


def _draw_face(
    person: Identity,
    session: str,
    expression: str,
    camera: str,
    size: int,
    rng: np.random.Generator,
):
    """The face drawn at ``size`` pixels (supersampled); returns the image and the face box."""
    s = size * SUPERSAMPLE
    glasses, sunglasses, hat = SESSIONS[session]
    background = tuple(int(v) for v in rng.integers(60, 200, 3))
    image = Image.new("RGB", (s, s), background)
    draw = ImageDraw.Draw(image)
    yaw = _camera_yaw(camera)
    scale = s * rng.uniform(0.95, 1.05)
    cx = s / 2 + rng.normal(0, 0.03) * s
    cy = s / 2 + rng.normal(0, 0.03) * s + 0.04 * s
    fw, fh = person.face_w * scale * math.cos(yaw * 0.6), person.face_h * scale
    turn = math.sin(yaw) * fw * 0.55  # features slide towards the side the head turns to

    def at(u: float, v: float) -> tuple[float, float]:
        """Face coordinates (u across, v down, both about -1..1) to pixels, with the head's turn."""
        return cx + u * fw + turn * math.cos(u * math.pi / 2), cy + v * fh

    # hair behind the head, ears, face
    top = cy - fh * (1.0 + person.hairline + 0.12)
    draw.ellipse(
        [cx - fw * 1.08, top, cx + fw * 1.08, cy + fh * (0.2 + person.side_hair)], fill=person.hair
    )
    for side in (-1, 1):
        ex, ey = at(side * 1.0, -0.05)
        r = person.ear * scale * (1 - 0.5 * max(0.0, side * yaw))
        draw.ellipse([ex - r * 0.6, ey - r, ex + r * 0.6, ey + r], fill=person.skin)
    chin = fh * (1 - 0.25 * person.jaw)
    draw.ellipse([cx - fw, cy - fh, cx + fw, cy + chin], fill=person.skin)
    draw.rectangle(
        [
            cx - fw * (0.75 + 0.2 * person.jaw),
            cy,
            cx + fw * (0.75 + 0.2 * person.jaw),
            cy + chin * 0.7,
        ],
        fill=person.skin,
    )
    draw.chord(
        [
            cx - fw * (0.75 + 0.2 * person.jaw),
            cy + chin * 0.2,
            cx + fw * (0.75 + 0.2 * person.jaw),
            cy + fh * 1.05,
        ],
        0,
        180,
        fill=person.skin,
    )
    # hairline and fringe
    draw.chord(
        [cx - fw * 1.02, top, cx + fw * 1.02, cy - fh * (0.55 - person.hairline)],
        180,
        360,
        fill=person.hair,
    )
    if person.fringe:
        draw.polygon([at(-0.9, -0.75), at(0.3, -0.75), at(-0.7, -0.35)], fill=person.hair)
    # freckles and moles: a person's marks, at fixed face positions
    marks = np.random.default_rng(person.marks_seed)
    for _ in range(int(person.freckles * 25)):
        x, y = at(marks.uniform(-0.6, 0.6), marks.uniform(-0.1, 0.5))
        draw.point((x, y), fill=tuple(int(c * 0.75) for c in person.skin))
    for u, v in person.moles:
        x, y = at(u, v)
        r = 0.012 * scale
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(60, 40, 30))
    # eyes and brows change with the expression
    open_eye = {"E01": 1.0, "E02": 0.45, "E03": 1.45}[expression]
    brow_lift = {"E01": 0.0, "E02": 0.02, "E03": 0.12}[expression]
    eye_r = person.eye_r * scale
    for side in (-1, 1):
        ex, ey = at(side * person.eye_gap / person.face_w * 0.5, person.eye_y)
        shrink = 1 - 0.45 * max(0.0, -side * yaw)  # the far eye looks narrower
        rx, ry = eye_r * shrink, eye_r * 0.6 * open_eye
        draw.ellipse([ex - rx, ey - ry, ex + rx, ey + ry], fill=(245, 245, 240))
        draw.ellipse(
            [ex - ry * 0.9, ey - ry * 0.9, ex + ry * 0.9, ey + ry * 0.9], fill=(40, 30, 25)
        )
        by = ey - eye_r * 1.5 - brow_lift * fh
        tilt = side * person.brow_tilt * eye_r
        draw.line(
            [ex - rx * 1.2, by + tilt, ex + rx * 1.2, by - tilt],
            fill=person.hair,
            width=person.brow_w * SUPERSAMPLE,
        )
        if glasses:
            r = eye_r * 1.7
            draw.ellipse(
                [ex - r * shrink, ey - r * 0.8, ex + r * shrink, ey + r * 0.8],
                outline=(30, 30, 30),
                width=2 * SUPERSAMPLE,
            )
        if sunglasses:
            r = eye_r * 1.6
            draw.ellipse(
                [ex - r * shrink, ey - r * 0.75, ex + r * shrink, ey + r * 0.75], fill=(15, 15, 20)
            )
    if glasses or sunglasses:
        draw.line(
            [at(-0.12, person.eye_y), at(0.12, person.eye_y)],
            fill=(30, 30, 30),
            width=2 * SUPERSAMPLE,
        )
    # nose
    nx, ny = at(0.0, person.eye_y + 0.1)
    tip_x, tip_y = at(0.0 + yaw * 0.25, person.eye_y + 0.1 + person.nose_len / person.face_h)
    half = person.nose_w * scale / 2
    shade = tuple(int(c * 0.7) for c in person.skin)
    draw.line([nx, ny, tip_x, tip_y], fill=shade, width=2 * SUPERSAMPLE)
    draw.line([tip_x - half, tip_y, tip_x + half, tip_y], fill=shade, width=2 * SUPERSAMPLE)
    # mouth
    mx, my = at(0.0, person.mouth_y)
    half = person.mouth_w * scale / 2 * math.cos(yaw * 0.5)
    lip_colour = (150, 60, 60)
    if expression == "E03":
        draw.ellipse(
            [mx - half * 0.5, my - half * 0.35, mx + half * 0.5, my + half * 0.45],
            fill=(70, 20, 20),
        )
    elif expression == "E02":
        draw.arc(
            [mx - half, my - half * 0.6, mx + half, my + half * 0.5],
            15,
            165,
            fill=lip_colour,
            width=person.lip * SUPERSAMPLE,
        )
    else:
        draw.line([mx - half, my, mx + half, my], fill=lip_colour, width=person.lip * SUPERSAMPLE)
    if hat:
        brim = cy - fh * (0.55 - person.hairline * 0.3)
        draw.rectangle([cx - fw * 1.25, brim - fh * 0.12, cx + fw * 1.25, brim], fill=(40, 70, 120))
        draw.chord(
            [cx - fw * 1.05, top - fh * 0.25, cx + fw * 1.05, brim + fh * 0.5],
            180,
            360,
            fill=(40, 70, 120),
        )
    box = (cx - fw * 1.1, top, fw * 2.2, cy + fh * 1.05 - top)
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    return image, tuple(v / SUPERSAMPLE for v in box)


def _render(
    person: Identity,
    session: str,
    light: str,
    expression: str,
    camera: str,
    size: int,
    rng: np.random.Generator,
):
    """The final shot: drawing, lamp, white balance and noise; the box clipped to the image.

    The white balance varies from shot to shot so that skin colour is a weak cue; the overall
    exposure does not (LightCNN, without normalisation layers, learns much slower with it).
    """
    image, box = _draw_face(person, session, expression, camera, size, rng)
    white_balance = rng.uniform(0.95, 1.05, 3)
    pixels = np.asarray(image, dtype=np.float32) * _light(light, size) * white_balance
    pixels += rng.normal(0, 5, pixels.shape)
    x, y, w, h = box
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(size, round(x + w)), min(size, round(y + h))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), (x0, y0, x1 - x0, y1 - y0)


def _arguments(**arguments: Any) -> dict[str, Any]:
    """The full, JSON-ready arguments of :func:`generate_kface` (defaults filled in)."""
    values = generated.generator_arguments(generate_kface, arguments)
    for name in ("sessions", "lights", "expressions", "cameras"):
        if isinstance(values[name], str):
            values[name] = [values[name]]
        values[name] = [str(v) for v in values[name]]
    for name in ("num_people", "image_size", "seed", "first_person"):
        values[name] = int(values[name])
    values["boxes"] = bool(values["boxes"])
    return values


def _check_arguments(arguments: dict[str, Any]) -> None:
    if arguments["num_people"] < 1 or arguments["num_people"] > 10_000_000:
        raise ValueError(
            f"num_people must be between 1 and 10,000,000, got {arguments['num_people']}"
        )
    last = int(FIRST_PERSON) + arguments["first_person"] + arguments["num_people"] - 1
    if arguments["first_person"] < 0 or last > 99_999_999:
        raise ValueError(
            f"first_person={arguments['first_person']}: person ids have 8 digits; choose 0 to "
            f"{99_999_999 - int(FIRST_PERSON) - arguments['num_people'] + 1}"
        )
    if arguments["image_size"] < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {arguments['image_size']}")
    for name in ("sessions", "lights", "expressions", "cameras"):
        if not arguments[name]:
            raise ValueError(f"{name} is empty: give at least one value")
    for session in arguments["sessions"]:
        for light in arguments["lights"]:
            for expression in arguments["expressions"]:
                for camera in arguments["cameras"]:
                    parse_name(f"{FIRST_PERSON}/{session}/{light}/{expression}/{camera}.jpg")


def read_marker(root: str | Path) -> dict[str, Any] | None:
    """The marker of a finished tree (generator version and arguments), or None (none there)."""
    return generated.read_marker(root, MARKER)


def generate_kface(
    root: str | Path,
    num_people: int = 100,
    sessions: Sequence[str] = ("S001", "S002", "S003"),
    lights: Sequence[str] = ("L1", "L2", "L3"),
    expressions: Sequence[str] = ("E01", "E02", "E03"),
    cameras: Sequence[str] = ("C6", "C7", "C8"),
    image_size: int = 64,
    seed: int = 0,
    boxes: bool = True,
    first_person: int = 0,
) -> Path:
    """Write a K-Face tree of ``num_people`` people with every combination of the facets.

    The tree is written into a temporary sibling folder and renamed into place when complete,
    with the marker file :data:`MARKER` holding these arguments: an interrupted generation leaves
    no tree that looks finished. A tree already at ``root`` is replaced only if it was generated
    (it has the marker); any other folder is left alone.

    Args:
        root: where the tree goes.
        num_people: people ``19062000``, ``19062001``, ... (from ``first_person``); person ``i``
            looks the same whatever ``num_people`` is.
        sessions: accessory sessions (S001 none, S002 glasses, S003 hat, S004 sunglasses, S005
            glasses and hat, S006 sunglasses and hat).
        lights: L1 bright and even; higher numbers dimmer and lit from one side.
        expressions: E01 neutral, E02 smile, E03 surprise.
        cameras: C7 frontal; the others turn the head, further for cameras further from C7.
        image_size: side of the square JPEG images.
        seed: one seed for identities, conditions, noise and placement; an image depends only on
            the seed, its person and its facets.
        boxes: write a face box ``x y width height`` beside each image.
        first_person: the number of the first person: two trees with other numbers share no
            person, as the parts of a delivery split by person.

    Returns:
        ``root``.

    Raises:
        FileExistsError: ``root`` is a folder that this generator did not make.
        KFaceFormatError: a facet value is not of the form in kface.md.
    """
    root = Path(root)
    arguments = _arguments(
        num_people=num_people,
        sessions=sessions,
        lights=lights,
        expressions=expressions,
        cameras=cameras,
        image_size=image_size,
        seed=seed,
        boxes=boxes,
        first_person=first_person,
    )
    _check_arguments(arguments)
    return generated.write_generated(
        root,
        MARKER,
        {"generator_version": GENERATOR_VERSION, **arguments},
        lambda folder: _write_tree(folder, arguments, root),
        "K-Face",
    )


def _write_tree(folder: Path, arguments: dict[str, Any], root: Path) -> None:
    """Draw every image of the tree into ``folder``, with a progress bar."""
    combos = list(
        itertools.product(
            arguments["sessions"],
            arguments["lights"],
            arguments["expressions"],
            arguments["cameras"],
        )
    )
    size, seed = arguments["image_size"], arguments["seed"]
    total = arguments["num_people"] * len(combos)
    with tqdm(total=total, desc=f"Generating {root}", unit=" images", mininterval=1.0) as bar:
        first = arguments["first_person"]
        for index in range(first, first + arguments["num_people"]):
            person_id = f"{int(FIRST_PERSON) + index:08d}"
            person = _identity(np.random.default_rng([seed, index]))
            for session, light, expression, camera in combos:
                numbers = [int(v[1:]) for v in (session, light, expression, camera)]
                rng = np.random.default_rng([seed, index, *numbers])
                image, box = _render(person, session, light, expression, camera, size, rng)
                leaf = folder / person_id / session / light / expression
                leaf.mkdir(parents=True, exist_ok=True)
                image.save(leaf / f"{camera}.jpg", quality=92)
                if arguments["boxes"]:
                    (leaf / f"{camera}.txt").write_text(" ".join(str(v) for v in box) + "\n")
                bar.update(1)


def ensure_synthetic_kface(root: str | Path, **arguments: Any) -> Path:
    """Generate the tree unless ``root`` already holds one made with the same arguments.

    The marker file is written last and renamed into place with the tree, so a tree without it
    (half written, or made by hand) is never taken as complete. Arguments left out take the
    defaults of :func:`generate_kface` (they are compared with the marker too). Several processes
    may call this at once: one generates, the others wait and find the tree made.

    Returns:
        ``root``.
    """
    wanted = _arguments(**arguments)
    marker = {"generator_version": GENERATOR_VERSION, **wanted}
    return generated.ensure_generated(root, MARKER, marker, lambda: generate_kface(root, **wanted))
