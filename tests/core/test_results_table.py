"""The README's results tables are built from run folders: the per-category AP table of detectors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from kbaselines.core.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from results_table import per_category_table

sys.path.remove(str(PROJECT_ROOT / "scripts"))


def _run(folder: Path, name: str, metrics: dict[str, tuple[float, float | None]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"experiment_name": name}))
    summary = {"metrics": {k: {"mean": m, "std": s} for k, (m, s) in metrics.items()}}
    (folder / "cv_summary.json").write_text(json.dumps(summary))
    return folder


def test_one_column_per_detection_run_one_row_per_category(tmp_path: Path) -> None:
    yolo = _run(
        tmp_path / "yolo",
        "xray_yolo",
        {"test/ap50/Gun": (0.791234, 0.1044), "test/ap50/Knife": (0.3034, 0.0572)},
    )
    rcnn = _run(tmp_path / "rcnn", "xray_faster_rcnn", {"test/ap50/Gun": (0.8392, None)})
    face = _run(tmp_path / "face", "kface", {"test/roc_auc": (0.97, 0.004)})
    assert per_category_table([yolo, rcnn, face]).splitlines() == [
        "| category | xray_yolo AP50 (%) | xray_faster_rcnn AP50 (%) |",
        "|---|---|---|",
        "| Gun | 79.12 ± 10.44 | 83.92 |",
        "| Knife | 30.34 ± 5.72 | - |",
    ]
    assert per_category_table([face]) == ""
