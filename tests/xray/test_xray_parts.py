"""X-ray baggage delivered in its official parts: each part read as a whole root, paths prefixed
with the part (the scanner still read from the part's path), the official split and its overlap
report, and the check of both parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from parts_helpers import TRAINING, VALIDATION, official_overlap, two_parts

from kbaselines.core.cv.splits import make_splits
from kbaselines.xray.datamodule import XrayDataModule
from kbaselines.xray.synthetic import SCANNERS, VOC_NAMES, generate_xray

#: 2 categories x 3 items x 3 scans of 64 px.
SMALL = {"num_categories": 2, "samples_per_category": 3, "images_per_sample": 3, "image_size": 64}
MAPPING = {v: k for k, v in VOC_NAMES.items()}


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same items, scanned alike, in both parts."""
    root = tmp_path_factory.mktemp("xray_parts") / "delivery"
    return two_parts(root, generate_xray, SMALL, SMALL)


@pytest.fixture(scope="module")
def disjoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Items 1-3 for training, 4-6 for validation."""
    root = tmp_path_factory.mktemp("xray_parts") / "disjoint"
    return two_parts(root, generate_xray, SMALL, {**SMALL, "first_sample": 4})


def _module(root: Path, **settings) -> XrayDataModule:
    return XrayDataModule(root=str(root), category_map=MAPPING, **settings)


def test_each_part_is_read_as_a_root(disjoint: Path, tmp_path: Path) -> None:
    table = _module(disjoint, cache_dir=str(tmp_path)).sample_table()
    expected = []
    for part in (TRAINING, VALIDATION):
        alone = _module(disjoint / part).sample_table()
        assert alone.parts is None and alone.ids[0].split("/")[0] in SCANNERS  # as before
        expected += [f"{part}/{i}" for i in alone.ids]
    assert table.ids == expected and len(table.ids) == 2 * 18
    assert set(table.domains) <= set(SCANNERS)  # the scanner of the part's own path
    assert table.parts == ["train"] * 18 + ["test"] * 18
    assert len(list(tmp_path.glob("xray_files_*.npz"))) == 2  # the image facts, per part


def test_official_split_reports_the_items_in_both_parts(overlapping: Path) -> None:
    overlap = official_overlap(_module(overlapping).sample_table(), val_fraction=0.34)
    assert overlap["groups"] == 6 and overlap["test_samples"] == 18
    assert overlap["identical_files"] == 18  # every scan, byte for byte


def test_official_split_of_disjoint_parts(disjoint: Path) -> None:
    overlap = official_overlap(_module(disjoint).sample_table(), val_fraction=0.34)
    assert overlap["groups"] == 0 and overlap["identical_files"] == 0


def test_the_fold_reads_the_images_of_both_parts(disjoint: Path) -> None:
    table = _module(disjoint).sample_table()
    fold = make_splits(table, scheme="official", val_fraction=0.34).folds[0]
    module = _module(disjoint, split=fold.as_split())
    module.setup("fit")
    assert [i.path for i in module.eval_records("test")] == fold.test
    assert tuple(module.datasets["test"][0]["image"].shape) == (3, 64, 64)
    assert len(module.info.class_names) == 2


def test_check_covers_both_parts(disjoint: Path) -> None:
    report = _module(disjoint).check()
    assert report.counts["images per part"] == {TRAINING: 18, VALIDATION: 18}
    assert report.counts["physical samples"] == 2 * 6 and report.ok
