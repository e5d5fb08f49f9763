"""Write face images from a trained PGGAN's generator (its moving average), one per latent seed.

    python scripts/generate.py ckpt_path=logs/kface_pggan/<run>/fold_0/checkpoints/last.ckpt \\
        out_dir=generated seeds=[1,2,3]
    python scripts/generate.py ckpt_path=<ckpt> out_dir=generated num=100   # seeds 0 .. 99

Like the guideline's generator tool: image ``seed<NNNN>.png`` comes from the latent drawn with that
seed, so the same seed gives the same face again; ``grid.png`` shows them all. ``raw=true`` uses
the trained generator instead of its moving average. Settings: configs/generate.yaml. No Hydra run
folder is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image

from kbaselines.core.cluster.checkpoint_io import load_checkpoint
from kbaselines.kface.pggan import pggan
from kbaselines.kface.sample_grids import save_grid, to_uint8


def load_generator(ckpt_path: Path, raw: bool = False) -> torch.nn.Module:
    """The (EMA) generator of a checkpoint of :class:`~kbaselines.kface.generation.GenerationTask`."""
    checkpoint = load_checkpoint(ckpt_path)
    if "net_sizes" not in checkpoint or "pggan_progress" not in checkpoint:
        raise ValueError(f"{ckpt_path}: not a PGGAN checkpoint (no net_sizes / pggan_progress)")
    net = pggan(**checkpoint["net_sizes"])
    prefix = "net.generator." if raw else "ema."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    net.generator.load_state_dict(state)
    return net.generator.eval()


def generate(ckpt_path: Path, out_dir: Path, seeds: list[int], raw: bool = False) -> list[Path]:
    """Write one PNG per seed and a grid of them; return the image paths."""
    generator = load_generator(ckpt_path, raw)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    with torch.no_grad():
        for seed in seeds:
            z = torch.randn(1, generator.latent_size, generator=torch.Generator().manual_seed(seed))
            images.append(generator(z).add(1).div(2).clamp(0, 1))
    batch = torch.cat(images)
    paths = []
    for seed, pixels in zip(seeds, to_uint8(batch), strict=True):
        path = out_dir / f"seed{seed:04d}.png"
        Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(path)
        paths.append(path)
    save_grid(batch, out_dir / "grid.png", scale=max(1, 64 // batch.shape[-1]))
    return paths


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate")
def main(cfg: DictConfig) -> None:
    ckpt = Path(str(cfg.ckpt_path))
    out_dir = Path(str(cfg.out_dir))
    if not ckpt.is_file():
        print(f"ckpt_path={ckpt}: no such file", file=sys.stderr)
        sys.exit(2)
    if cfg.seeds is None:
        seeds = list(range(16 if cfg.num is None else int(cfg.num)))
    else:
        seeds = [int(s) for s in cfg.seeds]
        if cfg.num is not None:
            seeds = seeds[: int(cfg.num)]
    paths = generate(ckpt, out_dir, seeds, raw=bool(cfg.raw))
    print(f"Wrote {len(paths)} images and grid.png to {cfg.out_dir}")


if __name__ == "__main__":
    main()
