"""Damaged mammography inputs, written by hand from mammography.md: each is reported naming the
file and the record (metadata ``row <line>``, contour ``case <id> view <v> lesion <id>`` and key),
stops training before it starts, or with ``data.skip_broken=true`` is left out with a count and a
list; one DICOM under two paths or two patients is reported and refused by the split."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from mammo_fixtures import write_case, write_contours, write_metadata
from PIL import Image

from kbaselines.core.cv.splits import Fold, LeakageError, Splits, check_no_leakage
from kbaselines.mammo.datamodule import MammoDataError, MammoDataModule

CASES = {"1": "cancer", "2": "benign", "3": "normal", "4": "normal"}
LESION = [{"x": 2, "y": -2}, {"x": 5, "y": -2}, {"x": 5, "y": -6}]  # inside the 24x32 lcc


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Four good cases of four patients (32x24 views), a contour file for the cancer case."""
    root = tmp_path / "tree"
    for case_id in CASES:
        write_case(root, case_id)
    write_metadata(root, [{"case_id": c, "recvid": f"p{c}", "grp": g} for c, g in CASES.items()])
    write_contours(root, "1", {"cancer": {"lcc": {"l1": LESION}}})
    return root


def _module(root: Path, **settings) -> MammoDataModule:
    cache = root.parent / "cache"
    return MammoDataModule(root=str(root), cache_dir=str(cache), cache_size=(16, 12), **settings)


def _located(problems) -> list[tuple[str, str | None, str]]:
    return [(p.file, p.record, p.reason) for p in problems]


def test_good_tree_every_file_decoded_and_hashed(root: Path) -> None:
    report = _module(root).check(workers=2)
    assert report.ok, report.render()
    assert report.counts["DICOM files read and decoded"] == 16
    table = _module(root).sample_table()
    assert table.files is not None and table.digests is not None
    assert table.files[0] == (
        "images/1/0.dcm",
        "images/1/1.dcm",
        "images/1/2.dcm",
        "images/1/3.dcm",
    )
    assert len({d for row in table.digests for d in row}) == 16  # every DICOM differs (its UIDs)


# -- DICOM files that cannot be used ---------------------------------------------------------------
def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-300])  # the header reads, the pixel data is cut


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _png_named_dcm(path: Path) -> None:
    Image.fromarray(np.zeros((32, 24), np.uint8)).save(path, format="PNG")


def _no_pixel_data(path: Path) -> None:
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    dataset.save_as(path)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncated, "pixel data unreadable"),
        (_zero_bytes, "is empty (0 bytes): export it again"),
        (_png_named_dcm, "not a DICOM file"),
        (_no_pixel_data, "has no Pixel Data (7FE0,0010)"),
    ],
)
def test_unusable_dicom_stops_training_or_is_skipped_and_listed(
    root: Path, damage: Callable[[Path], None], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    damage(root / "images" / "2" / "3.dcm")
    report = _module(root).check()
    assert [(f, r) for f, r, _ in _located(report.problems)][:1] == [("images/2/3.dcm", None)]
    assert reason in report.problems[0].reason
    with pytest.raises(MammoDataError, match=r"(?s)images/2/3\.dcm: .*skip_broken=true"):
        _module(root).sample_table()
    skipping = _module(root, skip_broken=True)
    with caplog.at_level(logging.WARNING, logger="kbaselines.mammo.datamodule"):
        assert skipping.sample_table().ids == ["1", "3", "4"]
    assert "1 cases skipped" in caplog.text and "2: images/2/3.dcm: " in caplog.text
    ((case, why),) = skipping.skipped_rows()
    assert case == "2" and why.startswith("images/2/3.dcm: ") and reason in why


# -- contour files ---------------------------------------------------------------------------------
def _outside(contours: dict) -> None:
    contours["cancer"]["lcc"]["l1"] = [{"x": 2, "y": 2}, {"x": 30, "y": 2}, {"x": 5, "y": 6}]
    contours["cancer"]["lmlo"] = {"l2": [{"x": 2, "y": -2}, {"x": 5, "y": -40}, {"x": 5, "y": -6}]}


def _missing_key(contours: dict) -> None:
    del contours["cancer"]["lcc"]["l1"][1]["y"]


def _wrong_type(contours: dict) -> None:
    contours["cancer"]["lcc"]["l1"][2]["x"] = "5"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            _outside,
            [
                ("case 1 view lcc lesion l1", "points outside the 24x32 image (x 2..30"),
                ("case 1 view lmlo lesion l2", "points outside the 24x32 image (x 2..5, y 2..40"),
            ],
        ),
        (_missing_key, [("case 1", "key 'contour_list.cancer.lcc.l1.1.y' is missing")]),
        (
            _wrong_type,
            [("case 1", "key 'contour_list.cancer.lcc.l1.2.x': Input should be a valid number")],
        ),
    ],
)
def test_contour_problems_name_file_record_and_key(
    root: Path, damage: Callable[[dict], None], expected: list[tuple[str, str]]
) -> None:
    contours = {"cancer": {"lcc": {"l1": [dict(p) for p in LESION]}}}
    damage(contours)
    write_contours(root, "1", contours)
    problems = _module(root).check().problems
    assert [(f, r) for f, r, _ in _located(problems)] == [
        ("contours/1.json", r) for r, _ in expected
    ]
    assert all(text in p.reason for p, (_, text) in zip(problems, expected, strict=True))
    assert _module(root, skip_broken=True).sample_table().ids == ["2", "3", "4"]


def test_malformed_contour_json_and_discard_flag_of_wrong_type(root: Path) -> None:
    (root / "contours" / "1.json").write_text('{"contour_list": {"cancer": ')
    write_contours(root, "2", {}, discard="yes")  # type: ignore[arg-type]
    located = _located(_module(root).check().problems)
    assert located[0][:2] == ("contours/1.json", None)
    assert located[0][2].startswith("not readable JSON (")
    assert located[1] == (
        "contours/2.json",
        "case 2",
        "key 'discard_yn': Input should be 0 or 1 (got 'yes')",
    )


def test_files_edited_in_place_are_read_again(root: Path) -> None:
    """Every cache is warm (headers, file facts, images); edits in place of a contour file and of a
    DICOM (size and time change, the path stays) are seen by the next start."""
    assert _module(root).sample_table().ids == ["1", "2", "3", "4"]
    path = root / "contours" / "1.json"
    document = json.loads(path.read_text())
    document["contour_list"]["cancer"]["lcc"]["l1"][1]["x"] = 24  # one column past the image
    path.write_text(json.dumps(document))
    with pytest.raises(
        MammoDataError, match=r"contours/1\.json \[case 1 view lcc lesion l1\]: points outside"
    ):
        _module(root).sample_table()
    document["contour_list"]["cancer"]["lcc"]["l1"][1]["x"] = 23
    path.write_text(json.dumps(document))
    (case, *_) = _module(root).cases()
    assert case.lesions[0].box[2] == pytest.approx(24 / 24)  # the box now reaches the edge
    # another patient's view written over a view: its digest is computed again
    (root / "images" / "4" / "2.dcm").write_bytes((root / "images" / "3" / "2.dcm").read_bytes())
    ((file, _, text),) = _located(_module(root).check().problems)
    assert file == "images/4/2.dcm" and text.startswith("is byte-identical to images/3/2.dcm")


# -- metadata rows ---------------------------------------------------------------------------------
def test_metadata_rows_missing_a_field_or_with_bad_values(root: Path) -> None:
    (root / "metadata.csv").write_text(
        "case_id,recvid,grp,both1\n"
        "1,p1,cancer,4a\n"
        "2,p2,benign,7\n"  # not a BI-RADS category
        "3,p3\n"  # a row cut short: grp missing
        "4,p4,normal,1,extra\n"  # a field too many
    )
    located = _located(_module(root).check().problems)
    assert located == [
        (
            "metadata.csv",
            "row 3",
            "key 'both1': Value error, BI-RADS is one of 0, 1, 2, 3, 4, 4a, 4b, 4c, 5, 6 or empty "
            "(got '7')",
        ),
        (
            "metadata.csv",
            "row 4",
            "has 2 fields, the header 4: a comma too many or too few "
            "(quote values that hold commas)",
        ),
        ("metadata.csv", "row 4", "key 'grp' is missing"),
        (
            "metadata.csv",
            "row 5",
            "has 5 fields, the header 4: a comma too many or too few "
            "(quote values that hold commas)",
        ),
    ]
    skipping = _module(root, skip_broken=True)
    assert skipping.sample_table().ids == ["1"]
    assert [case for case, _ in skipping.skipped_rows()] == ["2", "3", "4"]


def test_metadata_json_entries_that_are_not_rows(root: Path) -> None:
    (root / "metadata.csv").unlink()
    rows = [
        {"case_id": 1, "recvid": "p1", "grp": "cancer"},
        "2,p2,benign",
        {"case_id": 3, "recvid": "p3", "grp": None},
        {"case_id": 4, "recvid": "p4", "grp": "normal", "left1": "4d"},
    ]
    (root / "metadata.json").write_text(json.dumps(rows))
    located = _located(_module(root).check().problems)
    assert located == [
        (
            "metadata.json",
            "[2]",
            "key 'grp': Input should be 'cancer', 'benign' or 'normal' (got '')",
        ),
        (
            "metadata.json",
            "[3]",
            "key 'left1': Value error, BI-RADS is one of 0, 1, 2, 3, 4, 4a, 4b, 4c, 5, 6 or empty "
            "(got '4d')",
        ),
        ("metadata.json", "[1]", "is a str, not an object"),
        ("images/2", None, "images without a metadata.json row; add the row or remove the folder"),
    ]


# -- the tree: empty folders and dangling links ----------------------------------------------------
def test_empty_case_folder_and_other_empty_folders(root: Path) -> None:
    for path in (root / "images" / "3").iterdir():
        path.unlink()
    (root / "masks" / "4").mkdir(parents=True)
    located = _located(_module(root).check().problems)
    assert [(f, r) for f, r, _ in located] == [("images/3", None), ("masks/4", None)]
    assert located[0][2].startswith("has no .dcm file (an empty case folder?)")
    assert located[1][2] == "is an empty folder: remove it"


def test_dangling_links_in_a_case_and_elsewhere(root: Path) -> None:
    view = root / "images" / "2" / "3.dcm"
    view.unlink()
    view.symlink_to(root / "images" / "2" / "gone.dcm")
    (root / "contours" / "3.json").symlink_to(root / "contours" / "gone.json")
    located = _located(_module(root).check().problems)
    assert located == [
        ("images/2/3.dcm", None, "is a dangling link: restore its target or remove it"),
        (
            "images/2",
            None,
            "missing view(s) lmlo: a case needs the four views RCC, RMLO, LCC, LMLO",
        ),
        ("contours/3.json", None, "is a dangling link: restore its target or remove it"),
    ]
    assert _module(root, skip_broken=True).sample_table().ids == ["1", "3", "4"]


# -- content: one DICOM in two patients' cases -----------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "reason"),
    [
        (
            os.symlink,
            "is the same file as images/3/2.dcm (a link or a linked folder; groups p3 and p4)",
        ),
        (
            os.link,
            "is the same file as images/3/2.dcm (a link or a linked folder; groups p3 and p4)",
        ),
        (shutil.copyfile, "is byte-identical to images/3/2.dcm in another group (p3 and p4)"),
    ],
)
def test_one_dicom_in_two_patients_is_reported_and_refused_by_the_split(
    root: Path, alias: Callable[[Path, Path], object], reason: str
) -> None:
    target = root / "images" / "4" / "2.dcm"
    target.unlink()
    alias(root / "images" / "3" / "2.dcm", target)
    ((file, record, text),) = _located(_module(root).check().problems)
    assert (file, record) == ("images/4/2.dcm", None) and text.startswith(reason)
    table = _module(root).sample_table()
    apart = Splits("kfold", 1, 0, [Fold(0, train=["1", "2", "3"], val=[], test=["4"])])
    with pytest.raises(
        LeakageError, match=r"images/3/2\.dcm \(train\) and images/4/2\.dcm \(test\)"
    ):
        check_no_leakage(apart, table)
    together = [Fold(0, ["1", "2"], [], ["3", "4"]), Fold(1, ["3", "4"], [], ["1", "2"])]
    check_no_leakage(Splits("kfold", 2, 0, together), table)  # in one part: no leak


def test_byte_identical_copy_is_judged_by_the_group_key(root: Path) -> None:
    """Two cases of one patient may share an image under ``group_key=patient``, not under ``case``."""
    shutil.copyfile(root / "images" / "3" / "2.dcm", root / "images" / "4" / "2.dcm")
    write_metadata(
        root,
        [
            {"case_id": c, "recvid": "p3" if c == "4" else f"p{c}", "grp": g}
            for c, g in CASES.items()
        ],
    )
    assert _module(root).check().ok
    ((file, _, text),) = _located(_module(root, group_key="case").check().problems)
    assert (
        file == "images/4/2.dcm"
        and "byte-identical to images/3/2.dcm in another group (3 and 4)" in text
    )
