"""Helpers of the tests of a dataset delivered in its official parts (imported by the family test
modules: the folder of the root conftest is on the import path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbaselines.core.cv.splits import check_no_leakage, make_splits
from kbaselines.core.data.samples import SampleTable

#: The part folders as a delivery unpacks them.
TRAINING, VALIDATION = "1.Training", "2.Validation"


def two_parts(
    root: Path, generate: Callable[..., Any], training: dict[str, Any], validation: dict[str, Any]
) -> Path:
    """A delivered dataset at ``root``: the family's generator called twice, into
    ``1.Training/`` and ``2.Validation/``; returns ``root``."""
    generate(root / TRAINING, **training)
    generate(root / VALIDATION, **validation)
    return root


def official_overlap(table: SampleTable, val_fraction: float, seed: int = 0) -> dict[str, Any]:
    """Split ``table`` with ``cv.scheme=official``, check that the fold tests exactly the
    validation part's samples and trains on the training part's (the validation cut group-aware,
    from the training part), and return the overlap the leakage check reports."""
    splits = make_splits(table, scheme="official", seed=seed, val_fraction=val_fraction)
    (fold,) = splits.folds
    assert table.parts is not None
    validation = [i for i, p in zip(table.ids, table.parts, strict=True) if p == "test"]
    training = [i for i, p in zip(table.ids, table.parts, strict=True) if p == "train"]
    assert validation and all(i.startswith(f"{VALIDATION}/") for i in validation)
    assert training and all(i.startswith(f"{TRAINING}/") for i in training)
    assert fold.test == validation, "the test part is the validation part, all of it"
    assert sorted(fold.train + fold.val) == training, "train and val are the training part"
    assert fold.val, f"cv.val_fraction={val_fraction} cuts a validation part"
    group_of = dict(zip(table.ids, table.groups, strict=True))
    train_groups = {group_of[i] for i in fold.train}
    assert not train_groups & {group_of[i] for i in fold.val}, "the validation cut is by group"
    overlap = check_no_leakage(splits, table)
    assert overlap == splits.official_overlap
    return overlap
