"""Settings and run folders that used to mislead (issue 13, "Trust"): each is refused with a message
that names the setting or path, or handled and said so in the log and the fold's metrics."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from kbaselines.core.builders import build_datamodule
from kbaselines.core.cluster import hydra_callbacks
from kbaselines.core.cluster.csv_logger import AppendingCSVLogger
from kbaselines.core.cluster.hydra_callbacks import RunFolderError, check_writable_folder
from kbaselines.core.config import PROJECT_ROOT, compose_config
from kbaselines.core.cv.loop import run_cross_validation
from kbaselines.core.cv.run_folder import ConfigChangedError, freeze_config
from kbaselines.core.cv.splits import make_splits
from kbaselines.core.cv.summary import summarize_run
from kbaselines.core.data.samples import SampleTable
from kbaselines.kface.verification import RECOGNITION_METRICS, make_pairs, recognition_metrics

QUICK = "+experiment=kface_lightcnn9_synthetic"


# -- 1. a synthetic data config generates only where it is meant to ------------------------------
def _synthetic_data(tmp_path: Path, root: Path):
    return compose_config([QUICK, f"paths.data_dir={tmp_path / 'data'}", f"data.root={root}"]).data


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty"])
def test_synthetic_data_is_not_generated_into_a_stray_folder(tmp_path: Path, make: bool) -> None:
    typo = tmp_path / "kfcae"
    if make:
        typo.mkdir()
    with pytest.raises(FileNotFoundError) as caught:
        build_datamodule(_synthetic_data(tmp_path, typo))
    message = str(caught.value)
    assert f"data.root={typo}" in message and "paths.data_dir=" in message
    assert "scripts/check_dataset.py" in message
    assert not typo.exists() or not any(typo.iterdir())


def test_synthetic_data_goes_into_the_data_folder_or_a_folder_with_files(tmp_path: Path) -> None:
    build_datamodule(_synthetic_data(tmp_path, tmp_path / "data" / "kface_new"))
    elsewhere = tmp_path / "made_before"
    elsewhere.mkdir()
    (elsewhere / ".kface_synthetic.json").write_text("{}")
    build_datamodule(_synthetic_data(tmp_path, elsewhere))


# -- 2. no unbounded training --------------------------------------------------------------------
def test_endless_training_is_refused_without_a_step_or_time_limit() -> None:
    cfg = compose_config([QUICK, "trainer.max_epochs=-1"])
    with pytest.raises(ValueError, match=r"trainer\.max_epochs=-1.*trainer\.max_steps.*max_time"):
        run_cross_validation(cfg)


# -- 3. split errors name the setting that caused them ---------------------------------------------
@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"num_folds": 2, "val_fraction": 0.1}, r"cv\.val_fraction.*at least 0\.334"),
        ({"num_folds": 2, "test_fraction": 0.1}, r"cv\.test_fraction"),
        ({"num_folds": 10}, r"cv\.num_folds=10.*at most 6"),
        ({"scheme": "holdout", "num_folds": 1, "test_size": 0.1}, r"cv\.test_size"),
    ],
)
def test_split_errors_name_the_setting(settings: dict, named: str) -> None:
    ids = sorted(f"p{person}_{k}" for person in range(6) for k in range(3))
    table = SampleTable(ids=ids, groups=[i.split("_")[0] for i in ids])
    with pytest.raises(ValueError, match=named):
        make_splits(table, **settings)


# -- 6. every limit a user reaches for is a plain override ---------------------------------------
def test_trainer_limits_need_no_plus() -> None:
    limits = {
        "max_steps": 5,
        "max_time": "00:00:10:00",
        "min_epochs": 1,
        "min_steps": 1,
        "limit_train_batches": 3,
        "limit_val_batches": 2,
        "limit_test_batches": 2,
        "limit_predict_batches": 2,
        "overfit_batches": 0.0,
        "fast_dev_run": False,
        "val_check_interval": 0.5,
        "check_val_every_n_epoch": 2,
        "num_sanity_val_steps": 0,
        "accumulate_grad_batches": 2,
        "gradient_clip_val": 1.0,
    }
    cfg = compose_config([QUICK, *(f"trainer.{k}={v}" for k, v in limits.items())])
    assert {k: cfg.trainer[k] for k in limits} == limits
    accepted = set(inspect.signature(pl.Trainer).parameters)
    assert set(compose_config().trainer) - {"_target_"} <= accepted


# -- 7. the folder is the run: its name is not a setting -------------------------------------------
def _started(run_name: str, epochs: int = 1) -> DictConfig:
    return OmegaConf.create(
        {
            "run_name": run_name,
            "paths": {"output_dir": f"/runs/{run_name}"},
            "logger": {"wandb": {"name": "${run_name}/fold"}},
            "trainer": {"max_epochs": epochs},
        }
    )


def test_a_run_folder_named_another_way_is_the_same_run(tmp_path: Path) -> None:
    freeze_config(tmp_path, _started("2026-01-01_10-00-00_11"))
    freeze_config(tmp_path, _started("2026-01-02_09-00-00_22"))  # hydra.run.dir=<the folder>
    with pytest.raises(ConfigChangedError, match=r"trainer\.max_epochs: 1 -> 2"):
        freeze_config(tmp_path, _started("2026-01-02_09-00-00_22", epochs=2))


# -- 8. an unwritable run folder is refused with its path -------------------------------------------
def test_a_read_only_run_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "logs" / "run"
    folder.mkdir(parents=True)
    (folder / "train.log").write_text("")
    check_writable_folder(folder)
    check_writable_folder(folder / "new")
    locked = folder / "train.log"
    monkeypatch.setattr(hydra_callbacks.os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(RunFolderError, match=rf"{folder}.*{locked} is read-only"):
        check_writable_folder(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_chmod_read_only_run_folder_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="read-only"):
            check_writable_folder(tmp_path / "run")
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.cli
def test_a_run_folder_that_cannot_be_made_stops_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = subprocess.run(
        [sys.executable, "train.py", QUICK, f"hydra.run.dir={tmp_path / 'file' / 'run'}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert f"the run folder {tmp_path / 'file' / 'run'} cannot be written" in result.stderr
    assert "Traceback" not in result.stderr


# -- 4, 5, 10: a fold with no best checkpoint, one person in validation, a restart's log ----------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_kface_run) -> list[str]:
    """One fold of the tiny K-Face run, five training batches."""
    data = tmp_path_factory.mktemp("guards_data")
    return [*tiny_kface_run(data), "trainer.limit_train_batches=5", "cv.fold=0"]


def _fold(logs: Path, run: str) -> Path:
    return logs / "kface_lightcnn9_synthetic" / run / "fold_0"


@pytest.mark.cli
def test_a_fold_stopped_before_validation_tests_its_last_weights_and_keeps_its_log(
    tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    run = ["train.py", *tiny, f"paths.log_dir={tmp_path}", "run_name=steps"]
    every_step = "callbacks.last_checkpoint.every_n_train_steps=1"
    first = run_entry_point(*run, "trainer.max_steps=2", every_step)
    fold = _fold(tmp_path, "steps")
    assert json.loads((fold / "metrics.json").read_text())["tested_checkpoint"] == "last"
    assert "testing the last weights instead" in first.stdout + first.stderr
    logged = (fold / "csv" / "metrics.csv").read_text().splitlines()

    (fold / "metrics.json").unlink()  # the same fold resumed, still ending before validation
    again = run_entry_point(*run, "trainer.max_steps=3", every_step, "force=true")
    assert "resuming from" in again.stdout + again.stderr
    assert json.loads((fold / "metrics.json").read_text())["tested_checkpoint"] == "last"
    rows = (fold / "csv" / "metrics.csv").read_text().splitlines()
    assert rows[: len(logged)] == logged and len(rows) > len(logged)


@pytest.mark.cli
def test_one_person_in_validation_gives_nan_metrics_and_tests_the_last_weights(
    tiny: list[str], tmp_path: Path, run_entry_point
) -> None:
    result = run_entry_point(
        "train.py",
        *tiny,
        f"paths.log_dir={tmp_path}",
        "run_name=one",
        "trainer.limit_val_batches=1",
    )
    assert "show 1 person, and verification pairs need two" in result.stderr
    fold = _fold(tmp_path, "one")
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["tested_checkpoint"] == "last" and np.isfinite(metrics["test/roc_auc"])
    header, *rows = (fold / "csv" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("val/roc_auc")
    assert [r.split(",")[column] for r in rows if r.split(",")[column]] == ["nan"]


def test_recognition_metric_names_are_the_logged_ones() -> None:
    labels = np.array([0, 0, 1, 1])
    gallery = np.array([True, False, True, False])
    embeddings = np.random.default_rng(0).normal(size=(4, 8))
    metrics = recognition_metrics(embeddings, labels, gallery, make_pairs(labels, None, 0))
    assert tuple(metrics) == RECOGNITION_METRICS


def test_the_summary_leaves_out_which_checkpoint_was_tested(tmp_path: Path) -> None:
    (tmp_path / "splits.json").write_text(json.dumps({"scheme": "kfold", "num_folds": 2}))
    for k, tested in enumerate(("best", "last")):
        (tmp_path / f"fold_{k}").mkdir()
        metrics = {"test/roc_auc": 0.5 + k / 10, "tested_checkpoint": tested}
        (tmp_path / f"fold_{k}" / "metrics.json").write_text(json.dumps(metrics))
    summary = summarize_run(tmp_path, plot=False)
    assert set(summary["metrics"]) == {"test/roc_auc"}


# -- 10. a restart appends to the CSV log ----------------------------------------------------------
def _log_rows(folder: Path, rows: list[dict[str, float]]) -> Path:
    logger = AppendingCSVLogger(folder, name="csv", version="")
    for step, row in enumerate(rows):
        logger.log_metrics(row, step=step)
    logger.save()
    return folder / "csv" / "metrics.csv"


def test_a_restart_keeps_the_rows_of_the_first_start(tmp_path: Path) -> None:
    path = _log_rows(tmp_path, [{"train/loss": 1.0}, {"train/loss": 0.5}])
    _log_rows(tmp_path, [{"train/loss": 0.25}])
    assert path.read_text().splitlines() == ["step,train/loss", "0,1.0", "1,0.5", "0,0.25"]
    _log_rows(tmp_path, [{"val/auc": 0.9}])  # a new column widens the header of every row
    assert path.read_text().splitlines() == [
        "step,train/loss,val/auc",
        "0,1.0,",
        "1,0.5,",
        "0,0.25,",
        "0,,0.9",
    ]


def test_a_row_cut_short_by_a_crash_is_dropped(tmp_path: Path) -> None:
    path = _log_rows(tmp_path, [{"train/loss": 1.0}])
    path.write_text(path.read_text() + "1,0.")  # the disk filled up in the middle of a row
    _log_rows(tmp_path, [{"train/loss": 0.5}])
    assert path.read_text().splitlines() == ["step,train/loss", "0,1.0", "0,0.5"]
