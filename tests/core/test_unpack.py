"""Deliveries: a generated tree packed as AI Hub ships it (CP949 names without zip's UTF-8 flag,
TS_/TL_ archives, Training and Validation parts), unpacked back byte for byte; broken members,
resuming, differing files, zip-slip and the command."""

from __future__ import annotations

import json
import stat
import struct
import unicodedata
import zipfile
from pathlib import Path

import pytest

from kbaselines.core.data.delivery import (
    REPORT_FILE,
    STATE_FILE,
    find_delivery_parts,
    member_name,
    unpack_delivery,
)
from kbaselines.core.data.synthetic_delivery import pack_delivery

# K-Face's own names are ASCII; deliveries carry Korean names in their part folders (2.검증데이터)
# and in the reference material shipped beside the data, so the training tree gets a reference
# folder with a shooting-conditions table (label archive) and a photo of the rig (source archive)
KOREAN_FILES = {
    "참고자료/촬영 조건_설명.csv": "조명,설명\nL1,정면 조명\n".encode(),
    "참고자료/촬영장비_사진.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
}
PARTS = ("1.Training", "2.검증데이터")


def _tree_files(root: Path) -> dict[str, bytes]:
    """Every visible file below ``root`` (relative posix path -> bytes)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    }


def _raw_members(archive: Path) -> list[dict]:
    """The members as the central directory and local headers store them (flags, name bytes,
    where the compressed data is), read without zipfile."""
    data = archive.read_bytes()
    end = data.rindex(b"PK\x05\x06")
    count, _, position = struct.unpack("<HII", data[end + 10 : end + 20])
    members = []
    for _ in range(count):
        assert data[position : position + 4] == b"PK\x01\x02"
        (flags,) = struct.unpack("<H", data[position + 8 : position + 10])
        (compressed,) = struct.unpack("<I", data[position + 20 : position + 24])
        name_len, extra_len, comment_len = struct.unpack(
            "<HHH", data[position + 28 : position + 34]
        )
        (local,) = struct.unpack("<I", data[position + 42 : position + 46])
        name = data[position + 46 : position + 46 + name_len]
        (local_flags,) = struct.unpack("<H", data[local + 6 : local + 8])
        local_name_len, local_extra_len = struct.unpack("<HH", data[local + 26 : local + 30])
        members.append(
            {
                "flags": flags,
                "local_flags": local_flags,
                "name": name,
                "local_name": data[local + 30 : local + 30 + local_name_len],
                "data": local + 30 + local_name_len + local_extra_len,
                "compressed": compressed,
            }
        )
        position += 46 + name_len + extra_len + comment_len
    return members


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A K-Face training tree (3 people, 2 cameras, the Korean reference files) and a validation
    tree (2 other people), as generated."""
    from kbaselines.kface.synthetic import generate_kface

    base = tmp_path_factory.mktemp("trees")
    facets = {"sessions": ["S001"], "lights": ["L1"], "expressions": ["E01"], "image_size": 16}
    train = generate_kface(base / "train", num_people=3, cameras=["C6", "C7"], **facets)
    test = generate_kface(base / "test", num_people=2, cameras=["C7"], seed=1, **facets)
    for name, data in KOREAN_FILES.items():
        (train / name).parent.mkdir(parents=True, exist_ok=True)
        (train / name).write_bytes(data)
    return {PARTS[0]: train, PARTS[1]: test}


@pytest.fixture
def delivery(tmp_path: Path, trees: dict[str, Path]) -> Path:
    """The trees as a delivery wrapped in a Korean folder, CP949 member names."""
    pack_delivery(trees, tmp_path / "delivery" / "01.데이터")
    return tmp_path / "delivery"


def _archive(delivery: Path, name: str) -> Path:
    return next(delivery.rglob(name))


def test_pack_writes_cp949_names_without_the_utf8_flag(delivery: Path) -> None:
    part = delivery / "01.데이터" / PARTS[0]
    assert sorted(p.name for p in (part / "라벨링데이터").iterdir())[-1] == "TL_참고자료.zip"
    assert (part / "원천데이터" / "TS_19062000.zip").is_file()
    assert (delivery / "01.데이터" / PARTS[1] / "원천데이터" / "VS_19062000.zip").is_file()
    for archive, name in zip(("TL_참고자료.zip", "TS_참고자료.zip"), KOREAN_FILES, strict=True):
        (member,) = _raw_members(_archive(delivery, archive))
        assert member["name"] == member["local_name"] == name.encode("cp949")
        assert not member["flags"] & 0x800 and not member["local_flags"] & 0x800
        # what plain zipfile shows: mojibake
        assert zipfile.ZipFile(_archive(delivery, archive)).namelist() != [name]


def test_unpacked_parts_are_the_trees_byte_for_byte(
    delivery: Path, trees: dict[str, Path], tmp_path: Path
) -> None:
    (delivery / "01.데이터" / PARTS[0] / "다운로드_안내.pdf").write_bytes(b"%PDF")
    report = unpack_delivery(delivery, tmp_path / "root", progress=False)
    assert report.ok and report.parts == {"train": PARTS[0], "test": PARTS[1]}
    for folder, tree in trees.items():
        assert _tree_files(tmp_path / "root" / folder) == _tree_files(tree)
    assert report.encodings == {"ascii": 16, "cp949": 2}
    assert len(report.unpacked) == 18 and not report.skipped
    assert report.ignored == [f"01.데이터/{PARTS[0]}/다운로드_안내.pdf"]
    assert report.bytes_unpacked == sum(map(len, _tree_files(trees[PARTS[0]]).values())) + sum(
        map(len, _tree_files(trees[PARTS[1]]).values())
    )


def test_utf8_flag_names_unpack_too(trees: dict[str, Path], tmp_path: Path) -> None:
    pack_delivery(trees, tmp_path / "delivery", encoding="utf-8")
    (member,) = _raw_members(_archive(tmp_path / "delivery", "TL_참고자료.zip"))
    assert member["flags"] & 0x800 and member["name"] == "참고자료/촬영 조건_설명.csv".encode()
    report = unpack_delivery(tmp_path / "delivery", tmp_path / "root", progress=False)
    assert report.ok and report.encodings == {"ascii": 16, "utf-8 flag": 2}
    assert _tree_files(tmp_path / "root" / PARTS[0]) == _tree_files(trees[PARTS[0]])


@pytest.mark.parametrize(
    ("raw", "flags", "expected"),
    [
        ("참고/a.json".encode(), 0x800, ("참고/a.json", "utf-8 flag")),
        (b"images/1/a.dcm", 0, ("images/1/a.dcm", "ascii")),
        ("참고/a.json".encode(), 0, ("참고/a.json", "utf-8")),  # Linux zip: UTF-8, no flag
        ("참고/a.json".encode("cp949"), 0, ("참고/a.json", "cp949")),
        ("참고\\a.json".encode("cp949"), 0, ("참고/a.json", "cp949")),  # Windows separator
        (unicodedata.normalize("NFD", "참고").encode(), 0, ("참고", "utf-8")),  # macOS, as NFC
        (b"\xff\xfe.json", 0, ("\xa0\u25a0.json", None)),  # neither: cp437's reading, flagged
    ],
)
def test_member_names_are_decoded_as_written(raw: bytes, flags: int, expected: tuple) -> None:
    info = zipfile.ZipInfo(raw.decode("utf-8" if flags else "cp437"))
    info.flag_bits = flags
    assert member_name(info) == expected


@pytest.mark.parametrize(
    ("compression", "reason"),
    [
        (zipfile.ZIP_STORED, "Bad CRC-32 for file '19062001/S001/L1/E01/C6.jpg'"),
        (zipfile.ZIP_DEFLATED, "damaged compressed data"),
    ],
)
def test_a_corrupted_member_is_listed_broken_and_nothing_half_written(
    compression: int, reason: str, trees: dict[str, Path], tmp_path: Path
) -> None:
    pack_delivery(trees, tmp_path / "delivery", compression=compression)
    archive = _archive(tmp_path / "delivery", "TS_19062001.zip")
    first = _raw_members(archive)[0]
    data = bytearray(archive.read_bytes())
    middle = first["data"] + first["compressed"] // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    archive.write_bytes(bytes(data))
    report = unpack_delivery(tmp_path / "delivery", tmp_path / "root", progress=False)
    (broken,) = report.broken
    name = first["name"].decode()
    assert (broken.file, broken.record) == (f"{PARTS[0]}/원천데이터/TS_19062001.zip", name)
    assert broken.reason.startswith(reason) and not report.ok
    target = tmp_path / "root" / PARTS[0] / name
    assert name.endswith("C6.jpg") and not target.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["C6.txt", "C7.jpg", "C7.txt"]
    assert len(report.unpacked) == 17  # the other members, this archive's too


def test_a_second_run_skips_everything_without_writing(delivery: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = unpack_delivery(delivery, root, progress=False)
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}
    stamps.pop(root / STATE_FILE)
    again = unpack_delivery(delivery, root, progress=False)
    assert again.ok and not again.unpacked and again.bytes_unpacked == 0
    assert sorted(again.skipped) == sorted(first.unpacked)
    (root / STATE_FILE).unlink()  # without the records: whole by size and CRC
    third = unpack_delivery(delivery, root, progress=False)
    assert sorted(third.skipped) == sorted(first.unpacked) and not third.unpacked
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in stamps} == stamps


def test_a_differing_file_is_refused_unless_overwrite(delivery: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    unpack_delivery(delivery, root, progress=False)
    box = root / PARTS[0] / "19062000" / "S001" / "L1" / "E01" / "C7.txt"
    table = root / PARTS[0] / "참고자료" / "촬영 조건_설명.csv"
    original = box.read_bytes(), table.read_bytes()
    box.write_bytes(b"9" + original[0][1:])  # same size, another CRC
    table.write_bytes(b"edited by hand\n")
    report = unpack_delivery(delivery, root, progress=False)
    assert not report.ok and len(report.skipped) == 16
    assert {p.record: p.reason.split("(")[1].split(")")[0] for p in report.refused} == {
        "19062000/S001/L1/E01/C7.txt": f"same size, CRC {zipfile.crc32(box.read_bytes()):08x} "
        f"where the archive says {zipfile.crc32(original[0]):08x}",
        "참고자료/촬영 조건_설명.csv": f"15 bytes where the archive's member has {len(original[1])}",
    }
    assert table.read_bytes() == b"edited by hand\n"
    replaced = unpack_delivery(delivery, root, overwrite=True, progress=False)
    assert replaced.ok and sorted(replaced.overwritten) == [
        f"{PARTS[0]}/19062000/S001/L1/E01/C7.txt",
        f"{PARTS[0]}/참고자료/촬영 조건_설명.csv",
    ]
    assert (box.read_bytes(), table.read_bytes()) == original


def test_zip_slip_members_are_refused(tmp_path: Path) -> None:
    part = tmp_path / "delivery" / "Training" / "라벨링데이터"
    part.mkdir(parents=True)
    with zipfile.ZipFile(part / "TL_evil.zip", "w") as zf:
        zf.writestr("labels/ok.json", "{}")
        for name in ("../outside.json", "labels/../../outside2.json", "/etc/evil.json"):
            zf.writestr(name, "{}")
        link = zipfile.ZipInfo("labels/link.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    report = unpack_delivery(tmp_path / "delivery", tmp_path / "root", progress=False)
    assert report.unpacked == ["Training/labels/ok.json"] and not report.ok
    reasons = {p.record: p.reason.split(";")[0] for p in report.refused}
    assert reasons == {
        "../outside.json": "a '..' in its path",
        "labels/../../outside2.json": "a '..' in its path",
        "/etc/evil.json": "an absolute path",
        "labels/link.json": "a symbolic link",
    }
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == ["ok.json"]


def test_delivery_layouts_that_are_refused(delivery: Path, tmp_path: Path) -> None:
    wrapper = delivery / "01.데이터"
    assert find_delivery_parts(delivery)["test"].name == PARTS[1]
    assert find_delivery_parts(wrapper / PARTS[0]) == {"train": wrapper / PARTS[0]}
    with pytest.raises(FileNotFoundError, match="no part folder"):
        find_delivery_parts(delivery, depth=0)
    (delivery / "02.추가" / "Validation").mkdir(parents=True)
    with pytest.raises(ValueError, match="part folders in 2 places"):
        find_delivery_parts(delivery)
    with pytest.raises(ValueError, match="into itself"):
        unpack_delivery(wrapper, wrapper, progress=False)
    (tmp_path / "empty" / "Validation").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"holds no \.zip archive"):
        unpack_delivery(tmp_path / "empty", tmp_path / "root", progress=False)


@pytest.mark.cli
def test_the_command_unpacks_and_names_the_next_one(
    delivery: Path, trees: dict[str, Path], tmp_path: Path, run_entry_point
) -> None:
    root = tmp_path / "root"
    result = run_entry_point("scripts/unpack.py", "data=kface", f"src={delivery}", f"dst={root}")
    assert _tree_files(root / PARTS[1]) == _tree_files(trees[PARTS[1]])
    report = json.loads((root / REPORT_FILE).read_text())
    assert report["ok"] and report["counts"]["unpacked"] == 18
    assert f"python scripts/check_dataset.py data=kface data.root={root / PARTS[0]}" in (
        result.stdout
    )
