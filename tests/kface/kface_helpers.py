"""Helpers of the K-Face tests (imported by the test modules of this folder)."""

from __future__ import annotations

from pathlib import Path

from kbaselines.core.data.dataset_report import Problem
from kbaselines.kface.reader import KFaceRecord, iter_tree
from kbaselines.kface.synthetic import generate_kface

#: The selection of every image.
ALL = {"sessions": "all", "lights": "all", "expressions": "all", "cameras": "all"}
#: The people of :func:`small_tree`.
PEOPLE = [f"1906200{i}" for i in range(6)]


def small_tree(folder: Path) -> Path:
    """6 people x S001, S002 x L1, L2 x E01 x C6, C7 of 32x32 images with boxes: 8 images each."""
    return generate_kface(
        folder,
        num_people=6,
        sessions=["S001", "S002"],
        lights=["L1", "L2"],
        expressions=["E01"],
        cameras=["C6", "C7"],
        image_size=32,
    )


def scan_tree(tree: str | Path) -> tuple[list[KFaceRecord], list[Problem]]:
    """Every image record of a resolved tree (sorted by path) and the problems found, apart."""
    records: list[KFaceRecord] = []
    problems: list[Problem] = []
    for item in iter_tree(tree):
        (records if isinstance(item, KFaceRecord) else problems).append(item)
    return records, problems
