"""The index and the DataModule's handling of bad input: every problem named, skipping listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mammo_fixtures import VIEW_TAGS, write_case, write_contours, write_metadata

from kbaselines.mammo.datamodule import MammoDataError, MammoDataModule
from kbaselines.mammo.index import build_index


def _tree(root: Path, cases: dict[str, str]) -> Path:
    """Hand-made cases ``{case id: grp}``, all with four good views, and their metadata rows."""
    for case_id in cases:
        write_case(root, case_id)
    write_metadata(root, [{"case_id": c, "recvid": f"p{c}", "grp": g} for c, g in cases.items()])
    return root


def _problems(root: Path) -> list[str]:
    return [str(p) for p in build_index(root).problems]


def test_good_tree_and_labels(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"1": "cancer", "2": "benign", "3": "normal", "4": "cancer"})
    write_contours(
        root,
        "1",
        {"cancer": {"lcc": {"l1": [{"x": 2, "y": -2}, {"x": 5, "y": -2}, {"x": 5, "y": -6}]}}},
    )
    rows = [
        {"case_id": "1", "recvid": "p1", "grp": "cancer"},
        {"case_id": "2", "recvid": "p2", "grp": "benign", "spr_loca_cmnt": "breast right"},
        {"case_id": "3", "recvid": "p3", "grp": "normal"},
        {"case_id": "4", "grp": "cancer"},  # no recvid: the case id is the patient
    ]
    write_metadata(root, rows)
    index = build_index(root)
    assert index.problems == [] and [c.case_id for c in index.cases] == ["1", "2", "3", "4"]
    by_id = {c.case_id: c for c in index.cases}
    assert by_id["1"].breasts == {"L": "cancer", "R": "normal"}  # from the contour
    assert by_id["2"].breasts == {"L": "normal", "R": "benign"}  # from spr_loca_cmnt
    assert by_id["4"].breasts == {"L": "cancer", "R": "cancer"}  # only the case label
    assert by_id["4"].patient == "4" and by_id["3"].birads == "unknown"


def test_metadata_row_without_images_and_images_without_row(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"1": "normal", "2": "normal"})
    write_case(root, "9")
    shutil.rmtree(root / "images" / "2")
    problems = _problems(root)
    assert any("metadata.csv [case 2]: case 2 has no folder images/2/" in p for p in problems)
    assert any(p.startswith("images/9: images without a metadata.csv row") for p in problems)


def test_missing_and_duplicate_views(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"1": "normal", "2": "normal"})
    write_case(root, "1", views=VIEW_TAGS[:3])
    shutil.rmtree(root / "images" / "1")
    write_case(root, "1", views=VIEW_TAGS[:3])
    write_case(root, "2", views=(*VIEW_TAGS, ("L", "CC")))
    problems = _problems(root)
    assert any(p.startswith("images/1: missing view(s) lmlo") for p in problems)
    assert any(
        p.startswith("images/2/4.dcm: duplicate lcc view (also images/2/2.dcm)") for p in problems
    )


def test_truncated_and_non_dicom_files_are_named(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"1": "normal", "2": "normal"})
    (root / "images" / "1" / "0.dcm").write_bytes(b"DICM" * 10)
    data = (root / "images" / "2" / "3.dcm").read_bytes()
    (root / "images" / "2" / "3.dcm").write_bytes(data[:200])
    problems = _problems(root)
    assert any(p.startswith("images/1/0.dcm: not a DICOM file") for p in problems)
    assert any(p.startswith("images/2/3.dcm: ") for p in problems)


def test_bad_metadata_rows(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"1": "normal"})
    write_metadata(
        root,
        [
            {"case_id": "1", "grp": "normal"},
            {"case_id": "1", "grp": "normal"},
            {"case_id": "", "grp": "x"},
        ],
    )
    problems = _problems(root)
    assert "metadata.csv [row 3]: case 1 listed twice" in problems
    assert "metadata.csv [row 4]: no case_id (nor recvid)" in problems


def test_training_stops_or_skips_and_lists(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"1": "cancer", "2": "normal", "3": "benign", "4": "normal"})
    write_contours(
        root,
        "3",
        {"benign": {"lcc": {"l1": [{"x": 2, "y": 2}, {"x": 5, "y": -2}, {"x": 5, "y": 6}]}}},
    )
    write_contours(root, "1", {}, discard=1)
    module = MammoDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), cache_size=(32, 24))
    with pytest.raises(
        MammoDataError,
        match=r"(?s)1 problems:\n  contours/3\.json \[case 3 view lcc lesion l1\]: mixed signs.*skip_broken=true",
    ):
        module.sample_table()
    module = MammoDataModule(
        root=str(root), cache_dir=str(tmp_path / "cache"), cache_size=(32, 24), skip_broken=True
    )
    table = module.sample_table()
    assert table.ids == ["2", "4"] and table.labels == ["normal", "normal"]
    skipped = dict(module.skipped_rows())
    assert (
        set(skipped) == {"1", "3"}
        and "discard_yn" in skipped["1"]
        and "mixed signs" in skipped["3"]
    )
    report = module.check()
    assert not report.ok and report.counts["discarded (discard_yn = 1)"] == 1
    assert report.counts["cases per class"] == {"cancer": 0, "benign": 0, "normal": 2}


def test_missing_root_and_metadata(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.root is not set"):
        MammoDataModule().sample_table()
    with pytest.raises(FileNotFoundError, match=r"no metadata\.csv"):
        build_index(tmp_path)


def test_undecodable_pixels_are_a_case_problem(tmp_path: Path) -> None:
    """A header that reads but pixel data cut short: found when the cache decodes, named, skippable."""
    root = _tree(tmp_path, {"1": "normal", "2": "normal"})
    path = root / "images" / "2" / "3.dcm"
    path.write_bytes(path.read_bytes()[:-300])
    settings = {"root": str(root), "cache_dir": str(tmp_path / "cache"), "cache_size": (16, 12)}
    module = MammoDataModule(**settings)
    module.prepare_data()
    report = module.check()
    assert [p.file for p in report.problems] == ["images/2/3.dcm"]
    assert "export it again" in report.problems[0].reason
    with pytest.raises(MammoDataError, match=r"images/2/3\.dcm"):
        MammoDataModule(**settings).sample_table()  # a fresh instance reads the recorded failure
    assert MammoDataModule(**settings, skip_broken=True).sample_table().ids == ["1"]


def test_headers_are_kept_between_starts_and_read_again_when_a_file_changes(
    tmp_path: Path,
) -> None:
    from kbaselines.mammo.headers import HeaderCache
    from kbaselines.mammo.synthetic import write_dicom

    root = _tree(tmp_path / "tree", {"1": "normal", "2": "cancer"})
    file = tmp_path / "cache" / "dicom_headers.json"
    first = build_index(root, file)
    assert file.is_file()
    again = HeaderCache(file)
    for case in first.cases:  # every header comes back from the cache, equal to the file's
        for view, rel in case.views.items():
            assert again.header(root / rel, rel) == case.headers[view]
    assert (again.reused, again.read) == (8, 0)
    # a file exported again (here: another device, a wider image) is read again
    rel = first.cases[1].views["lcc"]
    write_dicom(root / rel, np.zeros((40, 24)), "L", "CC", device=("Hologic", "Selenia"))
    second = build_index(root, file)
    assert second.cases[1].headers["lcc"].rows == 40
    assert second.cases[1].headers["lcc"].manufacturer == "Hologic"
    # a removed case drops out of the cache; a broken cache file is read past
    shutil.rmtree(root / "images" / "1")
    write_metadata(root, [{"case_id": "2", "recvid": "p2", "grp": "cancer"}])
    build_index(root, file)
    assert all(not key.startswith("images/1/") for key in json.loads(file.read_text())["headers"])
    file.write_text("{broken")
    assert [c.case_id for c in build_index(root, file).cases] == ["2"]
