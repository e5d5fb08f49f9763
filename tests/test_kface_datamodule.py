"""The K-Face DataModule with a split from the CV layer, and the check_dataset command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kbaselines.data.kface.datamodule import KFaceDataModule
from kbaselines.data.kface.reader import KFaceFormatError
from kbaselines.data.kface.synthetic import generate_kface

FACETS = {"sessions": "all", "lights": "all", "expressions": "all", "cameras": "all"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_kface(
        tmp_path_factory.mktemp("dm") / "kface",
        num_people=6,
        sessions=["S001", "S002"],
        lights=["L1", "L2"],
        expressions=["E01"],
        cameras=["C6", "C7"],
        image_size=32,
    )


def _module(root: Path, split=None, **kwargs) -> KFaceDataModule:
    settings = {
        **FACETS,
        "input_size": 16,
        "batch_size": 4,
        "cache_dir": None,
        "split": split,
        **kwargs,
    }
    return KFaceDataModule(root=str(root), **settings)


def _split(root: Path) -> dict[str, list[str]]:
    table = _module(root).sample_table()

    def by_person(people):
        return [i for i, g in zip(table.ids, table.groups, strict=True) if g in people]

    return {
        "train": by_person({"19062000", "19062001", "19062002"}),
        "val": by_person({"19062003"}),
        "test": by_person({"19062004", "19062005"}),
    }


def test_sample_table_groups_by_person(root: Path) -> None:
    table = _module(root).sample_table()
    assert table.ids == sorted(table.ids) and len(table.ids) == 6 * 8
    assert all(i.startswith(g + "/") for i, g in zip(table.ids, table.groups, strict=True))
    assert table.labels is None


def test_setup_builds_the_fold(root: Path) -> None:
    module = _module(root, _split(root))
    module.setup("fit")
    assert module.num_classes == 3
    assert sorted(set(module.datasets["train"].labels)) == [0, 1, 2]
    test = module.datasets["test"]
    assert sorted(set(test.labels)) == [0, 1]
    gallery = [r for r, g in zip(test.records, test.gallery, strict=True) if g]
    assert [r.path for r in gallery] == [
        "19062004/S001/L1/E01/C7.jpg",
        "19062005/S001/L1/E01/C7.jpg",
    ]
    batch = next(iter(module.test_dataloader()))
    assert batch["image"].shape == (4, 1, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert batch["gallery"].dtype == torch.bool


def test_same_seed_same_first_batch(root: Path) -> None:
    batches = []
    for _ in range(2):
        module = _module(root, _split(root), seed=3)
        module.setup("fit")
        batches.append(next(iter(module.train_dataloader())))
    assert torch.equal(batches[0]["image"], batches[1]["image"])
    assert torch.equal(batches[0]["label"], batches[1]["label"])


def test_missing_gallery_image_is_a_clear_error(root: Path) -> None:
    split = _split(root)
    module = _module(root, split, gallery_camera="C8")
    with pytest.raises(KFaceFormatError, match="gallery_camera"):
        module.setup("test")


def test_missing_root_names_the_setting_and_the_twin() -> None:
    with pytest.raises(FileNotFoundError, match="data=kface_synthetic"):
        KFaceDataModule(root=None).prepare_data()


def test_check_report_counts(root: Path) -> None:
    report = _module(root).check()
    assert report.ok
    assert report.counts["people"] == 6 and report.counts["images"] == 48
    assert report.counts["images per camera"] == {"C6": 24, "C7": 24}
    assert report.counts["boxes present"] == 48


@pytest.mark.cli
def test_check_dataset_command(root: Path, tmp_path: Path, run_entry_point) -> None:
    report_path = tmp_path / "report.json"
    result = run_entry_point(
        "scripts/check_dataset.py",
        "data=kface",
        f"data.root={root}",
        f"report_path={report_path}",
        "data.cache_dir=null",
    )
    assert "people: 6" in result.stdout
    assert json.loads(report_path.read_text())["ok"] is True


@pytest.mark.cli
def test_check_dataset_command_fails_on_a_broken_tree(root: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from kbaselines.config import PROJECT_ROOT

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    (broken / "19062000/S001/L1/E01/C7.txt").write_text("1 2 three 4")
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts/check_dataset.py"),
            "data=kface",
            f"data.root={broken}",
            f"report_path={report_path}",
            "data.cache_dir=null",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(report_path.read_text())
    assert report["problems"] == [
        {
            "file": "19062000/S001/L1/E01/C7.jpg",
            "reason": report["problems"][0]["reason"],
            "record": None,
        }
    ]
    assert "1 2 three 4" in result.stdout
