"""Damaged K-Face trees, written by hand from kface.md: each damage is reported by the check with
its file and record, stops training before an epoch (or is left out with ``skip_broken``, counted
and listed), and aliased images are refused by the split's leakage check."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from kface_helpers import ALL, PEOPLE, small_tree
from PIL import Image

from kbaselines.core.cv.splits import LeakageError, check_no_leakage, make_splits
from kbaselines.kface.datamodule import KFaceDataModule
from kbaselines.kface.reader import KFaceFormatError

IMAGE = "19062001/S001/L1/E01/C7.jpg"
BOX = "19062001/S001/L1/E01/C7.txt"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 people x S001, S002 x L1, L2 x E01 x C6, C7 of 32x32 images with boxes: 8 images each."""
    return small_tree(tmp_path_factory.mktemp("damaged") / "kface")


@pytest.fixture
def tree(generated: Path, tmp_path: Path) -> Path:
    """A fresh copy of the generated tree, to damage."""
    return Path(shutil.copytree(generated, tmp_path / "kface", symlinks=True))


def _module(tree: Path, **kwargs) -> KFaceDataModule:
    settings = {**ALL, "input_size": (16, 16), "batch_size": 4, **kwargs}
    return KFaceDataModule(root=str(tree), cache_dir=str(tree.parent / "cache"), **settings)


def _truncate(tree: Path) -> None:
    data = (tree / IMAGE).read_bytes()
    (tree / IMAGE).write_bytes(data[: len(data) // 2])


def _as_png(tree: Path) -> None:
    with Image.open(tree / IMAGE) as image:
        image.load()
    image.save(tree / IMAGE, format="PNG")


def _dangling(tree: Path) -> None:
    (tree / IMAGE).unlink()
    os.symlink("C9.jpg", tree / IMAGE)


def _box(text: str) -> Callable[[Path], None]:
    return lambda tree: (tree / BOX).write_text(text)


# (damage, file named, record named, reason)
DAMAGES = {
    "truncated JPEG": (_truncate, IMAGE, None, "cannot be decoded"),
    "zero-byte JPEG": (lambda t: (t / IMAGE).write_bytes(b""), IMAGE, None, "is empty (0 bytes)"),
    "PNG named .jpg": (_as_png, IMAGE, None, "is a PNG file named .jpg"),
    "text named .jpg": (
        lambda t: (t / IMAGE).write_text("not an image"),
        IMAGE,
        None,
        "cannot be decoded: cannot identify image file",
    ),
    "dangling link": (_dangling, IMAGE, None, "is a dangling link"),
    "box outside the image": (
        _box("40 3 10 10"),
        BOX,
        "line 1",
        "the face box 40 3 10 10 lies outside the 32x32 image",
    ),
    "box of 3 numbers": (_box("1 2 3"), BOX, "line 1", "key 'height' is missing"),
    "box not numeric": (
        _box("1 2 three 4"),
        BOX,
        "line 1",
        "key 'width': Input should be a valid number (got 'three')",
    ),
    "box of negative width": (
        _box("1, 2, -5, 4"),
        BOX,
        "line 1",
        "key 'width': Input should be greater than 0 (got -5)",
    ),
    "box of a NaN": (
        _box("nan 2 10 12"),
        BOX,
        "line 1",
        "key 'x'",
    ),
}


@pytest.fixture(params=list(DAMAGES))
def damaged(request: pytest.FixtureRequest, tree: Path) -> tuple[Path, str, str | None, str]:
    """The tree with one damage, and the file, record and reason the damage must be named by."""
    damage, file, record, reason = DAMAGES[request.param]
    damage(tree)
    return tree, file, record, reason


def test_check_names_the_damaged_file_and_record(damaged) -> None:
    tree, file, record, reason = damaged
    report = _module(tree).check(workers=2)
    assert not report.ok
    named = [p for p in report.problems if p.file == file]
    assert len(named) == 1 and named[0].record == record, report.render()
    assert reason in named[0].reason
    malformed_box = "key '" in reason  # its image is left out of the index, not opened
    assert report.counts["selected"]["opened"] == 48 - malformed_box


def test_training_stops_before_an_epoch_naming_the_damaged_file(damaged) -> None:
    tree, file, record, reason = damaged
    with pytest.raises(KFaceFormatError) as caught:
        _module(tree).sample_table()
    message = str(caught.value)
    where = file if record is None else f"{file} [{record}]"
    assert f"\n  {where}: " in message and reason in message
    assert "check_dataset.py" in message and "data.skip_broken=true" in message


def test_skip_broken_leaves_the_damaged_image_out_and_lists_it(
    damaged, caplog: pytest.LogCaptureFixture
) -> None:
    tree, file, _, reason = damaged
    with caplog.at_level(logging.WARNING, logger="kbaselines.kface.datamodule"):
        table = _module(tree, skip_broken=True).sample_table()
    assert len(table.ids) == 47 and IMAGE not in table.ids
    assert "1 malformed or damaged files left out (data.skip_broken=true), 47 images kept" in (
        caplog.text
    )
    assert f"{file}" in caplog.text and reason in caplog.text


def test_skip_broken_counts_and_lists_every_damaged_image(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = [f"{person}/S002/L2/E01/C6.jpg" for person in PEOPLE[:3]]
    (tree / broken[0]).write_bytes(b"")
    (tree / broken[1]).write_text("not an image")
    _dangling_at = tree / broken[2]
    _dangling_at.unlink()
    os.symlink("gone.jpg", _dangling_at)
    with caplog.at_level(logging.WARNING, logger="kbaselines.kface.datamodule"):
        kept = _module(tree, skip_broken=True).selected()
    assert len(kept) == 45 and not {r.path for r in kept} & set(broken)
    assert "3 malformed or damaged files left out" in caplog.text
    assert all(f"\n  {path}: " in caplog.text for path in broken)


def test_check_reports_an_empty_person_folder_and_a_dangling_folder_link(tree: Path) -> None:
    (tree / "19062009").mkdir()
    os.symlink("19062042", tree / "19062008")
    report = _module(tree).check()
    problems = {p.file: p.reason for p in report.problems}
    assert problems == {
        "19062009": "is an empty folder: remove it",
        "19062008": "is a dangling link: restore its target or remove it",
    }
    assert len(_module(tree).selected()) == 48, "neither holds a selected image"


def _link_person(tree: Path) -> str:
    os.symlink(PEOPLE[0], tree / "19062006")
    return "19062006"


def _hard_link(tree: Path) -> str:
    target = tree / PEOPLE[1] / "S001/L1/E01/C7.jpg"
    target.unlink()
    os.link(tree / PEOPLE[0] / "S001/L1/E01/C7.jpg", target)
    return PEOPLE[1]


def _copy(tree: Path) -> str:
    shutil.copyfile(
        tree / PEOPLE[0] / "S001/L1/E01/C7.jpg", tree / PEOPLE[1] / "S001/L1/E01/C7.jpg"
    )
    return PEOPLE[1]


# (alias, images of PEOPLE[0] that reappear elsewhere, reason)
ALIASES = {
    "person folder linked to another person": (_link_person, 8, "is the same file as"),
    "hard-linked image in another person": (_hard_link, 1, "is the same file as"),
    "byte-identical copy in another person": (_copy, 1, "is byte-identical to"),
}


@pytest.mark.parametrize("alias", list(ALIASES))
def test_an_image_in_two_people_is_reported_and_refused_by_the_split(
    tree: Path, alias: str
) -> None:
    make_alias, count, reason = ALIASES[alias]
    other = make_alias(tree)
    report = _module(tree).check()
    found = [p for p in report.problems if reason in p.reason]
    assert len(found) == count == len(report.problems), report.render()
    camera = "C6" if count == 8 else "C7"
    assert found[0].file == f"{other}/S001/L1/E01/{camera}.jpg"
    assert f"{reason} {PEOPLE[0]}/S001/L1/E01/{camera}.jpg" in found[0].reason
    assert f"{PEOPLE[0]} and {other}" in found[0].reason
    table = _module(tree).sample_table()
    splits = make_splits(table, num_folds=len(set(table.groups)), seed=0)
    with pytest.raises(LeakageError) as caught:
        check_no_leakage(splits, table)
    message = str(caught.value)
    assert f"{PEOPLE[0]}/S001/L1/E01/C" in message and f"{other}/S001/L1/E01/C" in message
    assert "same image" in message


def test_a_box_file_fixed_in_place_reaches_the_cached_index(tree: Path) -> None:
    box = tree / BOX
    good = box.read_text()
    box.write_text("1 2 three 4")
    with pytest.raises(KFaceFormatError, match="got 'three'"):
        _module(tree).selected()
    later = box.stat().st_mtime_ns + 1_000_000_000
    box.write_text(good)
    os.utime(box, ns=(later, later))
    records = {r.path: r for r in _module(tree).selected()}
    assert records[IMAGE].box == tuple(int(v) for v in good.split())
    box.write_text("40 3 10 10")
    os.utime(box, ns=(later + 1_000_000_000, later + 1_000_000_000))
    with pytest.raises(KFaceFormatError, match="lies outside the 32x32 image"):
        _module(tree).selected()


def test_an_image_replaced_in_place_is_opened_again(tree: Path) -> None:
    assert len(_module(tree).selected()) == 48
    later = (tree / IMAGE).stat().st_mtime_ns + 1_000_000_000
    (tree / IMAGE).write_bytes(np.zeros(500, np.uint8).tobytes())
    os.utime(tree / IMAGE, ns=(later, later))
    with pytest.raises(KFaceFormatError, match=f"{IMAGE}: cannot be decoded"):
        _module(tree).selected()
