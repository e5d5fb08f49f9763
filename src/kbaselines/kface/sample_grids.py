"""Pictures of a generative run: grids of samples and the metrics of each training phase.

Plots use matplotlib's object API on an Agg canvas (no pyplot), so importing this module in a
notebook leaves its inline backend alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["plot_phase_metrics", "save_grid", "to_uint8"]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` images in [0, 1] -> ``uint8[N, H, W, C]`` (C is 1 or 3)."""
    pixels = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None, scale: int = 1) -> Path:
    """Write images in [0, 1] as one PNG grid (``columns`` wide, square by default), 1 px apart.

    ``scale`` enlarges each image (nearest) so that 4x4 or 16x16 samples stay visible.
    """
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1, c), 255, dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, columns)
        grid[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = pixels[k]
    image = Image.fromarray(grid.squeeze(-1) if c == 1 else grid)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def plot_phase_metrics(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: Path) -> Path:
    """One panel per metric over the phases (x: thousands of images seen), labelled by resolution."""
    fig = Figure(figsize=(4.5 * len(keys), 3.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), squeeze=False)
    kimg = [float(r["kimg"]) for r in rows]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(kimg, [float(r[key]) for r in rows], marker="o")
        for x, r in zip(kimg, rows, strict=True):
            ax.annotate(f"{r['resolution']} {r['kind']}", (x, float(r[key])), fontsize=7)
        ax.set_xlabel("thousands of images seen")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.suptitle("metrics at the end of each phase (EMA generator)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
