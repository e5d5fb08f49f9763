"""The K-Face DataModule with a split from the CV layer, its report, and check_dataset.py."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from kface_helpers import ALL, PEOPLE, small_tree
from omegaconf import OmegaConf

from kbaselines.core.config import PROJECT_ROOT
from kbaselines.kface.datamodule import KFaceDataModule
from kbaselines.kface.reader import KFaceFormatError, KFaceSelectionError
from kbaselines.kface.synthetic import MARKER, generate_kface


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 people x S001, S002 x L1, L2 x E01 x C6, C7: 8 images each."""
    return small_tree(tmp_path_factory.mktemp("dm") / "kface")


def _module(root: Path, split=None, **kwargs) -> KFaceDataModule:
    settings = {**ALL, "input_size": (16, 16), "batch_size": 4, "split": split, **kwargs}
    return KFaceDataModule(root=str(root), **settings)


def _split(root: Path) -> dict[str, list[str]]:
    """A fold as the CV layer gives it: 3 training people, 1 validation, 2 test."""
    table = _module(root).sample_table()

    def of(people: list[str]) -> list[str]:
        return [i for i, g in zip(table.ids, table.groups, strict=True) if g in people]

    return {"train": of(PEOPLE[:3]), "val": of(PEOPLE[3:4]), "test": of(PEOPLE[4:])}


def test_sample_table_is_sorted_and_grouped_by_person(root: Path) -> None:
    table = _module(root).sample_table()
    assert table.ids == sorted(table.ids) and len(table.ids) == 6 * 8
    assert table.groups == [i.split("/")[0] for i in table.ids]
    assert table.labels is None


def test_sample_table_follows_the_selection_and_the_keys(root: Path) -> None:
    table = _module(root, cameras=["C7"], lights="L1", stratify_key="session").sample_table()
    assert len(table.ids) == 6 * 2 and all(i.endswith("/L1/E01/C7.jpg") for i in table.ids)
    assert table.labels == [i.split("/")[1] for i in table.ids]
    by_camera = _module(root, group_key="camera").sample_table()
    assert set(by_camera.groups) == {"C6", "C7"}
    with pytest.raises(ValueError, match=r"data\.group_key='face'"):
        _module(root, group_key="face")


def test_setup_builds_the_fold(root: Path) -> None:
    module = _module(root, _split(root))
    with pytest.raises(RuntimeError, match="after setup"):
        module.info  # noqa: B018
    module.setup("fit")
    assert module.info.num_classes == 3 and list(module.info.class_names) == PEOPLE[:3]
    train = module.datasets["train"]
    assert sorted(set(train.labels)) == [0, 1, 2] and train.gallery is None
    assert [train.labels[k] for k in range(0, 24, 8)] == [0, 1, 2]
    test = module.datasets["test"]
    assert sorted(set(test.labels)) == [0, 1], "evaluation sets label their own people"
    gallery = [r.path for r, g in zip(test.records, test.gallery, strict=True) if g]
    assert gallery == [f"{p}/S001/L1/E01/C7.jpg" for p in PEOPLE[4:]]
    assert module.datasets["val"].gallery.count(True) == 1
    assert module.eval_records("test") == test.records
    assert [r.path for r in module.eval_records("val")] == _split(root)["val"]


def test_setup_is_done_once(root: Path) -> None:
    module = _module(root, _split(root))
    module.setup("fit")
    datasets = dict(module.datasets)
    module.setup("test")
    assert module.datasets == datasets


def test_batches(root: Path) -> None:
    module = _module(root, _split(root))
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 1, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and "gallery" not in batch
    batch = next(iter(module.test_dataloader()))
    assert batch["image"].shape == (4, 1, 16, 16)
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert batch["gallery"].dtype == torch.bool and batch["index"].tolist() == [0, 1, 2, 3]
    assert len(module.train_dataloader().dataset) == 24 and module.val_dataloader() is not None


def test_rgb_and_eval_batch_size(root: Path) -> None:
    module = _module(root, _split(root), in_chans=3, eval_batch_size=8, augment=False)
    module.setup("fit")
    assert next(iter(module.test_dataloader()))["image"].shape == (8, 3, 16, 16)
    assert not module.datasets["train"].train, "augment=false uses the evaluation transform"


def test_batch_size_is_per_process(root: Path) -> None:
    module = _module(root, _split(root), batch_size=8)
    module.setup("fit")
    module.trainer = SimpleNamespace(world_size=2)
    assert module.train_dataloader().batch_size == 4
    module.trainer = SimpleNamespace(world_size=3)
    with pytest.raises(RuntimeError, match="not divisible by the number of processes"):
        module.train_dataloader()


@pytest.mark.parametrize("workers", [0, 2])
def test_same_seed_same_first_batch(root: Path, workers: int) -> None:
    def first(seed: int) -> dict:
        module = _module(root, _split(root), seed=seed, num_workers=workers)
        module.setup("fit")
        return next(iter(module.train_dataloader()))

    one, two, other = first(3), first(3), first(4)
    assert torch.equal(one["image"], two["image"]) and torch.equal(one["label"], two["label"])
    assert not torch.equal(one["image"], other["image"])


def test_without_split_every_image_is_a_test_image(root: Path) -> None:
    module = _module(root)
    module.setup("test")
    assert len(module.datasets["test"]) == 48 and module.info.num_classes == 0
    assert sum(module.datasets["test"].gallery) == 6
    with pytest.raises(RuntimeError, match=r"no split \(split=None\).*train\.py"):
        module.train_dataloader()


def test_missing_gallery_image_names_the_person_and_the_fix(root: Path) -> None:
    with pytest.raises(KFaceSelectionError) as caught:
        _module(root, _split(root), gallery_camera="C8").setup("fit")
    message = str(caught.value)
    assert "19062003/S001/L1/E01/C8.jpg" in message
    assert "must include session S001, light L1, expression E01 and camera C8" in message
    with pytest.raises(KFaceSelectionError, match="person 19062003 of the val set"):
        split = {k: [i for i in v if "/L2/" in i] for k, v in _split(root).items()}
        _module(root, split, lights=["L2"]).setup("fit")


def test_a_split_from_other_settings_is_refused(root: Path) -> None:
    split = _split(root)
    with pytest.raises(KFaceSelectionError, match="made for other data settings"):
        _module(root, split, cameras=["C7"]).setup("fit")
    with pytest.raises(ValueError, match="two parts"):
        _module(root, {**split, "val": split["test"][:1]}).setup("fit")
    with pytest.raises(ValueError, match="expected train, val, test"):
        _module(root, {**split, "holdout": []})


def test_missing_root_names_the_setting_and_the_twin() -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.root=<path>.*data=kface_synthetic"):
        KFaceDataModule(root=None).prepare_data()


def test_prepare_data_generates_and_indexes(tmp_path: Path) -> None:
    arguments = {"num_people": 2, "sessions": ["S001"], "lights": ["L1"], "image_size": 24}
    module = KFaceDataModule(
        root=str(tmp_path / "kface"), cache_dir=str(tmp_path / "cache"), synthetic=arguments
    )
    module.prepare_data()
    assert (tmp_path / "kface" / MARKER).is_file()
    assert len(list((tmp_path / "cache").glob("kface_index_*.npz"))) == 1
    assert [r.path for r in module.selected()] == [
        "19062000/S001/L1/E01/C7.jpg",
        "19062001/S001/L1/E01/C7.jpg",
    ]


@pytest.fixture
def broken(root: Path, tmp_path: Path) -> Path:
    """The tree with a malformed box on a C6 image and a malformed person folder."""
    tree = tmp_path / "broken"
    shutil.copytree(root, tree)
    (tree / "19062000/S001/L1/E01/C6.txt").write_text("1 2 three 4")
    shutil.copytree(tree / "19062005", tree / "1906200X")
    return tree


def test_broken_files_stop_the_run_unless_skipped(broken: Path) -> None:
    with pytest.raises(KFaceFormatError) as caught:
        _module(broken).selected()
    message = str(caught.value)
    assert "19062000/S001/L1/E01/C6.txt [line 1]: face box '1 2 three 4'" in message
    assert "1906200X/S001/L1/E01/C7.jpg: person '1906200X'" in message
    assert "data.skip_broken=true" in message and "check_dataset.py" in message
    kept = _module(broken, skip_broken=True).selected()
    assert len(kept) == 47 and "19062000/S001/L1/E01/C6.jpg" not in {r.path for r in kept}


def test_a_broken_box_outside_the_selection_does_not_stop_the_run(
    root: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(root, tree)
    (tree / "19062000/S001/L1/E01/C6.txt").write_text("1 2 three 4")
    assert len(_module(tree, cameras=["C7"]).selected()) == 24


def test_check_reports_counts(root: Path) -> None:
    report = _module(root, cameras=["C7"]).check()
    assert report.ok and report.dataset == "K-Face" and report.root == str(root)
    assert report.counts["people"] == 6 and report.counts["images"] == 48
    assert report.counts["images per session"] == {"S001": 24, "S002": 24}
    assert report.counts["images per light"] == {"L1": 24, "L2": 24}
    assert report.counts["images per expression"] == {"E01": 48}
    assert report.counts["images per camera"] == {"C6": 24, "C7": 24}
    assert report.counts["boxes"] == {"present": 48, "missing": 0}
    assert report.counts["selected"] == {"images": 24, "people": 6, "opened": 24, "damaged": 0}
    text = report.render()
    assert "images per camera:" in text and "problems: none" in text


def test_check_reports_problems_and_an_empty_selection(broken: Path) -> None:
    report = _module(broken, cameras=["C9"]).check()
    assert not report.ok
    files = [p.file for p in report.problems]
    assert "19062000/S001/L1/E01/C6.txt" in files
    assert sum(f.startswith("1906200X/") for f in files) == 8
    assert report.problems[-1].file == str(broken)
    assert "no image left after cameras=[C9]" in report.problems[-1].reason
    assert "19062000/S001/L1/E01/C6.txt [line 1]: face box '1 2 three 4'" in report.render()


def test_config_defaults_agree_with_the_class() -> None:
    config = OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "configs/data/kface.yaml"))
    assert config.pop("defaults") == [{"parts": "default"}, "_self_"]  # data.parts, shared
    parameters = inspect.signature(KFaceDataModule).parameters
    assert set(config) - {"_target_"} == set(parameters) - {"split", "synthetic", "parts"}
    assert config["cache_dir"] == "${paths.cache_dir}" and config["seed"] == "${seed}"
    for name, value in config.items():
        if name in ("_target_", "cache_dir", "seed"):  # interpolated from paths and the run seed
            continue
        default = parameters[name].default
        assert value == (list(default) if isinstance(default, tuple) else default), name
    synthetic = OmegaConf.load(PROJECT_ROOT / "configs/data/kface_synthetic.yaml")
    assert set(synthetic.synthetic) == set(inspect.signature(generate_kface).parameters) - {"root"}


def _check_dataset(tree: Path, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts/check_dataset.py"),
            "data=kface",
            f"data.root={tree}",
            "data.sessions=all",
            "data.lights=all",
            "data.expressions=all",
            "data.cameras=all",
            f"data.cache_dir={cwd / 'cache'}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.cli
def test_check_dataset_command(root: Path, tmp_path: Path) -> None:
    result = _check_dataset(root, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "people:" in result.stdout and "problems: none" in result.stdout
    report = json.loads((tmp_path / "dataset_report.json").read_text())
    assert report["ok"] is True and report["counts"]["images"] == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "dataset_report.json"], (
        "writes nothing but the report (and the index cache it was told to use)"
    )


@pytest.mark.cli
def test_check_dataset_command_fails_on_a_broken_tree(broken: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "out" / "report.json"
    result = _check_dataset(broken, tmp_path, f"report_path={report_path}")
    assert result.returncode == 1, result.stderr
    report = json.loads(report_path.read_text())
    assert report["ok"] is False
    assert {
        "file": "19062000/S001/L1/E01/C6.txt",
        "reason": report["problems"][0]["reason"],
        "record": "line 1",
    } in report["problems"]
    assert "19062000/S001/L1/E01/C6.txt [line 1]: face box '1 2 three 4'" in result.stdout
