"""Contours and masks: negative y, mixed signs, points outside the image, discard, mask PNGs;
every problem of a file is collected and names the file, the case, view and lesion (or key)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mammo_fixtures import write_contours
from PIL import Image

from kbaselines.mammo.contours import read_contours, read_masks

SIZES = {v: (100, 80) for v in ("rcc", "rmlo", "lcc", "lmlo")}  # rows, columns


def _square(x0: float, y0: float, side: float, sign: int = 1) -> list[dict[str, float]]:
    corners = [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side), (x0, y0)]
    return [{"y": sign * y, "x": x} for x, y in corners]


def test_negative_y_detected_per_contour(tmp_path: Path) -> None:
    """lesion01 stored with -y (as the drawing tool does), lesion02 with +y: both read alike."""
    path = write_contours(
        tmp_path,
        "100001",
        {
            "cancer": {
                "lcc": {"lesion01": _square(10, 20, 9, sign=-1), "lesion02": _square(10, 20, 9)}
            }
        },
    )
    parsed = read_contours(path, SIZES)
    assert not parsed.discard and parsed.problems == []
    first, second = parsed.lesions
    assert first.box == second.box == pytest.approx((10 / 80, 20 / 100, 20 / 80, 30 / 100))
    assert first.cls == "cancer" and first.laterality == "L"


def test_right_breast_boxes_are_flipped(tmp_path: Path) -> None:
    path = write_contours(tmp_path, "100001", {"benign": {"rmlo": {"lesion01": _square(0, 0, 9)}}})
    (lesion,) = read_contours(path, SIZES).lesions
    assert lesion.box == pytest.approx((70 / 80, 0.0, 1.0, 0.1))  # x -> 79 - x


def test_mixed_signs_name_case_view_and_lesion(tmp_path: Path) -> None:
    points = _square(10, 20, 9)
    points[1]["y"] = -points[1]["y"]
    path = write_contours(tmp_path, "100007", {"cancer": {"rcc": {"lesion03": points}}})
    parsed = read_contours(path, SIZES, root=tmp_path)
    assert parsed.lesions == [] and len(parsed.problems) == 1
    assert str(parsed.problems[0]).startswith(
        "contours/100007.json [case 100007 view rcc lesion lesion03]: mixed signs"
    )


@pytest.mark.parametrize("points", [_square(75, 10, 9), _square(10, 95, 9, sign=-1)])
def test_points_outside_the_image(tmp_path: Path, points: list) -> None:
    path = write_contours(tmp_path, "100008", {"benign": {"lmlo": {"lesion01": points}}})
    (problem,) = read_contours(path, SIZES).problems
    assert problem.record == "case 100008 view lmlo lesion lesion01"
    assert problem.reason.startswith("points outside the 80x100 image")


def _reasons(path: Path) -> list[str]:
    return [str(p) for p in read_contours(path, SIZES, root=path.parents[1]).problems]


def test_malformed_files(tmp_path: Path) -> None:
    broken = tmp_path / "contours" / "1.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"contour_list": {')
    (reason,) = _reasons(broken)
    assert reason.startswith("contours/1.json: not readable JSON")
    path = write_contours(tmp_path, "2", {"malignant": {"lcc": {}}})
    assert _reasons(path) == [
        "contours/2.json [case 2]: key 'contour_list.malignant.[key]': Input should be 'cancer' "
        "or 'benign' (got 'malignant')"
    ]
    path = write_contours(tmp_path, "3", {"cancer": {"lml": {"lesion01": _square(1, 1, 3)}}})
    assert "key 'contour_list.cancer.lml.[key]'" in _reasons(path)[0]


def test_every_schema_problem_is_reported(tmp_path: Path) -> None:
    """Missing keys, wrong types and short contours anywhere in the file, all of them at once."""
    points = _square(1, 1, 3)
    points[1] = {"x": 2}
    points[3]["x"] = "4"
    path = write_contours(
        tmp_path,
        "4",
        {"cancer": {"LCC": {"lesion01": points}}, "benign": {"rcc": {"l2": _square(1, 1, 3)[:2]}}},
        discard="no",  # type: ignore[arg-type]
    )
    reasons = _reasons(path)
    assert (
        reasons[0]
        == "contours/4.json [case 4]: key 'contour_list.cancer.LCC.lesion01.1.y' is missing"
    )
    assert reasons[1].startswith(
        "contours/4.json [case 4]: key 'contour_list.cancer.LCC.lesion01.3.x': Input should be a "
        "valid number (got '4')"
    )
    assert "key 'contour_list.benign.rcc.l2': List should have at least 3 items" in reasons[2]
    assert "key 'discard_yn': Input should be 0 or 1 (got 'no')" in reasons[3]
    assert len(reasons) == 4
    assert (
        _reasons(write_contours(tmp_path, "5", {"cancer": {"LCC": {"l": _square(1, 1, 3)}}})) == []
    )


def test_discard_flag(tmp_path: Path) -> None:
    path = write_contours(
        tmp_path, "5", {"cancer": {"lcc": {"lesion01": _square(1, 1, 3)}}}, discard=1
    )
    assert read_contours(path, SIZES).discard


def test_masks(tmp_path: Path) -> None:
    folder = tmp_path / "masks" / "100001"
    folder.mkdir(parents=True)
    mask = np.zeros((100, 80), np.uint8)
    mask[20:30, 10:20] = 255
    Image.fromarray(mask).save(folder / "lcc_lesion01.png")
    Image.fromarray(mask).save(folder / "lmlo_lesion09.png")
    lesions, problems = read_masks(folder, SIZES, {"lesion01": "benign"}, default="cancer")
    assert problems == []
    assert [(lesion.view, lesion.cls) for lesion in lesions] == [
        ("lcc", "benign"),
        ("lmlo", "cancer"),
    ]
    assert lesions[0].box == pytest.approx((10 / 80, 20 / 100, 20 / 80, 30 / 100))
    Image.fromarray(mask[:50]).save(folder / "rcc_lesion02.png")
    (folder / "rmlo_lesion03.png").write_bytes(b"not a png")
    lesions, problems = read_masks(folder, SIZES, {}, default="cancer", root=tmp_path)
    assert len(lesions) == 2 and len(problems) == 2
    assert str(problems[0]) == (
        "masks/100001/rcc_lesion02.png [case 100001 view rcc lesion lesion02]: mask is 80x50, "
        "the image 80x100"
    )
    assert str(problems[1]).startswith(
        "masks/100001/rmlo_lesion03.png [case 100001 view rmlo lesion lesion03]: not a readable PNG"
    )
