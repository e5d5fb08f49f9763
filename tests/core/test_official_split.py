"""The official split (cv=official): the delivery's Training part against its Validation part,
its overlap reported rather than refused, the parts found under data.root, the summary and the
results table."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import yaml

from kbaselines.core.config import PROJECT_ROOT, compose_config
from kbaselines.core.cv.splits import (
    Fold,
    LeakageError,
    Splits,
    check_no_leakage,
    load_splits,
    make_splits,
)
from kbaselines.core.cv.summary import summarize_run
from kbaselines.core.data.datamodule import FoldDataModule
from kbaselines.core.data.parts import DEFAULT_PART_NAMES
from kbaselines.core.data.samples import SampleTable

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from results_table import per_category_table, table

sys.path.remove(str(PROJECT_ROOT / "scripts"))


def _table(shared: int = 3, identical: int = 0) -> SampleTable:
    """20 training groups and 8 validation groups of 3 samples each, labelled; the first
    ``shared`` validation groups are also training groups, and the first ``identical`` validation
    samples are byte-identical to a training sample."""
    rows = []
    for g in range(20):
        for i in range(3):
            label = "pos" if g % 4 == 0 else "neg"
            rows.append((f"1.Training/t{g:02d}_{i}", f"g{g:02d}", label, "train", f"d-t{g}-{i}"))
    for g in range(8):
        group = f"g{g:02d}" if g < shared else f"v{g:02d}"
        for i in range(3):
            digest = f"d-t{g}-{i}" if 3 * g + i < identical else f"d-v{g}-{i}"
            rows.append((f"2.Validation/v{g:02d}_{i}", group, "neg", "test", digest))
    rows.sort()
    ids, groups, labels, parts, digests = (list(column) for column in zip(*rows, strict=True))
    return SampleTable(
        ids=ids,
        groups=groups,
        labels=labels,
        files=[(i + ".png",) for i in ids],
        digests=[(d,) for d in digests],
        parts=parts,
    )


def _groups(table: SampleTable, ids: list[str]) -> set[str]:
    group_of = dict(zip(table.ids, table.groups, strict=True))
    return {group_of[i] for i in ids}


def test_tests_the_validation_part_trains_on_the_training_part() -> None:
    table = _table()
    splits = make_splits(table, scheme="official", num_folds=5, seed=0, val_fraction=0.25)
    assert splits.scheme == "official" and splits.num_folds == 1  # num_folds is not used
    (fold,) = splits.folds
    validation = [i for i, p in zip(table.ids, table.parts, strict=True) if p == "test"]
    training = [i for i, p in zip(table.ids, table.parts, strict=True) if p == "train"]
    assert fold.test == validation
    assert sorted(fold.train + fold.val) == training  # the shared groups are kept for training
    train, val = _groups(table, fold.train), _groups(table, fold.val)
    assert not train & val, "the validation cut is group-aware"
    assert len(val) == 5  # a quarter of the 20 training groups
    label_of = dict(zip(table.ids, table.labels, strict=True))
    assert {label_of[i] for i in fold.val} == {"pos", "neg"}, "stratified"


def test_overlap_is_reported_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    table = _table(shared=3, identical=2)
    splits = make_splits(table, scheme="official", seed=0, val_fraction=0.25)
    with caplog.at_level(logging.WARNING):
        overlap = check_no_leakage(splits, table)
    assert overlap == splits.official_overlap
    assert overlap["groups"] == 3 and overlap["examples"] == ["g00", "g01", "g02"]
    assert overlap["test_samples"] == 9
    assert overlap["identical_files"] == 2
    assert overlap["identical_examples"][0] == ["1.Training/t00_0.png", "2.Validation/v00_0.png"]
    assert "3 groups have samples in both the Training and the Validation part" in caplog.text
    assert "2 files of the Validation part are byte-identical" in caplog.text


def test_disjoint_parts_report_nothing(caplog: pytest.LogCaptureFixture) -> None:
    table = _table(shared=0)
    splits = make_splits(table, scheme="official", seed=0, val_fraction=0.25)
    with caplog.at_level(logging.WARNING):
        overlap = check_no_leakage(splits, table)
    assert overlap == {
        "groups": 0,
        "examples": [],
        "test_samples": 0,
        "identical_files": 0,
        "identical_examples": [],
    }
    assert not caplog.text


def test_splits_json_keeps_the_overlap(tmp_path: Path) -> None:
    table = _table()
    splits = make_splits(table, scheme="official", seed=0, val_fraction=0.25)
    splits.to_json(tmp_path / "splits.json")
    assert load_splits(tmp_path / "splits.json") == splits
    assert json.loads((tmp_path / "splits.json").read_text())["official_overlap"]["groups"] == 3
    # a splits.json of another scheme, written before the field existed, still loads alike
    kfold = make_splits(table, scheme="kfold", num_folds=2, seed=0)
    kfold.to_json(tmp_path / "old.json")
    raw = json.loads((tmp_path / "old.json").read_text())
    assert raw.pop("official_overlap") is None
    (tmp_path / "old.json").write_text(json.dumps(raw))
    assert load_splits(tmp_path / "old.json") == kfold


def test_other_sharing_is_still_refused() -> None:
    table = _table(shared=0, identical=0)
    ids = table.ids
    training = [i for i in ids if i.startswith("1.")]
    validation = [i for i in ids if i.startswith("2.")]
    # a group in both train and val of the official fold: refused
    split_group = Fold(0, training[1:], training[:1], validation)
    with pytest.raises(LeakageError, match="in both train and val"):
        check_no_leakage(Splits("official", 1, 0, [split_group]), table)
    # the same sharing of train and test under another scheme: refused
    shared = make_splits(_table(shared=2), scheme="official", seed=0, val_fraction=0.25)
    as_holdout = Splits("holdout", 1, 0, shared.folds)
    with pytest.raises(LeakageError, match="in both train and test"):
        check_no_leakage(as_holdout, _table(shared=2))
    # byte-identical files in train and val of the official fold: refused
    copied = _table(shared=0)
    digests = list(copied.digests)
    digests[3] = digests[0]  # t01_0 is a copy of t00_0 (another group): in train and val
    copied = SampleTable(copied.ids, copied.groups, copied.labels, None, copied.files, digests)
    fold = Fold(0, [ids[0]], [ids[3]], validation)
    with pytest.raises(LeakageError, match="byte-identical"):
        check_no_leakage(Splits("official", 1, 0, [fold]), copied)


def test_settings_the_official_split_cannot_take() -> None:
    table = _table()
    without_parts = SampleTable(table.ids, table.groups, table.labels)
    with pytest.raises(ValueError, match="needs the dataset's official parts"):
        make_splits(without_parts, scheme="official")
    with pytest.raises(ValueError, match=r"set cv\.test_fraction=0"):
        make_splits(table, scheme="official", test_fraction=0.2)
    only_training = SampleTable(table.ids, table.groups, table.labels, parts=["train"] * 84)
    with pytest.raises(ValueError, match="the test part has no usable sample"):
        make_splits(only_training, scheme="official")
    with pytest.raises(ValueError, match="80 ids but 2 parts"):
        SampleTable(table.ids[:80], table.groups[:80], parts=["train", "test"])


class _Data(FoldDataModule):
    def __init__(self, root: Path, parts: dict | None = None) -> None:
        super().__init__(
            root=str(root),
            batch_size=2,
            eval_batch_size=None,
            num_workers=0,
            pin_memory=False,
            persistent_workers=False,
            seed=0,
            split=None,
            synthetic=None,
            parts=parts,
        )


def test_parts_are_found_by_name(tmp_path: Path) -> None:
    (tmp_path / "02_검증데이터").mkdir()
    (tmp_path / "01. Training").mkdir()
    (tmp_path / "metadata").mkdir()
    data = _Data(tmp_path)
    assert data.official_parts() == {
        "train": tmp_path / "01. Training",
        "test": tmp_path / "02_검증데이터",
    }
    assert data.folders() == {
        "01. Training/": tmp_path / "01. Training",
        "02_검증데이터/": tmp_path / "02_검증데이터",
    }
    ids = ["01. Training/a", "01. Training/b", "02_검증데이터/c"]
    assert data.part_labels(ids) == ["train", "train", "test"]
    assert data.part_counts(ids) == {"01. Training": 2, "02_검증데이터": 1}
    # a tree without parts is read as before, ids unprefixed
    plain = _Data(tmp_path / "metadata")
    assert plain.folders() == {"": tmp_path / "metadata"}
    assert plain.part_labels(["a"]) is None and plain.part_counts(["a"]) == {}
    # other names, as data.parts gives them
    (tmp_path / "mine").mkdir()
    data = _Data(tmp_path, parts={"train": ["training"], "test": ["mine"]})
    assert data.official_parts()["test"] == tmp_path / "mine"
    with pytest.raises(ValueError, match=r"data\.parts=.* must give the folder names"):
        _Data(tmp_path, parts={"train": ["training"], "valid": ["x"]})


def test_a_root_without_parts_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "Training").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        _Data(tmp_path).require_official_parts()
    message = str(error.value)
    assert f"data.root={tmp_path}" in message and "no folder for the test part" in message
    assert "validation, valid, val, 검증, 검증데이터" in message
    assert "python scripts/unpack.py" in message and "cv=kfold" in message


def _finished_official_run(run_dir: Path, overlap: dict) -> None:
    run_dir.mkdir(parents=True)
    splits = {"scheme": "official", "num_folds": 1, "official_overlap": overlap}
    (run_dir / "splits.json").write_text(json.dumps(splits))
    (run_dir / "fold_0").mkdir()
    (run_dir / "fold_0" / "metrics.json").write_text(json.dumps({"test/roc_auc": 0.8}))


def test_summary_holds_the_overlap(tmp_path: Path) -> None:
    overlap = {
        "groups": 2,
        "examples": ["p1", "p2"],
        "test_samples": 5,
        "identical_files": 1,
        "identical_examples": [["1.Training/a.png", "2.Validation/a.png"]],
    }
    run = tmp_path / "run"
    _finished_official_run(run, overlap)
    summary = summarize_run(run, plot=False)
    assert json.loads((run / "cv_summary.json").read_text())["official_overlap"] == overlap
    assert summary["scheme"] == "official" and summary["metrics"]["test/roc_auc"]["std"] is None
    assert (
        "2 groups (e.g. p1, p2) have samples in both the Training and the Validation part "
        "(5 test samples); 1 test files are byte-identical to training files."
    ) in (run / "cv_summary.md").read_text()


def _run(folder: Path, name: str, scheme: str, mean: float, overlap: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    reference = {"key": "test/roc_auc", "metric": "ROC AUC"}
    config = {"experiment_name": name, "reference": reference, "data": {"root": "/data/x"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    summary = {
        "scheme": scheme,
        "num_folds": 1 if scheme == "official" else 2,
        "metrics": {
            "test/roc_auc": {"mean": mean, "std": None if scheme == "official" else 0.01},
            "test/ap50/Gun": {"mean": mean, "std": None},
        },
    }
    if overlap is not None:
        summary["official_overlap"] = overlap
    (folder / "cv_summary.json").write_text(json.dumps(summary))
    return folder


def test_results_table_puts_the_official_split_beside_k_fold(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = _run(tmp_path / "a", "exp_a", "kfold", 0.9)
    b = _run(tmp_path / "b", "exp_b", "kfold", 0.7)
    official = _run(tmp_path / "c", "exp_a", "official", 0.85, {"groups": 4})
    assert table([a, b, official]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| experiment | metric | guideline | paper | split | ours |")
    rows = [line for line in lines[2:] if line.startswith("| exp_")]
    assert [row.split(" | ")[4] for row in rows] == [
        "k-fold",
        "official (Validation part; 4 groups in both parts)",
        "k-fold",
    ]
    assert "0.85 (real (/data/x), 1 fold)" in rows[1] and rows[0].startswith("| exp_a |")
    # the per-category table keeps both runs of one experiment apart
    assert per_category_table([a, official]).splitlines()[0] == (
        "| category | exp_a AP50 (%) | exp_a (official split) AP50 (%) |"
    )


@pytest.mark.parametrize("data", ["kface", "pose", "xray", "mammo", "mammo_synthetic"])
def test_every_data_config_has_the_part_names(data: str) -> None:
    parts = compose_config([f"data={data}"]).data.parts
    assert {part: tuple(names) for part, names in parts.items()} == DEFAULT_PART_NAMES
