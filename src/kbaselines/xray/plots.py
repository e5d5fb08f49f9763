"""Detection plots: per-class AP bars, precision-recall curves, predictions drawn on images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

__all__ = ["plot_ap_bars", "plot_detection_grid", "plot_pr_curves"]

#: COCO's 101 recall points
RECALLS = np.linspace(0.0, 1.0, 101)


def plot_ap_bars(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """Bars of AP (0.5:0.95) and AP50 per category (rows of ``DetectionScores.per_class``)."""
    names = [str(r["category"]) for r in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(names) + 2), 3.5))
    for offset, key, label in ((-0.2, "ap", "AP 0.5:0.95"), (0.2, "ap50", "AP@0.5")):
        values = [max(float(r.get(key, 0.0)), 0.0) for r in rows]
        ax.bar(x + offset, values, width=0.4, label=label)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("average precision")
    ax.set_title(title or "Per-class AP")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pr_curves(
    precision: np.ndarray, categories: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Precision-recall curves at IoU 0.5 per category, from COCO's ``precision`` array
    ``[T, R, K, A, M]`` (all areas, 100 detections)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for k, name in enumerate(categories):
        curve = precision[0, :, k, 0, -1]
        if (curve > -1).any():
            ax.plot(RECALLS, np.clip(curve, 0, 1), label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Precision-recall at IoU 0.5")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_detection_grid(
    images: Sequence[np.ndarray],
    predictions: Sequence[Mapping[str, np.ndarray]],
    targets: Sequence[Mapping[str, np.ndarray]] | None,
    categories: Sequence[str],
    path: Path,
    score_threshold: float = 0.3,
    titles: Sequence[str] | None = None,
) -> Path:
    """Images (``[H, W, 3]`` in 0..1) with ground truth (dashed white; None: unlabelled images)
    and predictions above ``score_threshold`` (coloured, with category and score)."""
    count = len(images)
    if targets is None:
        targets = [{"boxes": np.zeros((0, 4))} for _ in images]
    columns = min(4, max(count, 1))
    rows = max(1, -(-count // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax in axes.flat:
        ax.axis("off")
    for k, (image, prediction, target) in enumerate(zip(images, predictions, targets, strict=True)):
        ax = axes.flat[k]
        ax.imshow(image)
        for x0, y0, x1, y1 in np.asarray(target["boxes"]).reshape(-1, 4):
            ax.add_patch(
                Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="white", ls="--", lw=1)
            )
        for (x0, y0, x1, y1), label, score in zip(
            np.asarray(prediction["boxes"]).reshape(-1, 4),
            prediction["labels"],
            prediction["scores"],
            strict=True,
        ):
            if score < score_threshold:
                continue
            colour = colours((int(label) - 1) % 10)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.5))
            ax.text(
                x0,
                y0,
                f"{categories[int(label) - 1]} {score:.2f}",
                color="white",
                fontsize=6,
                bbox={"facecolor": colour, "pad": 1, "lw": 0},
            )
        if titles is not None:
            ax.set_title(titles[k], fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
