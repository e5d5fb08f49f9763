"""Export a trained network (ONNX, TorchScript or safetensors) with its model card.

python export.py +experiment=xray_yolo ckpt_path=logs/xray_yolo/r1/fold_0/checkpoints/best.ckpt format=onnx out=exported
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from kbaselines.core.config import register_configs
from kbaselines.core.predict.export import run_export
from kbaselines.core.quiet import silence_known_noise


@hydra.main(version_base="1.3", config_path="configs", config_name="export")
def main(cfg: DictConfig) -> None:
    """Write the exported network and model_card.json into ``out``."""
    run_export(cfg)


if __name__ == "__main__":
    register_configs()
    silence_known_noise()
    main()
