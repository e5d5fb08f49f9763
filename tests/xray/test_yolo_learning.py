"""YOLO-n learns to find X-ray items: ``train.py +experiment=xray_yolo_synthetic`` end to end.

The learning test is also the CLI test of the experiment: one fold of the quick job (4 folds by
physical item over the generated tree: 5 categories, 240 scans of 256 px) in a subprocess, scored on
that fold's held-out items with the detection task's COCO evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbaselines.core.config import compose_config

YOLO_QUICK_EXPERIMENT = "+experiment=xray_yolo_synthetic"

# Measured on the committed generator and config (cv.fold=0: trained on 15 items' 156 scans, 2 of
# them kept for validation, tested on the other 5 items' 60 scans): test mAP@0.5 0.626 (COCO mAP
# 0.354; best validation mAP@0.5 0.56, 6th of 8 epochs), the same on a second run; threshold 0.50
# (the issue's), margin 0.126. 258 s under heavy CPU contention (load 18 on 2 cores), data
# generation 54 s.
MIN_MAP50 = 0.50


def test_quick_experiment_builds_the_nano_yolo():
    cfg = compose_config([YOLO_QUICK_EXPERIMENT])
    assert cfg.model.net._target_ == "kbaselines.xray.yolo.yolo_n"
    assert cfg.callbacks.model_checkpoint.monitor == "val/map50"
    assert cfg.optimized_metric == "test/map50"
    net_cfg = compose_config(["+experiment=xray_yolo", "data.root=/data/xray"]).model.net
    assert net_cfg._target_ == "kbaselines.xray.yolo.yolo_s" and net_cfg.image_size == 640


@pytest.mark.learning
@pytest.mark.cli
def test_yolo_n_learns_synthetic_xray(
    run_entry_point, xray_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # one OpenMP thread: on a CPU shared with other jobs, spinning threads made the same run about
    # 5x slower (measured); on an idle 2-core machine one thread costs less than 2x
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_entry_point(
        "train.py",
        YOLO_QUICK_EXPERIMENT,
        "cv.fold=0",
        f"paths.data_dir={xray_data_dir}",
        f"paths.log_dir={tmp_path}",
        "run_name=learn",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        timeout=900,
    )
    fold = tmp_path / "xray_yolo_synthetic" / "learn" / "fold_0"
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["test/map50"] >= MIN_MAP50, metrics
    assert metrics["test/map"] > 0.25, metrics  # measured 0.354
    results = json.loads((fold / "coco_results_test.json").read_text())
    assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])
    assert (fold / "predictions_test.csv").is_file()
    assert (fold / "checkpoints" / "best.ckpt").is_file()
