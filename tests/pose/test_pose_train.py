"""End to end through ``train.py``: the Simple Baseline learns synthetic pose; the run's files, the
dataset check, the benchmark and the notebook work on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli

QUICK = [
    "+experiment=pose_simple_baseline_synthetic",
    "cv.num_folds=1",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def _config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


@pytest.fixture(scope="module")
def pose_run(tmp_path_factory: pytest.TempPathFactory, run_entry_point) -> Path:
    """One repetition of the guideline's scheme on the synthetic twin (one torch thread: on a busy
    CPU, OpenMP threads spin against each other)."""
    data = tmp_path_factory.mktemp("pose_data")
    logs = tmp_path_factory.mktemp("pose_logs")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        run_entry_point(
            "train.py", *QUICK, f"paths.data_dir={data}", f"paths.log_dir={logs}", "run_name=learn"
        )
    finally:
        del os.environ["OMP_NUM_THREADS"]
    return logs / "pose_simple_baseline_synthetic" / "learn"


@pytest.mark.learning
def test_simple_baseline_learns_held_out_pose(pose_run: Path) -> None:
    summary = json.loads((pose_run / "cv_summary.json").read_text())
    assert summary["scheme"] == "repeated_holdout"
    metrics = {k: v["mean"] for k, v in summary["metrics"].items()}
    # measured on the committed generator (data=pose_synthetic, seed 42, repetition 0 of the
    # repeated hold-out, 2 held-out recordings): PCKh@0.5 0.738, OKS AP 0.606, MPJPE 114 mm,
    # P-MPJPE 104 mm; 2 min 14 s of CPU (one thread; 11 min wall clock on the shared, busy machine).
    # The threshold 0.60 (the issue's) leaves a margin of 0.138; at 10 epochs it was 0.60.
    assert metrics["test/pckh"] >= 0.60, metrics
    assert metrics["test/oks_ap"] > 0.2
    # 3D from the four calibrated views of each test instant
    assert 0 < metrics["test/mpjpe"] < 150  # 114 measured
    assert metrics["test/p_mpjpe"] <= metrics["test/mpjpe"]  # Procrustes can only bring it closer


@pytest.mark.learning
def test_the_trained_net_on_detected_boxes(pose_run: Path) -> None:
    """The fold's test part again, on the boxes of the synthetic twin's simulated detector
    (``data.detections``): most people matched, PCKh a little below the ground-truth boxes'."""
    import hydra
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from kbaselines.core.builders import build_task
    from kbaselines.core.cluster.checkpoint_io import load_checkpoint
    from kbaselines.core.evaluate import checkpoint_net_sizes

    config = _config(pose_run)
    summary = json.loads((pose_run / "fold_0" / "metrics.json").read_text())
    test_ids = json.loads((pose_run / "splits.json").read_text())["folds"][0]["test"]
    module = hydra.utils.instantiate(
        config["data"], split={"test": test_ids}, detections="detections.json"
    )
    ckpt = pose_run / "fold_0" / "checkpoints" / "best.ckpt"
    checkpoint = load_checkpoint(ckpt)
    task = build_task(OmegaConf.create(config["model"]), module, checkpoint_net_sizes(checkpoint))
    task.load_state_dict(checkpoint["state_dict"])
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    metrics = trainer.test(task, datamodule=module, verbose=False)[0]
    # measured on the committed generator (the run of the learning test above, 96 test people):
    # 94.8% matched, PCKh 0.679 (0.738 on the ground-truth boxes), OKS AP 0.539 (0.606)
    assert 0.90 <= metrics["test/matched_people"] < 1.0
    assert metrics["test/pckh"] >= 0.60, metrics
    assert metrics["test/pckh"] < summary["test/pckh"] + 0.02
    assert 0.3 < metrics["test/oks_ap"] < summary["test/oks_ap"] + 0.02


def test_run_writes_predictions_and_plots(pose_run: Path) -> None:
    fold = pose_run / "fold_0"
    for name in (
        "predictions_test.json",
        "per_joint_test.csv",
        "pckh_per_joint_test.png",
        "skeletons_test.png",
        "error_3d_per_joint_test.png",
        "metrics.json",
    ):
        assert (fold / name).is_file(), name
    predictions = json.loads((fold / "predictions_test.json").read_text())
    assert len(predictions["categories"][0]["keypoints"]) == 48
    assert all("score" in a for a in predictions["annotations"])
    # the checkpoint monitor is logged
    monitor = _config(pose_run)["callbacks"]["model_checkpoint"]["monitor"]
    header = (fold / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert monitor == "val/pckh" and monitor in header


def test_check_dataset_and_bench(pose_run: Path, run_entry_point) -> None:
    root = _config(pose_run)["data"]["root"]
    result = run_entry_point(
        "scripts/check_dataset.py",
        "data=pose",
        f"data.root={root}",
        f"report_path={pose_run / 'report.json'}",
    )
    assert "visible joints per joint" in result.stdout and "problems: none" in result.stdout
    bench = run_entry_point(
        "scripts/bench_pose.py",
        f"data.root={root}",
        "bench.samples=32",
        "bench.steps=1",
        "data.batch_size=8",
    )
    assert "images/s" in bench.stdout and "bound" in bench.stdout


def test_notebook_runs_on_the_run(pose_run: Path, execute_notebook) -> None:
    config = _config(pose_run)
    images = execute_notebook(
        "pose.ipynb",
        POSE_RUN=str(pose_run),
        POSE_DATA=f"data=pose_synthetic data.root={config['data']['root']}",
    )
    assert images >= 3
