"""Evaluate a trained checkpoint on every selected image of a dataset.

python eval.py +experiment=kface_lightcnn9 ckpt_path=<run>/fold_0/checkpoints/best.ckpt data.root=/data/kface
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from kbaselines.core.cluster.run_name import pin_run_name
from kbaselines.core.config import register_configs
from kbaselines.core.evaluate import evaluate_checkpoint
from kbaselines.core.quiet import silence_known_noise


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Score the checkpoint; metrics, predictions and plots go to the eval run folder."""
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    # the same output folder for every DDP rank of this start
    sys.argv = pin_run_name(sys.argv, prefix="eval_")
    register_configs()
    silence_known_noise()
    main()
