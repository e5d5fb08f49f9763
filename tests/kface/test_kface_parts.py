"""K-Face delivered in its official parts: each part read as a whole tree with its own cached
index, ids prefixed with the part, the official split, the overlap report, the dataset check of
both parts, and train.py cv=official end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from parts_helpers import TRAINING, VALIDATION, official_overlap, two_parts

from kbaselines.core.cv.splits import make_splits
from kbaselines.kface.datamodule import KFaceDataModule
from kbaselines.kface.index import cache_file
from kbaselines.kface.synthetic import generate_kface

#: 8 training people, 2 images each (S001, S002) of 16 px.
SMALL = {
    "num_people": 8,
    "sessions": ["S001", "S002"],
    "lights": ["L1"],
    "expressions": ["E01"],
    "cameras": ["C7"],
    "image_size": 16,
}
ALL = {"sessions": "all", "lights": "all", "expressions": "all", "cameras": "all"}


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Validation people 19062004-09: four of them (04-07) are training people too, their images
    byte-identical (the generator draws a person alike in every tree)."""
    root = two_parts(
        tmp_path_factory.mktemp("kface_parts") / "delivery",
        generate_kface,
        SMALL,
        {**SMALL, "num_people": 10},
    )
    for person in range(4):
        shutil.rmtree(root / VALIDATION / f"1906200{person}")
    return root


@pytest.fixture(scope="module")
def disjoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Validation people 19062008-13 (drawn with another seed), none of them a training person."""
    root = two_parts(
        tmp_path_factory.mktemp("kface_parts") / "disjoint",
        generate_kface,
        SMALL,
        {**SMALL, "num_people": 6, "seed": 1},
    )
    _renumber(root / VALIDATION, 8)
    return root


def _renumber(tree: Path, offset: int) -> None:
    """Give every person of ``tree`` the number ``offset`` higher (a delivery split by person)."""
    for folder in sorted(tree.glob("1906*"), reverse=True):
        folder.rename(tree / f"{int(folder.name) + offset:08d}")


def _module(root: Path, **settings) -> KFaceDataModule:
    return KFaceDataModule(root=str(root), **ALL, input_size=(16, 16), batch_size=4, **settings)


def test_each_part_is_read_as_a_tree(overlapping: Path, tmp_path: Path) -> None:
    module = _module(overlapping, cache_dir=str(tmp_path))
    table = module.sample_table()
    expected = []
    for part in (TRAINING, VALIDATION):
        alone = _module(overlapping / part).sample_table()
        expected += [f"{part}/{i}" for i in alone.ids]
    assert table.ids == sorted(expected) and len(table.ids) == 16 + 12
    assert table.parts == ["train"] * 16 + ["test"] * 12
    assert table.groups[0] == "19062000" and table.files[0] == (table.ids[0],)
    # one cached index per part (a part's tree is indexed as any tree)
    for part in (TRAINING, VALIDATION):
        assert cache_file(overlapping / part, tmp_path).is_file()


def test_a_tree_without_parts_keeps_its_ids(overlapping: Path) -> None:
    table = _module(overlapping / TRAINING).sample_table()
    assert table.parts is None and table.ids[0] == "19062000/S001/L1/E01/C7.jpg"


def test_official_split_reports_the_people_in_both_parts(overlapping: Path) -> None:
    overlap = official_overlap(_module(overlapping).sample_table(), val_fraction=0.25)
    assert overlap["groups"] == 4 and overlap["examples"] == [f"1906200{i}" for i in range(4, 8)]
    assert overlap["test_samples"] == 8
    assert overlap["identical_files"] == 8  # the shared people's images, byte for byte
    assert overlap["identical_examples"][0] == [
        f"{TRAINING}/19062004/S001/L1/E01/C7.jpg",
        f"{VALIDATION}/19062004/S001/L1/E01/C7.jpg",
    ]


def test_official_split_of_disjoint_parts(disjoint: Path) -> None:
    overlap = official_overlap(_module(disjoint).sample_table(), val_fraction=0.25)
    assert overlap["groups"] == 0 and overlap["identical_files"] == 0


def test_the_fold_reads_the_images_of_both_parts(overlapping: Path) -> None:
    table = _module(overlapping).sample_table()
    fold = make_splits(table, scheme="official", val_fraction=0.25).folds[0]
    module = _module(overlapping, split=fold.as_split())
    module.setup("fit")
    assert module.tree == overlapping
    assert len(module.info.class_names) == 6  # the training people left after the val cut
    records = module.eval_records("test")
    assert [r.path for r in records] == fold.test
    assert tuple(module.datasets["test"][0]["image"].shape) == (1, 16, 16)  # read from its part


def test_check_covers_both_parts(tmp_path: Path) -> None:
    root = two_parts(tmp_path, generate_kface, SMALL, {**SMALL, "seed": 1})
    _renumber(root / VALIDATION, 8)
    broken = root / VALIDATION / "19062009" / "S002" / "L1" / "E01" / "C7.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    report = _module(root).check()
    assert report.counts["selected images per part"] == {TRAINING: 16, VALIDATION: 16}
    assert report.counts["people"] == 16
    assert [p.file for p in report.problems] == [f"{VALIDATION}/19062009/S002/L1/E01/C7.jpg"]


@pytest.mark.cli
def test_train_with_the_official_split(overlapping: Path, tmp_path: Path, run_entry_point) -> None:
    run_entry_point(
        "train.py",
        "+experiment=kface_lightcnn9_synthetic",
        "cv=official",
        f"data.root={overlapping}",
        "data.synthetic=null",
        f"paths.data_dir={tmp_path}",
        f"paths.cache_dir={tmp_path}/cache",
        f"paths.log_dir={tmp_path}/logs",
        "run_name=official",
        "data.input_size=[16,16]",
        "data.batch_size=8",
        "cv.val_fraction=0.25",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
    )
    run = tmp_path / "logs" / "kface_lightcnn9_synthetic" / "official"
    summary = json.loads((run / "cv_summary.json").read_text())
    assert summary["scheme"] == "official" and summary["num_folds"] == 1
    assert summary["official_overlap"]["groups"] == 4
    assert summary["official_overlap"]["identical_files"] == 8
    assert 0.0 <= summary["metrics"]["test/roc_auc"]["mean"] <= 1.0
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["folds"][0]["test"]) == 12
    assert all(i.startswith(f"{VALIDATION}/") for i in splits["folds"][0]["test"])
    assert "4 groups (e.g. 19062004" in (run / "cv_summary.md").read_text()
