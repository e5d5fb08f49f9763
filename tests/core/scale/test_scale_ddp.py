"""DDP on CPU: two gloo processes started by Lightning on one fold of the synthetic experiment give
one run folder and one set of metrics, computed over every test image (not rank 0's half); local
DDP under -m is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scale_helpers import fold_metrics, run_dir, run_train

pytestmark = pytest.mark.cli


def _test_images(folder: Path) -> set[str]:
    with open(folder / "fold_0" / "predictions_test.csv") as file:
        rows = list(csv.DictReader(file))
    return {r["first"] for r in rows} | {r["second"] for r in rows}


def test_ddp_two_processes_one_folder_full_metrics(scale_tiny: list[str], tmp_path: Path) -> None:
    common = [*scale_tiny, "cv.fold=0", f"paths.log_dir={tmp_path}"]
    run_train(*common, "run_name=single")
    # no run_name: the timestamped name train.py pins must reach rank 1 too (one folder)
    run_train(*common, "trainer=ddp_cpu")
    folders = [p for p in (tmp_path / "kface_lightcnn9_synthetic").iterdir() if p.name != "single"]
    assert len(folders) == 1, folders
    ddp = folders[0]
    assert sorted(p.name for p in ddp.glob("fold_*")) == ["fold_0"]
    single = run_dir(tmp_path, "single")
    assert fold_metrics(ddp).keys() == fold_metrics(single).keys()
    # every test image of the fold is scored: the embeddings of both ranks were gathered
    splits = json.loads((ddp / "splits.json").read_text())
    test_ids = set(splits["folds"][0]["test"])
    assert _test_images(ddp) == _test_images(single) == test_ids
    # each rank logged its own process log; one metrics.json, one config
    assert (ddp / "fold_0" / "metrics.json").is_file() and (ddp / "config.yaml").is_file()


def test_local_ddp_under_multirun_is_refused(scale_tiny: list[str], tmp_path: Path) -> None:
    result = run_train(
        "-m", *scale_tiny, "trainer=ddp_cpu", "cv.fold=0", f"paths.log_dir={tmp_path}", expect=1
    )
    assert "cannot run under -m/--multirun" in result.stdout + result.stderr
