"""Helpers of the K-Face tests (imported by the test modules of this folder)."""

from __future__ import annotations

from pathlib import Path

from kbaselines.core.data.dataset_report import Problem
from kbaselines.kface.reader import KFaceRecord, iter_tree


def scan_tree(tree: str | Path) -> tuple[list[KFaceRecord], list[Problem]]:
    """Every image record of a resolved tree (sorted by path) and the problems found, apart."""
    records: list[KFaceRecord] = []
    problems: list[Problem] = []
    for item in iter_tree(tree):
        (records if isinstance(item, KFaceRecord) else problems).append(item)
    return records, problems
