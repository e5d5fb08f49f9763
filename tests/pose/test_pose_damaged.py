"""A corpus of damaged pose datasets, written by hand from pose.md.

Each case damages a copy of the small synthetic dataset (one record, one image, one link) and
asserts what a user is told: the check names the file, the record and the key; training stops
before any epoch naming them; ``skip_broken`` leaves the damage out with a count and a list; the
split refuses an image shared by two groups.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kbaselines.core.cv.splits import LeakageError, check_no_leakage, make_splits
from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.reader import PoseFormatError

FILE_2D = "annotations/1-1_2d.json"
FILE_3D = "annotations/1-1_3d.json"

#: What a damage returns: the problem's file, its record (None: the whole file) and its reason.
Expected = tuple[str, str | None, str]


@pytest.fixture()
def root(pose_root: Path, tmp_path: Path) -> Path:
    """A private copy of the session's synthetic dataset, to damage."""
    return Path(shutil.copytree(pose_root, tmp_path / "pose", symlinks=True))


def _edit(root: Path, name: str, change: Callable[[dict], object]) -> None:
    path = root / name
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _image(root: Path, index: int = 0, name: str = FILE_2D) -> str:
    """The root-relative path of ``images[index]`` of a 2D file."""
    record = json.loads((root / name).read_text())["images"][index]
    return f"images/{record['img_path'].lstrip('/')}"


def _labelled_joint(annotation: dict) -> int:
    """The position in ``keypoints`` of the first labelled joint's x."""
    flags = annotation["keypoints"][2::3]
    return 3 * next(k for k, v in enumerate(flags) if v > 0)


def missing_img_no(root: Path) -> Expected:
    _edit(root, FILE_2D, lambda d: d["annotations"][0].pop("img_no"))
    return FILE_2D, "annotations[0]", r"key 'img_no' is missing"


def string_width(root: Path) -> Expected:
    _edit(root, FILE_2D, lambda d: d["images"][0].update(width="192"))
    return FILE_2D, "images[0]", r"key 'width': .*valid integer \(got '192'\)"


def malformed_json(root: Path) -> Expected:
    (root / FILE_2D).write_text('{"images": [{"img_no": 1,')
    return FILE_2D, None, r"cannot be read as JSON"


def broken_3d_record(root: Path) -> Expected:
    _edit(root, FILE_3D, lambda d: d["annotations"][1]["keypoints"].pop())
    return FILE_3D, "annotations[1]", r"key 'keypoints': .*has 95 values; expected 96"


def truncated_image(root: Path) -> Expected:
    path = root / _image(root)
    path.write_bytes(path.read_bytes()[:600])
    return _image(root), None, rf"cannot be decoded.*img_no \d+, images\[0\] of {FILE_2D}"


def empty_image(root: Path) -> Expected:
    (root / _image(root)).write_bytes(b"")
    return _image(root), None, r"is empty \(0 bytes\)"


def png_named_jpg(root: Path) -> Expected:
    path = root / _image(root)
    Image.open(path).save(path, format="PNG")
    return _image(root), None, r"is a PNG file named \.jpg"


def missing_image(root: Path) -> Expected:
    (root / _image(root)).unlink()
    return _image(root), None, r"is missing: restore the file"


def keypoint_outside(root: Path) -> Expected:
    def change(document: dict) -> None:
        annotation = document["annotations"][0]
        annotation["keypoints"][_labelled_joint(annotation)] = 500

    _edit(root, FILE_2D, change)
    return (
        FILE_2D,
        "annotations[0]",
        r"key 'keypoints': labelled joints outside the 192x144 image .*: \w+ \(500, ",
    )


def box_outside(root: Path) -> Expected:
    _edit(root, FILE_2D, lambda d: d["annotations"][0].update(bbox=[300, 200, 400, 260]))
    return FILE_2D, "annotations[0]", r"key 'bbox': .* lies outside the 192x144 image"


def size_disagrees(root: Path) -> Expected:
    _edit(root, FILE_2D, lambda d: d["images"][0].update(width=1920, height=1080))
    return FILE_2D, "images[0]", r"keys 'width', 'height': 1920x1080, but images/.* is 192x144"


def no_image_record(root: Path) -> Expected:
    _edit(root, FILE_2D, lambda d: d["annotations"][0].update(img_no=99999))
    return FILE_2D, "annotations[0]", r"img_no 99999, which no image record of the file has"


#: Damage that makes records or images unusable: reported by the check, and training stops.
UNUSABLE = [
    missing_img_no,
    string_width,
    malformed_json,
    broken_3d_record,
    truncated_image,
    empty_image,
    png_named_jpg,
    missing_image,
    keypoint_outside,
    box_outside,
    size_disagrees,
    no_image_record,
]


def _matches(problems: list, expected: Expected) -> bool:
    file, record, reason = expected
    return any(
        p.file == file and p.record == record and re.search(reason, p.reason) for p in problems
    )


@pytest.mark.parametrize("damage", UNUSABLE, ids=lambda d: d.__name__)
def test_the_check_names_file_record_and_key(root: Path, damage: Callable) -> None:
    expected = damage(root)
    report = PoseDataModule(root=str(root)).check(workers=2)
    assert _matches(report.problems, expected), report.render()


@pytest.mark.parametrize("damage", UNUSABLE, ids=lambda d: d.__name__)
def test_training_stops_before_any_epoch_naming_them(root: Path, damage: Callable) -> None:
    file, record, _ = damage(root)
    with pytest.raises(PoseFormatError) as caught:
        PoseDataModule(root=str(root)).sample_table()
    where = file if record is None else f"{file} [{record}]"
    assert where in str(caught.value) and "data.skip_broken=true" in str(caught.value)


def test_several_problems_of_one_file_are_all_reported(root: Path) -> None:
    def change(document: dict) -> None:
        annotations = document["annotations"]
        del annotations[0]["img_no"]
        annotations[2]["keypoints"][4] = "12"
        annotations[3]["bbox"] = [1, 2, 3]
        del document["images"][1]["img_path"]

    _edit(root, FILE_2D, change)
    report = PoseDataModule(root=str(root)).check(workers=2)
    found = {(p.record, p.reason) for p in report.problems if p.file == FILE_2D}
    assert ("annotations[0]", "key 'img_no' is missing") in found
    assert ("images[1]", "key 'img_path' is missing") in found
    assert any(
        r == "annotations[2]" and "'keypoints.4'" in why and "'12'" in why for r, why in found
    )
    assert any(r == "annotations[3]" and "has 3 values; expected 4" in why for r, why in found)


def test_every_broken_camera_is_reported(root: Path) -> None:
    def change(cameras: dict) -> None:
        del cameras["Camera 1"]["K"]
        cameras["Camera 3"]["R"] = cameras["Camera 3"]["R"][:2]

    _edit(root, "cameras.json", change)
    report = PoseDataModule(root=str(root)).check(workers=2)
    found = {(p.record, p.reason) for p in report.problems if p.file == "cameras.json"}
    assert ("camera 'Camera 1'", "key 'K' is missing") in found
    assert any(r == "camera 'Camera 3'" and "has 2 values; expected 3" in w for r, w in found)


def test_skip_broken_leaves_an_unreadable_image_out_with_count_and_list(
    pose_root: Path, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = _image(root)
    (root / image).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    document = json.loads((root / FILE_2D).read_text())
    img_no = document["images"][0]["img_no"]
    on_it = sum(a["img_no"] == img_no for a in document["annotations"])
    with caplog.at_level(logging.WARNING, logger="kbaselines.pose.datamodule"):
        table = PoseDataModule(root=str(root), skip_broken=True).sample_table()
    intact = PoseDataModule(root=str(pose_root)).sample_table()
    assert set(intact.ids) - set(table.ids) == {
        i for i in intact.ids if i.startswith(f"{img_no:010d}-")
    }
    assert len(intact.ids) - len(table.ids) == on_it > 0
    assert f"Left out (data.skip_broken=true): {on_it} annotated people; 1 unreadable images" in (
        caplog.text
    )
    assert f"\n  {image}" in caplog.text and "cannot be decoded" in caplog.text


def _link_across_groups(root: Path) -> tuple[str, str]:
    """Make an image of recording 2-2 a link to one of recording 1-1; both paths."""
    source, target = _image(root), _image(root, name="annotations/2-2_2d.json")
    (root / target).unlink()
    os.symlink(os.path.relpath(root / source, (root / target).parent), root / target)
    return source, target


def test_one_image_linked_into_two_groups_is_reported_and_refused_by_the_split(
    root: Path,
) -> None:
    source, target = _link_across_groups(root)
    datamodule = PoseDataModule(root=str(root))
    report = datamodule.check(workers=2)
    problems = [p for p in report.problems if p.file == target]
    assert len(problems) == 1, report.render()
    assert f"is the same file as {source}" in problems[0].reason
    assert "studio_S1/20260101/1-1 and studio_S1/20260101/2-2" in problems[0].reason
    table = datamodule.sample_table()  # the link is readable: training may start, the split may not
    with pytest.raises(LeakageError, match=rf"{re.escape(source)} \(\w+\) and {re.escape(target)}"):
        check_no_leakage(make_splits(table, "kfold", num_folds=6), table)


def test_one_image_under_two_records_is_reported(root: Path) -> None:
    def change(document: dict) -> None:
        document["images"][1]["img_path"] = document["images"][0]["img_path"]

    _edit(root, FILE_2D, change)
    report = PoseDataModule(root=str(root)).check(workers=2)
    assert any(
        p.file == FILE_2D
        and p.record == "images[1]"
        and re.search(rf"is also the img_path of images\[0\] of {FILE_2D} \(img_no \d+\)", p.reason)
        for p in report.problems
    ), report.render()


def test_a_byte_identical_copy_in_another_group_is_reported(root: Path) -> None:
    source, target = _image(root), _image(root, name="annotations/2-2_2d.json")
    shutil.copyfile(root / source, root / target)
    report = PoseDataModule(root=str(root)).check(workers=2)
    assert any(
        p.file == target and f"is byte-identical to {source} in another group" in p.reason
        for p in report.problems
    ), report.render()


def test_empty_folders_and_dangling_links_are_reported(root: Path) -> None:
    (root / "images" / "studio_S1" / "empty").mkdir()
    os.symlink("gone.jpg", root / "images" / "stray.jpg")
    reasons = {p.file: p.reason for p in PoseDataModule(root=str(root)).check().problems}
    assert reasons["images/studio_S1/empty"].startswith("is an empty folder")
    assert reasons["images/stray.jpg"].startswith("is a dangling link")


def test_an_image_damaged_after_a_cached_run_is_found(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert PoseDataModule(root=str(root), cache_dir=str(cache)).check(workers=2).ok
    assert list(cache.glob("pose_files_*.npz"))
    path = root / _image(root)
    path.write_bytes(path.read_bytes()[:600])  # damaged in place
    report = PoseDataModule(root=str(root), cache_dir=str(cache)).check(workers=2)
    assert [p.file for p in report.problems] == [_image(root)]
    assert report.counts["unreadable image files"] == 1
    assert report.counts["image files opened"] == 72  # 6 recordings x 3 instants x 4 cameras
