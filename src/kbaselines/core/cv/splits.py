"""Group-aware, stratified cross-validation splits, computed from a sorted sample table.

The splits depend only on the table and the settings, so every node and every DDP rank computes
the same ones; they are written to ``splits.json`` and checked for leakage before training.

The ``official`` scheme is the dataset's own split: it trains on the delivery's Training part and
tests on its Validation part (the table's ``parts``). Those parts were not cut by group, so a
person, an item, a recording or a patient may be in both: the leakage check reports those groups
(and byte-identical files in both parts) instead of refusing them, and ``splits.json`` keeps the
count (``official_overlap``) for the run summary; every other sharing is still refused.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from kbaselines.core.data.samples import SampleTable
from kbaselines.core.io import write_json_atomic

__all__ = [
    "OFFICIAL",
    "SCHEMES",
    "Fold",
    "LeakageError",
    "Splits",
    "check_no_leakage",
    "fold_indices",
    "load_splits",
    "make_splits",
    "official_overlap",
]

log = logging.getLogger(__name__)

#: The scheme of the dataset's own split: its Training part against its Validation part.
OFFICIAL = "official"
SCHEMES = ("kfold", "repeated_holdout", "leave_one_group_out", "holdout", OFFICIAL)
# schemes whose test parts cover every sample exactly once
COVERING_SCHEMES = ("kfold", "leave_one_group_out")
# the fold parts whose groups and files the official scheme may share (reported, not refused)
_OFFICIAL_SHARED = ({"train", "test"}, {"val", "test"})
_EXAMPLES = 5


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
    """Every fold of a run, plus the optional held-out test part shared by all folds; for the
    ``official`` scheme, :func:`official_overlap` of its fold (else None)."""

    scheme: str
    num_folds: int
    seed: int
    folds: list[Fold]
    heldout: list[str] = field(default_factory=list)
    official_overlap: dict[str, Any] | None = None

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
    found = len(np.unique(groups))
    if found < num_splits:
        raise ValueError(
            f"cv.num_folds={num_splits}: cannot make {num_splits} group-aware folds from "
            f"{found} groups; lower cv.num_folds to at most {found} or use a larger dataset"
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
    positions: np.ndarray,
    groups: np.ndarray,
    labels: np.ndarray | None,
    fraction: float,
    seed: int,
    setting: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``positions`` into (rest, part) with about ``fraction`` of the groups in ``part``;
    ``setting`` names the setting behind ``fraction`` (``cv.val_fraction``) for the messages."""
    if fraction <= 0:
        return positions, positions[:0]
    if not 0 < fraction < 1:
        raise ValueError(f"{setting} must be in [0, 1), got {fraction}")
    num_splits = max(2, round(1 / fraction))
    found = len(np.unique(groups[positions]))
    if found < num_splits:
        least = math.ceil(1000 / found) / 1000  # 1 group in at most ``found``
        fix = f"raise it to at least {least:g} or use" if found > 1 else "use"
        raise ValueError(
            f"{setting} asks for a share {fraction:.3g} (1 group in {num_splits}) of {found} "
            f"groups, which takes at least {num_splits} groups: {fix} a larger dataset"
        )
    sub_labels = None if labels is None else labels[positions]
    part = _group_kfold(groups[positions], sub_labels, num_splits, seed)[0]
    mask = np.zeros(len(positions), dtype=bool)
    mask[part] = True
    return positions[~mask], positions[mask]


def make_splits(
    table: SampleTable,
    scheme: str = "kfold",
    num_folds: int | None = 5,
    seed: int = 0,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    train_fraction: float = 0.5,
    test_size: float = 0.1,
) -> Splits:
    """Compute the folds of a run.

    The held-out test part (``test_fraction`` of the groups) is split off first; the rest (the
    pool) is cut into folds by the scheme; from each fold's training part, ``val_fraction`` of its
    groups become the inner validation part. Every cut is group-aware, and stratified when the
    table has labels.

    Schemes:
        ``kfold``: ``num_folds`` folds; each test part is one fold of the pool.
        ``repeated_holdout``: the pose guideline's. A fixed training part of ``train_fraction`` of
            the groups; ``num_folds`` repetitions, each testing a random ``test_size`` (a share of
            all groups) of the other part.
        ``leave_one_group_out``: one fold per domain (``table.domains``, sorted): fold k tests the
            k-th domain and trains on the others. Samples of other domains whose group also
            appears in the tested domain are left out of that fold's training, so no group leaks.
        ``holdout``: one fold testing ``test_size`` of the groups (unsupervised tasks, quick tries).
        ``official``: one fold testing the table's ``test`` part (the delivery's Validation part)
            and training on its ``train`` part, all of it, groups also in the test part included
            (they are counted in ``official_overlap``); the validation cut comes from the
            training part.

    Args:
        table: the samples, sorted by id.
        scheme: one of :data:`SCHEMES`.
        num_folds: k, the repetitions, or ``None`` (``leave_one_group_out``: the number of
            domains; ``holdout``: 1); not used by ``official``, whose parts make one fold (an
            experiment's k-fold ``cv.num_folds`` need not be changed to try it).
        seed: fixes the assignment of groups to parts.
        val_fraction: share of each fold's training groups kept for validation.
        test_fraction: share of all groups held out from every fold and scored by every fold's model.
        train_fraction: ``repeated_holdout``: share of the groups in the fixed training part.
        test_size: ``repeated_holdout`` and ``holdout``: share of all groups in each test part.

    Returns:
        The splits, with sample ids in sorted order inside each part.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"cv.scheme={scheme!r} is not available; choose one of {list(SCHEMES)}")
    if scheme == "holdout" and num_folds not in (None, 1):
        raise ValueError(f"cv.scheme=holdout makes one fold; set cv.num_folds=1, not {num_folds}")
    if scheme == OFFICIAL and test_fraction:
        raise ValueError(
            f"cv.scheme=official tests on the dataset's Validation part: set cv.test_fraction=0, "
            f"not {test_fraction}"
        )
    ids = np.asarray(table.ids)
    groups = np.asarray(table.groups)
    labels = None if table.labels is None else np.asarray(table.labels)
    pool, heldout = _take_fraction(
        np.arange(len(ids)), groups, labels, test_fraction, seed, "cv.test_fraction"
    )
    if scheme == "kfold":
        tests = _kfold_tests(pool, groups, labels, num_folds, seed)
    elif scheme == "repeated_holdout":
        tests = _repeated_holdout_tests(
            pool, groups, labels, num_folds, seed, train_fraction, test_size
        )
    elif scheme == "leave_one_group_out":
        tests = _domain_tests(pool, table.domains, num_folds)
    elif scheme == OFFICIAL:
        tests = _official_tests(pool, table.parts)
    else:
        tests = [(pool, _take_fraction(pool, groups, labels, test_size, seed, "cv.test_size")[1])]
    folds = []
    for index, (candidates, test) in enumerate(tests):
        # the official split keeps the whole training part: its shared groups are reported
        tested_groups = set() if scheme == OFFICIAL else set(groups[test])
        train = np.array(
            [p for p in np.setdiff1d(candidates, test) if groups[p] not in tested_groups]
        )
        train, val = _take_fraction(
            train.astype(int), groups, labels, val_fraction, seed + 1 + index, "cv.val_fraction"
        )
        folds.append(Fold(index, _sorted(ids[train]), _sorted(ids[val]), _sorted(ids[test])))
    overlap = official_overlap(folds[0], table) if scheme == OFFICIAL else None
    return Splits(scheme, len(folds), seed, folds, _sorted(ids[heldout]), overlap)


Tests = list[tuple[np.ndarray, np.ndarray]]
"""Per fold: (the positions training may use, the test positions)."""


def _kfold_tests(
    pool: np.ndarray, groups: np.ndarray, labels: np.ndarray | None, k: int | None, seed: int
) -> Tests:
    if k is None or k < 2:
        raise ValueError(f"cv.num_folds must be at least 2 for k-fold, got {k}")
    pool_labels = None if labels is None else labels[pool]
    return [(pool, pool[test]) for test in _group_kfold(groups[pool], pool_labels, k, seed)]


def _repeated_holdout_tests(
    pool: np.ndarray,
    groups: np.ndarray,
    labels: np.ndarray | None,
    repetitions: int | None,
    seed: int,
    train_fraction: float,
    test_size: float,
) -> Tests:
    if repetitions is None or repetitions < 1:
        raise ValueError(f"cv.num_folds (repetitions) must be at least 1, got {repetitions}")
    if not 0 < test_size <= 1 - train_fraction:
        raise ValueError(
            f"cv.test_size={test_size} must be in (0, 1 - cv.train_fraction = {1 - train_fraction}]"
        )
    rest, train = _take_fraction(pool, groups, labels, train_fraction, seed, "cv.train_fraction")
    share = min(test_size / (1 - train_fraction), 0.99)
    return [
        (train, _take_fraction(rest, groups, labels, share, seed + 100 + k, "cv.test_size")[1])
        for k in range(repetitions)
    ]


def _domain_tests(pool: np.ndarray, domains: list[str] | None, k: int | None) -> Tests:
    if domains is None:
        raise ValueError(
            "cv.scheme=leave_one_group_out needs a domain for each sample: set data.domain_key "
            "(for example the X-ray scanner)"
        )
    domain = np.asarray(domains)
    values = sorted(set(domain[pool]))
    if len(values) < 2:
        raise ValueError(f"leave_one_group_out needs at least 2 domains, found {values}")
    if k is not None and k != len(values):
        raise ValueError(
            f"cv.num_folds={k}, but leave_one_group_out makes one fold per domain "
            f"({len(values)}: {values}); set cv.num_folds=null"
        )
    return [(pool, pool[domain[pool] == value]) for value in values]


def _official_tests(pool: np.ndarray, parts: list[str] | None) -> Tests:
    if parts is None:
        raise ValueError(
            "cv.scheme=official needs the dataset's official parts: data.root must hold its "
            "Training and Validation folders (data.parts names them), each the dataset's tree; "
            "unpack the delivery with python scripts/unpack.py, or use cv=kfold"
        )
    part = np.asarray(parts)[pool]
    for name in ("train", "test"):
        if not (part == name).any():
            raise ValueError(
                f"cv.scheme=official: the {name} part has no usable sample; check that its folder "
                "holds the dataset (python scripts/check_dataset.py data=<dataset> "
                "data.root=<root>)"
            )
    return [(pool[part == "train"], pool[part == "test"])]


def _sorted(values: np.ndarray) -> list[str]:
    return sorted(str(v) for v in values)


def check_no_leakage(splits: Splits, table: SampleTable) -> dict[str, Any] | None:
    """Fail loudly when a group is shared between parts, a sample is lost or doubled, or (when the
    table has content digests) one image sits in two parts under two paths or two groups.

    The ``official`` scheme's training and test parts are the dataset's own, not cut by group:
    groups and byte-identical files found in both are reported (a warning, and the returned
    :func:`official_overlap`), not refused; sharing between its train and val parts still is.

    Returns:
        The official split's overlap, or None for the other schemes.

    Raises:
        LeakageError: naming the fold, the parts and a few of the shared groups, or both paths
            of a shared image.
    """
    group_of = dict(zip(table.ids, table.groups, strict=True))
    unknown = [
        i for fold in splits.folds for i in fold.train + fold.val + fold.test if i not in group_of
    ]
    if unknown:
        raise LeakageError(f"splits name {len(unknown)} unknown samples, e.g. {unknown[:3]}")
    heldout_groups = {group_of[i] for i in splits.heldout}
    allowed = _OFFICIAL_SHARED if splits.scheme == OFFICIAL else ()
    tested: list[str] = []
    for fold in splits.folds:
        parts = {"train": fold.train, "val": fold.val, "test": fold.test, "heldout": splits.heldout}
        part_groups = {name: {group_of[i] for i in ids} for name, ids in parts.items()}
        names = list(parts)
        for a, name_a in enumerate(names):
            for name_b in names[a + 1 :]:
                shared = part_groups[name_a] & part_groups[name_b]
                if shared and {name_a, name_b} not in allowed:
                    raise LeakageError(
                        f"fold {fold.index}: {len(shared)} groups in both {name_a} and {name_b}, "
                        f"e.g. {sorted(shared)[:5]}"
                    )
        for (part_a, file_a), (part_b, file_b) in _shared_content(parts, table):
            if {part_a, part_b} not in allowed:
                raise LeakageError(
                    f"fold {fold.index}: {file_a} ({part_a}) and {file_b} ({part_b}) are the same "
                    "image (byte-identical: a linked or copied file under two groups); "
                    "remove one copy (python scripts/check_dataset.py lists them all)"
                )
        tested.extend(fold.test)
    expected = sorted(set(table.ids) - set(splits.heldout))
    if splits.scheme in COVERING_SCHEMES and sorted(tested) != expected:
        raise LeakageError(
            "the test folds do not cover every sample exactly once "
            f"({len(tested)} tested, {len(expected)} expected)"
        )
    if heldout_groups & {group_of[i] for i in tested}:
        raise LeakageError("a held-out test group also appears in a cross-validation fold")
    if splits.scheme != OFFICIAL:
        return None
    overlap = official_overlap(splits.folds[0], table)
    if overlap["groups"]:
        log.warning(
            "The official split is not a group split: %d groups have samples in both the Training "
            "and the Validation part (%d of %d test samples), e.g. %s; counted in splits.json and "
            "cv_summary.json (official_overlap)",
            overlap["groups"],
            overlap["test_samples"],
            len(splits.folds[0].test),
            ", ".join(overlap["examples"]),
        )
    if overlap["identical_files"]:
        first, again = overlap["identical_examples"][0]
        log.warning(
            "%d files of the Validation part are byte-identical to a file of the Training part, "
            "e.g. %s and %s; counted in splits.json and cv_summary.json (official_overlap)",
            overlap["identical_files"],
            again,
            first,
        )
    return overlap


def official_overlap(fold: Fold, table: SampleTable) -> dict[str, Any]:
    """How far the official split is from a group split: the groups with samples in both the
    training part (``train`` and ``val``) and the test part, how many test samples they hold, and
    the test part's files byte-identical to a training part's file (a few of each named)."""
    group_of = dict(zip(table.ids, table.groups, strict=True))
    training = {group_of[i] for i in fold.train + fold.val}
    shared = sorted(training & {group_of[i] for i in fold.test})
    identical = _shared_content({"train": fold.train + fold.val, "test": fold.test}, table)
    return {
        "groups": len(shared),
        "examples": shared[:_EXAMPLES],
        "test_samples": sum(group_of[i] in training for i in fold.test),
        "identical_files": len(identical),
        "identical_examples": [[a[1], b[1]] for a, b in identical[:_EXAMPLES]],
    }


Place = tuple[str, str]
"""A file in a fold: (the part, the file)."""


def _shared_content(parts: dict[str, list[str]], table: SampleTable) -> list[tuple[Place, Place]]:
    """Every file of a later part byte-identical to a file first seen in another part (a linked
    folder, a copied image), as (where it was first seen, where it is again)."""
    if table.digests is None or table.files is None:
        return []
    row = {sample: position for position, sample in enumerate(table.ids)}
    first_seen: dict[str, Place] = {}
    shared = []
    for part, ids in parts.items():
        for sample in ids:
            position = row[sample]
            for file, digest in zip(table.files[position], table.digests[position], strict=True):
                if not digest:
                    continue
                seen = first_seen.setdefault(digest, (part, file))
                if seen[0] != part:
                    shared.append((seen, (part, file)))
    return shared


def fold_indices(splits: Splits, fold: int | None) -> Sequence[int]:
    """The folds to run in this process: all of them (``None``) or one."""
    if fold is None:
        return range(splits.num_folds)
    if not 0 <= fold < splits.num_folds:
        raise ValueError(f"cv.fold={fold} is outside 0..{splits.num_folds - 1}")
    return [fold]
