"""The K-Face reader on trees written by hand from kface.md, including bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kface_helpers import scan_tree
from PIL import Image

from kbaselines.kface.reader import (
    KFaceFormatError,
    KFaceRecord,
    KFaceSelectionError,
    matches,
    parse_box_file,
    parse_name,
    read_box,
    resolve_tree,
    select,
)


def _image(tree: Path, relative: str, box: str | None = None) -> Path:
    """A tiny JPEG at ``tree/relative``, with a box file holding ``box`` when given."""
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 16, 3), 128, np.uint8)).save(path)
    if box is not None:
        path.with_suffix(".txt").write_text(box)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two people, by hand: boxes with spaces, commas, tabs; an empty box file; a missing one;
    unknown and hidden files that the reader must ignore."""
    root = tmp_path / "kface"
    _image(root, "19061801/S001/L1/E01/C7.jpg", "2 3 10 12\n")
    _image(root, "19061801/S001/L1/E01/C8.jpg", "2,3,10,12")
    _image(root, "19061801/S002/L30/E03/C20.jpg", "1\t1\t5\t6\r\n")
    _image(root, "19061802/S001/L1/E01/C7.jpg", "")
    _image(root, "19061802/S006/L2/E02/C1.jpg")
    (root / "19061801" / "Thumbs.db").write_text("x")
    (root / "README").write_text("unknown files are ignored")
    (root / "19061801/S001/L1/E01/notes.md").write_text("not an image, not a box")
    (root / "19061801/S001/L1/E01/._C7.jpg").write_bytes(b"macOS resource fork")
    _image(
        root, "19061801/S001/stray.jpg"
    )  # an image above the image depth: not part of the layout
    return root


def test_scan_reads_every_image_and_box(tree: Path) -> None:
    records, problems = scan_tree(tree)
    assert problems == []
    assert [r.path for r in records] == [
        "19061801/S001/L1/E01/C7.jpg",
        "19061801/S001/L1/E01/C8.jpg",
        "19061801/S002/L30/E03/C20.jpg",
        "19061802/S001/L1/E01/C7.jpg",
        "19061802/S006/L2/E02/C1.jpg",
    ]
    assert [r.box for r in records] == [(2, 3, 10, 12), (2, 3, 10, 12), (1, 1, 5, 6), None, None]
    assert records[2] == KFaceRecord(
        "19061801/S002/L30/E03/C20.jpg", "19061801", "S002", "L30", "E03", "C20", (1, 1, 5, 6)
    )


def test_parse_name_gives_a_record() -> None:
    record = parse_name("19061801/S003/L12/E02/C13.jpg", box=(1, 2, 3, 4))
    assert (record.person, record.session, record.light, record.expression, record.camera) == (
        "19061801",
        "S003",
        "L12",
        "E02",
        "C13",
    )
    assert record.box == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("relative", "part"),
    [
        ("1906180/S001/L1/E01/C7.jpg", "person"),
        ("1906180a/S001/L1/E01/C7.jpg", "person"),
        ("19061801/S007/L1/E01/C7.jpg", "session"),
        ("19061801/S01/L1/E01/C7.jpg", "session"),
        ("19061801/S001/L31/E01/C7.jpg", "light"),
        ("19061801/S001/L0/E01/C7.jpg", "light"),
        ("19061801/S001/L01/E01/C7.jpg", "light"),
        ("19061801/S001/L1/E04/C7.jpg", "expression"),
        ("19061801/S001/L1/E01/C21.jpg", "camera"),
        ("19061801/S001/L1/E01/front.jpg", "camera"),
    ],
)
def test_malformed_names_are_named(relative: str, part: str) -> None:
    with pytest.raises(KFaceFormatError, match=f"^{relative}: {part} ") as caught:
        parse_name(relative)
    assert "kface.md" in caught.value.reason and "rename" in caught.value.reason


def test_a_path_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(KFaceFormatError, match=r"19061801/C7\.jpg: not an image path"):
        parse_name("19061801/C7.jpg")


def test_malformed_names_in_a_tree_are_problems(tree: Path) -> None:
    _image(tree, "19061803/S01/L1/E01/C7.jpg")
    _image(tree, "1906180/S001/L1/E01/C7.jpg")
    _image(tree, "19061802/S001/L1/E01/Cam7.jpg")
    records, problems = scan_tree(tree)
    assert len(records) == 5, "the good images are still read"
    assert sorted(p.file for p in problems) == [
        "1906180/S001/L1/E01/C7.jpg",
        "19061802/S001/L1/E01/Cam7.jpg",
        "19061803/S01/L1/E01/C7.jpg",
    ]
    reasons = {p.file: p.reason for p in problems}
    assert reasons["19061803/S01/L1/E01/C7.jpg"].startswith("session 'S01' is not one of S001")
    assert reasons["1906180/S001/L1/E01/C7.jpg"].startswith("person '1906180' is not an 8-digit")
    assert reasons["19061802/S001/L1/E01/Cam7.jpg"].startswith("camera 'Cam7'")


def test_two_images_of_one_camera_are_a_problem(tree: Path) -> None:
    _image(tree, "19061802/S001/L1/E01/C7.JPG")
    records, problems = scan_tree(tree)
    assert len(records) == 5
    assert [p.file for p in problems] == ["19061802/S001/L1/E01/C7.jpg"]
    assert "C7.JPG" in problems[0].reason


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("2 3 10 12", (2, 3, 10, 12)),
        ("2, 3, 10, 12\n", (2, 3, 10, 12)),
        ("2\t3\t10\t12", (2, 3, 10, 12)),
        ("\ufeff2 3 10 12\r\n", (2, 3, 10, 12)),
        ("-2 -3 10 12", (-2, -3, 10, 12)),
        ("", None),
        ("  \n\n", None),
    ],
)
def test_box_separators_and_empty_files(tmp_path: Path, text: str, box) -> None:
    path = tmp_path / "C7.txt"
    path.write_text(text, encoding="utf-8")
    assert parse_box_file(path) == box


def test_missing_box_file_is_no_box(tmp_path: Path) -> None:
    assert parse_box_file(tmp_path / "C7.txt") is None


@pytest.mark.parametrize(
    "content",
    [
        "2 3 10",
        "2 3 10 12 5",
        "a b c d",
        "2 3 0 4",
        "2 3 -1 4",
        "nan 1 2 3",
        "1 2 3 4\n5 6 7 8",
    ],
)
def test_malformed_box_names_the_file_the_content_and_the_fix(tmp_path: Path, content: str) -> None:
    path = tmp_path / "C7.txt"
    path.write_text(content)
    with pytest.raises(KFaceFormatError) as caught:
        parse_box_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 1: face box ")
    assert content.splitlines()[0] in message
    assert "x y width height" in message and "delete the file" in message
    box, problems = read_box(content, "C7.txt")
    assert box is None and [(p.file, p.record) for p in problems] == [("C7.txt", "line 1")]


def test_fractional_boxes_are_rounded_to_whole_pixels() -> None:
    assert read_box("2.4, 3.6\t10.0 12", "C7.txt") == ((2, 4, 10, 12), [])


def test_malformed_box_in_a_tree_is_a_problem_of_the_box_file(tree: Path) -> None:
    (tree / "19061802/S001/L1/E01/C7.txt").write_text("10 10 ten 10")
    records, problems = scan_tree(tree)
    assert "19061802/S001/L1/E01/C7.jpg" not in [r.path for r in records]
    assert [p.file for p in problems] == ["19061802/S001/L1/E01/C7.txt"]
    assert "'10 10 ten 10'" in problems[0].reason
    assert str(problems[0]).startswith("19061802/S001/L1/E01/C7.txt [line 1]: face box")
    assert "key 'width': Input should be a valid number (got 'ten')" in problems[0].reason


def test_resolution_subtrees(tmp_path: Path) -> None:
    for resolution in ("High", "Middle", "Low"):
        _image(tmp_path / resolution, f"19061801/S001/L1/E01/C{len(resolution)}.jpg")
    assert resolve_tree(tmp_path) == tmp_path / "High"
    assert resolve_tree(tmp_path, "Low") == tmp_path / "Low"
    assert [r.camera for r in scan_tree(resolve_tree(tmp_path, "Middle"))[0]] == ["C6"]
    with pytest.raises(ValueError, match=r"data\.resolution='Medium'"):
        resolve_tree(tmp_path, "Medium")


def test_missing_resolution_subtree_names_the_ones_present(tmp_path: Path) -> None:
    _image(tmp_path / "Low", "19061801/S001/L1/E01/C7.jpg")
    with pytest.raises(FileNotFoundError, match=r"holds the resolutions Low but not Middle"):
        resolve_tree(tmp_path, "Middle")


def test_a_root_without_subtrees_is_the_tree(tree: Path) -> None:
    assert resolve_tree(tree, "Low") == tree


@pytest.mark.parametrize("root", [None, "", "/does/not/exist"])
def test_missing_root_says_what_to_set(root: str | None) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        resolve_tree(root)
    assert "data.root=<path>" in str(caught.value)
    assert "data=kface_synthetic" in str(caught.value)


def test_selection_by_facets(tree: Path) -> None:
    records, _ = scan_tree(tree)
    assert select(records) == records
    assert (
        select(records, sessions="all", lights="all", expressions="all", cameras="all") == records
    )
    chosen = select(records, sessions=["S001"], lights=["L1"], expressions=["E01"], cameras=["C7"])
    assert [r.path for r in chosen] == [
        "19061801/S001/L1/E01/C7.jpg",
        "19061802/S001/L1/E01/C7.jpg",
    ]
    assert len(select(records, cameras=["C7", "C8"])) == 3
    assert [r.light for r in select(records, lights="L30")] == ["L30"], "one value as a string"
    assert matches(chosen[0], sessions=["S001"], cameras=["C7"])
    assert not matches(chosen[0], cameras=["C8"])


def test_empty_selection_names_the_filter_and_what_is_there(tree: Path) -> None:
    records, _ = scan_tree(tree)
    with pytest.raises(KFaceSelectionError, match=r"no image left after lights=\[L99\]") as caught:
        select(records, lights=["L99"])
    assert "the tree has L1, L2, L30" in str(caught.value)
    assert "change data.lights" in str(caught.value)


def test_empty_selection_after_an_earlier_filter_says_so(tree: Path) -> None:
    records, _ = scan_tree(tree)
    with pytest.raises(KFaceSelectionError) as caught:
        select(records, sessions=["S006"], cameras=["C7"])
    message = str(caught.value)
    assert message.startswith("no image left after cameras=[C7]: the tree has C1")
    assert "among the images left by sessions=[S006]" in message


def test_an_empty_tree_has_nothing_to_select(tmp_path: Path) -> None:
    records, problems = scan_tree(tmp_path)
    assert records == [] and problems == []
    with pytest.raises(KFaceSelectionError, match="no image"):
        select(records)
