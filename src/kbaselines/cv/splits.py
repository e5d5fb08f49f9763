"""Group-aware, stratified cross-validation splits, computed from a sorted sample table.

The splits depend only on the table and the settings, so every node and every DDP rank computes
the same ones; they are written to ``splits.json`` and checked for leakage before training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from kbaselines.data.samples import SampleTable
from kbaselines.io import write_json_atomic

__all__ = [
    "SCHEMES",
    "Fold",
    "LeakageError",
    "Splits",
    "check_no_leakage",
    "fold_indices",
    "load_splits",
    "make_splits",
]

SCHEMES = ("kfold",)


class LeakageError(RuntimeError):
    """A group (person, case, physical item) sits in two parts of one fold, or in two test folds."""


@dataclass(frozen=True)
class Fold:
    """The sample ids of one fold.

    Args:
        index: the fold number, from 0.
        train: ids the model is fitted on.
        val: inner validation ids (from the training folds, group-aware) for model selection.
        test: the held-out fold, untouched until the final evaluation.
    """

    index: int
    train: list[str]
    val: list[str]
    test: list[str]

    def as_split(self) -> dict[str, list[str]]:
        """The plain ``{"train", "val", "test"}`` dict a DataModule takes."""
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class Splits:
    """Every fold of a run, plus the optional held-out test part shared by all folds."""

    scheme: str
    num_folds: int
    seed: int
    folds: list[Fold]
    heldout: list[str] = field(default_factory=list)

    def to_json(self, path: Path) -> None:
        """Write ``splits.json`` atomically."""
        write_json_atomic(path, asdict(self))


def load_splits(path: Path) -> Splits:
    """Read a ``splits.json`` written by :meth:`Splits.to_json`."""
    raw = json.loads(Path(path).read_text())
    folds = [Fold(**fold) for fold in raw.pop("folds")]
    return Splits(folds=folds, **raw)


def _group_kfold(
    groups: np.ndarray, labels: np.ndarray | None, num_splits: int, seed: int
) -> list[np.ndarray]:
    """Test-part positions of each of ``num_splits`` group-aware (and stratified) folds."""
    if len(np.unique(groups)) < num_splits:
        raise ValueError(
            f"cannot make {num_splits} group-aware folds from {len(np.unique(groups))} groups: "
            "lower cv.num_folds (or a fraction) or use a larger dataset"
        )
    positions = np.zeros((len(groups), 1))
    if labels is not None:
        splitter = StratifiedGroupKFold(n_splits=num_splits, shuffle=True, random_state=seed)
        parts = splitter.split(positions, labels, groups)
    else:
        splitter = GroupKFold(n_splits=num_splits, shuffle=True, random_state=seed)
        parts = splitter.split(positions, groups=groups)
    return [test for _, test in parts]


def _take_fraction(
    positions: np.ndarray, groups: np.ndarray, labels: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``positions`` into (rest, part) with about ``fraction`` of the groups in ``part``."""
    if fraction <= 0:
        return positions, positions[:0]
    if not 0 < fraction < 1:
        raise ValueError(f"a split fraction must be in [0, 1), got {fraction}")
    num_splits = max(2, round(1 / fraction))
    sub_labels = None if labels is None else labels[positions]
    part = _group_kfold(groups[positions], sub_labels, num_splits, seed)[0]
    mask = np.zeros(len(positions), dtype=bool)
    mask[part] = True
    return positions[~mask], positions[mask]


def make_splits(
    table: SampleTable,
    scheme: str = "kfold",
    num_folds: int = 5,
    seed: int = 0,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
) -> Splits:
    """Compute the folds of a run.

    The held-out test part (``test_fraction`` of the groups) is split off first; the rest is cut into
    ``num_folds`` group-aware folds (stratified when the table has labels); from each fold's
    training part, ``val_fraction`` of its groups become the inner validation part.

    Args:
        table: the samples, sorted by id.
        scheme: ``kfold`` (the schemes the other datasets need come with them).
        num_folds: number of folds k (at least 2).
        seed: fixes the assignment of groups to folds.
        val_fraction: share of each fold's training groups kept for validation.
        test_fraction: share of all groups held out from every fold and scored by every fold's model.

    Returns:
        The splits, with sample ids in sorted order inside each part.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"cv.scheme={scheme!r} is not available; choose one of {list(SCHEMES)}")
    if num_folds < 2:
        raise ValueError(f"cv.num_folds must be at least 2, got {num_folds}")
    ids = np.asarray(table.ids)
    groups = np.asarray(table.groups)
    labels = None if table.labels is None else np.asarray(table.labels)
    everything = np.arange(len(ids))
    pool, heldout = _take_fraction(everything, groups, labels, test_fraction, seed)
    pool_labels = None if labels is None else labels[pool]
    folds = []
    for index, test_part in enumerate(_group_kfold(groups[pool], pool_labels, num_folds, seed)):
        test = pool[test_part]
        train = np.setdiff1d(pool, test)
        train, val = _take_fraction(train, groups, labels, val_fraction, seed + 1 + index)
        folds.append(Fold(index, _sorted(ids[train]), _sorted(ids[val]), _sorted(ids[test])))
    return Splits(scheme, num_folds, seed, folds, _sorted(ids[heldout]))


def _sorted(values: np.ndarray) -> list[str]:
    return sorted(str(v) for v in values)


def check_no_leakage(splits: Splits, table: SampleTable) -> None:
    """Fail loudly when a group is shared between parts, or a sample is lost or doubled.

    Raises:
        LeakageError: naming the fold, the parts and a few of the shared groups.
    """
    group_of = dict(zip(table.ids, table.groups, strict=True))
    unknown = [
        i for fold in splits.folds for i in fold.train + fold.val + fold.test if i not in group_of
    ]
    if unknown:
        raise LeakageError(f"splits name {len(unknown)} unknown samples, e.g. {unknown[:3]}")
    heldout_groups = {group_of[i] for i in splits.heldout}
    tested: list[str] = []
    for fold in splits.folds:
        parts = {"train": fold.train, "val": fold.val, "test": fold.test, "heldout": splits.heldout}
        part_groups = {name: {group_of[i] for i in ids} for name, ids in parts.items()}
        names = list(parts)
        for a, name_a in enumerate(names):
            for name_b in names[a + 1 :]:
                shared = part_groups[name_a] & part_groups[name_b]
                if shared:
                    raise LeakageError(
                        f"fold {fold.index}: {len(shared)} groups in both {name_a} and {name_b}, "
                        f"e.g. {sorted(shared)[:5]}"
                    )
        tested.extend(fold.test)
    expected = sorted(set(table.ids) - set(splits.heldout))
    if sorted(tested) != expected:
        raise LeakageError(
            "the test folds do not cover every sample exactly once "
            f"({len(tested)} tested, {len(expected)} expected)"
        )
    if heldout_groups & {group_of[i] for i in tested}:
        raise LeakageError("a held-out test group also appears in a cross-validation fold")


def fold_indices(splits: Splits, fold: int | None) -> Sequence[int]:
    """The folds to run in this process: all of them (``None``) or one."""
    if fold is None:
        return range(splits.num_folds)
    if not 0 <= fold < splits.num_folds:
        raise ValueError(f"cv.fold={fold} is outside 0..{splits.num_folds - 1}")
    return [fold]
