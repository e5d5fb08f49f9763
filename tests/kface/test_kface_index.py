"""The index cache: built once, reused, rebuilt on changes or when asked, written atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from kface_helpers import scan_tree
from PIL import Image

from kbaselines.kface import index as index_module
from kbaselines.kface import reader
from kbaselines.kface.index import cache_file, load_index, tree_fingerprint
from kbaselines.kface.reader import KFaceSelectionError

PEOPLE = ("19061801", "19061802", "19061803")


def _person(tree: Path, person: str, cameras=("C7", "C8")) -> None:
    """One person with two sessions and the given cameras, boxes on C7 only."""
    for session in ("S001", "S002"):
        folder = tree / person / session / "L1" / "E01"
        folder.mkdir(parents=True, exist_ok=True)
        for camera in cameras:
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{camera}.jpg")
            if camera == "C7":
                (folder / "C7.txt").write_text("1 1 5 6\n")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for person in PEOPLE:
        _person(root, person)
    return root


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every real walk of a tree."""
    calls: list[Path] = []
    original = reader.iter_tree

    def counting(tree: Path, progress=None, box_stamps=None):
        calls.append(Path(tree))
        return original(tree, progress, box_stamps)

    monkeypatch.setattr(reader, "iter_tree", counting)
    return calls


def test_index_holds_the_records_of_a_scan(tree: Path) -> None:
    index = load_index(tree, None)
    records, problems = scan_tree(tree)
    assert index.records == records and index.problems == problems == []
    assert len(index) == 12
    assert index.count("camera") == {"C7": 6, "C8": 6}
    assert index.count("person") == dict.fromkeys(PEOPLE, 4)
    assert int(index.has_box.sum()) == 6


def test_cache_is_built_once_and_reused(tree: Path, tmp_path: Path, scans: list[Path]) -> None:
    cache = tmp_path / "cache"
    first = load_index(tree, cache)
    second = load_index(tree, cache)
    assert len(scans) == 1, "the second load must not walk the tree"
    assert second.records == first.records
    assert [p.name for p in cache.iterdir()] == [cache_file(tree, cache).name], (
        "only the finished cache file, no temporary left behind"
    )


def test_cache_file_is_named_from_the_absolute_tree_path(tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tree, other)
    assert cache_file(tree, tmp_path).name.startswith("kface_index_")
    assert cache_file(tree, tmp_path) != cache_file(other, tmp_path)
    assert cache_file(tree, tmp_path) == cache_file(tree / "." / "19061801" / "..", tmp_path)


def test_cache_is_rebuilt_when_a_person_is_added(
    tree: Path, tmp_path: Path, scans: list[Path]
) -> None:
    load_index(tree, tmp_path / "cache")
    _person(tmp_path / "new", "19061804")
    (tmp_path / "new" / "19061804").rename(tree / "19061804")
    index = load_index(tree, tmp_path / "cache")
    assert len(scans) == 2
    assert "19061804" in index.count("person")


def test_cache_is_rebuilt_when_a_box_file_is_removed(
    tree: Path, tmp_path: Path, scans: list[Path]
) -> None:
    load_index(tree, tmp_path / "cache")
    (tree / "19061801/S001/L1/E01/C7.txt").unlink()
    index = load_index(tree, tmp_path / "cache")
    assert len(scans) == 2
    assert index.select(sessions=["S001"], cameras=["C7"])[0].box is None


def _edit_in_place(path: Path, text: str) -> None:
    """Rewrite a file as an editor would, later than the scan (a second on its clock)."""
    folder_stamp = path.parent.stat().st_mtime_ns
    later = path.stat().st_mtime_ns + 1_000_000_000
    path.write_text(text)
    os.utime(path, ns=(later, later))
    assert path.parent.stat().st_mtime_ns == folder_stamp, "no folder time changes"


def test_a_box_file_edited_in_place_is_noticed(
    tree: Path, tmp_path: Path, scans: list[Path]
) -> None:
    load_index(tree, tmp_path / "cache")
    _edit_in_place(tree / "19061801/S001/L1/E01/C7.txt", "2 2 4 4\n")
    fresh = load_index(tree, tmp_path / "cache")
    assert len(scans) == 2 and fresh.record(0).box == (2, 2, 4, 4)
    assert load_index(tree, tmp_path / "cache").record(0).box == (2, 2, 4, 4)
    assert len(scans) == 2, "the rewritten cache is current"
    load_index(tree, tmp_path / "cache", rebuild=True)
    assert len(scans) == 3, "rebuild_index still forces a scan"


def test_an_empty_box_file_filled_in_place_is_noticed(
    tree: Path, tmp_path: Path, scans: list[Path]
) -> None:
    box = tree / "19061801/S001/L1/E01/C8.txt"
    box.write_text("")
    load_index(tree, tmp_path / "cache")
    _edit_in_place(box, "1 1 3 3")
    index = load_index(tree, tmp_path / "cache")
    assert len(scans) == 2
    assert index.select(sessions=["S001"], cameras=["C8"])[0].box == (1, 1, 3, 3)


def test_fingerprint_follows_folder_changes_only(tree: Path) -> None:
    before = tree_fingerprint(tree)
    assert tree_fingerprint(tree) == before
    (tree / "19061802/S002/L1/E01/C9.jpg").write_bytes(b"")
    assert tree_fingerprint(tree) != before


def test_problems_and_boxes_survive_the_cache(tree: Path, tmp_path: Path) -> None:
    (tree / "19061801/S001/L1/E01/C8.txt").write_text("1 2 3")
    _person(tree, "1906180x", cameras=("C7",))
    built = load_index(tree, tmp_path / "cache")
    cached = load_index(tree, tmp_path / "cache")
    assert cached.records == built.records and len(built.records) == 11
    assert cached.problems == built.problems and len(built.problems) == 3
    assert sorted(p.file for p in cached.problems) == [
        "19061801/S001/L1/E01/C8.txt",
        "1906180x/S001/L1/E01/C7.jpg",
        "1906180x/S002/L1/E01/C7.jpg",
    ]
    assert sum(r.box is not None for r in cached.records) == 6


def test_a_failed_write_leaves_no_cache_file(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        load_index(tree, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unreadable_cache_is_rebuilt(tree: Path, tmp_path: Path, scans: list[Path]) -> None:
    cache = cache_file(tree, tmp_path / "cache")
    cache.parent.mkdir()
    cache.write_bytes(b"not an npz")
    index = load_index(tree, tmp_path / "cache")
    assert len(scans) == 1 and len(index) == 12
    assert np.load(cache)["has_box"].shape == (12,)


def test_an_index_of_another_layout_version_is_rebuilt(
    tree: Path, tmp_path: Path, scans: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    load_index(tree, tmp_path / "cache")
    monkeypatch.setattr(index_module, "INDEX_VERSION", index_module.INDEX_VERSION + 1)
    load_index(tree, tmp_path / "cache")
    assert len(scans) == 2


def test_select_makes_only_the_selected_records(tree: Path) -> None:
    index = load_index(tree, None)
    chosen = index.select(sessions=["S002"], cameras="C8")
    assert [r.path for r in chosen] == [f"{p}/S002/L1/E01/C8.jpg" for p in PEOPLE]
    with pytest.raises(KFaceSelectionError, match=r"lights=\[L2\]: the tree has L1"):
        index.select(lights=["L2"])


def test_an_empty_tree_says_where_root_should_point(tmp_path: Path) -> None:
    index = load_index(tmp_path, tmp_path / "cache")
    with pytest.raises(KFaceSelectionError, match="8-digit person folders"):
        index.select()
