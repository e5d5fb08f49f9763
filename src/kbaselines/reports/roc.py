"""ROC curves as PNG, one curve per fold (and pooled), FAR on a log axis as face papers show them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["plot_roc"]


def plot_roc(
    curves: Mapping[str, tuple[Sequence[float], Sequence[int]]],
    path: Path,
    title: str,
    log_far: bool = True,
) -> Path:
    """Draw one ROC curve per ``name -> (scores, targets)`` and save a PNG atomically."""
    path = Path(path)
    figure, axis = plt.subplots(figsize=(5.5, 5))
    floor = 1e-4
    for name, (scores, targets) in curves.items():
        fpr, tpr, _ = roc_curve(np.asarray(targets), np.asarray(scores))
        auc = roc_auc_score(np.asarray(targets), np.asarray(scores))
        axis.plot(np.maximum(fpr, floor) if log_far else fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    chance = np.logspace(-4, 0, 50) if log_far else np.linspace(0, 1, 2)
    axis.plot(chance, chance, "k:", linewidth=0.8, label="chance")
    if log_far:
        axis.set_xscale("log")
        axis.set_xlim(floor, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("false accept rate (FAR)")
    axis.set_ylabel("true accept rate (TAR)")
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(handle)
    try:
        figure.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        Path(tmp).unlink(missing_ok=True)
    return path
