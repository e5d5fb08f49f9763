"""``data.crop=breast``: views cut to the breast before resizing; contours and lesion boxes follow."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kbaselines.mammo import outputs
from kbaselines.mammo.crop import TISSUE_LEVEL, CropBox, find_breast
from kbaselines.mammo.datamodule import MammoDataModule
from kbaselines.mammo.synthetic import generate_mammo

ROWS, COLUMNS = 256, 208  # the synthetic full resolution
CACHE = (128, 104)


def test_find_breast_keeps_the_largest_component_with_a_margin_at_the_cache_shape() -> None:
    image = np.zeros((400, 300), np.float32)
    image[100:220, 0:90] = 0.5  # the breast against the chest wall
    image[350:360, 250:260] = 1.0  # a marker, apart and smaller
    box = find_breast(image, (200, 100))
    margin = round(0.02 * 400)
    assert box.x0 == 0 and box.width * 2 == box.height  # 2 rows per column, as the cache
    assert box.y0 <= 100 - margin and box.y1 >= 220 + margin and box.x1 >= 90 + margin
    assert box.y1 <= 300 and box.x1 < 250  # the marker is left out
    assert find_breast(np.zeros((40, 30), np.float32), (20, 10)) == CropBox.whole(40, 30)
    # a box wider than the image asks for is cut with black beyond the image
    wide = find_breast(image, (10, 100))
    assert wide.x0 < 0 and wide.x1 > 300
    cut = wide.cut(image)
    assert cut.shape == (wide.height, wide.width) and cut[:, : -wide.x0].max() == 0


def _breast_share(images: list[np.ndarray]) -> float:
    return float(np.mean([(np.asarray(i) > TISSUE_LEVEL * 65535).mean() for i in images]))


@pytest.fixture(scope="module")
def small_breasts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MammoDataModule]:
    """Six cases whose breasts fill about a fifth of the image, cached whole and cropped."""
    folder = tmp_path_factory.mktemp("small_breasts")
    root = generate_mammo(folder / "tree", 6, ROWS, COLUMNS, breast_scale=0.6)
    modules = {}
    for crop in ("none", "breast"):
        settings = {
            "root": str(root),
            "cache_dir": str(folder / "cache"),
            "cache_size": CACHE,
            "image_size": CACHE,
            "patch_size": 64,
            "patch_input_size": 32,
            "crop": crop,
            "cache_workers": 1,
        }
        cases = MammoDataModule(**settings).sample_table().ids
        module = MammoDataModule(**settings, split={"train": cases, "val": [], "test": []})
        module.setup("fit")
        modules[crop] = module
    return modules


def test_the_crop_fills_the_cached_view_with_breast(
    small_breasts: dict[str, MammoDataModule], monkeypatch: pytest.MonkeyPatch
) -> None:
    shares = {}
    for crop, module in small_breasts.items():
        files = [item.path for item in module.datasets["train"].items]
        shares[crop] = _breast_share([module.cache.load(f) for f in files])
    # measured: 0.20 of the cached view is breast without the crop, 0.63 with it
    assert shares["none"] < 0.25 and shares["breast"] > 0.55, shares
    cropped = small_breasts["breast"]
    entry = cropped.cache.entry(files[0])
    assert entry.with_suffix(".crop.json").is_file()  # the box beside the image
    assert entry != small_breasts["none"].cache.entry(files[0])  # the setting is in the key
    # the overlays draw the cached, cropped view
    drawn = {}
    monkeypatch.setattr(
        outputs, "plot_case_overlays", lambda images, maps, path, title: drawn.update(images)
    )
    item = cropped.datasets["train"].items[0]
    outputs.draw_case(cropped.cache, {item.view: item.path}, {}, Path("unused.png"))
    assert _breast_share([drawn[item.view] * 65535]) > 0.55


def _contours(module: MammoDataModule) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Every lesion contour as (file, class, x, y) in full-resolution pixels of the oriented view."""
    root = Path(module.index.root)
    found = []
    for case in module.index.cases:
        path = root / "contours" / f"{case.case_id}.json"
        if not path.is_file():
            continue
        for cls, views in json.loads(path.read_text())["contour_list"].items():
            for view, lesions in views.items():
                for points in lesions.values():
                    xs = np.array([p["x"] for p in points])
                    ys = np.abs([p["y"] for p in points])  # stored negated in every other case
                    if view.startswith("r"):  # right breasts are flipped, chest wall left
                        xs = case.headers[view].columns - 1 - xs
                    found.append((str(root / case.views[view]), cls, xs, ys))
    return found


def _contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean inside ``mask`` less the mean of a ring around it, in [0, 1] units."""
    ring = cv2.dilate(mask, np.ones((9, 9), np.uint8)) - mask
    return float(image[mask > 0].mean() - image[ring > 0].mean()) / 65535


def test_contours_and_lesion_boxes_land_on_their_lesions_in_the_crop(
    small_breasts: dict[str, MammoDataModule],
) -> None:
    module = small_breasts["breast"]
    contours = _contours(module)
    assert len(contours) == 8  # 2 cancer and 2 benign cases, each lesion on a CC and an MLO view
    boxes = {(item.path, item.cls): item for item in module.datasets["patches"].items if item.box}
    mapped, unmapped = [], []
    for path, cls, xs, ys in contours:
        image = np.asarray(module.cache.load(path))
        box = module.cache.crop_box(path)
        assert box is not None and box.height < ROWS * 0.8
        for frame, contrasts in ((box, mapped), (CropBox.whole(ROWS, COLUMNS), unmapped)):
            x, y = frame.map_points(xs, ys, CACHE)
            mask = np.zeros(CACHE, np.uint8)
            cv2.fillPoly(mask, [np.round(np.stack([x, y], axis=1)).astype(np.int32)], 1)
            contrasts.append(_contrast(image, mask))
        # the lesion's box (mapped from the whole view into the crop) bounds the mapped contour
        x, y = box.map_points(xs, ys, CACHE)
        item = boxes[(path, cls)]
        x0, y0, x1, y1 = np.array(item.box) * [CACHE[1], CACHE[0], CACHE[1], CACHE[0]]
        assert abs(x0 - x.min()) < 1.5 and abs(x1 - x.max()) < 1.5, (item.box, x.min(), x.max())
        assert abs(y0 - y.min()) < 1.5 and abs(y1 - y.max()) < 1.5, (item.box, y.min(), y.max())
        # patches keep their 64 full-resolution pixels: more cached pixels in the crop
        assert item.patch == round(64 * CACHE[0] / box.height) > 64 * CACHE[0] / ROWS
    # measured: lesions 0.10-0.24 brighter than their surroundings; unmapped contours miss them
    assert min(mapped) > 0.08 and np.mean(unmapped) < 0.04, (mapped, unmapped)
