"""Read a K-Face tree into plain records: ``<person>/<session>/<light>/<expression>/<camera>.jpg``.

The format is ``kface.md``: 8-digit person ids, sessions S001-S006, lights L1-L30, expressions
E01-E03, cameras C1-C20, and an optional ``.txt`` face box ``x y width height`` beside an image.
No torch here: records are plain data that the index caches and the Dataset loads.

The walk lists each folder once with :func:`os.scandir` (the full dataset has about ten million
images) and validates a folder's name once for all the images below it. Files that are neither
images nor box files (``Thumbs.db``, ``README``) and hidden files (names starting with a dot, such
as the ``._C7.jpg`` resource forks macOS leaves on shared drives) are ignored. A ``.jpg`` at the
image depth whose name does not parse, and a box file that does not follow :class:`FaceBox`, are
*problems*: they are reported with the file, the line and every key that is wrong, and their image
is left out. Whether the images decode and their boxes fall on them is checked later, on the
selected images (:mod:`kbaselines.kface.datamodule`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
from pydantic import Field, StrictFloat

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.schema import RecordSchema, validate_record

__all__ = [
    "FACETS",
    "FILTERS",
    "RESOLUTIONS",
    "Box",
    "FaceBox",
    "FacetFilter",
    "KFaceFormatError",
    "KFaceRecord",
    "KFaceSelectionError",
    "facet_sort_key",
    "file_stamp",
    "iter_tree",
    "matches",
    "parse_box_file",
    "parse_name",
    "read_box",
    "resolve_tree",
    "select",
    "select_indices",
]

log = logging.getLogger(__name__)

RESOLUTIONS = ("High", "Middle", "Low")
#: The facets of a path after the person, in path order.
FACETS = ("session", "light", "expression", "camera")
#: The selection settings (``data.sessions`` ...), one per facet, in path order.
FILTERS = ("sessions", "lights", "expressions", "cameras")
LAYOUT = "<person>/<session>/<light>/<expression>/<camera>.jpg"

# what each part of a path must look like (kface.md), and how to say it in an error
_PATTERNS = {
    "person": (re.compile(r"\d{8}"), "an 8-digit id such as 19061801"),
    "session": (re.compile(r"S00[1-6]"), "one of S001 ... S006"),
    "light": (re.compile(r"L(?:[1-9]|[12]\d|30)"), "one of L1 ... L30"),
    "expression": (re.compile(r"E0[1-3]"), "one of E01, E02, E03"),
    "camera": (re.compile(r"C(?:[1-9]|1\d|20)"), "one of C1 ... C20"),
}
_PARTS = ("person", *FACETS)
_BOX_SEPARATORS = re.compile(r"[\s,]+")
_BOX_KEYS = ("x", "y", "width", "height")
_BOX_FIX = (
    "write one line 'x y width height' of whole pixels with a positive width and height "
    "(separated by spaces, commas or tabs), or empty or delete the file to use the whole image"
)

#: A selection setting: a list of values, or the string ``"all"``.
FacetFilter = Sequence[str] | str
#: A face box ``(x, y, width, height)`` in image pixels.
Box = tuple[int, int, int, int]
#: ``(path relative to the tree, size, mtime_ns)`` of a box file the walk read.
BoxStamp = tuple[str, int, int]


class FaceBox(RecordSchema):
    """The line of a box file (kface.md): ``x y width height`` in image pixels, finite numbers
    (fractions, as a face detector writes them, are rounded to whole pixels). ``x`` and ``y`` may
    be negative (a face partly out of the frame: the crop is clipped to the image)."""

    x: Annotated[StrictFloat, Field(allow_inf_nan=False)]
    y: Annotated[StrictFloat, Field(allow_inf_nan=False)]
    width: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]
    height: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]


class KFaceFormatError(ValueError):
    """A file of the tree does not follow kface.md.

    Args:
        path: the file (relative to the tree, or absolute).
        reason: what is wrong and how to fix it, without the path.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class KFaceSelectionError(ValueError):
    """The data settings select nothing usable (an empty selection, a missing gallery image)."""


@dataclass(frozen=True, slots=True)
class KFaceRecord:
    """One image of the tree.

    Args:
        path: the image path relative to the tree, with ``/`` separators.
        person: the 8-digit person id (the first folder).
        session: the accessory session, ``S001`` ... ``S006``.
        light: the lighting condition, ``L1`` ... ``L30``.
        expression: the expression, ``E01`` ... ``E03``.
        camera: the camera (head pose), ``C1`` ... ``C20``.
        box: the face box ``(x, y, width, height)`` in image pixels, or None: use the whole image.
    """

    path: str
    person: str
    session: str
    light: str
    expression: str
    camera: str
    box: Box | None = None


class _Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...


def _check(part: str, value: str) -> str | None:
    """The reason ``value`` is not a valid ``part`` of a path, or None when it is."""
    pattern, expected = _PATTERNS[part]
    if pattern.fullmatch(value):
        return None
    return (
        f"{part} {value!r} is not {expected} (kface.md layout: {LAYOUT}); "
        "rename it, or move it out of the tree"
    )


def parse_name(relative: str, box: Box | None = None) -> KFaceRecord:
    """The record of an image path ``<person>/<session>/<light>/<expression>/<camera>.jpg``.

    Args:
        relative: the path relative to the tree, with ``/`` separators.
        box: the face box to put in the record.

    Raises:
        KFaceFormatError: naming the path and the part that does not follow kface.md.
    """
    parts = relative.split("/")
    if len(parts) != 5 or not parts[-1].lower().endswith(".jpg"):
        raise KFaceFormatError(relative, f"not an image path of the form {LAYOUT}")
    values = [*parts[:4], parts[4][: -len(".jpg")]]
    for part, value in zip(_PARTS, values, strict=True):
        reason = _check(part, value)
        if reason is not None:
            raise KFaceFormatError(relative, reason)
    return KFaceRecord(relative, *values, box=box)


def _number(field: str) -> int | float | str:
    """A field of a box line as the number it spells, or the text when it spells none."""
    for kind in (int, float):
        try:
            return kind(field)
        except ValueError:
            pass
    return field


def read_box(text: str, file: str) -> tuple[Box | None, list[Problem]]:
    """The face box in the text of a box file (None when the text is empty), and its problems.

    Every problem of the text comes back at once, as one problem of the file naming its line: more
    than one line, more than four values, and each key of :class:`FaceBox` that is missing, not a
    whole number, or (width, height) not positive.

    Args:
        text: the file's text.
        file: the file, as the problems name it.
    """
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return None, []
    number, line = lines[0]
    fields = [field for field in _BOX_SEPARATORS.split(line) if field]
    reasons = [f"{len(lines)} lines, expected one"] if len(lines) > 1 else []
    if len(fields) > len(_BOX_KEYS):
        reasons.append(f"{len(fields)} values, expected {len(_BOX_KEYS)}")
    raw = dict(zip(_BOX_KEYS, map(_number, fields), strict=False))
    box, problems = validate_record(FaceBox, raw, file, f"line {number}")
    reasons += [p.reason for p in problems]
    if box is not None and not reasons:
        return (round(box.x), round(box.y), round(box.width), round(box.height)), []
    shown = text.strip()
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    reason = f"face box {shown!r}: {'; '.join(reasons)}; {_BOX_FIX}"
    return None, [Problem(file, reason, f"line {number}")]


def file_stamp(path: str | Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of a file, ``(-1, -1)`` when it cannot be reached: what the index
    compares to notice a box file edited in place."""
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def parse_box_file(path: str | Path) -> Box | None:
    """The face box in a box file; None when the file is missing or empty.

    Raises:
        KFaceFormatError: naming the file, its line, its content and every wrong key, and how to
            fix it.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise KFaceFormatError(path, f"cannot read the box file ({error})") from error
    box, problems = read_box(text, str(path))
    if problems:
        raise KFaceFormatError(path, f"{problems[0].record}: {problems[0].reason}")
    return box


def resolve_tree(root: str | Path | None, resolution: str = "High") -> Path:
    """The tree to read: ``root/<resolution>`` when root holds High/Middle/Low subtrees, else root.

    Raises:
        FileNotFoundError: the root is not set or does not exist (saying what to set), or the
            requested resolution is not among the subtrees.
        ValueError: ``resolution`` is not one of High, Middle, Low.
    """
    hint = (
        "set data.root=<path> to your K-Face tree (the folder holding the 8-digit person "
        "folders, or High/ Middle/ Low/), or use the generated twin: data=kface_synthetic"
    )
    if root is None or str(root).strip() in ("", "None", "null", "???"):
        raise FileNotFoundError(f"data.root is not set: {hint}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root={root} does not exist or is not a folder: {hint}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"data.resolution={resolution!r} must be one of {', '.join(RESOLUTIONS)}")
    present = [name for name in RESOLUTIONS if (root / name).is_dir()]
    if not present:
        return root
    if resolution not in present:
        raise FileNotFoundError(
            f"{root} holds the resolutions {', '.join(present)} but not {resolution}: "
            f"set data.resolution to one of them"
        )
    return root / resolution


def _listing(folder: str) -> tuple[list[str], list[str]]:
    """The sorted names of the subfolders and of the files of a folder, hidden names left out."""
    folders, files = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_folder = entry.is_dir()
            except OSError:
                is_folder = False
            (folders if is_folder else files).append(entry.name)
    folders.sort()
    files.sort()
    return folders, files


def _read_box_file(
    folder: str, name: str, relative: str, stamps: list[BoxStamp] | None
) -> tuple[Box | None, list[Problem]]:
    """The box and problems of one box file, its stamp taken from the open file (an edit after
    this read changes the stamp, so the index notices it)."""
    path = os.path.join(folder, name)
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            text = file.read().decode("utf-8-sig", errors="replace")
    except OSError as error:
        if stamps is not None:
            stamps.append((relative, *file_stamp(path)))
        return None, [Problem(relative, f"cannot read the box file ({error}); fix or remove it")]
    if stamps is not None:
        stamps.append((relative, stat.st_size, stat.st_mtime_ns))
    return read_box(text, relative)


def _leaf(
    folder: str,
    prefix: str,
    facets: tuple[str, ...],
    reason: str | None,
    stamps: list[BoxStamp] | None,
) -> Iterator[KFaceRecord | Problem]:
    """The records and problems of one ``<expression>`` folder (``facets``: its four folders)."""
    _, files = _listing(folder)
    names = set(files)
    cameras: dict[str, str] = {}
    for name in files:
        if name[-4:].lower() != ".jpg":
            continue
        relative = prefix + name
        if reason is not None:
            yield Problem(relative, reason)
            continue
        camera = name[:-4]
        camera_reason = _check("camera", camera)
        if camera_reason is not None:
            yield Problem(relative, camera_reason)
            continue
        if camera in cameras:
            yield Problem(
                relative,
                f"a second image of camera {camera} beside {cameras[camera]}; keep one of them",
            )
            continue
        cameras[camera] = name
        box = None
        box_name = camera + ".txt"
        if box_name in names:
            box, problems = _read_box_file(folder, box_name, prefix + box_name, stamps)
            if problems:
                yield from problems
                continue
        yield KFaceRecord(relative, *facets, camera, box=box)


def _walk(
    folder: str,
    prefix: str,
    facets: tuple[str, ...],
    reason: str | None,
    progress: _Progress | None,
    stamps: list[BoxStamp] | None,
) -> Iterator[KFaceRecord | Problem]:
    if len(facets) == 4:
        count = 0
        for item in _leaf(folder, prefix, facets, reason, stamps):
            count += 1
            yield item
        if progress is not None and count:
            progress.update(count)
        return
    subfolders, _ = _listing(folder)
    part = _PARTS[len(facets)]
    for name in subfolders:
        yield from _walk(
            os.path.join(folder, name),
            f"{prefix}{name}/",
            (*facets, name),
            reason if reason is not None else _check(part, name),
            progress,
            stamps,
        )


def iter_tree(
    tree: str | Path,
    progress: _Progress | None = None,
    box_stamps: list[BoxStamp] | None = None,
) -> Iterator[KFaceRecord | Problem]:
    """Every image record of the tree and every problem, in path order, listing each folder once.

    Records come sorted by path (folders and files are visited in name order, and valid names
    hold only letters and digits). A box problem names the box file; its image is left out.

    Args:
        tree: the resolved tree (see :func:`resolve_tree`).
        progress: an optional progress bar (tqdm), advanced by the number of images found.
        box_stamps: when given, ``(path, size, mtime_ns)`` of every box file read is appended
            (the index's fingerprint of the box files), just before its image's record comes.
    """
    yield from _walk(str(tree), "", (), None, progress, box_stamps)


def facet_sort_key(value: str) -> tuple[str, int, str]:
    """Natural order of facet values: L2 before L10."""
    digits = value.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    prefix = value[: len(value) - len(digits)]
    return (prefix, int(digits), value) if digits.isdigit() else (value, -1, value)


def _wanted(name: str, values: FacetFilter) -> list[str] | None:
    """A selection setting as a list of values, or None for ``"all"``."""
    if isinstance(values, str):
        return None if values == "all" else [values]
    if values is None:
        raise KFaceSelectionError(f"data.{name} is null: give a list of values or 'all'")
    return [str(v) for v in values]


def _shown(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values), key=facet_sort_key))


def select_indices(
    columns: Mapping[str, tuple[Sequence[str], np.ndarray]],
    sessions: FacetFilter = "all",
    lights: FacetFilter = "all",
    expressions: FacetFilter = "all",
    cameras: FacetFilter = "all",
) -> np.ndarray:
    """The positions of the images whose facets are selected, from coded facet columns.

    The index keeps each facet as a vocabulary and one code per image, so that selecting among
    ten million images takes a few vectorised comparisons instead of a Python loop.

    Args:
        columns: per facet (``"session"`` ...), ``(vocabulary, codes)``: image ``i`` has the
            value ``vocabulary[codes[i]]``.
        sessions, lights, expressions, cameras: a list of values, or ``"all"``.

    Raises:
        KFaceSelectionError: when a filter empties the selection, naming it and the values
            that are there.
    """
    filters = dict(zip(FILTERS, (sessions, lights, expressions, cameras), strict=True))
    keep: np.ndarray | None = None
    applied: list[str] = []
    for facet, name in zip(FACETS, FILTERS, strict=True):
        wanted = _wanted(name, filters[name])
        if wanted is None:
            continue
        vocabulary, codes = columns[facet]
        vocabulary = [str(v) for v in vocabulary]
        missing = sorted(set(wanted) - set(vocabulary), key=facet_sort_key)
        chosen = [k for k, value in enumerate(vocabulary) if value in wanted]
        mask = np.isin(codes, chosen)
        if keep is not None:
            before = codes[keep]
            mask &= keep
        else:
            before = codes
        if not mask.any():
            present = _shown(vocabulary[c] for c in np.unique(before))
            where = f" (among the images left by {', '.join(applied)})" if applied else ""
            raise KFaceSelectionError(
                f"no image left after {name}=[{', '.join(wanted)}]: the tree has "
                f"{present or 'nothing'}{where}; change data.{name}"
            )
        if missing:
            log.warning("data.%s asks for %s: the tree has none", name, ", ".join(missing))
        keep = mask
        applied.append(f"{name}=[{', '.join(wanted)}]")
    if keep is None:
        any_column = next(iter(columns.values()))[1]
        return np.arange(len(any_column))
    return np.flatnonzero(keep)


def select(
    records: Sequence[KFaceRecord],
    sessions: FacetFilter = "all",
    lights: FacetFilter = "all",
    expressions: FacetFilter = "all",
    cameras: FacetFilter = "all",
) -> list[KFaceRecord]:
    """The records whose facets are selected, in their order.

    Args:
        records: the records to choose from.
        sessions, lights, expressions, cameras: a list of values (``["S001", "S002"]``), or the
            string ``"all"``.

    Raises:
        KFaceSelectionError: when a filter empties the selection, e.g. ``no image left after
            lights=[L99]: the tree has L1, L2, L3``.
    """
    if not records:
        raise KFaceSelectionError(f"no image to select from: the tree has no {LAYOUT}")
    columns = {}
    for facet in FACETS:
        vocabulary, codes = np.unique([getattr(r, facet) for r in records], return_inverse=True)
        columns[facet] = (vocabulary.tolist(), codes)
    chosen = select_indices(columns, sessions, lights, expressions, cameras)
    return [records[i] for i in chosen]


def matches(
    record: KFaceRecord,
    sessions: FacetFilter = "all",
    lights: FacetFilter = "all",
    expressions: FacetFilter = "all",
    cameras: FacetFilter = "all",
) -> bool:
    """Whether one record is selected by the filters (no error when it is not)."""
    filters = (sessions, lights, expressions, cameras)
    for facet, name, values in zip(FACETS, FILTERS, filters, strict=True):
        wanted = _wanted(name, values)
        if wanted is not None and getattr(record, facet) not in wanted:
            return False
    return True
