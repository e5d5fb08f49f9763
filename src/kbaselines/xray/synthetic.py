"""A synthetic X-ray baggage tree in the real on-disk format (xray.md), for tries and tests.

Each scan is a pseudo-colour X-ray image: a light background, a bag outline with zip and handle,
everyday clutter (bottles, clothes, cables, books) and the annotated items, each with a
category-specific silhouette made of parts in material colours (orange organic, green inorganic,
blue metal, violet dense metal). Materials absorb multiplicatively, so overlaps darken as in a
real scan. Items are rotated and scaled; every physical item (a "sample", with its HS code and
sample number) keeps its own proportions across its scans. The three scanners differ by palette,
background and noise; the four scenarios by clutter and the number of items.

The tree holds both annotation kinds: one COCO JSON per scanner (polygons and boxes) and one VOC
XML per image (rectangles; some categories under their VOC-style names, e.g. ``USB Metal``, which
``data=xray_synthetic`` maps back with ``data.category_map``).

    python scripts/check_dataset.py data=xray_synthetic data.root=data/xray_synthetic \
        data.synthetic.num_categories=5    # generates the tree (once), then checks it
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from kbaselines.core.data import generated
from kbaselines.xray.names import SCANNERS, SCENARIOS

__all__ = [
    "CATALOG",
    "GENERATOR_VERSION",
    "MARKER",
    "VOC_NAMES",
    "ensure_synthetic_xray",
    "generate_xray",
    "synthetic_arguments",
]

MARKER = ".xray_synthetic.json"
GENERATOR_VERSION = 1

Polygon = list[tuple[float, float]]
# a part of an item: its polygon in item units (about -1..1) and its material
Part = tuple[Polygon, str]

#: absorption colour of each material per scanner: multiplied into the image where it lies
PALETTES: dict[str, dict[str, tuple[float, float, float]]] = {
    "Astrophysics": {
        "organic": (1.00, 0.62, 0.25),
        "inorganic": (0.45, 0.80, 0.30),
        "metal": (0.25, 0.45, 0.95),
        "dense": (0.45, 0.22, 0.65),
    },
    "Rapiscan": {
        "organic": (0.98, 0.70, 0.35),
        "inorganic": (0.40, 0.85, 0.45),
        "metal": (0.30, 0.50, 0.90),
        "dense": (0.35, 0.20, 0.55),
    },
    "Smiths": {
        "organic": (0.95, 0.55, 0.20),
        "inorganic": (0.55, 0.80, 0.25),
        "metal": (0.20, 0.40, 0.85),
        "dense": (0.50, 0.30, 0.70),
    },
}
BACKGROUND = {"Astrophysics": 0.97, "Rapiscan": 0.93, "Smiths": 1.0}
NOISE = {"Astrophysics": 0.02, "Rapiscan": 0.035, "Smiths": 0.025}
#: share of each scenario among the scans (xray.md)
SCENARIO_WEIGHTS = (0.15, 0.15, 0.40, 0.30)


def _rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _ring(cx: float, cy: float, r: float, n: int = 12) -> Polygon:
    return [
        (cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n))
        for k in range(n)
    ]


def _knife(a: float) -> list[Part]:
    return [
        ([(-0.1, -0.12 * a), (1.0, 0.0), (-0.1, 0.12 * a)], "metal"),
        (_rect(-1.0, -0.1, -0.1, 0.1), "organic"),
    ]


def _gun(a: float) -> list[Part]:
    return [
        (_rect(-1.0, -0.6, 0.8, -0.25 * a), "dense"),
        ([(0.25, -0.3), (0.75, -0.3), (0.9, 0.8), (0.45, 0.8)], "dense"),
        (_ring(0.05, -0.05, 0.16, 8), "metal"),
    ]


def _scissors(a: float) -> list[Part]:
    return [
        ([(-0.2, -0.05), (1.0, -0.2 * a), (1.0, -0.1 * a), (-0.2, 0.08)], "metal"),
        ([(-0.2, 0.05), (1.0, 0.2 * a), (1.0, 0.1 * a), (-0.2, -0.08)], "metal"),
        (_ring(-0.55, -0.3, 0.3), "organic"),
        (_ring(-0.55, 0.3, 0.3), "organic"),
    ]


def _battery(a: float) -> list[Part]:
    return [
        (_rect(-0.9, -0.45 * a, 0.8, 0.45 * a), "inorganic"),
        (_rect(0.8, -0.15, 1.0, 0.15), "dense"),
    ]


def _usb(a: float) -> list[Part]:
    return [(_rect(-1.0, -0.3 * a, 0.3, 0.3 * a), "organic"), (_rect(0.3, -0.2, 1.0, 0.2), "metal")]


def _laptop(a: float) -> list[Part]:
    return [
        (_rect(-1.0, -0.7 * a, 1.0, 0.7 * a), "inorganic"),
        (_rect(-0.8, 0.2, 0.8, 0.5 * a), "metal"),
    ]


def _hammer(a: float) -> list[Part]:
    return [
        (_rect(-1.0, -0.08, 0.6, 0.08), "organic"),
        (_rect(0.6, -0.5 * a, 0.95, 0.5 * a), "dense"),
    ]


def _lighter(a: float) -> list[Part]:
    return [
        (_rect(-1.0, -0.4 * a, 0.5, 0.4 * a), "organic"),
        (_rect(0.5, -0.4 * a, 1.0, 0.4 * a), "metal"),
    ]


@dataclass(frozen=True)
class Category:
    """A synthetic category: family (H hazardous, S storage), its HS code, shape and size."""

    name: str
    family: str
    hs_code: str
    shape: Callable[[float], list[Part]]
    size: float  # half-length as a share of the image side


#: the categories in generation order; ``num_categories`` takes the first ones
CATALOG = (
    Category("Knife", "H", "8211.92-0000", _knife, 0.22),
    Category("Gun", "H", "9302.00-0000", _gun, 0.16),
    Category("Scissors", "H", "8213.00-0000", _scissors, 0.17),
    Category("Battery", "H", "8507.60-0000", _battery, 0.13),
    Category("USB", "S", "8523.51-1000", _usb, 0.10),
    Category("Laptop", "S", "8471.30-0000", _laptop, 0.24),
    Category("Hammer", "H", "8205.20-0000", _hammer, 0.18),
    Category("Lighter", "H", "9613.10-0000", _lighter, 0.08),
)
#: names the VOC files use for some categories (as the real VOC set does: "USB Metal")
VOC_NAMES = {"USB": "USB Metal", "Battery": "Battery Pack"}


def _transform(polygon: Polygon, angle: float, scale: float, cx: float, cy: float) -> Polygon:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)) for x, y in polygon]


def _absorb(image: np.ndarray, polygon: Polygon, colour: Sequence[float], opacity: float) -> None:
    """Multiply ``colour`` into ``image`` inside the polygon (overlaps darken, as in a scan)."""
    height, width = image.shape[:2]
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).polygon(polygon, fill=255)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 * opacity
    image *= 1.0 - alpha * (1.0 - np.asarray(colour, dtype=np.float32))


def _clutter(image: np.ndarray, rng: np.random.Generator, palette: dict, bag: tuple) -> None:
    """Everyday objects that are not annotated: clothes, bottles, books, cables."""
    x0, y0, x1, y1 = bag
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        w, h = rng.uniform(0.05, 0.2) * image.shape[1], rng.uniform(0.03, 0.12) * image.shape[0]
        shape = _ring(0, 0, 1.0, 16) if rng.random() < 0.5 else _rect(-1, -1, 1, 1)
        polygon = _transform([(x * w / h, y) for x, y in shape], rng.uniform(0, math.pi), h, cx, cy)
        material = "organic" if rng.random() < 0.7 else "inorganic"
        _absorb(image, polygon, palette[material], rng.uniform(0.25, 0.55))
    for _ in range(int(rng.integers(0, 3))):  # cables
        points = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(4)]
        cable = Image.new("L", (image.shape[1], image.shape[0]), 0)
        ImageDraw.Draw(cable).line(points, fill=255, width=2)
        alpha = np.asarray(cable, dtype=np.float32)[..., None] / 255.0 * 0.6
        image *= 1.0 - alpha * (1.0 - np.asarray(palette["metal"], dtype=np.float32))


def _bag(image: np.ndarray, rng: np.random.Generator, palette: dict) -> tuple:
    size = image.shape[0]
    margin = rng.uniform(0.03, 0.08, size=4) * size
    bag = (margin[0], margin[1], size - margin[2], size - margin[3])
    _absorb(image, _rect(*bag), palette["organic"], 0.25)
    zip_y = bag[1] + rng.uniform(0.05, 0.15) * size
    _absorb(image, _rect(bag[0], zip_y, bag[2], zip_y + 2), palette["metal"], 0.5)
    return bag


def _render_scan(
    categories: Sequence[tuple[Category, float, float]],
    scanner: str,
    scenario: str,
    size: int,
    rng: np.random.Generator,
) -> tuple[Image.Image, list[tuple[str, list[Polygon]]]]:
    """One scan of the given items (category, sample aspect, sample size factor).

    Returns the image and, per item, its category name and part polygons in pixels.
    """
    palette = PALETTES[scanner]
    image = np.full((size, size, 3), BACKGROUND[scanner], dtype=np.float32)
    bag = _bag(image, rng, palette)
    if scenario in ("Single_Other", "Multiple_Other"):
        _clutter(image, rng, palette, bag)
    items = []
    for category, aspect, factor in categories:
        scale = category.size * factor * size * rng.uniform(0.85, 1.15)
        pad = scale * 1.05
        cx = rng.uniform(bag[0] + pad, max(bag[0] + pad, bag[2] - pad) + 1e-3)
        cy = rng.uniform(bag[1] + pad, max(bag[1] + pad, bag[3] - pad) + 1e-3)
        angle = rng.normal(0, 0.1) if scenario == "Single_Default" else rng.uniform(0, 2 * math.pi)
        polygons = []
        for polygon, material in category.shape(aspect):
            placed = _transform(polygon, angle, scale, cx, cy)
            _absorb(image, placed, palette[material], rng.uniform(0.75, 0.9))
            polygons.append(placed)
        items.append((category.name, polygons))
    image += rng.normal(0, NOISE[scanner], image.shape).astype(np.float32)
    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.6)), items


def _box(polygons: list[Polygon], size: int) -> list[float]:
    xs = [min(max(x, 0.0), size) for p in polygons for x, _ in p]
    ys = [min(max(y, 0.0), size) for p in polygons for _, y in p]
    return [min(xs), min(ys), max(xs), max(ys)]


def _voc_xml(name: str, size: int, items: list[tuple[str, list[float]]]) -> str:
    objects = "".join(
        f"<object><name>{VOC_NAMES.get(c, c)}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{round(b[0])}</xmin><ymin>{round(b[1])}</ymin>"
        f"<xmax>{round(b[2])}</xmax><ymax>{round(b[3])}</ymax></bndbox></object>"
        for c, b in items
    )
    return (
        f"<annotation><folder>synthetic</folder><filename>{name}</filename><path>{name}</path>"
        "<source><database>Unknown</database></source>"
        f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{objects}</annotation>\n"
    )


def synthetic_arguments(
    num_categories: int = 5,
    samples_per_category: int = 4,
    images_per_sample: int = 12,
    image_size: int = 256,
    scanners: Sequence[str] = SCANNERS,
    seed: int = 0,
    first_sample: int = 1,
) -> dict[str, Any]:
    """The full, JSON-ready arguments of :func:`generate_xray` (defaults filled in), checked."""
    if not 1 <= num_categories <= len(CATALOG):
        raise ValueError(f"num_categories must be in 1..{len(CATALOG)}, got {num_categories}")
    if not 1 <= first_sample <= 999 - samples_per_category + 1:
        raise ValueError(
            f"first_sample={first_sample}: sample numbers have 3 digits; choose 1 to "
            f"{1000 - samples_per_category}"
        )
    unknown = sorted(set(scanners) - set(PALETTES))
    if unknown:
        raise ValueError(f"unknown scanners {unknown}; choose from {', '.join(PALETTES)}")
    return {
        "num_categories": int(num_categories),
        "samples_per_category": int(samples_per_category),
        "images_per_sample": int(images_per_sample),
        "image_size": int(image_size),
        "scanners": list(scanners),
        "seed": int(seed),
        "first_sample": int(first_sample),
    }


def _write_tree(folder: Path, arguments: dict[str, Any], root: Path) -> None:
    size, seed = arguments["image_size"], arguments["seed"]
    catalog = CATALOG[: arguments["num_categories"]]
    coco = {
        s: {
            "images": [],
            "annotations": [],
            "categories": [
                {"id": k + 1, "name": c.name, "supercategory": c.family}
                for k, c in enumerate(catalog)
            ],
        }
        for s in arguments["scanners"]
    }
    ids = {c.name: k + 1 for k, c in enumerate(catalog)}
    total = len(catalog) * arguments["samples_per_category"] * arguments["images_per_sample"]
    with tqdm(total=total, desc=f"Generating {root}", unit=" scans", mininterval=1.0) as bar:
        for k, category in enumerate(catalog):
            first = arguments["first_sample"]
            for sample in range(first, first + arguments["samples_per_category"]):
                shape_rng = np.random.default_rng([seed, k, sample])
                aspect, factor = shape_rng.uniform(0.7, 1.3), shape_rng.uniform(0.85, 1.15)
                hs = category.hs_code if sample % 2 else category.hs_code.replace(".", "")
                for number in range(1, arguments["images_per_sample"] + 1):
                    rng = np.random.default_rng([seed, k, sample, number])
                    scanner = arguments["scanners"][number % len(arguments["scanners"])]
                    scenario = SCENARIOS[rng.choice(len(SCENARIOS), p=SCENARIO_WEIGHTS)]
                    items = [(category, aspect, factor)]
                    if scenario.startswith("Multiple"):
                        for _ in range(int(rng.integers(1, 3))):
                            other = catalog[int(rng.integers(len(catalog)))]
                            items.append((other, rng.uniform(0.7, 1.3), rng.uniform(0.85, 1.15)))
                    image, drawn = _render_scan(items, scanner, scenario, size, rng)
                    name = f"{category.family}_{hs}_{sample:03d}_{number:04d}"
                    leaf = folder / scanner / category.name / scenario
                    leaf.mkdir(parents=True, exist_ok=True)
                    image.save(leaf / f"{name}.png")
                    boxes = [(c, _box(polygons, size)) for c, polygons in drawn]
                    (leaf / f"{name}.xml").write_text(_voc_xml(f"{name}.png", size, boxes))
                    data = coco[scanner]
                    image_id = len(data["images"]) + 1
                    path = f"/datasets/{scanner}/{category.name}/{scenario}/{name}.png"
                    data["images"].append(
                        {
                            "id": image_id,
                            "dataset_id": 1,
                            "path": path,
                            "width": size,
                            "height": size,
                            "file_name": f"{name}.png",
                        }
                    )
                    for (c, polygons), (_, box) in zip(drawn, boxes, strict=True):
                        data["annotations"].append(
                            {
                                "id": len(data["annotations"]) + 1,
                                "image_id": image_id,
                                "category_id": ids[c],
                                "segmentation": [
                                    [round(v, 2) for p in poly for v in p] for poly in polygons
                                ],
                                "area": round((box[2] - box[0]) * (box[3] - box[1]), 2),
                                "bbox": [
                                    round(box[0], 2),
                                    round(box[1], 2),
                                    round(box[2] - box[0], 2),
                                    round(box[3] - box[1], 2),
                                ],
                                "iscrowd": 0,
                            }
                        )
                    bar.update(1)
    for scanner, data in coco.items():
        (folder / scanner).mkdir(parents=True, exist_ok=True)
        (folder / scanner / "annotations.json").write_text(json.dumps(data))


def read_marker(root: str | Path) -> dict[str, Any] | None:
    """The marker of a finished tree (generator version and arguments), or None."""
    return generated.read_marker(root, MARKER)


def generate_xray(root: str | Path, **arguments: Any) -> Path:
    """Write a synthetic X-ray tree at ``root`` (into a temporary sibling, renamed when complete).

    Args (see :func:`synthetic_arguments`): ``num_categories`` (the first of :data:`CATALOG`),
    ``samples_per_category`` physical items each, ``images_per_sample`` scans of each item spread
    over the scanners and scenarios, ``image_size`` (square PNGs), ``scanners``, ``seed``,
    ``first_sample`` (the items are numbered from it: two trees with other numbers share no item,
    as the parts of a delivery split by item).
    """
    root = Path(root)
    arguments = synthetic_arguments(**arguments)
    return generated.write_generated(
        root,
        MARKER,
        {"generator_version": GENERATOR_VERSION, **arguments},
        lambda folder: _write_tree(folder, arguments, root),
        "X-ray",
    )


def ensure_synthetic_xray(root: str | Path, **arguments: Any) -> Path:
    """Generate the tree unless ``root`` already holds one made with the same arguments."""
    marker = {"generator_version": GENERATOR_VERSION, **synthetic_arguments(**arguments)}
    return generated.ensure_generated(
        root, MARKER, marker, lambda: generate_xray(root, **arguments)
    )
