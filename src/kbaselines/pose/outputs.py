"""Files of a pose evaluation: predictions in the dataset's format, per-joint tables and plots.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state), written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kbaselines.core.io import write_text_atomic
from kbaselines.core.plots import save_figure
from kbaselines.pose.joints import JOINTS, SKELETON
from kbaselines.pose.reader import SUFFIXES_2D

__all__ = [
    "plot_image_people",
    "plot_joint_bars",
    "plot_skeletons",
    "predictions_document",
    "write_pose_outputs",
]

DPI = 110


def predictions_document(
    samples: list,
    joints: np.ndarray,
    scores: np.ndarray,
    peaks: np.ndarray | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Predictions ``[N, J, 2]`` as a 2D annotation file of pose.md with a per-person ``score``
    (visibility 2 everywhere), readable by ``scripts/score.py family=pose``; with ``peaks``
    ``[N, J]`` each person also gets its per-joint ``keypoint_scores`` (heatmap peaks), with
    ``info`` the document gets an ``info`` object (what made it)."""
    images = {image.img_no: image for _, image in samples}
    per_joint = (
        [{}] * len(samples)
        if peaks is None
        else [{"keypoint_scores": np.round(p.astype(float), 4).tolist()} for p in peaks]
    )
    return {
        **({} if info is None else {"info": info}),
        "images": [
            {
                "video_no": i.video_no,
                "img_no": i.img_no,
                "img_path": "/" + i.path,
                "width": i.width,
                "height": i.height,
                "action_category": i.action,
            }
            for i in images.values()
        ],
        "categories": [
            {
                "supercategory": "person",
                "id": 1,
                "name": "person",
                "keypoints": [f"{j}_{s}" for j in JOINTS for s in SUFFIXES_2D],
            }
        ],
        "annotations": [
            {
                "img_no": person.img_no,
                "person_no": person.person_no,
                "bbox": list(person.bbox),
                "keypoints": np.column_stack([np.round(xy, 2), np.full(len(xy), 2)])
                .ravel()
                .tolist(),
                "num_keypoints": len(xy),
                "score": float(score),
                **extra,
            }
            for (person, _), xy, score, extra in zip(
                samples, joints, scores, per_joint, strict=True
            )
        ],
    }


def plot_joint_bars(values: dict[str, float], path: Path, title: str, ylabel: str) -> Path:
    """One bar per joint (and the mean as a line)."""
    figure = Figure(figsize=(8, 3.6))
    ax = figure.add_subplot()
    names = list(values)
    ax.bar(range(len(names)), [values[n] for n in names], color="tab:blue")
    mean = float(np.nanmean(list(values.values())))
    ax.axhline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.3g}")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    figure.tight_layout()
    return save_figure(figure, path, dpi=DPI)


def _bones(ax: Any, points: np.ndarray, labelled: np.ndarray, colour: str) -> None:
    """The skeleton's bones between labelled joints of ``points`` ``[J, 2]``."""
    for a, b in SKELETON:
        if labelled[a] and labelled[b]:
            ax.plot(points[[a, b], 0], points[[a, b], 1], color=colour, linewidth=1.2)


def plot_skeletons(
    image_root: Path, samples: list, joints: np.ndarray, path: Path, count: int = 8
) -> Path:
    """Sample people cropped from their images: ground truth (green) and prediction (red; none
    for a person no detection matched)."""
    picks = np.linspace(0, len(samples) - 1, min(count, len(samples))).astype(int)
    columns = min(4, len(picks))
    rows = int(np.ceil(len(picks) / columns))
    figure = Figure(figsize=(2.6 * columns, 3.2 * rows))
    for n, k in enumerate(picks):
        person, image = samples[k]
        ax = figure.add_subplot(rows, columns, n + 1)
        pixels = cv2.imread(str(image_root / image.path))
        if pixels is not None:
            ax.imshow(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
        for points, colour, labelled in (
            (person.keypoints[:, :2], "lime", person.keypoints[:, 2] > 0),
            (joints[k], "red", np.isfinite(joints[k]).all(axis=1)),
        ):
            _bones(ax, points, labelled, colour)
        x1, y1, x2, y2 = person.bbox
        pad = 0.15 * max(x2 - x1, y2 - y1)
        ax.set_xlim(x1 - pad, x2 + pad)
        ax.set_ylim(y2 + pad, y1 - pad)
        ax.set_title(f"{person.id}", fontsize=7)
        ax.axis("off")
    figure.suptitle("ground truth (green), prediction (red)", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path, dpi=DPI)


def plot_image_people(
    pixels: np.ndarray, boxes: list, joints: np.ndarray, scores: np.ndarray, path: Path
) -> Path:
    """One image ``[H, W, 3]`` (RGB) at its own size with each person's box and predicted
    skeleton (``joints`` ``[N, J, 2]``) drawn, and the person's score beside the box."""
    height, width = pixels.shape[:2]
    figure = Figure(figsize=(width / DPI, height / DPI))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.imshow(pixels)
    for (x1, y1, x2, y2), points, score in zip(boxes, joints, scores, strict=True):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", lw=0.8))
        ax.text(x1, y1, f"{score:.2f}", color="yellow", fontsize=6, va="bottom")
        _bones(ax, points, np.isfinite(points).all(axis=1), "red")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    return save_figure(figure, path, dpi=DPI)


def _table(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_pose_outputs(
    out_dir: Path,
    stage: str,
    samples: list,
    joints: np.ndarray,
    predictions: tuple[list, np.ndarray, np.ndarray],
    pckh: dict[str, Any],
    errors: dict[str, np.ndarray] | None,
    image_root: Path,
) -> None:
    """Write ``predictions_<stage>.json``, ``per_joint_<stage>.csv`` and the PNG plots.

    Args:
        samples: the annotated ``(person, image)`` pairs, with ``joints`` ``[N, J, 2]`` predicted
            for each (infinite for a person no detection matched).
        predictions: what the net predicted: ``(person, image)`` pairs, joints and scores.
    """
    document = predictions_document(*predictions)
    write_text_atomic(out_dir / f"predictions_{stage}.json", json.dumps(document))
    per_joint = dict(zip(JOINTS, (float(v) for v in pckh["per_joint"]), strict=True))
    rows = [{"joint": j, "pckh": per_joint[j]} for j in JOINTS]
    if errors is not None:
        for k, row in enumerate(rows):
            row["mpjpe_mm"] = float(errors["mpjpe"][:, k].mean())
            row["p_mpjpe_mm"] = float(errors["p_mpjpe"][:, k].mean())
        plot_joint_bars(
            {j: r["mpjpe_mm"] for j, r in zip(JOINTS, rows, strict=True)},
            out_dir / f"error_3d_per_joint_{stage}.png",
            f"MPJPE per joint ({len(errors['mpjpe'])} triangulated people)",
            "mm",
        )
    _table(out_dir / f"per_joint_{stage}.csv", rows)
    plot_joint_bars(
        per_joint, out_dir / f"pckh_per_joint_{stage}.png", "PCKh@0.5 per joint", "PCKh"
    )
    plot_skeletons(image_root, samples, joints, out_dir / f"skeletons_{stage}.png")
