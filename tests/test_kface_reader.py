"""The K-Face reader on trees written by hand from kface.md, including bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kbaselines.data.kface.reader import (
    KFaceFormatError,
    parse_box,
    parse_image_path,
    resolve_tree,
    scan_tree,
    select,
)


def _image(tree: Path, relative: str, box: str | None = None) -> None:
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 16, 3), 128, np.uint8)).save(path)
    if box is not None:
        path.with_suffix(".txt").write_text(box)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two people, hand-made: box files with spaces, commas and tabs, an empty one, a missing one."""
    _image(tmp_path, "19061801/S001/L1/E01/C7.jpg", "2 3 10 12\n")
    _image(tmp_path, "19061801/S001/L1/E01/C8.jpg", "2,3,10,12")
    _image(tmp_path, "19061801/S002/L30/E03/C20.jpg", "1\t1\t5\t6")
    _image(tmp_path, "19061802/S001/L1/E01/C7.jpg", "")
    _image(tmp_path, "19061802/S006/L2/E02/C1.jpg")
    (tmp_path / "19061801" / "Thumbs.db").write_text("x")
    (tmp_path / "README.txt").write_text("unknown files are ignored")
    return tmp_path


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
    third = records[2]
    assert (third.person, third.session, third.light, third.expression, third.camera) == (
        "19061801",
        "S002",
        "L30",
        "E03",
        "C20",
    )


@pytest.mark.parametrize(
    ("relative", "part"),
    [
        ("1906180/S001/L1/E01/C7.jpg", "person"),
        ("19061801/S007/L1/E01/C7.jpg", "session"),
        ("19061801/S001/L31/E01/C7.jpg", "light"),
        ("19061801/S001/L1/E04/C7.jpg", "expression"),
        ("19061801/S001/L1/E01/C21.jpg", "camera"),
        ("19061801/S001/L1/E01/front.jpg", "camera"),
    ],
)
def test_malformed_names_are_named(relative: str, part: str) -> None:
    with pytest.raises(KFaceFormatError, match=f"{relative}: {part}"):
        parse_image_path(relative)


def test_malformed_name_in_a_tree_is_a_problem(tree: Path) -> None:
    _image(tree, "19061803/S01/L1/E01/C7.jpg")
    records, problems = scan_tree(tree)
    assert len(records) == 5
    assert [p.file for p in problems] == ["19061803/S01/L1/E01/C7.jpg"]
    assert "session" in problems[0].reason


@pytest.mark.parametrize("content", ["2 3 10", "a b c d", "2 3 -1 4", "2 3 0 4"])
def test_malformed_box_names_the_file(tmp_path: Path, content: str) -> None:
    box = tmp_path / "C7.txt"
    box.write_text(content)
    with pytest.raises(KFaceFormatError, match=r"C7\.txt"):
        parse_box(box)


def test_malformed_box_in_a_tree_is_a_problem(tree: Path) -> None:
    (tree / "19061802/S001/L1/E01/C7.txt").write_text("10 10 ten 10")
    _, problems = scan_tree(tree)
    assert [p.file for p in problems] == ["19061802/S001/L1/E01/C7.jpg"]
    assert "10 10 ten 10" in problems[0].reason


def test_resolution_subtrees(tmp_path: Path) -> None:
    for resolution in ("High", "Low"):
        _image(tmp_path / resolution, "19061801/S001/L1/E01/C7.jpg")
    assert resolve_tree(tmp_path, "Low") == tmp_path / "Low"
    with pytest.raises(FileNotFoundError, match="Middle"):
        resolve_tree(tmp_path, "Middle")


@pytest.mark.parametrize("root", [None, "/does/not/exist"])
def test_missing_root_says_what_to_set(root: str | None) -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.root.*data=kface_synthetic"):
        resolve_tree(root)


def test_selection_by_facets(tree: Path) -> None:
    records, _ = scan_tree(tree)
    assert len(select(records, sessions="all", lights="all")) == 5
    chosen = select(records, sessions=["S001"], lights=["L1"], expressions=["E01"], cameras=["C7"])
    assert [r.person for r in chosen] == ["19061801", "19061802"]
    assert len(select(records, cameras=["C7", "C8"])) == 3


def test_empty_selection_names_the_filter(tree: Path) -> None:
    records, _ = scan_tree(tree)
    with pytest.raises(KFaceFormatError, match=r"lights=\['L9'\].*\['L1', 'L2', 'L30'\]"):
        select(records, sessions="all", lights=["L9"])
