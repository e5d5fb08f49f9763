"""Shared fixtures: real configs composed once, a synthetic K-Face tree generated once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbaselines.config import PROJECT_ROOT, compose_config

QUICK_EXPERIMENT = "+experiment=kface_lightcnn9_synthetic"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the synthetic K-Face tree of ``data=kface_synthetic``, made once."""
    from kbaselines.data.kface.synthetic import ensure_synthetic_kface

    folder = tmp_path_factory.mktemp("data")
    cfg = compose_config([QUICK_EXPERIMENT, f"paths.data_dir={folder}"])
    ensure_synthetic_kface(cfg.data.root, **cfg.data.synthetic)
    return folder


def _run_entry_point(
    script: str, *overrides: str, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``python <script> <overrides>`` from the repository root as a user would; fail with its log."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), *overrides],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{script} {' '.join(overrides)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="session")
def run_entry_point():
    """``run_entry_point("train.py", "+experiment=...", ...)``: an entry point in a real subprocess."""
    return _run_entry_point
