"""Damaged X-ray inputs, written by hand from xray.md: each is reported naming the file and the
record (COCO ``images[i]`` / ``annotations[j]``, VOC ``object k``), stops training before it
starts, or with ``data.skip_broken=true`` is left out with a count and a list."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kbaselines.core.cv.splits import LeakageError, check_no_leakage, make_splits
from kbaselines.xray import scoring
from kbaselines.xray.datamodule import XrayDataModule
from kbaselines.xray.reader import XrayFormatError, read_annotations

# three physical items (three split groups) under three scanners, 64x48 scans
PATHS = [
    "Astrophysics/USB/Single_Default/S_8544-42-2090_001_0200.png",
    "Rapiscan/Gun/Multiple_Other/H_9306.30-9000_002_0001.png",
    "Smiths/Knife/Single_Other/H_8211.92-0000_003_0001.png",
]
COCO = {
    "images": [
        {"id": k, "path": f"/datasets/{p}", "width": 64, "height": 48, "file_name": Path(p).name}
        for k, p in enumerate(PATHS, start=1)
    ],
    "categories": [{"id": 1, "name": "USB"}, {"id": 2, "name": "Gun"}, {"id": 3, "name": "Knife"}],
    "annotations": [
        {"id": k, "image_id": k, "category_id": k, "bbox": [10, 10, 20, 15], "iscrowd": 0}
        for k in (1, 2, 3)
    ],
}


def _tree(root: Path, xray_files, data: dict | None = None) -> Path:
    for path in PATHS:
        xray_files.image(root / path, 64, 48)
    (root / "annotations.json").write_text(json.dumps(COCO if data is None else data))
    return root


def _module(root: Path, **kwargs) -> XrayDataModule:
    return XrayDataModule(root=str(root), **kwargs)


def _located(problems) -> list[tuple[str, str | None, str]]:
    return [(p.file, p.record, p.reason) for p in problems]


def _has(problems, file: str, record: str | None, text: str) -> bool:
    return any(f == file and r == record and text in reason for f, r, reason in _located(problems))


# -- annotation records: every problem named by file, record and key ------------------------------
def _missing_keys(data: dict) -> None:
    del data["images"][1]["width"]
    del data["annotations"][0]["category_id"]


def _wrong_types(data: dict) -> None:
    data["images"][2]["height"] = "48"
    data["annotations"][1]["bbox"] = "10,10,20,15"


def _box_outside(data: dict) -> None:
    data["annotations"][0]["bbox"] = [70, 10, 20, 15]


def _negative_box(data: dict) -> None:
    data["annotations"][2]["bbox"] = [30, 10, -20, 15]


def _unknown_image(data: dict) -> None:
    data["annotations"][1]["image_id"] = 42


def _declared_size(data: dict) -> None:
    data["images"][0]["width"] = 640


def _duplicate_id(data: dict) -> None:
    data["images"][2]["id"] = 1


COCO_CASES = {
    "missing key": (
        _missing_keys,
        [
            ("images[1]", "key 'width' is missing"),
            ("annotations[0]", "key 'category_id' is missing"),
        ],
    ),
    "wrong type": (
        _wrong_types,
        [
            ("images[2]", "key 'height': Input should be a valid integer (got '48')"),
            ("annotations[1]", "key 'bbox': Input should be a valid tuple"),
        ],
    ),
    "box outside the image": (
        _box_outside,
        [("annotations[0]", "box [70, 10, 90, 25] lies outside the 64x48 image")],
    ),
    "negative box": (_negative_box, [("annotations[2]", "negative width or height")]),
    "annotation of an unknown image": (
        _unknown_image,
        [("annotations[1]", "image_id 42 is not in this file's images")],
    ),
    "declared size differs from the image": (
        _declared_size,
        [("images[0]", f"declares a 640x48 image but {PATHS[0]} is 64x48")],
    ),
    "duplicate image id": (
        _duplicate_id,
        [
            ("images[2]", "id 1 is also the id of images[0]"),
            ("annotations[2]", "image_id 3 is not in this file's images"),
        ],
    ),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_record_problems_name_file_record_and_key(
    xray_files, tmp_path: Path, case: str
) -> None:
    damage, expected = COCO_CASES[case]
    data = copy.deepcopy(COCO)
    damage(data)
    root = _tree(tmp_path, xray_files, data)
    problems = read_annotations(root, "coco", progress=False).every_problem
    for record, text in expected:
        assert _has(problems, "annotations.json", record, text), _located(problems)
    assert len(problems) == len(expected), _located(problems)
    with pytest.raises(XrayFormatError) as error:
        _module(root).sample_table()
    for record, _ in expected:
        assert f"annotations.json [{record}]" in str(error.value)


def test_zero_area_box_is_dropped_and_listed(xray_files, tmp_path: Path) -> None:
    data = copy.deepcopy(COCO)
    data["annotations"][1]["bbox"] = [10, 10, 0, 15]
    report = _module(_tree(tmp_path, xray_files, data)).check()
    assert report.counts["boxes dropped (zero area)"] == 1
    assert _has(report.problems, "annotations.json [annotations[1]]", None, "zero-area box")


# -- VOC ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "record", "text"),
    [
        (
            lambda xml: xml.replace("<xmin>10</xmin>", ""),
            "object 1",
            "key 'bndbox.xmin' is missing",
        ),
        (
            lambda xml: xml.replace("<width>64</width>", "<width>wide</width>"),
            "annotation",
            "key 'size.width': Input should be a valid integer",
        ),
        (
            lambda xml: xml.replace("<xmin>10</xmin>", "<xmin>ten</xmin>"),
            "object 1",
            "key 'bndbox.xmin': Input should be a valid number",
        ),
        (
            lambda xml: xml.replace(
                "<ymin>10</ymin><xmax>30</xmax><ymax>40</ymax>",
                "<ymin>50</ymin><xmax>30</xmax><ymax>60</ymax>",
            ),
            "object 1",
            "lies outside the 64x48 image",
        ),
    ],
)
def test_voc_record_problems_name_file_and_object(
    xray_files, tmp_path: Path, edit: Callable[[str], str], record: str, text: str
) -> None:
    stem = tmp_path / PATHS[0].removesuffix(".png")
    xray_files.image(stem.with_suffix(".png"), 64, 48)
    xml = xray_files.voc("a.png", 64, 48, [("USB", 1, 1, 9, 9), ("USB", 10, 10, 30, 40)])
    stem.with_suffix(".xml").write_text(edit(xml))
    problems = read_annotations(tmp_path, "voc", progress=False).every_problem
    xml_name = PATHS[0].replace(".png", ".xml")
    assert _has(problems, xml_name, record, text), _located(problems)


# -- malformed files: never skipped ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "name", "content", "text"),
    [
        ("coco", "annotations.json", '{"images": [', "not a COCO annotation file"),
        ("coco", "annotations.json", '{"images": []}', "key 'categories' is missing"),
        ("voc", "a.xml", "<annotation><size>", "not a Pascal VOC XML file"),
    ],
)
def test_malformed_annotation_files_stop_the_run_even_with_skip_broken(
    xray_files, tmp_path: Path, kind: str, name: str, content: str, text: str
) -> None:
    (tmp_path / name).write_text(content)
    problems = read_annotations(tmp_path, kind, progress=False).every_problem
    assert _has(problems, name, None, text), _located(problems)
    with pytest.raises(XrayFormatError, match=f"{name}: {text}"):
        _module(tmp_path, annotation_format=kind, skip_broken=True).sample_table()


# -- image files: opened before training ----------------------------------------------------------
def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _jpeg_named_png(path: Path) -> None:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())


def _dangling_link(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.with_name("gone.png"))


IMAGE_CASES = {
    "truncated": (_truncated, "cannot be decoded"),
    "zero bytes": (_zero_bytes, "is empty (0 bytes)"),
    "another format": (_jpeg_named_png, "cannot be decoded: is a JPEG file named .png"),
    "dangling link": (_dangling_link, "is a dangling link"),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_unreadable_image_stops_training_or_is_skipped(
    xray_files, tmp_path: Path, caplog, case: str
) -> None:
    damage, text = IMAGE_CASES[case]
    root = _tree(tmp_path, xray_files)
    damage(root / PATHS[1])
    report = _module(root).check()
    assert _has(report.problems, PATHS[1], None, text), report.render()
    with pytest.raises(XrayFormatError, match=r"data\.skip_broken=true") as error:
        _module(root).sample_table()
    assert f"{PATHS[1]}: {text}" in str(error.value)
    with caplog.at_level(logging.WARNING):
        table = _module(root, skip_broken=True).sample_table()
    assert table.ids == [PATHS[0], PATHS[2]]
    assert "1 images left out (data.skip_broken=true)" in caplog.text
    assert f"{PATHS[1]}: {text}" in caplog.text


def test_skip_broken_counts_and_lists_every_skipped_image(
    xray_files, tmp_path: Path, caplog
) -> None:
    data = copy.deepcopy(COCO)
    _box_outside(data)
    root = _tree(tmp_path, xray_files, data)
    _truncated(root / PATHS[1])
    _zero_bytes(root / PATHS[2])
    module = _module(root, skip_broken=True)
    with caplog.at_level(logging.WARNING):
        assert module.sample_table().ids == []
    assert "3 images left out (data.skip_broken=true)" in caplog.text
    for line in (
        "annotations.json [annotations[0]]: box [70, 10, 90, 25] lies outside",
        f"{PATHS[1]}: cannot be decoded",
        f"{PATHS[2]}: is empty (0 bytes)",
    ):
        assert line in caplog.text
    assert sorted(module.annotations.broken) == sorted(PATHS)


def test_an_image_edited_in_place_is_seen_through_the_cache(xray_files, tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", xray_files)
    cache = tmp_path / "cache"
    assert len(_module(root, cache_dir=str(cache)).sample_table().ids) == 3
    assert list(cache.glob("xray_files_*.npz"))
    _truncated(root / PATHS[0])
    with pytest.raises(XrayFormatError, match=f"{PATHS[0]}: cannot be decoded"):
        _module(root, cache_dir=str(cache)).sample_table()


# -- the tree and the content audit ---------------------------------------------------------------
def test_check_reports_empty_folders_dangling_links_and_counts_opened_files(
    xray_files, tmp_path: Path
) -> None:
    root = _tree(tmp_path, xray_files)
    (root / "Smiths" / "Knife" / "Multiple_Other").mkdir()
    (root / "Smiths" / "notes.txt").symlink_to(root / "nowhere.txt")
    report = _module(root).check(workers=2)
    assert _has(report.problems, "Smiths/Knife/Multiple_Other", None, "is an empty folder")
    assert _has(report.problems, "Smiths/notes.txt", None, "is a dangling link")
    assert report.counts["image files opened"] == 3
    assert report.counts["image files unreadable"] == 0


def _copy(root: Path) -> None:
    (root / PATHS[1]).write_bytes((root / PATHS[0]).read_bytes())


def _hard_link(root: Path) -> None:
    (root / PATHS[1]).unlink()
    os.link(root / PATHS[0], root / PATHS[1])


@pytest.mark.parametrize(
    ("alias", "text"),
    [(_copy, f"is byte-identical to {PATHS[0]}"), (_hard_link, f"is the same file as {PATHS[0]}")],
)
def test_one_image_in_two_groups_is_reported_and_refused_by_the_split(
    xray_files, tmp_path: Path, alias: Callable[[Path], None], text: str
) -> None:
    root = _tree(tmp_path, xray_files)
    alias(root)
    report = _module(root).check()
    assert _has(report.problems, PATHS[1], None, text), report.render()
    table = _module(root).sample_table()
    splits = make_splits(table, scheme="leave_one_group_out", num_folds=None)
    with pytest.raises(LeakageError, match="byte-identical") as error:
        check_no_leakage(splits, table)
    assert PATHS[0] in str(error.value) and PATHS[1] in str(error.value)


# -- scripts/score.py family=xray -----------------------------------------------------------------
def test_score_names_result_images_missing_from_the_ground_truth(tmp_path: Path, capsys) -> None:
    gt = tmp_path / "coco_gt_test.json"
    gt.write_text(json.dumps(COCO))
    pred = tmp_path / "coco_results_test.json"
    results = [
        {"image_id": image_id, "category_id": 1, "bbox": [10, 10, 20, 15], "score": 0.9}
        for image_id in (1, 7, 12, 7)
    ]
    pred.write_text(json.dumps(results))
    assert scoring.main({"gt": str(gt), "pred": str(pred)}) == 1
    message = capsys.readouterr().err
    assert f"pred={pred} names image_id 7, 12, which gt={gt} does not have" in message
