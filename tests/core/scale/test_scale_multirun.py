"""Folds as jobs through Hydra's submitit launcher (``hydra/launcher=local``, the SLURM launcher's
code path without SLURM): one folder per fold, the summary written by the Hydra callback at the end
of the multirun, and the same summary again from scripts/aggregate_cv.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scale_helpers import run_dir, run_train

from kbaselines.core.config import PROJECT_ROOT

pytestmark = pytest.mark.cli


def test_folds_as_submitit_jobs_then_summary(scale_tiny: list[str], tmp_path: Path) -> None:
    result = run_train(
        "-m",
        *scale_tiny,
        "hydra/launcher=local",
        "cv.fold=0,1",
        f"paths.log_dir={tmp_path}",
    )
    (folder,) = (tmp_path / "kface_lightcnn9_synthetic").iterdir()  # one run folder, pinned name
    assert (folder / ".submitit").is_dir()  # the jobs went through submitit
    for fold in (0, 1):
        assert (folder / f"fold_{fold}" / "metrics.json").is_file()
    summary = json.loads((folder / "cv_summary.json").read_text())
    assert len(summary["metrics"]["test/roc_auc"]["folds"]) == 2
    assert "Summary of" in result.stdout + result.stderr  # logged by the multirun-end callback

    (folder / "cv_summary.json").unlink()
    aggregated = subprocess.run(
        [sys.executable, "scripts/aggregate_cv.py", f"run_dir={folder}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| test/roc_auc |" in aggregated.stdout
    assert json.loads((folder / "cv_summary.json").read_text())["metrics"] == summary["metrics"]
    assert run_dir(tmp_path, folder.name) == folder
