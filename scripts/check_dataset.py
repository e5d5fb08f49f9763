"""Check a dataset before training on it: counts, and every problem with its file and reason.

    python scripts/check_dataset.py data=kface data.root=/data/kface [report_path=report.json]
    python scripts/check_dataset.py data=kface data.root=/data/kface data.cameras=all workers=16

Builds (or loads) the dataset's index, generating the synthetic twin first when the data config
asks for it, opens and decodes every selected file (``workers`` threads, progress bar), prints the
counts and every problem as ``file: reason`` and the speed in files/s, writes the report as JSON
(``report_path``, default ``dataset_report.json`` in the current folder) and exits with 1 when
there are problems. An empty selection (``data.sessions`` ... select nothing) is a problem too.
Nothing else is written but the caches under ``paths.cache_dir`` (the index, the facts of the
opened files), which training then reuses: no Hydra run folder, no log file.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from omegaconf import DictConfig

from kbaselines.core.data.dataset_report import DatasetReport

__all__ = ["check", "main"]


def check(cfg: DictConfig) -> DatasetReport:
    """Index the configured dataset (generating a synthetic one if configured) and report on it."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    return datamodule.check(workers=cfg.workers)


@hydra.main(version_base="1.3", config_path="../configs", config_name="check_dataset")
def main(cfg: DictConfig) -> None:
    """Print the report, write it as JSON, exit with 1 when the dataset has problems."""
    start = time.perf_counter()
    report = check(cfg)
    seconds = time.perf_counter() - start
    print(report.render())
    print(
        f"checked in {seconds:.1f} s: {report.files_opened:,} files opened and decoded "
        f"({report.files_opened / max(seconds, 1e-9):,.0f} files/s, including indexing; "
        "a second run reads only the files that changed)"
    )
    path = report.to_json(Path(cfg.report_path))
    print(f"report: {path}")
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
