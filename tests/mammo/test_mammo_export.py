"""Exports that lost their tags: views from ``data.views_table``, the twin's export form (bare image
ids, no view tags, Modality or spacing, MONOCHROME1, JPEG 2000), the table's spellings, conflicts,
keys and rows, the check's view-origin counts, and the decoding of such files (JPEG 2000,
MONOCHROME1, a sigmoid VOI LUT, Pixel Padding Value)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from mammo_fixtures import ramp, write_metadata
from parts_helpers import TRAINING, VALIDATION, two_parts

from kbaselines.mammo.datamodule import MammoDataError, MammoDataModule
from kbaselines.mammo.dicom import VIEWS, MammoDicomError, read_pixels
from kbaselines.mammo.index import build_index, read_views_table
from kbaselines.mammo.synthetic import VIEWS_TABLE, generate_mammo, write_dicom

#: 6 cases (2 per class) of 64x52 views, as the ordinary twin and as an export.
SMALL = {"num_cases": 6, "rows": 64, "columns": 52, "seed": 3}
TAGS = (("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO"))


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The ordinary twin and its export form, same seed."""
    folder = tmp_path_factory.mktemp("mammo_export")
    return (
        generate_mammo(folder / "plain", **SMALL),
        generate_mammo(folder / "export", **SMALL, export=True),
    )


def _module(root: Path, cache: Path, **settings) -> MammoDataModule:
    return MammoDataModule(root=str(root), cache_dir=str(cache), cache_size=(64, 52), **settings)


def _table(root: Path) -> list[dict[str, str]]:
    with (root / VIEWS_TABLE).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_table(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _copy(tree: Path, folder: Path) -> Path:
    return Path(shutil.copytree(tree, folder / tree.name))


# -- the export form of the twin -------------------------------------------------------------------
def test_export_files_are_stripped_monochrome1_jpeg2000(trees: tuple[Path, Path]) -> None:
    _, export = trees
    files = sorted((export / "images").glob("*/*.dcm"))
    table = _table(export)
    assert len(files) == 24 == len(table)
    assert {f.stem for f in files} == {row["image_id"] for row in table}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID.name.startswith("JPEG 2000")
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        for keyword in ("ViewPosition", "ViewCodeSequence", "Modality", "PixelSpacing"):
            assert keyword not in ds
    with_laterality = [f for f in files if "ImageLaterality" in pydicom.dcmread(f)]
    assert len(with_laterality) == 12  # every other case keeps Image Laterality


def test_export_reads_with_the_table_as_the_plain_twin(
    trees: tuple[Path, Path], tmp_path: Path
) -> None:
    plain, export = trees
    reference = _module(plain, tmp_path / "a")
    module = _module(export, tmp_path / "b", views_table=VIEWS_TABLE)
    ours, theirs = module.sample_table(), reference.sample_table()
    assert (ours.ids, ours.labels, ours.groups) == (theirs.ids, theirs.labels, theirs.groups)
    cases = {c.case_id: c for c in module.index.cases}
    for case in reference.index.cases:
        assert cases[case.case_id].lesions == case.lesions
        assert cases[case.case_id].breasts == case.breasts
        for view in VIEWS:
            # the same displayed image, flipped the same way: the laterality of half the files
            # comes only from the table
            ours_image = module.cache.load(export / cases[case.case_id].views[view])
            theirs_image = reference.cache.load(plain / case.views[view])
            difference = np.abs(ours_image.astype(int) - theirs_image.astype(int)).max()
            assert difference <= 2.5 * 65535 / 4095, (case.case_id, view)  # as in test_mammo_dicom
    assert len(module.cache.sides) == 12  # the files whose tags lack the laterality


def test_export_without_the_table_fails_naming_the_setting(
    trees: tuple[Path, Path], tmp_path: Path
) -> None:
    _, export = trees
    with pytest.raises(MammoDataError) as raised:
        _module(export, tmp_path).sample_table()
    message = str(raised.value)
    assert "no view found (tried ImageLaterality" in message
    assert "no laterality found" in message
    assert "data.views_table=<csv>" in message


def test_check_counts_where_views_came_from(trees: tuple[Path, Path], tmp_path: Path) -> None:
    plain, export = trees
    report = _module(export, tmp_path, views_table=VIEWS_TABLE).check()
    assert report.ok, report.render()
    assert report.counts["laterality from"] == {
        "header": 0,
        "table": 12,
        "header and table agree": 12,
    }
    assert report.counts["view from"] == {"header": 0, "table": 24, "header and table agree": 0}
    assert report.counts["views without pixel spacing"] == 24
    plain_report = _module(plain, tmp_path).check()
    assert plain_report.counts["view from"]["header"] == 24
    assert plain_report.counts["views without pixel spacing"] == 0


def test_official_parts_share_one_table_at_the_root(tmp_path: Path) -> None:
    root = two_parts(
        tmp_path / "delivery",
        generate_mammo,
        {**SMALL, "export": True},
        {**SMALL, "export": True, "first_case": 6},
    )
    _write_table(root / "all_views.csv", _table(root / TRAINING) + _table(root / VALIDATION))
    table = _module(root, tmp_path / "cache", views_table="all_views.csv").sample_table()
    assert len(table.ids) == 12 and table.parts == ["train"] * 6 + ["test"] * 6


# -- conflicts, spellings, keys and rows -----------------------------------------------------------
def test_tags_and_table_in_conflict_name_both(trees: tuple[Path, Path], tmp_path: Path) -> None:
    export = _copy(trees[1], tmp_path)
    rows = _table(export)
    # the first case keeps Image Laterality: its table row now says the other side
    path = next((export / "images" / "100001").glob("*.dcm"))
    row = next(r for r in rows if r["image_id"] == path.stem)
    tags = pydicom.dcmread(path).ImageLaterality
    row["laterality"] = "left" if tags == "R" else "right"
    _write_table(export / VIEWS_TABLE, rows)
    line = rows.index(row) + 2
    with pytest.raises(MammoDataError) as raised:
        _module(export, tmp_path / "cache", views_table=VIEWS_TABLE).sample_table()
    expected = (
        f"images/100001/{path.name}: laterality {tags} in the file's tags (ImageLaterality) but "
        f"{'L' if tags == 'R' else 'R'} in views.csv row {line} (image '{path.stem}')"
    )
    assert expected in str(raised.value)
    skipping = _module(export, tmp_path / "cache", views_table=VIEWS_TABLE, skip_broken=True)
    assert skipping.sample_table().ids == [f"{100002 + i}" for i in range(5)]
    ((case, why),) = skipping.skipped_rows()
    assert case == "100001" and expected in why


def test_view_tag_and_table_in_conflict(tmp_path: Path) -> None:
    """A file whose View Position says CC, listed as MLO."""
    root = tmp_path / "tree"
    for number, (laterality, view) in enumerate(TAGS):
        write_dicom(root / "images" / "1" / f"{number}.dcm", ramp(), laterality, view)
    write_metadata(root, [{"case_id": "1", "grp": "normal"}])
    _write_table(
        root / "v.csv",
        [
            {"image_id": f"1/{n}", "laterality": lat, "view": view}
            for n, (lat, view) in enumerate(TAGS)
        ],
    )
    rows = (root / "v.csv").read_text().replace("1/0,R,CC", "1/0,R,MLO")
    (root / "v.csv").write_text(rows)
    problems = [str(p) for p in build_index(root, table=read_views_table("v.csv", root)).problems]
    assert problems[0] == (
        "images/1/0.dcm: view CC in the file's tags (ImageLaterality+ViewPosition) but MLO in "
        "v.csv row 2 (image '1/0'): correct the row or the tags"
    )


def _stripped_case(root: Path, case_id: str, names: list[str]) -> None:
    """A case of files without laterality or view tags, named ``names``."""
    for name, (laterality, view) in zip(names, TAGS, strict=True):
        image = ramp()[:, ::-1] if laterality == "R" else ramp()
        write_dicom(
            root / "images" / case_id / f"{name}.dcm", image, laterality, view, tag_style="none"
        )


def test_spellings_and_configured_columns(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _stripped_case(root, "1", ["a1", "a2", "a3", "a4"])
    write_metadata(root, [{"case_id": "1", "grp": "normal"}])
    spelled = [("Right", "cranio-caudal"), ("rt", "MLO"), ("좌", "cc"), ("LEFT breast", "Mlo")]
    rows = [
        {"File": f"A{n + 1}.DCM", "Side": side, "ViewPosition": view}
        for n, (side, view) in enumerate(spelled)
    ]
    _write_table(root / "views.csv", rows)
    columns = {"image": "File", "laterality": "Side", "view": "ViewPosition"}
    index = build_index(root, table=read_views_table("views.csv", root, columns))
    assert index.problems == []
    (case,) = index.cases
    assert case.views == {v: f"images/1/a{n + 1}.dcm" for n, v in enumerate(VIEWS)}
    rows[2]["ViewPosition"] = "XCCL"
    rows[3]["Side"] = "both"
    _write_table(root / "views.csv", rows)
    problems = build_index(root, table=read_views_table("views.csv", root, columns)).problems
    reasons = {p.file: p.reason for p in problems}
    assert reasons["images/1/a3.dcm"].startswith(
        "views.csv row 4: view 'XCCL' (column 'ViewPosition') is not CC or MLO"
    )
    assert reasons["images/1/a4.dcm"].startswith(
        "views.csv row 5: laterality 'both' (column 'Side') is not L or R"
    )


def test_a_table_of_views_only(trees: tuple[Path, Path], tmp_path: Path) -> None:
    """``views_columns.laterality: null``: the laterality must come from the tags."""
    _, export = trees
    columns = {"laterality": None}
    module = _module(export, tmp_path, views_table=VIEWS_TABLE, views_columns=columns)
    index = module.index
    assert [c.case_id for c in index.cases] == ["100001", "100003", "100005"]  # Image Laterality
    reason = index.bad_cases["100002"][0].reason  # its rows: 6 to 9
    assert reason.startswith("no laterality found (tried ImageLaterality")
    assert re.search(r"and views\.csv row [6-9], whose laterality is empty", reason)


def test_table_setting_errors(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _stripped_case(root, "1", ["a1", "a2", "a3", "a4"])
    _write_table(root / "views.csv", [{"image": "a1", "laterality": "R", "view": "CC"}])
    with pytest.raises(FileNotFoundError, match=r"data.views_table=nope.csv: no such file"):
        read_views_table("nope.csv", root)
    with pytest.raises(
        ValueError, match=r"views.csv has no column 'image_id' \(its columns: image, laterality"
    ):
        read_views_table("views.csv", root)


def test_keys_rows_and_files(tmp_path: Path) -> None:
    """The longest key wins; a bare file name shared by two cases is refused for both; a file
    named by two rows is refused; rows naming no file are listed by the check only."""
    root = tmp_path / "tree"
    names = ["1-1", "1-2", "1-3", "1-4"]
    for case_id in ("1", "2", "3"):
        _stripped_case(root, case_id, names)
    _stripped_case(root, "4", ["b1", "b2", "b3", "b4"])
    write_metadata(root, [{"case_id": c, "recvid": c, "grp": "normal"} for c in "1234"])
    tags = [{"laterality": lat, "view": view} for lat, view in TAGS]
    rows = [{"image_id": f"images/1/{n}", **t} for n, t in zip(names, tags, strict=True)]
    rows += [{"image_id": n, **t} for n, t in zip(names, tags, strict=True)]  # cases 2 and 3
    rows += [{"image_id": f"b{n + 1}", **t} for n, t in enumerate(tags)]
    rows += [{"image_id": "B2.dcm", **tags[1]}, {"image_id": "9/1-1", **tags[0]}]
    rows += [{"image_id": "", **tags[0]}]
    _write_table(root / "views.csv", rows)
    module = _module(root, tmp_path / "cache", views_table="views.csv", skip_broken=True)
    report = module.check()
    problems = {(p.file, p.record): p.reason for p in report.problems}
    assert (
        problems[("images/2/1-1.dcm", None)]
        == problems[("images/3/1-1.dcm", None)]
        == (
            "views.csv row 6: image '1-1' names 2 files: key the table by a longer path "
            "(<case>/<file name>) or give each file its own id"
        )
    )
    assert problems[("images/4/b2.dcm", None)] == (
        "named by 2 rows of views.csv (row 11, row 14): keep one"
    )
    assert problems[("views.csv", "row 15")].startswith(
        "image '9/1-1' names no DICOM file of the cases in the metadata: remove the row"
    )
    assert problems[("views.csv", "row 16")] == "no image id: fill it in or remove the row"
    assert module.sample_table().ids == ["1"]  # the rows naming no file do not stop training


def test_table_edits_are_seen_with_the_header_cache(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _stripped_case(root, "1", ["a1", "a2", "a3", "a4"])
    write_metadata(root, [{"case_id": "1", "grp": "normal"}])
    rows = [
        {"image_id": f"a{n + 1}", "laterality": lat, "view": v} for n, (lat, v) in enumerate(TAGS)
    ]
    _write_table(root / "views.csv", rows)
    cache = tmp_path / "headers.json"
    first = build_index(root, cache, read_views_table("views.csv", root))
    assert first.cases[0].views["rcc"] == "images/1/a1.dcm"
    rows[0]["view"], rows[1]["view"] = "MLO", "CC"
    _write_table(root / "views.csv", rows)
    second = build_index(root, cache, read_views_table("views.csv", root))
    assert second.cases[0].views["rcc"] == "images/1/a2.dcm"


# -- decoding such files ---------------------------------------------------------------------------
def test_jpeg2000_monochrome1_decodes_as_uncompressed(tmp_path: Path) -> None:
    image = ramp(40, 36)
    plain, _ = read_pixels(write_dicom(tmp_path / "u.dcm", image, "R", "CC", bits_stored=16))
    path = write_dicom(
        tmp_path / "j.dcm", image, "R", "CC", bits_stored=16, monochrome1=True, jpeg2000=True
    )
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID.name.startswith("JPEG 2000")
    decoded, _ = read_pixels(path)
    np.testing.assert_allclose(decoded, plain, atol=2.5 / 65535)  # as in test_mammo_dicom
    np.testing.assert_allclose(decoded, image[:, ::-1], atol=2.5 / 65535)  # right: flipped


def test_sigmoid_voi_and_padding_monochrome1(tmp_path: Path) -> None:
    """A 16-bit MONOCHROME1 view with a sigmoid VOI LUT and Pixel Padding Value: the sigmoid of
    the stored values, inverted; the padding (white in MONOCHROME1 after the window) black."""
    image = 0.05 + 0.9 * ramp(40, 36)  # no stored 0 in the image: 0 is the padding value
    path = write_dicom(tmp_path / "s.dcm", image, "L", "CC", bits_stored=16, monochrome1=True)
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.copy()
    stored[:, -6:] = 0  # the padding band at the side away from the chest wall
    ds.PixelData = stored.tobytes()
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = "30000", "20000", "SIGMOID"
    ds.add_new("PixelPaddingValue", "US", 0)
    ds.save_as(path)
    decoded, _ = read_pixels(path)
    expected = 1.0 - 1.0 / (1.0 + np.exp(-4 * (stored - 30000.0) / 20000.0))
    np.testing.assert_allclose(decoded[:, :-6], expected[:, :-6], atol=1e-5)
    assert decoded[:, -6:].max() == 0.0 and decoded.min() >= 0.0 and decoded.max() <= 1.0
    assert decoded[:, 0].mean() > decoded[:, -7].mean()  # bright tissue at the chest wall, left
    del ds.PixelPaddingValue
    ds.save_as(path)
    assert read_pixels(path)[0][:, -6:].min() > 0.9  # without the tag: white there


def test_padding_range_limit(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "p.dcm", ramp(), "L", "CC", bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.add_new("PixelPaddingValue", "US", 4095)
    ds.add_new("PixelPaddingRangeLimit", "US", 3900)
    ds.save_as(path)
    stored = ds.pixel_array
    decoded, _ = read_pixels(path)
    assert (decoded[stored >= 3900] == 0.0).all() and (decoded[stored < 3900] > 0).all()


def test_laterality_from_the_caller(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "x.dcm", ramp()[:, ::-1], "R", "CC", tag_style="none")
    with pytest.raises(MammoDicomError, match=r"no laterality found .*it decides the flip"):
        read_pixels(path)
    decoded, header = read_pixels(path, laterality="R")
    np.testing.assert_allclose(decoded, ramp(), atol=1e-3)
    assert header.laterality == "R" and header.view_position is None
    assert read_pixels(path, flip_right=False)[1].laterality is None
