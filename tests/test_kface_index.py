"""The index cache: built once, reused, rebuilt when the tree changes or when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbaselines.data.kface import index as index_module
from kbaselines.data.kface.index import load_index
from kbaselines.data.kface.synthetic import generate_kface


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return generate_kface(
        tmp_path / "tree",
        num_people=3,
        sessions=["S001"],
        lights=["L1"],
        cameras=["C7", "C8"],
        image_size=32,
    )


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every real scan of a tree."""
    calls: list[Path] = []
    original = index_module.scan_tree

    def counting(tree: Path, progress=None):
        calls.append(tree)
        return original(tree, progress)

    monkeypatch.setattr(index_module, "scan_tree", counting)
    return calls


def test_cache_is_built_once_and_reused(tree: Path, tmp_path: Path, scans: list[Path]) -> None:
    first = load_index(tree, tmp_path / "cache")
    second = load_index(tree, tmp_path / "cache")
    assert len(scans) == 1
    assert second.records == first.records and len(first.records) == 3 * 3 * 2
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        next((tmp_path / "cache").glob("kface_index_*.npz")).name
    ], "only the finished cache file, no temporary left behind"


def test_cache_is_rebuilt_when_a_person_is_added(
    tree: Path, tmp_path: Path, scans: list[Path]
) -> None:
    load_index(tree, tmp_path / "cache")
    extra = generate_kface(
        tmp_path / "other",
        num_people=4,
        sessions=["S001"],
        lights=["L1"],
        cameras=["C7"],
        image_size=32,
    )
    (extra / "19062003").rename(tree / "19062003")
    index = load_index(tree, tmp_path / "cache")
    assert len(scans) == 2
    assert "19062003" in {r.person for r in index.records}


def test_rebuild_flag_forces_a_scan(tree: Path, tmp_path: Path, scans: list[Path]) -> None:
    load_index(tree, tmp_path / "cache")
    load_index(tree, tmp_path / "cache", rebuild=True)
    assert len(scans) == 2


def test_boxes_and_problems_survive_the_cache(tree: Path, tmp_path: Path) -> None:
    bad = tree / "19062000" / "S001" / "L1" / "E01" / "C9.jpg"
    bad.write_bytes((tree / "19062000" / "S001" / "L1" / "E01" / "C7.jpg").read_bytes())
    (bad.with_suffix(".txt")).write_text("1 2 3")
    built = load_index(tree, tmp_path / "cache")
    cached = load_index(tree, tmp_path / "cache")
    assert cached.records == built.records
    assert cached.problems == built.problems and len(built.problems) == 1
    assert all(r.box is not None for r in cached.records)
