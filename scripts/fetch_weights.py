"""Fetch the published weights an experiment starts from, for an offline machine.

    python scripts/fetch_weights.py +experiment=pose_simple_baseline
    python scripts/fetch_weights.py +experiment=xray_faster_rcnn dst=/media/usb/weights

On a machine with internet: every published-weights setting of the experiment's model
(:mod:`kbaselines.core.pretrained`) is found in ``dst`` (default ``paths.weights_dir``) or a cache,
or downloaded into ``dst``; each file is printed with its SHA-256. Copy ``dst`` to the offline
machine and point its ``paths.weights_dir`` (or ``KBASELINES_WEIGHTS``) at it. Files no script can
download (the LightCNN authors' Google Drive) are listed with the page to get them from by hand;
the exit code is 1 while any file is missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from omegaconf import DictConfig

from kbaselines.core.config import register_configs
from kbaselines.core.pretrained import PublishedWeights, published_weights, sha256

__all__ = ["fetch", "main"]


def fetch(cfg: DictConfig) -> tuple[list[tuple[str, Path]], list[str]]:
    """Find or download every published weights file of ``cfg.model`` into ``cfg.dst``.

    Returns:
        ``(setting, file)`` of the files now present, and a message for each missing one.
    """
    dst = Path(cfg.dst or cfg.paths.weights_dir)
    present: list[tuple[str, Path]] = []
    missing: list[str] = []
    for setting, node in published_weights(cfg.model, "model"):
        weights: PublishedWeights = hydra.utils.instantiate(node, weights_dir=str(dst))
        found = next((path for path in weights.candidates() if path.is_file()), None)
        try:
            present.append((setting, found or weights.download(dst)))
        except Exception as error:  # a download refused, cut or impossible: say which and go on
            missing.append(f"{setting}: {weights.description}: {error}")
    return present, missing


@hydra.main(version_base="1.3", config_path="../configs", config_name="fetch_weights")
def main(cfg: DictConfig) -> None:
    present, missing = fetch(cfg)
    if not present and not missing:
        print(f"{cfg.experiment_name} starts from scratch: no published weights to fetch")
    for setting, path in present:
        print(f"{setting}\n  {path}\n  sha256 {sha256(path)}")
    for message in missing:
        print(f"MISSING {message}", file=sys.stderr)
    if missing:
        sys.exit(1)


if __name__ == "__main__":
    register_configs()
    main()
