"""Helpers of the mammography tests: hand-written DICOM cases, metadata and contour JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from kbaselines.mammo.synthetic import write_dicom

#: The overrides of a tiny run of the whole pipeline: 24 cases, 2 folds, one patch and one view
#: epoch of two batches, 20 bootstrap samples.
TINY_RUN = (
    "data.synthetic.num_cases=24",
    "trainer.limit_train_batches=2",
    "trainer.max_epochs=2",
    "data.stage1_epochs=1",
    "cv.val_fraction=0.25",
    "model.num_bootstrap=20",
)

VIEW_TAGS = (("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO"))


def ramp(rows: int = 32, columns: int = 24) -> np.ndarray:
    """An asymmetric test image in [0, 1]: bright on the left, a dark notch top right."""
    image = np.tile(np.linspace(1.0, 0.1, columns, dtype=np.float32), (rows, 1))
    image[: rows // 4, -columns // 4 :] = 0.0
    return image


def write_case(
    root: Path,
    case_id: str,
    grp: str = "normal",
    views=VIEW_TAGS,
    rows: int = 32,
    columns: int = 24,
) -> None:
    """A hand-made case folder with one DICOM per (laterality, view)."""
    for number, (laterality, view) in enumerate(views):
        write_dicom(
            root / "images" / case_id / f"{number}.dcm", ramp(rows, columns), laterality, view
        )


def write_metadata(root: Path, rows: list[dict[str, str]]) -> None:
    fields = sorted({k for row in rows for k in row})
    with (root / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_contours(root: Path, case_id: str, contour_list: dict, discard: int = 0) -> Path:
    """A contour JSON in the format of mammography.md."""
    path = root / "contours" / f"{case_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "user_id": 1,
                "case_id": int(case_id),
                "contour_list": contour_list,
                "discard_yn": discard,
            }
        )
    )
    return path
