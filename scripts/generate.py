"""Write face images from a trained PGGAN's generator (its moving average), one per latent seed.

    python scripts/generate.py ckpt_path=logs/kface_pggan/<run>/fold_0/checkpoints/last.ckpt \\
        out_dir=generated seeds=[1,2,3]
    python scripts/generate.py ckpt_path=<ckpt> out_dir=generated num=100   # seeds 0 .. 99

A thin alias of predict.py's PGGAN path that needs no experiment (the model is rebuilt at the
checkpoint's resolution): ``python predict.py +experiment=kface_pggan model.resolution=<its
resolution> ckpt_path=<ckpt> out=generated seeds=[1,2,3]`` writes the same images. Image
``seed<NNNN>.png`` comes from the latent drawn with that seed, so the same seed gives the same face
again; ``grid.png`` shows them all; ``predict_report.json`` names the checkpoint. ``raw=true`` uses
the trained generator instead of its moving average. Settings: configs/generate.yaml. No Hydra run
folder is written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra
from omegaconf import DictConfig

from kbaselines.core.cluster.checkpoint_io import load_checkpoint
from kbaselines.core.config import register_configs
from kbaselines.core.predict.run import run_predict
from kbaselines.core.quiet import silence_known_noise


def checkpoint_resolution(ckpt_path: Path) -> int:
    """The final resolution of a PGGAN checkpoint (read weights-only: a pickle is refused).

    Raises:
        ValueError: not a checkpoint of :class:`~kbaselines.kface.generation.GenerationTask`.
    """
    checkpoint = load_checkpoint(ckpt_path)
    if "net_sizes" not in checkpoint or "pggan_progress" not in checkpoint:
        raise ValueError(f"{ckpt_path}: not a PGGAN checkpoint (no net_sizes / pggan_progress)")
    return int(checkpoint["net_sizes"]["resolution"])


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate")
def main(cfg: DictConfig) -> None:
    ckpt = Path(str(cfg.ckpt_path))
    if not ckpt.is_file():
        print(f"ckpt_path={ckpt}: no such file", file=sys.stderr)
        sys.exit(2)
    predict = hydra.compose(
        "predict",
        overrides=["+experiment=kface_pggan", f"model.resolution={checkpoint_resolution(ckpt)}"],
    )
    predict.ckpt_path = str(ckpt)
    predict.out = str(cfg.out_dir)
    predict.seeds = cfg.seeds
    predict.num = cfg.num
    predict.raw = bool(cfg.raw)
    report = run_predict(predict)
    print(f"Wrote {report['counts']['images']} images and grid.png to {cfg.out_dir}")


if __name__ == "__main__":
    register_configs()
    silence_known_noise()
    main()
