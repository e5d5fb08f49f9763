"""Helpers of the scale tests: training subprocesses and their run folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbaselines.core.config import PROJECT_ROOT

EXPERIMENT = "kface_lightcnn9_synthetic"
HELPERS = Path(__file__).parent


def scale_env(**extra: str) -> dict[str, str]:
    """The environment of a training subprocess: one torch thread, the test callbacks importable."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "120", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HELPERS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "train.py"), *overrides]


def run_train(*overrides: str, env: dict[str, str] | None = None, expect: int = 0):
    """``python train.py <overrides>``; fail with its log unless it exits with ``expect``."""
    result = subprocess.run(
        train_command(*overrides),
        cwd=PROJECT_ROOT,
        env=env or scale_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != expect:
        pytest.fail(
            f"train.py {' '.join(overrides)} exited with {result.returncode}, expected {expect}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def run_dir(logs: Path, name: str) -> Path:
    return logs / EXPERIMENT / name


def fold_metrics(folder: Path, fold: int = 0) -> dict[str, float]:
    return json.loads((folder / f"fold_{fold}" / "metrics.json").read_text())
