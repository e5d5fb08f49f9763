"""Predict on new, unlabelled data with a trained baseline (one checkpoint, or a run's folds).

python predict.py +experiment=xray_yolo ckpt_path=logs/xray_yolo/r1 input=/scans out=predictions
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from kbaselines.core.config import register_configs
from kbaselines.core.predict.run import run_predict
from kbaselines.core.quiet import silence_known_noise


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Write the predictions and predict_report.json into ``out``."""
    run_predict(cfg)


if __name__ == "__main__":
    register_configs()
    silence_known_noise()
    main()
