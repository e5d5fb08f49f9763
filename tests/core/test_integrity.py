"""The file checks every dataset runs before training: decoding, caching, the content audit,
the split's refusal of shared images, record schemas and file permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import Field, StrictInt

from kbaselines.core.cv.splits import Fold, LeakageError, Splits, check_no_leakage
from kbaselines.core.data.integrity import (
    audit_content,
    fact_problems,
    inspect_files,
    tree_problems,
)
from kbaselines.core.data.samples import SampleTable
from kbaselines.core.data.schema import RecordSchema, require_list, validate_records
from kbaselines.core.io import write_text_atomic


def _jpeg(path: Path, seed: int, size: tuple[int, int] = (40, 32), fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path.read_bytes()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Person A with a good, a truncated, an empty and a PNG-named-JPEG image; person B with a
    copy of A's image, a link to it and a dangling link; an empty folder."""
    root = tmp_path / "root"
    data = _jpeg(root / "A" / "good.jpg", 0)
    _jpeg(root / "A" / "png.jpg", 1, fmt="PNG")
    (root / "A" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "A" / "empty.jpg").write_bytes(b"")
    (root / "A" / "text.jpg").write_text("not an image")
    (root / "B").mkdir()
    (root / "B" / "copy.jpg").write_bytes(data)
    os.symlink("../A/good.jpg", root / "B" / "link.jpg")
    os.symlink("gone.jpg", root / "B" / "dangling.jpg")
    (root / "C").mkdir()
    return root


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.jpg"))


def test_every_damaged_file_is_named_with_its_reason(tree: Path) -> None:
    facts = inspect_files(_files(tree), workers=2, progress=False)
    problems = {p.file: p.reason for p in fact_problems(facts, tree)}
    assert set(problems) == {
        "A/truncated.jpg",
        "A/empty.jpg",
        "A/png.jpg",
        "A/text.jpg",
        "B/dangling.jpg",
    }
    assert "truncated" in problems["A/truncated.jpg"]
    assert problems["A/empty.jpg"].startswith("is empty (0 bytes); restore it")
    assert "is a PNG file named .jpg" in problems["A/png.jpg"]
    assert "cannot be decoded" in problems["A/text.jpg"]
    assert problems["B/dangling.jpg"].startswith("is a dangling link")
    good = facts[str(tree / "A" / "good.jpg")]
    assert (good.width, good.height) == (40, 32) and good.ok


def test_the_cache_rereads_a_file_edited_in_place_and_only_that_one(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "facts.npz"
    files = [str(tree / "A" / "good.jpg"), str(tree / "B" / "copy.jpg")]
    first = inspect_files(files, cache_file=cache, progress=False)
    _jpeg(tree / "B" / "copy.jpg", 7, size=(20, 10))  # edited in place, same name
    read: list[str] = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        read.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    second = inspect_files(files, cache_file=cache, progress=False)
    assert [p for p in read if p.endswith(".jpg")] == [str(tree / "B" / "copy.jpg")]
    assert second[files[0]] == first[files[0]]
    assert (second[files[1]].width, second[files[1]].height) == (20, 10)


def test_the_audit_names_links_and_copies_across_groups(tree: Path) -> None:
    a, copy, link = (str(tree / p) for p in ("A/good.jpg", "B/copy.jpg", "B/link.jpg"))
    facts = inspect_files([a, copy, link], progress=False)
    problems = audit_content({"a": [a], "b": [copy, link]}, {"a": "A", "b": "B"}, facts, tree)
    reasons = {p.file: p.reason for p in problems}
    assert reasons["B/link.jpg"].startswith("is the same file as A/good.jpg")
    assert reasons["B/copy.jpg"].startswith("is byte-identical to A/good.jpg")
    # copies inside one group do not leak: not reported
    same_group = audit_content({"a": [a], "b": [copy]}, {"a": "A", "b": "A"}, facts, tree)
    assert same_group == []


def test_tree_problems_finds_empty_folders_and_dangling_links(tree: Path) -> None:
    found = {(p.file, p.reason.split(":")[0]) for p in tree_problems(tree)}
    assert found == {("C", "is an empty folder"), ("B/dangling.jpg", "is a dangling link")}


def _table(digests: list[str]) -> SampleTable:
    ids = [f"s{i}" for i in range(len(digests))]
    return SampleTable(
        ids,
        [f"g{i}" for i in range(len(digests))],
        files=[(f"{i}.jpg",) for i in ids],
        digests=[(d,) for d in digests],
    )


def test_the_split_refuses_one_image_in_two_parts_naming_both_paths() -> None:
    splits = Splits("holdout", 1, 0, [Fold(0, ["s0", "s1"], [], ["s2", "s3"])])
    check_no_leakage(splits, _table(["x", "y", "z", "w"]))
    check_no_leakage(splits, _table(["x", "x", "z", "w"]))  # both in train: no leak
    with pytest.raises(LeakageError, match=r"s1\.jpg \(train\) and s3\.jpg \(test\) are the same"):
        check_no_leakage(splits, _table(["x", "y", "z", "y"]))


class _Annotation(RecordSchema):
    img_no: StrictInt
    width: int = Field(gt=0)


def test_schemas_report_every_problem_with_record_and_key() -> None:
    raw = [{"img_no": 1, "width": 3}, {"width": "wide"}, [1], {"img_no": 2, "width": -1}]
    valid, problems = validate_records(_Annotation, raw, "a.json", "annotations")
    assert [i for i, _ in valid] == [0]
    found = [(p.record, p.reason.split(":")[0]) for p in problems]
    assert found == [
        ("annotations[1]", "key 'img_no' is missing"),
        ("annotations[1]", "key 'width'"),
        ("annotations[2]", "is a list, not an object"),
        ("annotations[3]", "key 'width'"),
    ]
    assert all(p.file == "a.json" for p in problems)
    assert require_list({"images": 3}, "images", "a.json")[1][0].reason == (
        "key 'images' is a int, expected a list"
    )


def test_atomic_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "shared.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
