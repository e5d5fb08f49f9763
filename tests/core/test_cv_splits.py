"""Splits: no group in two parts, stratification holds, same seed same splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from kbaselines.core.cv.splits import LeakageError, check_no_leakage, load_splits, make_splits
from kbaselines.core.data.samples import SampleTable


def _table(num_groups: int = 60, per_group: int = 4, labelled: bool = False) -> SampleTable:
    rng = np.random.default_rng(0)
    rows = []
    for g in range(num_groups):
        label = "cancer" if g % 3 == 0 else "benign"  # 1/3 positive groups
        for i in range(int(per_group + rng.integers(0, 3))):
            rows.append((f"g{g:03d}/img{i}", f"g{g:03d}", label))
    rows.sort()
    return SampleTable(
        ids=[r[0] for r in rows],
        groups=[r[1] for r in rows],
        labels=[r[2] for r in rows] if labelled else None,
    )


def _groups(table: SampleTable, ids: list[str]) -> set[str]:
    group_of = dict(zip(table.ids, table.groups, strict=True))
    return {group_of[i] for i in ids}


@pytest.mark.parametrize("labelled", [False, True])
def test_no_group_in_two_parts(labelled: bool) -> None:
    table = _table(labelled=labelled)
    splits = make_splits(table, num_folds=5, seed=3, val_fraction=0.2, test_fraction=0.2)
    check_no_leakage(splits, table)
    heldout = _groups(table, splits.heldout)
    assert heldout, "a test fraction of 0.2 holds groups out"
    all_test: list[str] = []
    for fold in splits.folds:
        train, val, test = (_groups(table, ids) for ids in (fold.train, fold.val, fold.test))
        assert val, "val fraction 0.2 gives a validation part"
        assert not (train & val or train & test or val & test)
        assert not (heldout & (train | val | test))
        assert sorted(fold.train + fold.val + fold.test + splits.heldout) == table.ids
        all_test += fold.test
    assert sorted(all_test) == sorted(set(table.ids) - set(splits.heldout))


def test_stratification_holds() -> None:
    table = _table(num_groups=90, labelled=True)
    overall = Counter(table.labels)
    share = overall["cancer"] / len(table.ids)
    splits = make_splits(table, num_folds=3, seed=0)
    label_of = dict(zip(table.ids, table.labels, strict=True))
    for fold in splits.folds:
        counts = Counter(label_of[i] for i in fold.test)
        assert abs(counts["cancer"] / len(fold.test) - share) < 0.05


def test_same_seed_same_splits_other_seed_other_splits(tmp_path) -> None:
    table = _table()
    first = make_splits(table, num_folds=4, seed=7, val_fraction=0.1)
    assert make_splits(table, num_folds=4, seed=7, val_fraction=0.1) == first
    assert make_splits(table, num_folds=4, seed=8, val_fraction=0.1) != first
    first.to_json(tmp_path / "splits.json")
    assert load_splits(tmp_path / "splits.json") == first


def test_leakage_is_detected() -> None:
    table = _table()
    splits = make_splits(table, num_folds=3, seed=0)
    fold = splits.folds[0]
    moved = fold.test[0]  # put one test sample's group into training too
    fold.train.append(moved)
    with pytest.raises(LeakageError, match="fold 0"):
        check_no_leakage(splits, table)


def test_too_few_groups_is_a_clear_error() -> None:
    table = _table(num_groups=3)
    with pytest.raises(ValueError, match="from 3 groups"):
        make_splits(table, num_folds=5)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cv\.scheme"):
        make_splits(_table(), scheme="bootstrap")


def _with_domains(table: SampleTable, shared_groups: int = 0) -> SampleTable:
    """Three scanners by group; the first ``shared_groups`` groups are scanned by two of them."""
    domains = []
    for sample_id, group in zip(table.ids, table.groups, strict=True):
        number = int(group[1:])
        scanner = number % 3
        if number < shared_groups and sample_id.endswith("img0"):
            scanner = (scanner + 1) % 3  # one scan of this item on another scanner
        domains.append(f"scanner{scanner}")
    return SampleTable(table.ids, table.groups, table.labels, domains)


@pytest.mark.parametrize("shared_groups", [0, 6])
def test_leave_one_group_out_tests_each_domain_once(shared_groups: int) -> None:
    table = _with_domains(_table(labelled=True), shared_groups)
    splits = make_splits(table, scheme="leave_one_group_out", num_folds=None, val_fraction=0.2)
    check_no_leakage(splits, table)
    domain_of = dict(zip(table.ids, table.domains, strict=True))
    assert splits.num_folds == 3
    for fold, scanner in zip(splits.folds, ["scanner0", "scanner1", "scanner2"], strict=True):
        assert {domain_of[i] for i in fold.test} == {scanner}
        assert scanner not in {domain_of[i] for i in fold.train + fold.val}
        # items also scanned on the tested scanner stay out of training (no group in two parts)
        assert not _groups(table, fold.test) & _groups(table, fold.train + fold.val)


def test_leave_one_group_out_needs_domains_and_a_matching_k() -> None:
    with pytest.raises(ValueError, match=r"data\.domain_key"):
        make_splits(_table(), scheme="leave_one_group_out", num_folds=None)
    with pytest.raises(ValueError, match="one fold per domain"):
        make_splits(_with_domains(_table()), scheme="leave_one_group_out", num_folds=5)


def test_repeated_holdout_fixed_training_half_and_random_tests() -> None:
    table = _table(num_groups=100)
    splits = make_splits(
        table, scheme="repeated_holdout", num_folds=5, seed=1, train_fraction=0.5, test_size=0.1
    )
    check_no_leakage(splits, table)
    groups = len(set(table.groups))
    train_groups = _groups(table, splits.folds[0].train)
    assert abs(len(train_groups) - groups / 2) <= 1
    tests = [frozenset(_groups(table, fold.test)) for fold in splits.folds]
    for fold, test in zip(splits.folds, tests, strict=True):
        assert _groups(table, fold.train) == train_groups  # the same training half every time
        assert abs(len(test) - 0.1 * groups) <= 1 and not test & train_groups
    assert len(set(tests)) == 5, "five different random test sets"


def test_holdout_is_one_group_aware_cut() -> None:
    table = _table(num_groups=50)
    splits = make_splits(table, scheme="holdout", num_folds=1, test_size=0.2)
    check_no_leakage(splits, table)
    (fold,) = splits.folds
    assert abs(len(_groups(table, fold.test)) - 10) <= 1
    assert sorted(fold.train + fold.test) == table.ids
