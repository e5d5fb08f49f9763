"""Mammography reports: the four views of a case with both maps overlaid, results by subgroup."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from kbaselines.core.io import write_text_atomic
from kbaselines.core.metrics.classification import binary_rates, roc_auc

if TYPE_CHECKING:
    from kbaselines.mammo.cache import ImageCache

__all__ = ["SUBGROUP_KEYS", "draw_case", "plot_case_overlays", "subgroup_rows", "subgroup_table"]

SUBGROUP_KEYS = ("device", "birads", "histology")
_ORDER = ("rcc", "lcc", "rmlo", "lmlo")
#: rows of a view as drawn: the 80-dpi figure shows each view in about 300 rows; a 1664x1280
#: cached view drawn as it is took 0.45 GB and 2 s per case
DRAWN_ROWS = 600


def plot_case_overlays(
    images: dict[str, np.ndarray], maps: dict[str, np.ndarray], path: Path, title: str = ""
) -> Path:
    """Each view (oriented chest wall left) with the cancer map (red) and benign map (green).

    ``maps[view]`` is ``[2, h, w]`` of probabilities, stretched over the image.
    """
    figure, axes = plt.subplots(1, 4, figsize=(12, 4.2))
    for ax, view in zip(axes, _ORDER, strict=True):
        ax.axis("off")
        if view not in images:
            continue
        image = images[view]
        rows, columns = image.shape
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        if view in maps:
            extent = (0, columns, rows, 0)
            for channel, cmap in ((0, "Reds"), (1, "Greens")):
                layer = np.ma.masked_less(maps[view][channel], 0.2)
                ax.imshow(
                    layer,
                    cmap=cmap,
                    alpha=0.45,
                    vmin=0,
                    vmax=1,
                    extent=extent,
                    interpolation="bilinear",
                )
            ax.set_title(
                f"{view.upper()}  cancer {maps[view][0].max():.2f}  benign {maps[view][1].max():.2f}",
                fontsize=8,
            )
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return path


def draw_case(
    cache: ImageCache,
    paths: Mapping[str, str],
    maps: Mapping[str, np.ndarray],
    path: Path,
    title: str = "",
) -> Path:
    """A case's views as the image cache holds them (``paths``: view to DICOM file) with their
    maps (:func:`plot_case_overlays`): the test overlays and the predicted ones look alike."""
    images = {view: _drawn(cache.load(source)) for view, source in paths.items()}
    return plot_case_overlays(images, dict(maps), path, title)


def _drawn(image: np.ndarray) -> np.ndarray:
    """A cached view (uint16) in [0, 1] at no more than :data:`DRAWN_ROWS` rows."""
    rows, columns = image.shape
    if rows > DRAWN_ROWS:
        size = (max(1, round(columns * DRAWN_ROWS / rows)), DRAWN_ROWS)
        image = cv2.resize(np.asarray(image), size, interpolation=cv2.INTER_AREA)
    return np.asarray(image, dtype=np.float32) / 65535.0


def subgroup_rows(rows: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """Per subgroup value: cases, cancer cases, cancer AUC, sensitivity and specificity."""
    table = []
    for key in SUBGROUP_KEYS:
        for value in sorted({str(r.get(key, "")) for r in rows}):
            chosen = [r for r in rows if str(r.get(key, "")) == value]
            scores = np.array([r["score"] for r in chosen], float)
            targets = np.array([r["target"] for r in chosen], int)
            rates = binary_rates(scores, targets, threshold)
            table.append(
                {
                    "subgroup": key,
                    "value": value,
                    "cases": len(chosen),
                    "cancer": int(targets.sum()),
                    "roc_auc": roc_auc(scores, targets),
                    "sensitivity": rates["sensitivity"],
                    "specificity": rates["specificity"],
                }
            )
    return table


def subgroup_table(rows: list[dict[str, Any]], threshold: float, stem: Path) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` (NaN where a subgroup has one class only)."""
    table = subgroup_rows(rows, threshold)
    header = list(table[0])
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    csv_text = "\n".join(
        [",".join(header)]
        + [",".join(f'"{fmt(r[h])}"' if h == "value" else fmt(r[h]) for h in header) for r in table]
    )
    md = [
        f"Results by subgroup (operating point {threshold:.4f})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    md += ["| " + " | ".join(fmt(r[h]) for h in header) + " |" for r in table]
    stem.parent.mkdir(parents=True, exist_ok=True)
    return (
        write_text_atomic(stem.with_suffix(".csv"), csv_text + "\n"),
        write_text_atomic(stem.with_suffix(".md"), "\n".join(md) + "\n"),
    )
