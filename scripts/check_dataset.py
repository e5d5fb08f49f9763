"""Check a dataset before training: counts, and every problem with its file and reason.

    python scripts/check_dataset.py data=kface data.root=/data/kface [report_path=report.json]

Writes ``dataset_report.json`` (``report_path``) and exits with 1 when there are problems.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from omegaconf import DictConfig

from kbaselines.data.report import DatasetReport


def check(cfg: DictConfig) -> DatasetReport:
    """Index the configured dataset (generating a synthetic one if configured) and report on it."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    return datamodule.check()


@hydra.main(version_base="1.3", config_path="../configs", config_name="check_dataset")
def main(cfg: DictConfig) -> None:
    report = check(cfg)
    print(report.render())
    path = report.to_json(Path(cfg.report_path))
    print(f"report: {path}")
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
