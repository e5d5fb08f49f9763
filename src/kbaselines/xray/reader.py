"""Read X-ray annotations (COCO JSON polygons/boxes or Pascal VOC XML rectangles) into one form.

Both kinds become :class:`XrayImage` records (path relative to the root, size, what the path says,
boxes ``x_min, y_min, x_max, y_max`` in pixels with a unified category name). Nothing is dropped
silently: a box partly outside its image is clipped and a zero-area box dropped, both listed in
:attr:`XrayAnnotations.clipped` / ``dropped``; an unknown category, an annotation of a missing
image or a missing image file is a :class:`~kbaselines.core.data.dataset_report.Problem` naming the
annotation file and the record, which the DataModule raises and ``check()`` reports.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.xray.names import ImageName, parse_image_path

__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "XrayAnnotations",
    "XrayFormatError",
    "XrayImage",
    "XrayObject",
    "read_annotations",
]

FORMATS = ("coco", "voc")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class XrayFormatError(ValueError):
    """Annotations that cannot be used as they are; the message lists the files and records."""


@dataclass(frozen=True)
class XrayObject:
    """One annotated item: its box ``(x_min, y_min, x_max, y_max)`` in pixels and category name."""

    box: tuple[float, float, float, float]
    category: str


@dataclass(frozen=True)
class XrayImage:
    """One annotated scan.

    Args:
        path: the image, relative to the dataset root (POSIX separators); the sample id.
        width: image width in pixels, from the annotation.
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

    ``clipped`` and ``dropped`` name each changed box as ``file [annotation]``; ``problems`` are
    what must be fixed before training.
    """

    root: Path
    images: list[XrayImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    clipped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def categories(self) -> list[str]:
        """Every category name present, sorted: category id ``k + 1`` is the k-th (0 = background)."""
        return sorted({o.category for image in self.images for o in image.objects})

    @property
    def without_sample_key(self) -> int:
        """Images whose name carries no HS code and sample (grouped by themselves)."""
        return sum(1 for image in self.images if image.name.sample_key is None)


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


def _clip(
    box: Sequence[float], width: int, height: int
) -> tuple[tuple[float, float, float, float], bool]:
    x0, y0, x1, y1 = (float(v) for v in box)
    clipped = (
        min(max(x0, 0.0), width),
        min(max(y0, 0.0), height),
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
    )
    return clipped, clipped != (x0, y0, x1, y1)


class _Builder:
    """Collects images, problems and the clipped/dropped lists while the files are read."""

    def __init__(self, root: Path, categories: _Categories) -> None:
        self.result = XrayAnnotations(root=root)
        self.categories = categories
        self.seen: dict[str, str] = {}

    def relative(self, path: Path) -> str:
        return path.relative_to(self.result.root).as_posix()

    def problem(self, file: Path, reason: str, record: str | None = None) -> None:
        self.result.problems.append(Problem(self.relative(file), reason, record))

    def add_object(
        self,
        objects: list[XrayObject],
        source: Path,
        record: str,
        box: Sequence[float],
        width: int,
        height: int,
        category: str,
    ) -> None:
        """Clip the box to the image, drop it when nothing is left, else keep it."""
        try:
            name = self.categories(category)
        except KeyError as error:
            self.problem(source, str(error.args[0]), record)
            return
        where = f"{self.relative(source)} [{record}]"
        box, changed = _clip(box, width, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            self.result.dropped.append(where)
            return
        if changed:
            self.result.clipped.append(where)
        objects.append(XrayObject(box, name))

    def add_image(
        self, path: Path, width: int, height: int, objects: list[XrayObject], source: Path
    ) -> None:
        relative = self.relative(path)
        if relative in self.seen:
            self.problem(
                source,
                f"image {relative} is annotated here and in {self.seen[relative]}: "
                "keep one annotation of each image",
            )
            return
        self.seen[relative] = self.relative(source)
        self.result.images.append(
            XrayImage(
                relative,
                width,
                height,
                parse_image_path(relative),
                tuple(objects),
                self.relative(source),
            )
        )


def _resolve_coco_image(root: Path, json_file: Path, image: Mapping[str, Any]) -> Path | None:
    """The image file of a COCO image record: the longest tail of ``path`` found under the root
    (the ``path`` is where the annotator's copy lived), else ``file_name`` beside the JSON."""
    parts = PurePosixPath(str(image.get("path") or "")).parts
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if parts[start] != "/" and candidate.is_file():
            return candidate
    if image.get("file_name"):
        candidate = json_file.parent / str(image["file_name"])
        if candidate.is_file():
            return candidate
    return None


def _read_coco(builder: _Builder, json_file: Path) -> None:
    root = builder.result.root
    try:
        data = json.loads(json_file.read_text())
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = {int(i["id"]): i for i in data["images"]}
        annotations = list(data["annotations"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        builder.problem(
            json_file,
            f"not a COCO annotation file ({type(error).__name__}: {error}): it needs 'images', "
            "'categories' and 'annotations' lists as in xray.md",
        )
        return
    objects: dict[int, list[XrayObject]] = {i: [] for i in images}
    for annotation in annotations:
        record = f"annotation {annotation.get('id')}"
        image_id = annotation.get("image_id")
        if image_id not in images:
            builder.problem(
                json_file,
                f"image_id {image_id} is not in this file's images: add the image record or "
                "remove the annotation",
                record,
            )
            continue
        if annotation.get("category_id") not in categories:
            builder.problem(
                json_file,
                f"category_id {annotation.get('category_id')} is not in this file's categories "
                f"({', '.join(f'{k}={v}' for k, v in sorted(categories.items()))})",
                record,
            )
            continue
        box = _coco_box(annotation)
        if box is None:
            builder.problem(json_file, "has neither a bbox nor a polygon segmentation", record)
            continue
        image = images[image_id]
        builder.add_object(
            objects[image_id],
            json_file,
            record,
            box,
            int(image["width"]),
            int(image["height"]),
            categories[annotation["category_id"]],
        )
    for image_id, image in images.items():
        path = _resolve_coco_image(root, json_file, image)
        if path is None:
            builder.problem(
                json_file,
                f"image file {image.get('path') or image.get('file_name')} does not exist under "
                f"{root}: copy it there (<scanner>/<category>/<scenario>/<name>.png) or remove "
                "its record",
                f"image {image_id}",
            )
            continue
        builder.add_image(
            path, int(image["width"]), int(image["height"]), objects[image_id], json_file
        )


def _coco_box(annotation: Mapping[str, Any]) -> list[float] | None:
    """``[x_min, y_min, x_max, y_max]`` from the bbox, else around the polygons."""
    if annotation.get("bbox"):
        x, y, w, h = (float(v) for v in annotation["bbox"])
        return [x, y, x + w, y + h]
    polygons = annotation.get("segmentation")
    if isinstance(polygons, list) and polygons and all(isinstance(p, list) for p in polygons):
        xs = [float(v) for p in polygons for v in p[0::2]]
        ys = [float(v) for p in polygons for v in p[1::2]]
        if xs and ys:
            return [min(xs), min(ys), max(xs), max(ys)]
    return None


def _voc_image(xml_file: Path, filename: str | None) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = xml_file.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    if filename and (xml_file.parent / filename).is_file():
        return xml_file.parent / filename
    return None


def _read_voc(builder: _Builder, xml_file: Path) -> None:
    try:
        tree = ET.parse(xml_file).getroot()
        width = int(tree.findtext("size/width") or 0)
        height = int(tree.findtext("size/height") or 0)
        elements = tree.findall("object")
    except (OSError, ET.ParseError, ValueError) as error:
        builder.problem(xml_file, f"not a Pascal VOC XML file ({error})")
        return
    if width <= 0 or height <= 0:
        builder.problem(xml_file, "<size> needs a positive <width> and <height>")
        return
    image = _voc_image(xml_file, tree.findtext("filename"))
    if image is None:
        builder.problem(
            xml_file,
            f"no image beside it (same name with {'/'.join(IMAGE_SUFFIXES)}, or the <filename> "
            f"{tree.findtext('filename')!r}): add the image or remove the XML file",
        )
        return
    objects: list[XrayObject] = []
    for number, element in enumerate(elements):
        record = f"object {number}"
        try:
            box = [float(element.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            builder.problem(xml_file, "needs a <bndbox> with numeric xmin/ymin/xmax/ymax", record)
            continue
        name = (element.findtext("name") or "").strip()
        builder.add_object(objects, xml_file, record, box, width, height, name)
    builder.add_image(image, width, height, objects, xml_file)


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
) -> XrayAnnotations:
    """Read every annotation file of a dataset root.

    Args:
        root: the dataset root (``<scanner>/<category>/<scenario>/<image>.png`` below it).
        kind: ``coco`` (JSON files, polygons or boxes) or ``voc`` (one XML per image).
        annotation_files: the annotation files, relative to the root; None: every ``*.json``
            (coco) or ``*.xml`` (voc) below the root.
        category_map: annotation name -> unified name (``{"USB Metal": "USB"}``).
        categories: the allowed unified names; None: whatever the annotations name.

    Returns:
        The images sorted by path, with problems and clipped/dropped boxes.
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
    for file in tqdm(files, desc=f"Reading {kind} annotations", unit=" files", mininterval=2.0):
        if not file.is_file():
            builder.problem(file, "annotation file does not exist: fix data.annotation_files")
            continue
        read(builder, file)
    builder.result.images.sort(key=lambda image: image.path)
    return builder.result
