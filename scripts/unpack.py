"""Unpack a delivered dataset into one tree per part, ready for the dataset's reader.

    python scripts/unpack.py data=kface src=/downloads/kface dst=/data/kface
    python scripts/unpack.py data=xray src=/downloads/xray dst=/data/xray overwrite=true

Finds the part folders of the delivery (``1.Training``, ``2.Validation``, Korean spellings; below
a wrapping folder too), unpacks every zip archive of each into ``<dst>/<part folder>/`` with a
progress bar in bytes (:func:`kbaselines.core.data.delivery.unpack_delivery`), prints the report
(unpacked, skipped as already there, broken, refused), writes it as JSON (``report_path``, default
``<dst>/.unpack_report.json``) and exits with 1 when a member was broken or refused. Otherwise it
prints the command that checks each part. Run it again after an interruption: it skips what is
there whole.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kbaselines.core.data.delivery import REPORT_FILE, unpack_delivery
from kbaselines.core.data.parts import DEFAULT_PART_NAMES

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path="../configs", config_name="unpack")
def main(cfg: DictConfig) -> None:
    """Unpack, print the report and write it; exit with 1 when anything was broken or refused."""
    dataset = HydraConfig.get().runtime.choices["data"]
    if cfg.dst is None:
        sys.exit(f"dst is not set and data={dataset} has no data.root: give dst=<folder>")
    names = DEFAULT_PART_NAMES if cfg.part_names is None else OmegaConf.to_container(cfg.part_names)
    report = unpack_delivery(
        cfg.src,
        cfg.dst,
        overwrite=cfg.overwrite,
        part_names=names,
        depth=cfg.depth,
        progress=cfg.progress,
    )
    print(report.render())
    path = report.to_json(Path(cfg.report_path or Path(cfg.dst) / REPORT_FILE))
    print(f"report: {path}")
    if not report.ok:
        sys.exit(1)
    print("next, check each part:")
    for folder in report.parts.values():
        root = shlex.quote(str(Path(cfg.dst) / folder))
        real = dataset.removesuffix("_synthetic")
        print(f"  python scripts/check_dataset.py data={real} data.root={root}")


if __name__ == "__main__":
    main()
