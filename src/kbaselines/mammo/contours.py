"""Lesions of a case from its contour JSON or its binary mask PNGs (mammography.md).

The drawing tool stores y with a minus sign: a contour whose y values are all <= 0 is read with -y
(detected per contour). Mixed signs, points outside the image, or an unknown view are errors that
name the case, the view and the lesion. Lesions are kept as boxes in the oriented image (right
breasts flipped, chest wall left), normalised to [0, 1], so they hold at any cached resolution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kbaselines.mammo.dicom import VIEWS

__all__ = [
    "LESION_CLASSES",
    "ContourFile",
    "Lesion",
    "MammoContourError",
    "read_contours",
    "read_masks",
]

LESION_CLASSES = ("cancer", "benign")


class MammoContourError(ValueError):
    """A contour (or mask) that cannot be used; names file, case, view and lesion."""

    def __init__(self, path: str | Path, reason: str, record: str | None = None) -> None:
        where = f"{path} [{record}]" if record else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.record = record


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
    """The parsed contour JSON of one case: lesions and the reviewer's discard flag."""

    lesions: list[Lesion]
    discard: bool


def _box(xs: np.ndarray, ys: np.ndarray, size: tuple[int, int], view: str) -> tuple[float, ...]:
    rows, columns = size
    if view.startswith("r"):  # right breasts are flipped so the chest wall is on the left
        xs = columns - 1 - xs
    x0, x1 = float(xs.min()) / columns, float(xs.max() + 1) / columns
    y0, y1 = float(ys.min()) / rows, float(ys.max() + 1) / rows
    return (x0, y0, x1, y1)


def _points(raw: object, record: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(raw, list) or len(raw) < 3:
        raise MammoContourError(path, "a contour needs a list of at least 3 {x, y} points", record)
    try:
        xs = np.array([float(p["x"]) for p in raw])
        ys = np.array([float(p["y"]) for p in raw])
    except (TypeError, KeyError, ValueError) as error:
        raise MammoContourError(
            path, f"points must be {{'x': number, 'y': number}} objects ({error!r})", record
        ) from error
    if (ys <= 0).all():
        ys = -ys  # the drawing tool's y axis points up
    elif (ys < 0).any():
        raise MammoContourError(
            path,
            "mixed signs of y in one contour (some < 0, some > 0): the drawing tool stores every y "
            "negated; fix the points of this lesion",
            record,
        )
    return xs, ys


def read_contours(path: str | Path, sizes: dict[str, tuple[int, int]]) -> ContourFile:
    """Parse ``contours/<case>.json``.

    Args:
        path: the JSON file.
        sizes: ``(rows, columns)`` of each view of the case (``rcc`` ...), to check the points.

    Raises:
        MammoContourError: malformed JSON, an unknown class or view, a contour with mixed signs
            or outside the image.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MammoContourError(path, f"not readable JSON ({error}); fix or remove it") from error
    if not isinstance(data, dict) or not isinstance(data.get("contour_list", {}), dict):
        raise MammoContourError(path, "expected an object with a contour_list object")
    case = data.get("case_id", path.stem)
    lesions = []
    for cls, views in (data.get("contour_list") or {}).items():
        if cls not in LESION_CLASSES:
            raise MammoContourError(
                path,
                f"unknown class {cls!r}; expected {' or '.join(LESION_CLASSES)}",
                f"case {case}",
            )
        for view, contours in (views or {}).items():
            view_name = view.lower()
            if view_name not in VIEWS:
                raise MammoContourError(
                    path,
                    f"unknown view {view!r}; expected one of {', '.join(VIEWS)}",
                    f"case {case} {cls}",
                )
            for lesion_id, raw in (contours or {}).items():
                record = f"case {case} view {view_name} lesion {lesion_id}"
                xs, ys = _points(raw, record, path)
                if view_name not in sizes:
                    raise MammoContourError(path, "the case has no image of this view", record)
                rows, columns = sizes[view_name]
                if xs.min() < 0 or ys.min() < 0 or xs.max() > columns - 1 or ys.max() > rows - 1:
                    raise MammoContourError(
                        path,
                        f"points outside the {columns}x{rows} image (x {xs.min():g}..{xs.max():g}, "
                        f"y {ys.min():g}..{ys.max():g}): coordinates are DICOM pixels",
                        record,
                    )
                box = _box(xs, ys, (rows, columns), view_name)
                lesions.append(Lesion(view_name, str(lesion_id), cls, box))  # type: ignore[arg-type]
    return ContourFile(lesions, bool(int(data.get("discard_yn", 0) or 0)))


def read_masks(
    folder: str | Path, sizes: dict[str, tuple[int, int]], classes: dict[str, str], default: str
) -> list[Lesion]:
    """Lesions from ``masks/<case>/<view>_<lesion id>.png`` (binary, the DICOM's size).

    Args:
        folder: the case's mask folder.
        sizes: ``(rows, columns)`` of each view.
        classes: class of a lesion id known from the contour JSON; others get ``default``.
        default: the class of other lesions (the case's group).
    """
    lesions = []
    for png in sorted(Path(folder).glob("*.png")):
        view, _, lesion_id = png.stem.partition("_")
        record = f"case {Path(folder).name} view {view} lesion {lesion_id}"
        if view not in sizes or not lesion_id:
            raise MammoContourError(
                png,
                f"name it <view>_<lesion id>.png with a view of the case ({', '.join(sorted(sizes))})",
                record,
            )
        try:
            mask = np.asarray(Image.open(png).convert("L")) > 0
        except OSError as error:
            raise MammoContourError(png, f"not a readable PNG ({error})", record) from error
        if mask.shape != sizes[view]:
            raise MammoContourError(
                png,
                f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {sizes[view][1]}x{sizes[view][0]}",
                record,
            )
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            raise MammoContourError(png, "empty mask (no pixel > 0)", record)
        cls = classes.get(lesion_id, default)
        lesions.append(Lesion(view, lesion_id, cls, _box(xs, ys, mask.shape, view)))
    return lesions
