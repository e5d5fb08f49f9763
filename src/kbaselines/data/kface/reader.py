"""Read a K-Face tree into plain records: ``<person>/<session>/<light>/<expression>/<camera>.jpg``.

The format is ``kface.md``: 8-digit person ids, sessions S001-S006, lights L1-L30, expressions
E01-E03, cameras C1-C20, and an optional ``.txt`` face box ``x y width height`` beside an image.
No torch here: records are plain data that the index caches and the Dataset loads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kbaselines.data.report import Problem

__all__ = [
    "FACETS",
    "KFaceFormatError",
    "KFaceRecord",
    "parse_box",
    "parse_image_path",
    "resolve_tree",
    "scan_tree",
    "select",
]

RESOLUTIONS = ("High", "Middle", "Low")
FACETS = ("session", "light", "expression", "camera")
PATTERNS = {
    "person": re.compile(r"\d{8}"),
    "session": re.compile(r"S00[1-6]"),
    "light": re.compile(r"L([1-9]|[12]\d|30)"),
    "expression": re.compile(r"E0[1-3]"),
    "camera": re.compile(r"C([1-9]|1\d|20)"),
}
BOX_SEPARATORS = re.compile(r"[\s,]+")


class KFaceFormatError(ValueError):
    """A path or a box file of the tree does not follow kface.md."""


@dataclass(frozen=True)
class KFaceRecord:
    """One image of the tree.

    Args:
        path: the image path relative to the tree, with ``/`` separators.
        person, session, light, expression, camera: the facets parsed from the path.
        box: the face box ``(x, y, width, height)`` in pixels, or None (the whole image is used).
    """

    path: str
    person: str
    session: str
    light: str
    expression: str
    camera: str
    box: tuple[int, int, int, int] | None = None


def resolve_tree(root: str | Path | None, resolution: str = "High") -> Path:
    """The tree to read: ``root/<resolution>`` when root holds High/Middle/Low subtrees, else root."""
    if root is None or str(root) in ("", "None", "???"):
        raise FileNotFoundError(
            "data.root is not set: point it at your K-Face tree (data.root=/path/to/kface), "
            "or use the generated twin with data=kface_synthetic"
        )
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.root={root} does not exist: set data.root to your K-Face tree, "
            "or use the generated twin with data=kface_synthetic"
        )
    present = [name for name in RESOLUTIONS if (root / name).is_dir()]
    if not present:
        return root
    if resolution not in present:
        raise FileNotFoundError(
            f"{root} has the resolutions {present}, not data.resolution={resolution}"
        )
    return root / resolution


def parse_image_path(relative: str) -> dict[str, str]:
    """The facets of ``<person>/<session>/<light>/<expression>/<camera>.jpg``.

    Raises:
        KFaceFormatError: naming the path and the part that does not parse.
    """
    parts = relative.split("/")
    if len(parts) != 5 or not parts[-1].lower().endswith(".jpg"):
        raise KFaceFormatError(
            f"{relative}: expected <person>/<session>/<light>/<expression>/<camera>.jpg"
        )
    values = dict(zip(("person", "session", "light", "expression"), parts[:4], strict=True))
    values["camera"] = parts[4][: -len(".jpg")]
    for facet, value in values.items():
        if not PATTERNS[facet].fullmatch(value):
            raise KFaceFormatError(f"{relative}: {facet} {value!r} is not of the form in kface.md")
    return values


def parse_box(path: Path) -> tuple[int, int, int, int] | None:
    """The face box in a ``.txt`` file: ``x y width height`` (spaces, commas or tabs); empty = none.

    Raises:
        KFaceFormatError: naming the file and its content.
    """
    text = path.read_text(errors="replace").strip()
    if not text:
        return None
    fields = [f for f in BOX_SEPARATORS.split(text) if f]
    try:
        values = [round(float(f)) for f in fields]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0 or values[0] < 0 or values[1] < 0:
        raise KFaceFormatError(
            f"{path}: face box {text[:60]!r} is not 'x y width height' with a positive size; "
            "fix the file or delete it to use the whole image"
        )
    return (values[0], values[1], values[2], values[3])


def _walk_images(tree: Path) -> Iterator[str]:
    """Relative paths of every ``.jpg`` four folders deep (unknown files elsewhere are skipped)."""
    stack = [(tree, 0)]
    while stack:
        folder, depth = stack.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir() and depth < 4:
                    stack.append((Path(entry.path), depth + 1))
                elif depth == 4 and entry.name.lower().endswith(".jpg") and entry.is_file():
                    yield Path(entry.path).relative_to(tree).as_posix()


def scan_tree(
    tree: Path, progress: object | None = None
) -> tuple[list[KFaceRecord], list[Problem]]:
    """Every image record of the tree, and the problems found (malformed names or boxes).

    Args:
        tree: the resolved tree (see :func:`resolve_tree`).
        progress: an optional tqdm bar, advanced once per image.
    """
    records, problems = [], []
    for relative in _walk_images(tree):
        if progress is not None:
            progress.update(1)
        try:
            facets = parse_image_path(relative)
            box_file = tree / (relative[: -len(".jpg")] + ".txt")
            box = parse_box(box_file) if box_file.is_file() else None
        except KFaceFormatError as error:
            problems.append(Problem(file=relative, reason=str(error).split(": ", 1)[-1]))
            continue
        records.append(KFaceRecord(path=relative, box=box, **facets))
    records.sort(key=lambda r: r.path)
    return records, problems


def select(records: Sequence[KFaceRecord], **filters: Sequence[str] | str) -> list[KFaceRecord]:
    """The records whose facets are in the filters (``sessions=["S001"]``, ``lights="all"``...).

    Raises:
        KFaceFormatError: when a filter empties the selection, naming it and the values present.
    """
    selected = list(records)
    for name, wanted in filters.items():
        facet = name.removesuffix("s")
        if facet not in FACETS:
            raise ValueError(f"unknown K-Face filter {name!r}; use {[f + 's' for f in FACETS]}")
        if wanted == "all":
            continue
        values = {wanted} if isinstance(wanted, str) else {str(v) for v in wanted}
        kept = [r for r in selected if getattr(r, facet) in values]
        if not kept:
            present = sorted({getattr(r, facet) for r in selected}, key=_natural)
            raise KFaceFormatError(
                f"no image left after {name}={sorted(values, key=_natural)}: the tree has {present}"
            )
        selected = kept
    return selected


def _natural(value: str) -> tuple[str, int]:
    digits = "".join(c for c in value if c.isdigit())
    return (value.rstrip("0123456789"), int(digits) if digits else 0)
