"""Fixtures of the YOLO tests: the synthetic X-ray tree of ``data=xray_synthetic``, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbaselines.config import compose_config

YOLO_QUICK_EXPERIMENT = "+experiment=xray_yolo_synthetic"


@pytest.fixture(scope="session")
def yolo_xray_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the generated X-ray tree of the quick YOLO experiment."""
    from kbaselines.data.xray.synthetic import ensure_synthetic_xray

    folder = tmp_path_factory.mktemp("xray_data")
    cfg = compose_config([YOLO_QUICK_EXPERIMENT, f"paths.data_dir={folder}"])
    ensure_synthetic_xray(cfg.data.root, **cfg.data.synthetic)
    return folder
