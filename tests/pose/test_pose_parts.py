"""Pose delivered in its official parts: each part's files and cameras read as a whole dataset,
ids and image paths prefixed with the part, the official split and its overlap report, the check
of both parts, and two parts numbering their images alike reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from parts_helpers import TRAINING, VALIDATION, official_overlap, two_parts

from kbaselines.core.cv.splits import make_splits
from kbaselines.pose.datamodule import PoseDataModule
from kbaselines.pose.reader import PoseFormatError
from kbaselines.pose.synthetic import generate_pose

#: 3 recordings of 2 instants filmed by 2 cameras; the validation part goes on with recordings 3-5.
SMALL = {"num_recordings": 3, "frames_per_recording": 2, "num_cameras": 2, "seed": 1}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pose_parts") / "delivery"
    return two_parts(root, generate_pose, SMALL, {**SMALL, "first_recording": 3})


def _module(root: Path, **settings) -> PoseDataModule:
    return PoseDataModule(root=str(root), input_size=(64, 64), **settings)


def test_each_part_is_read_as_a_dataset(delivery: Path) -> None:
    module = _module(delivery)
    table = module.sample_table()
    expected = []
    for part in (TRAINING, VALIDATION):
        alone = _module(delivery / part).sample_table()
        assert alone.parts is None and "/" not in alone.ids[0]  # no parts: ids as before
        expected += [f"{part}/{i}" for i in alone.ids]
    assert table.ids == sorted(expected)
    assert table.parts == ["train" if i.startswith(TRAINING) else "test" for i in table.ids]
    assert module.image_root == delivery
    assert table.files[0][0].startswith(f"{TRAINING}/images/studio_S1/")
    assert len(module.cameras) == 2 and len(module.poses_3d) == 12  # both parts' instants


def test_official_split_by_recording_and_by_action(delivery: Path) -> None:
    overlap = official_overlap(_module(delivery).sample_table(), val_fraction=0.34)
    assert overlap["groups"] == 0 and overlap["identical_files"] == 0  # other recordings
    # grouped by action, the parts share one: recordings 0 and 5 both stand
    by_action = _module(delivery, group_key="action").sample_table()
    overlap = official_overlap(by_action, val_fraction=0.5)
    assert overlap["groups"] == 1 and overlap["examples"] == ["standing"]
    standing = [i for i, g in zip(by_action.ids, by_action.groups, strict=True) if g == "standing"]
    assert overlap["test_samples"] == sum(i.startswith(VALIDATION) for i in standing) > 0


def test_the_fold_reads_the_images_of_both_parts(delivery: Path) -> None:
    table = _module(delivery).sample_table()
    fold = make_splits(table, scheme="official", val_fraction=0.34).folds[0]
    module = _module(delivery, split=fold.as_split())
    module.setup("fit")
    _, image = module.eval_records("test")[0]
    assert image.path.startswith(f"{VALIDATION}/images/")
    assert (module.image_root / image.path).is_file()
    assert tuple(module.datasets["test"][0]["image"].shape) == (3, 64, 64)


def test_check_covers_both_parts(delivery: Path) -> None:
    report = _module(delivery).check()
    people = report.counts["people per part"]
    assert set(people) == {TRAINING, VALIDATION} and min(people.values()) > 0
    assert report.ok and report.counts["recordings"] == 6


def test_parts_numbering_their_images_alike_are_reported(tmp_path: Path) -> None:
    root = two_parts(tmp_path, generate_pose, SMALL, SMALL)
    with pytest.raises(PoseFormatError) as error:
        _module(root).sample_table()
    message = str(error.value)
    assert f"{VALIDATION}/annotations/" in message and "give every image its own img_no" in message
