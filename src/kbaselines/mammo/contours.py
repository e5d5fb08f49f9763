"""Lesions of a case from its contour JSON or its binary mask PNGs (mammography.md).

The contour file is declared once as a schema (:class:`ContourDocument`, its points
:class:`ContourPoint`) and validated whole, so that every missing key and wrong type is reported
with the file, the case and the key path (``contour_list.cancer.lcc.lesion01.2.y``), not only the
first. The drawing tool stores y with a minus sign: a contour whose y values are all <= 0 is read
with -y (detected per contour). Mixed signs and points outside the image are problems that name
the case, the view and the lesion. Lesions are kept as boxes in the oriented image (right breasts
flipped, chest wall left), normalised to [0, 1], so they hold at any cached resolution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from PIL import Image
from pydantic import BeforeValidator, Field

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.schema import RecordSchema, validate_record
from kbaselines.mammo.dicom import VIEWS

__all__ = [
    "LESION_CLASSES",
    "ContourDocument",
    "ContourFile",
    "ContourPoint",
    "Lesion",
    "read_contours",
    "read_masks",
]

LESION_CLASSES = ("cancer", "benign")


class ContourPoint(RecordSchema):
    """One point of a contour, in DICOM pixels (y possibly negated by the drawing tool)."""

    x: float = Field(strict=True)
    y: float = Field(strict=True)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


View = Annotated[Literal[VIEWS], BeforeValidator(_lower)]  # "RMLO" is read as "rmlo"
Points = Annotated[list[ContourPoint], Field(min_length=3)]


class ContourDocument(RecordSchema):
    """``contours/<case id>.json``: lesion class -> view -> lesion id -> points; ``discard_yn``
    1 when the reviewer rejected the case."""

    case_id: int | str | None = None
    contour_list: (
        dict[Literal[LESION_CLASSES], dict[View, dict[str, Points] | None] | None] | None
    ) = None
    discard_yn: Literal[0, 1] = 0


@dataclass(frozen=True)
class Lesion:
    """One lesion: its view, id, class and box ``(x0, y0, x1, y1)`` in [0, 1] of the oriented image."""

    view: str
    lesion_id: str
    cls: str
    box: tuple[float, float, float, float]

    @property
    def laterality(self) -> str:
        return self.view[0].upper()


@dataclass(frozen=True)
class ContourFile:
    """The lesions of one case's contour file, the reviewer's discard flag, and its problems."""

    lesions: list[Lesion]
    discard: bool
    problems: list[Problem]


def _name(path: Path, root: Path | None) -> str:
    """``path`` as the report names it: relative to the dataset root when given."""
    return path.relative_to(root).as_posix() if root is not None else str(path)


def _box(xs: np.ndarray, ys: np.ndarray, size: tuple[int, int], view: str) -> tuple[float, ...]:
    rows, columns = size
    if view.startswith("r"):  # right breasts are flipped so the chest wall is on the left
        xs = columns - 1 - xs
    x0, x1 = float(xs.min()) / columns, float(xs.max() + 1) / columns
    y0, y1 = float(ys.min()) / rows, float(ys.max() + 1) / rows
    return (x0, y0, x1, y1)


def _lesion(
    points: list[ContourPoint], view: str, size: tuple[int, int] | None
) -> tuple[float, float, float, float] | str:
    """The lesion's box, or what is wrong with its points."""
    xs = np.array([p.x for p in points])
    ys = np.array([p.y for p in points])
    if (ys <= 0).all():
        ys = -ys  # the drawing tool's y axis points up
    elif (ys < 0).any():
        return (
            "mixed signs of y in one contour (some < 0, some > 0): the drawing tool stores every y "
            "negated; fix the points of this lesion"
        )
    if size is None:
        return "the case has no image of this view"
    rows, columns = size
    if xs.min() < 0 or ys.min() < 0 or xs.max() > columns - 1 or ys.max() > rows - 1:
        return (
            f"points outside the {columns}x{rows} image (x {xs.min():g}..{xs.max():g}, "
            f"y {ys.min():g}..{ys.max():g}): coordinates are DICOM pixels"
        )
    return _box(xs, ys, size, view)


def read_contours(
    path: str | Path, sizes: dict[str, tuple[int, int]], root: Path | None = None
) -> ContourFile:
    """Parse ``contours/<case>.json``; every problem is collected.

    Args:
        path: the JSON file.
        sizes: ``(rows, columns)`` of each view of the case (``rcc`` ...), to check the points.
        root: the dataset root, to name the file relative to it in problems.

    Returns:
        The lesions and the discard flag; with problems (malformed JSON, a missing key, a wrong
        type, an unknown class or view, a contour with mixed signs or outside the image) no lesion
        of the file is used.
    """
    path = Path(path)
    name = _name(path, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return ContourFile(
            [], False, [Problem(name, f"not readable JSON ({error}); fix or remove it")]
        )
    case = data.get("case_id", path.stem) if isinstance(data, dict) else path.stem
    document, problems = validate_record(ContourDocument, data, name, f"case {case}")
    if document is None:
        return ContourFile([], False, problems)
    lesions = []
    for cls, views in (document.contour_list or {}).items():
        for view, contours in (views or {}).items():
            for lesion_id, points in (contours or {}).items():
                found = _lesion(points, view, sizes.get(view))
                if isinstance(found, str):
                    problems.append(
                        Problem(name, found, f"case {case} view {view} lesion {lesion_id}")
                    )
                else:
                    lesions.append(Lesion(view, lesion_id, cls, found))
    return ContourFile([] if problems else lesions, bool(document.discard_yn), problems)


def read_masks(
    folder: str | Path,
    sizes: dict[str, tuple[int, int]],
    classes: dict[str, str],
    default: str,
    root: Path | None = None,
) -> tuple[list[Lesion], list[Problem]]:
    """Lesions from ``masks/<case>/<view>_<lesion id>.png`` (binary, the DICOM's size), and the
    problem of every mask that cannot be used.

    Args:
        folder: the case's mask folder.
        sizes: ``(rows, columns)`` of each view.
        classes: class of a lesion id known from the contour JSON; others get ``default``.
        default: the class of other lesions (the case's group).
        root: the dataset root, to name the files relative to it in problems.
    """
    lesions, problems = [], []
    for png in sorted(Path(folder).glob("*.png")):
        view, _, lesion_id = png.stem.partition("_")
        record = f"case {Path(folder).name} view {view} lesion {lesion_id}"
        name = _name(png, root)
        if view not in sizes or not lesion_id:
            problems.append(
                Problem(
                    name,
                    "name it <view>_<lesion id>.png with a view of the case "
                    f"({', '.join(sorted(sizes))})",
                    record,
                )
            )
            continue
        try:
            with Image.open(png) as image:
                mask = np.asarray(image.convert("L")) > 0
        except OSError as error:
            problems.append(Problem(name, f"not a readable PNG ({error})", record))
            continue
        if mask.shape != sizes[view]:
            rows, columns = sizes[view]
            problems.append(
                Problem(
                    name,
                    f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {columns}x{rows}",
                    record,
                )
            )
            continue
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            problems.append(Problem(name, "empty mask (no pixel > 0)", record))
            continue
        cls = classes.get(lesion_id, default)
        lesions.append(Lesion(view, lesion_id, cls, _box(xs, ys, mask.shape, view)))
    return lesions, problems
