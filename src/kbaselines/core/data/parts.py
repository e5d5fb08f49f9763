"""The official parts of a delivered dataset: its ``Training`` and ``Validation`` folders.

AI Hub deliveries split every dataset into a training part and a validation part, and the
guideline's figures are measured on the validation part. The folders carry the part's name in one
of a few spellings: ``Training``, ``1.Training``, ``01_Training``, Korean ``1.학습데이터``,
``2.검증데이터`` and so on. :func:`find_parts` finds them under a root by name, ignoring a leading
number and separators and the case, so that every reader can read each part as a dataset tree.

A root holding parts is read part by part with the family's own reader; what a part's reader names
(sample ids, files, problems) is then prefixed with the part folder (``1.Training/``), so that it
names a path under the root and the ids of the two parts never collide (:func:`in_part`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from kbaselines.core.data.dataset_report import Problem

__all__ = ["DEFAULT_PART_NAMES", "check_part_names", "find_parts", "in_part", "part_key"]

# part -> the names its folder may have (after part_key); configurable as data.parts
DEFAULT_PART_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("training", "train", "학습", "학습데이터", "훈련", "훈련데이터"),
    "test": ("validation", "valid", "val", "검증", "검증데이터"),
}

_LEADING_NUMBER = re.compile(r"^\d+[\s._\-)]*")


def part_key(name: str) -> str:
    """A folder name as compared with the part names: ``"01. Training"`` -> ``"training"``
    (Korean names composed as NFC, since macOS writes them decomposed)."""
    name = unicodedata.normalize("NFC", name).strip()
    return _LEADING_NUMBER.sub("", name).strip().casefold()


def find_parts(
    root: str | Path, names: Mapping[str, Sequence[str]] = DEFAULT_PART_NAMES
) -> dict[str, Path]:
    """The part folders directly under ``root``, by part (``{"train": root/"1.Training", ...}``).

    Args:
        root: the folder a delivery was unpacked into.
        names: part -> the folder names that mean it (compared after :func:`part_key`).

    Returns:
        The parts found; empty when ``root`` holds none (a dataset tree without parts).

    Raises:
        ValueError: two folders under ``root`` name the same part, naming both.
    """
    wanted = {part_key(n): part for part, spellings in names.items() for n in spellings}
    found: dict[str, Path] = {}
    root = Path(root)
    if not root.is_dir():
        return found
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        part = wanted.get(part_key(child.name))
        if part is None:
            continue
        if part in found:
            raise ValueError(
                f"{root} has two folders for the {part} part: {found[part].name!r} and "
                f"{child.name!r}; keep one (or rename the other so that data.parts does not match it)"
            )
        found[part] = child
    return found


def check_part_names(names: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """``data.parts`` as a plain dict, refused unless it names the ``train`` and the ``test`` part
    (the official split trains on one and tests on the other), each with at least one name."""
    parts = {str(part): tuple(str(n) for n in spellings) for part, spellings in names.items()}
    if set(parts) != set(DEFAULT_PART_NAMES) or not all(parts.values()):
        raise ValueError(
            f"data.parts={parts} must give the folder names of exactly the parts "
            f"{', '.join(DEFAULT_PART_NAMES)}, e.g. {{train: [training, 학습], test: [validation]}}"
        )
    return parts


def in_part(prefix: str, problem: Problem) -> Problem:
    """A problem a part's reader found, named from the root: a relative file gets the part's
    prefix (``"1.Training/"``); an absolute one, and any file of a root without parts (prefix
    ``""``), is left as it is."""
    if not prefix or Path(problem.file).is_absolute():
        return problem
    return replace(problem, file=prefix + problem.file)
