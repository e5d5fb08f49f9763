"""Fill the mammography image cache with worker processes before training, on one machine or as
the tasks of a SLURM array.

    python scripts/build_cache.py data=mammo data.root=/data/mammo workers=16
    python scripts/build_cache.py data=mammo data.root=/data/mammo workers=16 shard=3/8

Indexes the dataset (generating the synthetic twin first when the data config asks for it), then
decodes every view missing from the cache with ``workers`` processes (a progress bar), only the
``shard`` ``i/n`` of them when given (n tasks fill disjoint parts). Prints what was decoded, found
cached and could not be decoded (each file with its reason), and the speed in images/s and per
worker; exit code 1 when a view could not be decoded. Resumable: a second run decodes only what is
missing. Nothing is written but the caches under ``paths.cache_dir``. See
:mod:`kbaselines.mammo.cache_build`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from omegaconf import DictConfig

from kbaselines.mammo.cache_build import CacheFill

__all__ = ["build", "main"]


def build(cfg: DictConfig) -> CacheFill:
    """Index the configured dataset and decode its missing views (of the shard) into the cache."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    return datamodule.fill_cache(workers=cfg.workers, shard=cfg.shard, progress=cfg.progress)


@hydra.main(version_base="1.3", config_path="../configs", config_name="build_cache")
def main(cfg: DictConfig) -> None:
    """Print the summary and every failure; exit with 1 when a view could not be decoded."""
    fill = build(cfg)
    shard = f" of shard {cfg.shard}" if cfg.shard is not None else ""
    print(
        f"{fill.views:,} views{shard}: {fill.decoded:,} decoded, {fill.cached:,} already cached, "
        f"{len(fill.failed):,} cannot be decoded; {fill.seconds:.1f} s with workers="
        f"{fill.workers} ({fill.rate:.2f} images/s, {fill.rate / fill.workers:.2f} per worker)"
    )
    for source, reason in fill.failed:
        print(f"  {source}: {reason}")
    if fill.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
