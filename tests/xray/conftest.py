"""X-ray fixtures: hand-written annotation trees (xray.md formats) and the synthetic tree, made once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kbaselines.core.config import compose_config

QUICK_EXPERIMENT = "+experiment=xray_faster_rcnn_synthetic"


def write_image(path: Path, width: int = 64, height: int = 48, mode: str = "RGB") -> Path:
    """A small scan-like image (greyscale when ``mode="L"``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    pixels = np.full(shape, 230, dtype=np.uint8)
    pixels[10:30, 10:40] = 90
    Image.fromarray(pixels, mode=mode).save(path)
    return path


def write_coco(
    root: Path, images: list[dict], annotations: list[dict], categories: list[dict]
) -> Path:
    path = root / "annotations.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def voc_xml(
    filename: str, width: int, height: int, objects: list[tuple[str, int, int, int, int]]
) -> str:
    """A Pascal VOC file as in xray.md."""
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
        f"<ymax>{y1}</ymax></bndbox></object>"
        for name, x0, y0, x1, y1 in objects
    )
    return (
        f"<annotation><folder>ModifyData</folder><filename>{filename}</filename><path>x</path>"
        "<source><database>Unknown</database></source>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{body}</annotation>"
    )


class XrayFiles:
    """The writers above, for test modules (a fixture: test folders are not packages)."""

    image = staticmethod(write_image)
    coco = staticmethod(write_coco)
    voc = staticmethod(voc_xml)


@pytest.fixture(scope="session")
def xray_files() -> type[XrayFiles]:
    return XrayFiles


@pytest.fixture(scope="session")
def xray_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the synthetic tree of ``data=xray_synthetic``, generated once."""
    from kbaselines.xray.synthetic import ensure_synthetic_xray

    folder = tmp_path_factory.mktemp("xray_data")
    cfg = compose_config([QUICK_EXPERIMENT, f"paths.data_dir={folder}"])
    ensure_synthetic_xray(cfg.data.root, **cfg.data.synthetic)
    return folder


@pytest.fixture(scope="session")
def xray_root(xray_data_dir: Path) -> Path:
    return xray_data_dir / "xray_synthetic"
