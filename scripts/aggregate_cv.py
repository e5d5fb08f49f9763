"""Combine the folds of a run into cv_summary.json / cv_summary.md / roc_folds.png.

For folds trained as separate jobs:
    python train.py -m +experiment=kface_lightcnn9 run_name=r1 cv.fold=0,1,2,3,4
    python scripts/aggregate_cv.py run_dir=logs/kface_lightcnn9/r1

Settings: configs/aggregate_cv.yaml. Prints the summary table; exit code 2 when ``run_dir`` holds
no ``splits.json``, 1 when a fold has not finished. No Hydra run folder is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kbaselines.core.cv.summary import IncompleteRunError, summarize_run

__all__ = ["aggregate", "main"]


def aggregate(run_dir: Path) -> int:
    """Write the run's summary and print its table; return the exit code."""
    if not (run_dir / "splits.json").is_file():
        print(f"{run_dir}: no splits.json; is this a run folder?", file=sys.stderr)
        return 2
    try:
        summarize_run(run_dir)
    except IncompleteRunError as error:
        print(error, file=sys.stderr)
        return 1
    print((run_dir / "cv_summary.md").read_text())
    print(f"written: {run_dir / 'cv_summary.json'}")
    return 0


@hydra.main(version_base="1.3", config_path="../configs", config_name="aggregate_cv")
def main(cfg: DictConfig) -> None:
    code = aggregate(Path(str(cfg.run_dir)))
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
