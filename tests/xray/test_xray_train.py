"""End to end through ``train.py``: a small Faster R-CNN learns the synthetic X-ray scans.

The learning test is also the CLI test: ``python train.py +experiment=xray_faster_rcnn_synthetic``
runs fold 0 in a subprocess on the session's synthetic tree (240 scans of 256 px, 5 categories,
4 folds split by physical item); the fold's held-out test scans and its validation scans must reach
COCO mAP@0.5 >= 0.50, and the run folder must hold the detection outputs (category ids, COCO files,
per-class table, plots). The notebook test reuses that finished run (trained once per module).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

# Measured on the committed generator and config (fold 0 of 4: 2 items' scans for validation, 5 held-out
# items' 60 scans for test; Adam 1e-3, 128 px, 12 epochs, one thread): test mAP@0.5 0.721 (COCO mAP
# 0.307), best validation mAP@0.5 0.777 (12th epoch; 0.69 / 0.75 after epochs 7 / 9); the same
# numbers on a second run (deterministic). lr 2e-3 gave test 0.709, best val 0.799. Threshold 0.50
# (the issue's): margin 0.22 on test, 0.28 on validation. Whole module 213 s (data generation and
# training 199 s, notebook 13 s) with other jobs running (load average about 8 on the 2 cores).
MIN_MAP50 = 0.50
EPOCHS = 12
QUICK = [
    "+experiment=xray_faster_rcnn_synthetic",
    "cv.fold=0",
    f"trainer.max_epochs={EPOCHS}",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


@pytest.fixture(scope="module")
def trained_run(
    run_entry_point, xray_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Fold 0 of the quick job, trained once for this module's tests; its run folder."""
    log_dir = tmp_path_factory.mktemp("xray_frcnn_runs")
    with pytest.MonkeyPatch.context() as patch:
        # one OpenMP thread, as the YOLO learning test: spinning threads are much slower on a
        # shared CPU, and cost little on an idle 2-core machine
        patch.setenv("OMP_NUM_THREADS", "1")
        run_entry_point(
            "train.py",
            *QUICK,
            f"paths.data_dir={xray_data_dir}",
            f"paths.log_dir={log_dir}",
            "run_name=learn",
            timeout=900,
        )
    return log_dir / "xray_faster_rcnn_synthetic" / "learn"


@pytest.mark.learning
@pytest.mark.cli
def test_small_faster_rcnn_learns_synthetic_xray(trained_run: Path) -> None:
    fold = trained_run / "fold_0"
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["test/map50"] >= MIN_MAP50, metrics
    assert 0 <= metrics["test/map"] <= metrics["test/map50"]
    with (fold / "csv" / "metrics.csv").open() as handle:
        val = [float(r["val/map50"]) for r in csv.DictReader(handle) if r.get("val/map50")]
    assert max(val) >= MIN_MAP50, val
    categories = json.loads((fold / "categories.json").read_text())
    assert [c["name"] for c in categories] == ["Battery", "Gun", "Knife", "Scissors", "USB"]
    results = json.loads((fold / "coco_results_test.json").read_text())
    assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])
    for name in ("ap_per_class_test.png", "pr_curves_test.png", "detections_test.png"):
        assert (fold / name).stat().st_size > 0
    assert (fold / "per_class_test.csv").is_file() and (fold / "predictions_test.csv").is_file()


@pytest.mark.cli
def test_notebook_runs_on_a_finished_run(
    trained_run: Path, xray_data_dir: Path, execute_notebook
) -> None:
    images = execute_notebook(
        "xray.ipynb",
        XRAY_RUN=str(trained_run),
        XRAY_DATA=f"data=xray_synthetic paths.data_dir={xray_data_dir}",
    )
    assert images >= 5
