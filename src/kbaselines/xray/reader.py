"""Read X-ray annotations (COCO JSON polygons/boxes or Pascal VOC XML rectangles) into one form.

Both kinds become :class:`XrayImage` records (path relative to the root, decoded size, what the
path says, boxes ``x_min, y_min, x_max, y_max`` in pixels with a unified category name).

Every record is validated against its format's schema (:class:`CocoImage`,
:class:`CocoCategory`, :class:`CocoAnnotation`, :class:`VocAnnotation`, :class:`VocObject`) and
every problem is reported with the file, the record (``images[3]``, ``annotations[7]``,
``object 2``) and the key. Every annotated image is then opened and decoded
(:func:`~kbaselines.core.data.integrity.inspect_files`, in parallel, its facts cached by size and
modification time), and the boxes are checked against the decoded size, not only the declared one.

Nothing is dropped silently: a box partly outside its image is clipped and a zero-area box dropped,
both listed in :attr:`XrayAnnotations.clipped` / ``dropped``. Problems come in two kinds:
:attr:`XrayAnnotations.broken` are problems of one image (unreadable, missing, a size or a box
that does not fit it), which ``data.skip_broken=true`` leaves out; :attr:`XrayAnnotations.problems`
concern a whole annotation file or the settings (malformed file, unknown category name, an
annotation of an image the file does not have) and always stop the run.

The annotation files themselves are read again on every run (nothing of them is cached), so an
edit is always seen; only the image facts are cached.

A root holding the dataset's official parts is read part by part, each part as a whole root, and
:func:`join_parts` joins them, every path prefixed with its part folder (``1.Training/``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import Field, StrictInt, StrictStr
from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.integrity import FileFacts, inspect_files
from kbaselines.core.data.parts import in_part
from kbaselines.core.data.schema import (
    RecordSchema,
    require_list,
    validate_record,
    validate_records,
)
from kbaselines.xray.names import ImageName, parse_image_path

__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "CocoAnnotation",
    "CocoCategory",
    "CocoImage",
    "VocAnnotation",
    "VocObject",
    "XrayAnnotations",
    "XrayFormatError",
    "XrayImage",
    "XrayObject",
    "join_parts",
    "read_annotations",
]

FORMATS = ("coco", "voc")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

Box = tuple[float, float, float, float]
#: a COCO number: JSON numbers only (no strings, no NaN)
Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Pixels = Annotated[int, Field(strict=True, gt=0)]


# -- the formats (xray.md) ------------------------------------------------------------------------
class CocoImage(RecordSchema):
    """``images[i]`` of a COCO file; ``path`` is where the annotator's copy lived."""

    id: StrictInt
    width: Pixels
    height: Pixels
    file_name: StrictStr
    path: StrictStr | None = None


class CocoCategory(RecordSchema):
    """``categories[k]`` of a COCO file."""

    id: StrictInt
    name: StrictStr


class CocoAnnotation(RecordSchema):
    """``annotations[j]`` of a COCO file: a ``bbox`` ``[x, y, width, height]`` or polygons."""

    id: StrictInt
    image_id: StrictInt
    category_id: StrictInt
    bbox: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = None
    segmentation: list[list[Coordinate]] | None = None


class VocSize(RecordSchema):
    """``<size>`` of a VOC file (XML text: numbers are parsed from it)."""

    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]


class VocAnnotation(RecordSchema):
    """The ``<annotation>`` of a VOC file, without its objects."""

    size: VocSize
    filename: str | None = None


class VocBox(RecordSchema):
    """``<bndbox>`` of a VOC object."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


class VocObject(RecordSchema):
    """``<object>`` of a VOC file."""

    name: Annotated[str, Field(min_length=1)]
    bndbox: VocBox


# -- the records ----------------------------------------------------------------------------------
class XrayFormatError(ValueError):
    """Annotations that cannot be used as they are; the message lists the files and records."""


@dataclass(frozen=True)
class XrayObject:
    """One annotated item: its box ``(x_min, y_min, x_max, y_max)`` in pixels and category name."""

    box: Box
    category: str


@dataclass(frozen=True)
class XrayImage:
    """One annotated scan.

    Args:
        path: the image, relative to the dataset root (POSIX separators); the sample id.
        width: image width in pixels, decoded (equal to the annotation's).
        height: image height in pixels.
        name: scanner, scenario and item numbers from the path.
        objects: the items, after clipping and dropping.
        source: the annotation file, relative to the root.
    """

    path: str
    width: int
    height: int
    name: ImageName
    objects: tuple[XrayObject, ...]
    source: str

    @property
    def group(self) -> str:
        """The split group: the physical item (family + HS code + sample), else the image."""
        return self.name.sample_key or self.path

    @property
    def categories(self) -> list[str]:
        return sorted({o.category for o in self.objects})


@dataclass
class XrayAnnotations:
    """Everything read from a dataset root.

    ``clipped`` and ``dropped`` name each changed box as ``file [record]``. ``problems`` concern
    whole annotation files or the settings; ``broken`` maps each image that cannot be used
    (relative path, or where its record is when the file is not found) to its problems. ``facts``
    are the decoded image files by absolute path (:meth:`file`).
    """

    root: Path
    images: list[XrayImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    broken: dict[str, list[Problem]] = field(default_factory=dict)
    clipped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    facts: dict[str, FileFacts] = field(default_factory=dict)
    annotation_files: int = 0

    @property
    def categories(self) -> list[str]:
        """Every category name present, sorted: category id ``k + 1`` is the k-th (0 = background)."""
        return sorted({o.category for image in self.images for o in image.objects})

    @property
    def without_sample_key(self) -> int:
        """Images whose name carries no HS code and sample (grouped by themselves)."""
        return sum(1 for image in self.images if image.name.sample_key is None)

    @property
    def every_problem(self) -> list[Problem]:
        """The file and settings problems, then every broken image's."""
        return self.problems + [p for found in self.broken.values() for p in found]

    def file(self, path: str) -> str:
        """The key of an image (relative path) in :attr:`facts`."""
        return str(self.root / path)


class _Categories:
    """Unify category names with the data config's mapping; refuse names outside ``known``."""

    def __init__(self, mapping: Mapping[str, str] | None, known: Sequence[str] | None) -> None:
        self.mapping = dict(mapping or {})
        self.known = None if known is None else set(known)

    def __call__(self, name: str) -> str:
        unified = self.mapping.get(name, name)
        if self.known is not None and unified not in self.known:
            raise KeyError(
                f"category {name!r} is not a known name ({', '.join(sorted(self.known))}): add it "
                f"to data.category_map (e.g. '{name}': <known name>) or to data.categories"
            )
        return unified


@dataclass
class _Scan:
    """One image record as read from its annotation file, before its image is opened.

    ``record`` is the image's record (``images[3]``; VOC: ``size``); ``boxes`` are
    ``(record, box, category name)``; ``problems`` are this image's own.
    """

    image: Path | None
    label: str
    source: Path
    record: str
    declared: tuple[int, int]
    boxes: list[tuple[str, Box, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _Builder:
    """Collects the scans and problems while the files are read, then opens the images."""

    def __init__(self, root: Path, categories: _Categories) -> None:
        self.result = XrayAnnotations(root=root)
        self.categories = categories
        self.scans: list[_Scan] = []
        self.seen: dict[str, str] = {}

    def relative(self, path: Path) -> str:
        return path.relative_to(self.result.root).as_posix()

    def problem(self, file: Path, reason: str, record: str | None = None) -> Problem:
        return Problem(self.relative(file), reason, record)

    def finish(self, facts: Mapping[str, FileFacts]) -> None:
        """Check every scan against its decoded image; keep it, or list it as broken."""
        self.result.facts = dict(facts)
        for scan in self.scans:
            fact = None if scan.image is None else facts[str(scan.image)]
            if fact is not None and not fact.ok:
                scan.problems.append(self.problem(scan.image, fact.error))
            objects = [] if fact is None or not fact.ok else self._objects(scan, fact)
            if scan.problems:
                self.result.broken.setdefault(scan.label, []).extend(scan.problems)
            else:
                self._add_image(scan, fact, objects)
        self.result.images.sort(key=lambda image: image.path)

    def _objects(self, scan: _Scan, fact: FileFacts) -> list[XrayObject]:
        """The scan's boxes against the decoded size: a declared size that differs, a negative
        box or one wholly outside the image is a problem; partly outside is clipped; zero area is
        dropped."""
        size = (fact.width, fact.height)
        if scan.declared != size:
            scan.problems.append(
                self.problem(
                    scan.source,
                    f"declares a {scan.declared[0]}x{scan.declared[1]} image but "
                    f"{self.relative(scan.image)} is {size[0]}x{size[1]}: fix the width and height",
                    scan.record,
                )
            )
        objects = []
        for record, box, category in scan.boxes:
            where = f"{self.relative(scan.source)} [{record}]"
            try:
                name = self.categories(category)
            except KeyError as error:
                self.result.problems.append(self.problem(scan.source, error.args[0], record))
                continue
            x0, y0, x1, y1 = box
            if x1 < x0 or y1 < y0:
                scan.problems.append(
                    self.problem(
                        scan.source,
                        f"box {_show(box)} has a negative width or height (x_min > x_max or "
                        "y_min > y_max): fix the box",
                        record,
                    )
                )
                continue
            if x1 == x0 or y1 == y0:
                self.result.dropped.append(where)
                continue
            clipped = (min(max(x0, 0.0), size[0]), min(max(y0, 0.0), size[1]))
            clipped += (min(max(x1, 0.0), size[0]), min(max(y1, 0.0), size[1]))
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                scan.problems.append(
                    self.problem(
                        scan.source,
                        f"box {_show(box)} lies outside the {size[0]}x{size[1]} image "
                        f"{self.relative(scan.image)}: fix the box or the image it belongs to",
                        record,
                    )
                )
                continue
            if clipped != box:
                self.result.clipped.append(where)
            objects.append(XrayObject(clipped, name))
        return objects

    def _add_image(self, scan: _Scan, fact: FileFacts, objects: list[XrayObject]) -> None:
        relative = self.relative(scan.image)
        source = self.relative(scan.source)
        if relative in self.seen:
            self.result.problems.append(
                Problem(
                    source,
                    f"image {relative} is annotated here and in {self.seen[relative]}: "
                    "keep one annotation of each image",
                    scan.record,
                )
            )
            return
        self.seen[relative] = source
        self.result.images.append(
            XrayImage(
                relative,
                fact.width,
                fact.height,
                parse_image_path(relative),
                tuple(objects),
                source,
            )
        )


def _show(box: Box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _exists(path: Path) -> bool:
    """A file or a link (a dangling link is found here and reported as one when opened)."""
    return path.is_file() or path.is_symlink()


def _beside(annotation_file: Path, name: str) -> Path | None:
    """The file ``name`` (relative, e.g. ``x.png`` or ``USB/x.png``) in the annotation file's
    folder when it is there; an absolute name or one going up is not looked for (it would
    leave the root)."""
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        return None
    candidate = annotation_file.parent / relative
    return candidate if _exists(candidate) else None


# -- COCO -----------------------------------------------------------------------------------------
def _resolve_coco_image(root: Path, json_file: Path, image: CocoImage) -> Path | None:
    """The image file of a COCO image record: the longest tail of ``path`` found under the root
    (the ``path`` is where the annotator's copy lived), else ``file_name`` beside the JSON."""
    parts = PurePosixPath(image.path or "").parts
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if parts[start] != "/" and _exists(candidate):
            return candidate
    return _beside(json_file, image.file_name)


def _duplicate(file: str, what: str, index: int, first: int, record_id: int) -> Problem:
    return Problem(
        file,
        f"id {record_id} is also the id of {what}[{first}]: ids must be unique in a file",
        f"{what}[{index}]",
    )


def _raw_id(raw: Any, key: str) -> int | None:
    """``raw[key]`` when it is an integer (the record may be invalid otherwise)."""
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if type(value) is int else None


def _read_coco(builder: _Builder, json_file: Path) -> None:
    name = builder.relative(json_file)
    problems = builder.result.problems
    try:
        data = json.loads(json_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        problems.append(
            Problem(
                name,
                f"not a COCO annotation file ({type(error).__name__}: {error}): it needs "
                "'images', 'categories' and 'annotations' lists as in xray.md",
            )
        )
        return
    lists, missing = {}, []
    for key in ("images", "categories", "annotations"):
        lists[key], found = require_list(data, key, name)
        missing += found
    if missing:
        problems += missing
        return
    scans: dict[int, tuple[int, _Scan]] = {}
    for index, raw in enumerate(lists["images"]):
        scan = _coco_scan(builder, json_file, index, raw)
        image_id = _raw_id(raw, "id")
        if image_id in scans:
            problems.append(_duplicate(name, "images", index, scans[image_id][0], image_id))
        elif image_id is not None:
            scans[image_id] = (index, scan)
    categories: dict[int, tuple[int, str]] = {}
    valid, found = validate_records(CocoCategory, lists["categories"], name, "categories")
    problems += found
    for index, category in valid:
        if category.id in categories:
            problems.append(
                _duplicate(name, "categories", index, categories[category.id][0], category.id)
            )
        else:
            categories[category.id] = (index, category.name)
    for index, raw in enumerate(lists["annotations"]):
        record = f"annotations[{index}]"
        annotation, found = validate_record(CocoAnnotation, raw, name, record)
        image_id = _raw_id(raw, "image_id")
        if image_id not in scans:
            problems += found
            if image_id is not None:
                problems.append(
                    Problem(
                        name,
                        f"image_id {image_id} is not in this file's images: add the image record "
                        "or remove the annotation",
                        record,
                    )
                )
            continue
        # a bad annotation of a known image is that image's problem (skip_broken leaves it out)
        scan = scans[image_id][1]
        scan.problems += found
        if annotation is None:
            continue
        if annotation.category_id not in categories:
            known = ", ".join(f"{k}={c}" for k, (_, c) in sorted(categories.items()))
            scan.problems.append(
                Problem(
                    name,
                    f"category_id {annotation.category_id} is not in this file's categories "
                    f"({known})",
                    record,
                )
            )
            continue
        box = _coco_box(annotation)
        if box is None:
            scan.problems.append(
                Problem(name, "has neither a bbox nor a polygon segmentation", record)
            )
            continue
        scan.boxes.append((record, box, categories[annotation.category_id][1]))


def _coco_scan(builder: _Builder, json_file: Path, index: int, raw: Any) -> _Scan:
    """The scan of ``images[index]``, its image file found (or a problem saying where not)."""
    root = builder.result.root
    record = f"images[{index}]"
    where = f"{builder.relative(json_file)} [{record}]"
    image, found = validate_record(CocoImage, raw, builder.relative(json_file), record)
    if image is None:
        scan = _Scan(None, where, json_file, record, (0, 0), problems=found)
    else:
        path = _resolve_coco_image(root, json_file, image)
        scan = _Scan(
            path,
            builder.relative(path) if path else where,
            json_file,
            record,
            (image.width, image.height),
        )
        if path is None:
            scan.problems.append(
                builder.problem(
                    json_file,
                    f"image file {image.path or image.file_name} does not exist under {root}: "
                    "copy it there (<scanner>/<category>/<scenario>/<name>.png) or remove its "
                    "record",
                    record,
                )
            )
    builder.scans.append(scan)
    return scan


def _coco_box(annotation: CocoAnnotation) -> Box | None:
    """``(x_min, y_min, x_max, y_max)`` from the bbox, else around the polygons."""
    if annotation.bbox is not None:
        x, y, w, h = annotation.bbox
        return (x, y, x + w, y + h)
    xs = [v for p in annotation.segmentation or [] for v in p[0::2]]
    ys = [v for p in annotation.segmentation or [] for v in p[1::2]]
    if xs and ys:
        return (min(xs), min(ys), max(xs), max(ys))
    return None


# -- Pascal VOC -----------------------------------------------------------------------------------
def _voc_image(xml_file: Path, filename: str | None) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = xml_file.with_suffix(suffix)
        if _exists(candidate):
            return candidate
    return _beside(xml_file, filename or "")


def _xml_record(element: ET.Element) -> dict[str, Any]:
    """An element's children as a dict (text of leaves, nested dicts), for the schemas."""
    return {
        child.tag: _xml_record(child) if len(child) else (child.text or "").strip()
        for child in element
        if child.tag != "object"
    }


def _read_voc(builder: _Builder, xml_file: Path) -> None:
    name = builder.relative(xml_file)
    try:
        tree = ET.parse(xml_file).getroot()
    except (OSError, ET.ParseError) as error:
        builder.result.problems.append(
            Problem(name, f"not a Pascal VOC XML file ({error}): fix or remove it")
        )
        return
    header, found = validate_record(VocAnnotation, _xml_record(tree), name, "annotation")
    if header is None:
        builder.result.problems += found
        return
    image = _voc_image(xml_file, header.filename)
    scan = _Scan(
        image,
        builder.relative(image) if image else name,
        xml_file,
        "size",
        (header.size.width, header.size.height),
    )
    builder.scans.append(scan)
    if image is None:
        scan.problems.append(
            Problem(
                name,
                f"no image beside it (same name with {'/'.join(IMAGE_SUFFIXES)}, or the "
                f"<filename> {header.filename!r}): add the image or remove the XML file",
            )
        )
    for number, element in enumerate(tree.findall("object")):
        record = f"object {number}"
        item, found = validate_record(VocObject, _xml_record(element), name, record)
        scan.problems += found
        if item is not None:
            box = item.bndbox
            scan.boxes.append((record, (box.xmin, box.ymin, box.xmax, box.ymax), item.name))


# -- a dataset root -------------------------------------------------------------------------------
def _files(root: Path, kind: str, annotation_files: Iterable[str] | None) -> list[Path]:
    if annotation_files is not None:
        return [root / f for f in annotation_files]
    pattern = "*.json" if kind == "coco" else "*.xml"
    return sorted(p for p in root.rglob(pattern) if not p.name.startswith("."))


def read_annotations(
    root: str | Path,
    kind: str = "coco",
    annotation_files: Sequence[str] | None = None,
    category_map: Mapping[str, str] | None = None,
    categories: Sequence[str] | None = None,
    cache_file: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> XrayAnnotations:
    """Read every annotation file of a dataset root and open every image they annotate.

    Args:
        root: the dataset root (``<scanner>/<category>/<scenario>/<image>.png`` below it).
        kind: ``coco`` (JSON files, polygons or boxes) or ``voc`` (one XML per image).
        annotation_files: the annotation files, relative to the root; None: every ``*.json``
            (coco) or ``*.xml`` (voc) below the root.
        category_map: annotation name -> unified name (``{"USB Metal": "USB"}``).
        categories: the allowed unified names; None: whatever the annotations name.
        cache_file: where the image facts are cached between runs (None: no cache).
        workers: threads that open the images (None: one per core).
        progress: show progress bars.

    Returns:
        The usable images sorted by path, the broken ones, problems and clipped/dropped boxes.
    """
    root = Path(root)
    if kind not in FORMATS:
        raise ValueError(f"data.annotation_format={kind!r}: choose one of {', '.join(FORMATS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"X-ray dataset root {root} is not a folder: set data.root")
    builder = _Builder(root, _Categories(category_map, categories))
    files = _files(root, kind, annotation_files)
    if not files:
        builder.result.problems.append(
            Problem(str(root), f"no {kind} annotation files found: check data.annotation_format")
        )
    read = _read_coco if kind == "coco" else _read_voc
    for file in tqdm(
        files,
        desc=f"Reading {kind} annotations",
        unit=" files",
        mininterval=2.0,
        disable=not progress,
    ):
        if not file.is_file():
            builder.result.problems.append(
                Problem(str(file), "annotation file does not exist: fix data.annotation_files")
            )
            continue
        read(builder, file)
    builder.result.annotation_files = len(files)
    images = [str(scan.image) for scan in builder.scans if scan.image is not None]
    builder.finish(
        inspect_files(
            images,
            cache_file=cache_file,
            workers=workers,
            progress=progress,
            desc="Opening X-ray images",
        )
    )
    return builder.result


def join_parts(root: str | Path, found: Mapping[str, XrayAnnotations]) -> XrayAnnotations:
    """What :func:`read_annotations` found in each folder under ``root``, by prefix (``{"": ...}``
    for the root itself, or one per official part: ``{"1.Training/": ...}``), as one: every path,
    file and problem named from ``root`` (the prefix added), the images sorted by path. The
    scanner, scenario and item numbers stay the ones each part's path gave."""
    if list(found) == [""]:
        return found[""]
    joined = XrayAnnotations(root=Path(root))
    for prefix, part in found.items():
        joined.images += [
            replace(i, path=prefix + i.path, source=prefix + i.source) for i in part.images
        ]
        joined.problems += [in_part(prefix, p) for p in part.problems]
        for label, problems in part.broken.items():
            joined.broken[prefix + label] = [in_part(prefix, p) for p in problems]
        joined.clipped += [prefix + where for where in part.clipped]
        joined.dropped += [prefix + where for where in part.dropped]
        joined.facts.update(part.facts)
        joined.annotation_files += part.annotation_files
    joined.images.sort(key=lambda image: image.path)
    return joined
