"""Mammography delivered in its official parts: each part indexed as a whole tree (its DICOM
headers cached apart), case ids prefixed with the part, the official split and its overlap
report, and the check of both parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from parts_helpers import TRAINING, VALIDATION, official_overlap, two_parts

from kbaselines.core.cv.splits import make_splits
from kbaselines.mammo.datamodule import MammoDataModule
from kbaselines.mammo.synthetic import generate_mammo

#: 6 cases (2 per class; cases 5 and 4 share a patient) of 64x52 views.
SMALL = {"num_cases": 6, "rows": 64, "columns": 52}


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same six cases (five patients) in both parts."""
    root = tmp_path_factory.mktemp("mammo_parts") / "delivery"
    return two_parts(root, generate_mammo, SMALL, SMALL)


@pytest.fixture(scope="module")
def disjoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cases and patients of the validation part numbered after the training part's."""
    root = tmp_path_factory.mktemp("mammo_parts") / "disjoint"
    return two_parts(root, generate_mammo, SMALL, {**SMALL, "first_case": 6})


def _module(root: Path, cache: Path, **settings) -> MammoDataModule:
    return MammoDataModule(
        root=str(root),
        cache_dir=str(cache),
        cache_size=(64, 52),
        image_size=(64, 52),
        patch_size=32,
        patch_input_size=32,
        stage1_epochs=1,
        batch_size=2,
        **settings,
    )


def test_each_part_is_indexed_as_a_tree(disjoint: Path, tmp_path: Path) -> None:
    table = _module(disjoint, tmp_path).sample_table()
    assert table.ids == [f"{TRAINING}/{100001 + i}" for i in range(6)] + [
        f"{VALIDATION}/{100007 + i}" for i in range(6)
    ]
    assert table.parts == ["train"] * 6 + ["test"] * 6
    assert table.files[0][0].startswith(f"{TRAINING}/images/100001/")
    headers = sorted(p.name for p in tmp_path.glob("mammo_*/dicom_headers*.json"))
    assert headers == [f"dicom_headers.{TRAINING}.json", f"dicom_headers.{VALIDATION}.json"]
    alone = _module(disjoint / TRAINING, tmp_path).sample_table()
    assert alone.parts is None and alone.ids[0] == "100001"  # a tree without parts, as before


def test_official_split_reports_the_patients_in_both_parts(
    overlapping: Path, tmp_path: Path
) -> None:
    overlap = official_overlap(_module(overlapping, tmp_path).sample_table(), val_fraction=0.5)
    assert overlap["groups"] == 5 and overlap["test_samples"] == 6


def test_official_split_of_disjoint_parts(disjoint: Path, tmp_path: Path) -> None:
    overlap = official_overlap(_module(disjoint, tmp_path).sample_table(), val_fraction=0.5)
    assert overlap["groups"] == 0 and overlap["identical_files"] == 0


def test_the_fold_reads_the_views_of_both_parts(disjoint: Path, tmp_path: Path) -> None:
    table = _module(disjoint, tmp_path).sample_table()
    fold = make_splits(table, scheme="official", val_fraction=0.5).folds[0]
    module = _module(disjoint, tmp_path, split=fold.as_split())
    module.setup("fit")
    tested = [item for item in module.eval_records("test") if item.part == 1]
    assert sorted({item.case_id for item in tested}) == fold.test
    assert all(Path(item.path).is_file() for item in tested)
    assert module.datasets["test"][0]["image"].shape[-2:] == (64, 52)


def test_check_covers_both_parts(disjoint: Path, tmp_path: Path) -> None:
    report = _module(disjoint, tmp_path).check()
    assert report.counts["cases per part"] == {TRAINING: 6, VALIDATION: 6}
    assert report.counts["DICOM files read and decoded"] == 48 and report.ok
