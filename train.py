"""Train and cross-validate a baseline.

python train.py +experiment=kface_lightcnn9 data.root=/data/kface
python train.py +experiment=kface_lightcnn9_synthetic           # generated data, a few minutes
python train.py -m +experiment=kface_lightcnn9 run_name=r1 cv.fold=0,1,2,3,4   # one job per fold
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
from omegaconf import DictConfig

from kbaselines.core.cluster.requeue import PREEMPTED_EXIT_CODE, Preempted
from kbaselines.core.cluster.run_name import pin_run_name
from kbaselines.core.config import register_configs
from kbaselines.core.cv.loop import run_cross_validation
from kbaselines.core.quiet import silence_known_noise


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run the folds this process owns; return the mean of ``optimized_metric`` (when known)."""
    try:
        summary = run_cross_validation(cfg)
    except Preempted as stop:
        print(f"Preempted: {stop}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    metric = summary.get("metrics", {}).get(cfg.get("optimized_metric"))
    return None if metric is None else metric["mean"]


if __name__ == "__main__":
    # the same run folder for every DDP rank, fold job and requeued job of this start
    sys.argv = pin_run_name(sys.argv)
    register_configs()
    silence_known_noise()
    main()
