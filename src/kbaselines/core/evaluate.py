"""Evaluate one checkpoint on a whole dataset (the eval entry point's body)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from kbaselines.core.builders import build_datamodule, build_task, build_trainer
from kbaselines.core.cluster.checkpoint_io import load_checkpoint
from kbaselines.core.cv.loop import evaluate
from kbaselines.core.io import write_json_atomic

__all__ = ["checkpoint_net_sizes", "evaluate_checkpoint"]

log = logging.getLogger(__name__)


def checkpoint_net_sizes(checkpoint: Mapping[str, Any]) -> dict[str, int]:
    """The data-derived sizes the net was built with (``num_classes``), saved in the checkpoint."""
    return dict(checkpoint.get("net_sizes", {}))


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, float]:
    """Test ``cfg.ckpt_path`` on every selected sample; write ``metrics.json`` and predictions."""
    ckpt_path = Path(cfg.ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist: point it at a .ckpt file")
    checkpoint = load_checkpoint(ckpt_path)  # refused before any data is read
    out_dir = Path(cfg.paths.output_dir)
    with open_dict(cfg):
        cfg.paths.fold_dir = str(out_dir)
    datamodule = build_datamodule(cfg.data, split=None)
    datamodule.prepare_data()
    datamodule.setup("test")
    task = build_task(
        cfg.model, datamodule, net_sizes=checkpoint_net_sizes(checkpoint), published_weights=False
    )
    trainer = build_trainer(cfg)
    task.load_state_dict(checkpoint["state_dict"])
    task.on_load_checkpoint(checkpoint)  # what the task keeps beside the weights (thresholds)
    metrics = evaluate(trainer, task, datamodule, out_dir, best=False)
    write_json_atomic(out_dir / "metrics.json", metrics)
    log.info("Metrics of %s written to %s", ckpt_path, out_dir)
    return metrics
