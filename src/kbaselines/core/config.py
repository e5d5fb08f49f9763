"""Compose the project's Hydra configs outside an entry point (scripts, notebooks, tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from kbaselines.core.cv.settings import register_cv_schema

__all__ = ["CONFIG_DIR", "PROJECT_ROOT", "compose_config", "register_configs"]

PROJECT_ROOT = Path(os.environ.get("PROJECT_ROOT", Path(__file__).resolve().parents[3]))
CONFIG_DIR = PROJECT_ROOT / "configs"


def register_configs() -> None:
    """Make the structured configs (the ``cv`` schema) known to Hydra: every entry point calls
    this before it composes."""
    register_cv_schema()


def compose_config(
    overrides: Sequence[str] = (), config_name: str = "train", return_hydra_config: bool = False
) -> DictConfig:
    """The config ``python train.py <overrides>`` would run with (without starting a run)."""
    os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            config_name=config_name,
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )
