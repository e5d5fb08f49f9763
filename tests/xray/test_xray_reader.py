"""The X-ray readers on hand-written COCO and VOC files in the formats of xray.md."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from kbaselines.xray.datamodule import XrayDataModule
from kbaselines.xray.dataset import XrayDataset
from kbaselines.xray.names import normalise_hs_code, parse_image_path
from kbaselines.xray.reader import XrayFormatError, read_annotations

USB = "Astrophysics/USB/Single_Default/S_8544-42-2090_001_0200.png"
USB_UNDOTTED = "Rapiscan/USB/Multiple_Other/S_854442-2090_001_0201.png"
GUN = "Smiths/Gun/Multiple_Categories/H_9306.30-9000_002_0001.png"
CATEGORIES = [{"id": 1, "name": "USB", "supercategory": "storage"}, {"id": 7, "name": "Gun"}]


def _coco_tree(
    xray_files, root: Path, annotations: list[dict] | None = None, extra_images=()
) -> Path:
    images = []
    for k, relative in enumerate((USB, USB_UNDOTTED, GUN), start=1):
        xray_files.image(root / relative, 64, 48, mode="L" if k == 2 else "RGB")
        images.append(
            {
                "id": k,
                "dataset_id": 1,
                "path": f"/datasets/{relative}",
                "width": 64,
                "height": 48,
                "file_name": Path(relative).name,
            }
        )
    images += list(extra_images)
    if annotations is None:
        annotations = [
            # polygon and bbox: the bbox is used
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[10, 10, 30, 10, 30, 20]],
                "area": 100.0,
                "bbox": [10, 10, 20, 10],
                "iscrowd": 0,
            },
            # polygon only: the box around it
            {
                "id": 2,
                "image_id": 2,
                "category_id": 1,
                "segmentation": [[5, 6, 25, 6, 25, 16, 5, 16]],
                "iscrowd": 0,
            },
            # partly outside the 64x48 image: clipped
            {"id": 3, "image_id": 3, "category_id": 7, "bbox": [50, 40, 30, 20], "iscrowd": 0},
            # zero area: dropped
            {"id": 4, "image_id": 3, "category_id": 7, "bbox": [5, 5, 0, 10], "iscrowd": 0},
        ]
    xray_files.coco(root, images, annotations, CATEGORIES)
    return root


def test_names_hs_code_with_and_without_dot_and_dash() -> None:
    assert normalise_hs_code("930630-9000") == normalise_hs_code("9306.30-9000") == "9306.30-9000"
    a, b = parse_image_path(USB), parse_image_path(USB_UNDOTTED)
    assert a.scanner == "Astrophysics" and a.scenario == "Single_Default"
    assert (a.family, a.hs_code, a.sample, a.image_no) == ("S", "8544.42-2090", "001", "0200")
    assert a.sample_key == b.sample_key == "S_8544.42-2090_001"
    stamp = parse_image_path("Rapiscan/USB/Single_Default/20180626093415599.png")
    assert stamp.sample_key is None and stamp.scanner == "Rapiscan"


def test_coco_reader_boxes_polygons_clipping_dropping(xray_files, tmp_path: Path) -> None:
    found = read_annotations(_coco_tree(xray_files, tmp_path), "coco")
    assert not found.every_problem
    assert [i.path for i in found.images] == sorted([USB, USB_UNDOTTED, GUN])
    by_path = {i.path: i for i in found.images}
    assert by_path[USB].objects[0].box == (10.0, 10.0, 30.0, 20.0)
    assert by_path[USB_UNDOTTED].objects[0].box == (5.0, 6.0, 25.0, 16.0)
    assert by_path[GUN].objects[0].box == (50.0, 40.0, 64.0, 48.0)
    assert len(by_path[GUN].objects) == 1
    assert found.clipped == ["annotations.json [annotations[2]]"]
    assert found.dropped == ["annotations.json [annotations[3]]"]
    assert found.categories == ["Gun", "USB"]
    # both spellings of one HS code: one physical sample, one split group
    assert by_path[USB].group == by_path[USB_UNDOTTED].group


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}, "category_id 3"),
        ({"id": 9, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5]}, "image_id 42"),
    ],
)
def test_coco_errors_name_file_and_annotation(
    xray_files, tmp_path: Path, annotation: dict, expected: str
) -> None:
    found = read_annotations(_coco_tree(xray_files, tmp_path, [annotation]), "coco")
    (problem,) = found.every_problem
    assert problem.file == "annotations.json" and problem.record == "annotations[0]"
    assert expected in problem.reason
    module = XrayDataModule(root=str(tmp_path))
    with pytest.raises(XrayFormatError, match=r"annotations\.json \[annotations\[0\]\]"):
        module.sample_table()


def test_coco_missing_image_file_is_an_error(xray_files, tmp_path: Path) -> None:
    missing = {
        "id": 4,
        "path": "/datasets/Smiths/Gun/Single_Other/H_9306.30-9000_003_0001.png",
        "width": 64,
        "height": 48,
        "file_name": "H_9306.30-9000_003_0001.png",
    }
    found = read_annotations(_coco_tree(xray_files, tmp_path, [], [missing]), "coco")
    (problem,) = found.every_problem
    assert (problem.file, problem.record) == ("annotations.json", "images[3]")
    assert "H_9306.30-9000_003_0001.png does not exist" in problem.reason


def test_voc_reader_mapping_and_names_without_sample_key(
    xray_files, tmp_path: Path, caplog
) -> None:
    keyed = "Astrophysics/USB/Single_Default/S_8544-42-2090_001_0200"
    stamped = "Astrophysics/USB/Single_Default/20180626093415599"
    for stem in (keyed, stamped):
        xray_files.image(tmp_path / f"{stem}.png", 64, 48)
        (tmp_path / f"{stem}.xml").write_text(
            xray_files.voc(
                f"{Path(stem).name}.png", 64, 48, [("USB Metal", 184 // 4, 3, 202 // 4, 41)]
            )
        )
    found = read_annotations(tmp_path, "voc", category_map={"USB Metal": "USB"})
    assert not found.every_problem and found.categories == ["USB"]
    assert found.images[0].objects[0].box == (46.0, 3.0, 50.0, 41.0)
    assert found.without_sample_key == 1
    module = XrayDataModule(
        root=str(tmp_path), annotation_format="voc", category_map={"USB Metal": "USB"}
    )
    with caplog.at_level(logging.WARNING):
        table = module.sample_table()
    assert "1 of 2 images have no HS code" in caplog.text
    assert table.groups == [
        "Astrophysics/USB/Single_Default/20180626093415599.png",
        "S_8544.42-2090_001",
    ]
    assert table.domains == ["Astrophysics", "Astrophysics"]


def test_unmapped_category_name_lists_known_names(xray_files, tmp_path: Path) -> None:
    stem = "Astrophysics/USB/Single_Default/S_8544-42-2090_001_0200"
    xray_files.image(tmp_path / f"{stem}.png")
    (tmp_path / f"{stem}.xml").write_text(
        xray_files.voc("a.png", 64, 48, [("USB Metal", 1, 1, 9, 9)])
    )
    found = read_annotations(tmp_path, "voc", categories=["USB", "Gun"])
    assert len(found.problems) == 1 and found.problems[0].record == "object 0"
    assert "'USB Metal' is not a known name (Gun, USB)" in found.problems[0].reason


def test_malformed_files_are_problems(xray_files, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    found = read_annotations(tmp_path, "coco")
    assert found.problems[0].file == "broken.json"
    assert "not a COCO annotation file" in found.problems[0].reason
    (tmp_path / "a.xml").write_text("<annotation><size>")
    assert read_annotations(tmp_path, "voc").problems[0].file == "a.xml"


def test_greyscale_scans_load_as_three_channels(xray_files, tmp_path: Path) -> None:
    found = read_annotations(_coco_tree(xray_files, tmp_path), "coco")
    grey = [i for i in found.images if i.path == USB_UNDOTTED]
    item = XrayDataset(tmp_path, grey, {"USB": 2, "Gun": 1})[0]
    assert item["image"].shape == (3, 48, 64)
    assert item["target"]["labels"].tolist() == [2]
    np.testing.assert_allclose(item["target"]["boxes"].numpy(), [[5, 6, 25, 16]])
