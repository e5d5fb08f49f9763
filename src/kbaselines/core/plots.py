"""Shared plots: ROC curves as a PNG (one per fold, and pooled; FAR on a log axis as face papers
show them), and the atomic PNG writer every plot of the framework uses.

Drawn with matplotlib's object API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``), not with
``pyplot``: nothing is registered in pyplot's global figure list and the process-wide backend is
left alone, so plotting is safe in a notebook, in a worker without a display and from several
threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score, roc_curve

from kbaselines.core.io import atomic_file

__all__ = ["DPI", "FAR_FLOOR", "FIGSIZE", "plot_roc", "save_figure"]

#: left end of the log-scale FAR axis; ROC points below it are drawn at it
FAR_FLOOR = 1e-4
#: figure size in inches and resolution: the PNG is 660 x 600 pixels
FIGSIZE = (5.5, 5.0)
DPI = 120


def save_figure(figure: Figure, path: Path, dpi: int = DPI) -> Path:
    """Write ``figure`` as a PNG through a temporary file and a rename (a reader never sees half
    a picture), on its own Agg canvas (pyplot's state is left alone)."""
    FigureCanvasAgg(figure)
    with atomic_file(path, "wb") as file:
        figure.savefig(file, format="png", dpi=dpi)
    return Path(path)


def plot_roc(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    path: Path,
    title: str,
    log_far: bool = True,
) -> Path:
    """Draw one ROC curve per entry, with its AUC in the legend, and save a PNG atomically.

    Args:
        curves: ``name -> (scores, targets)``; targets are 1 (or True) for genuine pairs /
            positives and higher scores mean more likely positive.
        path: the PNG to write; its folder is created. Written to a temporary file in the same
            folder, then moved into place with ``os.replace``, so a reader never sees half a file.
        title: the figure title.
        log_far: FAR (false positive rate) on a log axis from ``FAR_FLOOR`` (1e-4) to 1, where
            points with a smaller FAR, FAR 0 included, are drawn at 1e-4; otherwise a linear axis
            from 0 to 1.

    Returns:
        ``path``.

    Raises:
        ValueError: no curves, or a curve without both classes (its name is given).
    """
    if not curves:
        raise ValueError("plot_roc needs at least one curve")
    path = Path(path)
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    for name, (scores, targets) in curves.items():
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        targets = np.asarray(targets).reshape(-1).astype(bool)
        if targets.all() or not targets.any():
            raise ValueError(f"ROC curve {name!r} needs both positives and negatives")
        fpr, tpr, _ = roc_curve(targets, scores)
        auc = roc_auc_score(targets, scores)
        x = np.maximum(fpr, FAR_FLOOR) if log_far else fpr
        axis.plot(x, tpr, linewidth=1.2, label=f"{name} (AUC {auc:.4f})")
    chance = np.logspace(np.log10(FAR_FLOOR), 0, 64) if log_far else np.array([0.0, 1.0])
    axis.plot(chance, chance, "k:", linewidth=0.8, label="chance")
    if log_far:
        axis.set_xscale("log")
        axis.set_xlim(FAR_FLOOR, 1.0)
    else:
        axis.set_xlim(0.0, 1.0)
    axis.set_ylim(0.0, 1.01)
    axis.set_xlabel("false accept rate (FAR)" + (", log scale" if log_far else ""))
    axis.set_ylabel("true accept rate (TAR)")
    axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()

    try:
        return save_figure(figure, path)
    finally:
        figure.clear()
