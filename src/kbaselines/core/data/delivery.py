"""A dataset as AI Hub delivers it: part folders of zip archives, unpacked into one tree per part.

The layout accepted (``src`` is the delivery folder; a few wrapping folders such as
``01.데이터`` above the parts are searched through, ``depth`` levels deep)::

    <src>/1.Training/원천데이터/TS_<name>.zip     source data: images, DICOMs
    <src>/1.Training/라벨링데이터/TL_<name>.zip   labels: JSON, XML, CSV, TXT
    <src>/2.Validation/원천데이터/VS_<name>.zip   (or TS_ ...)
    <src>/2.Validation/라벨링데이터/VL_<name>.zip (or TL_ ...)

The part folders are found by name (:mod:`kbaselines.core.data.parts`); every ``*.zip`` below a
part, whatever its prefix or folder, is one of its archives. Member paths inside the archives are
relative to the part's dataset root (``images/1/a.dcm``, ``contours/1.json``), so that a part's
source and label archives unpack into one tree, ``<dst>/<part folder>/``, that is the dataset
spec's tree: each part is then read by the family's own reader.

Member names are decoded as the archiver wrote them: UTF-8 when the zip's UTF-8 flag (bit 11) is
set; otherwise the raw bytes as UTF-8 when they are valid UTF-8 (Linux and macOS archivers write
UTF-8 without the flag; CP949 Korean practically never forms valid UTF-8), else as CP949 (Windows
archivers in Korea), else Python's cp437 reading with the name listed as undecoded. Names are
composed as NFC (macOS writes Hangul decomposed) and a backslash is a separator (some Windows
archivers; CP949 never uses the byte 0x5C inside a character).

Every member is written to a temporary file beside its target and renamed only once zipfile has
read it whole and its CRC matched, so a broken member leaves nothing behind and is listed. A member
whose path is absolute, climbs with ``..`` or is a symbolic link is refused (zip-slip). Resuming:
each file unpacked is recorded (size, modification time, CRC) in ``<dst>/.unpack_state.jsonl``; a
second run skips a file whose size and time still match the record without reading it, and
otherwise recomputes its CRC (a file of the right size and CRC is whole, however it got there). An
existing file that differs from its member is refused and listed, or replaced and listed with
``overwrite``.

:func:`kbaselines.core.data.synthetic_delivery.pack_delivery` writes the other way round: a
dataset tree as a delivery, the synthetic delivery form.
"""

from __future__ import annotations

import contextlib
import json
import re
import stat
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.data.parts import DEFAULT_PART_NAMES, find_parts, part_key
from kbaselines.core.io import atomic_file, write_json_atomic

__all__ = [
    "REPORT_FILE",
    "STATE_FILE",
    "UTF8_FLAG",
    "UnpackReport",
    "find_delivery_parts",
    "member_name",
    "unpack_delivery",
]

# in dst; dot files, so that readers that take every *.json below a root (xray) pass them by
STATE_FILE = ".unpack_state.jsonl"
REPORT_FILE = ".unpack_report.json"

# general purpose bit 11: the member's name is UTF-8
UTF8_FLAG = 0x800
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
# what reading a member may raise, and what it means: BadZipFile for a CRC mismatch ("Bad CRC-32
# for file ...") or a damaged header, RuntimeError for an encrypted member
_MEMBER_ERRORS: dict[type[Exception], str] = {
    zipfile.BadZipFile: "{error}",
    zlib.error: "damaged compressed data ({error})",
    EOFError: "the archive ends inside this member (an incomplete download?)",
    NotImplementedError: "{error}: a compression zipfile cannot read; unpack it with 7-Zip",
    RuntimeError: "{error}",
}


def find_delivery_parts(
    src: str | Path, names: Mapping[str, Sequence[str]] = DEFAULT_PART_NAMES, depth: int = 2
) -> dict[str, Path]:
    """The part folders of a delivery: under ``src``, or under the one folder at most ``depth``
    levels below it that holds parts (``<src>/01.데이터/1.Training``); ``src`` itself when it is
    a part folder.

    Raises:
        FileNotFoundError: no part folder found, naming the spellings looked for.
        ValueError: parts in two folders at the same depth (``High/1.Training``,
            ``Low/1.Training``): point ``src`` at one.
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"src={src} is not a folder: give the delivery's folder")
    wanted = {part_key(n): part for part, spellings in names.items() for n in spellings}
    if part_key(src.name) in wanted:
        return {wanted[part_key(src.name)]: src}
    level = [src]
    for _ in range(depth + 1):
        holders = {folder: parts for folder in level if (parts := find_parts(folder, names))}
        if len(holders) > 1:
            raise ValueError(
                f"{src} holds part folders in {len(holders)} places: "
                f"{', '.join(str(f) for f in holders)}; point src at one of them"
            )
        if holders:
            return next(iter(holders.values()))
        level = [c for folder in level for c in sorted(folder.iterdir()) if c.is_dir()]
    raise FileNotFoundError(
        f"no part folder in {src} or {depth} levels below it: a delivery holds a Training and a "
        f"Validation part, {dict(names)} (a leading number, case and separators aside); point src "
        "at the folder that holds them, or raise depth="
    )


def member_name(info: zipfile.ZipInfo) -> tuple[str, str | None]:
    """The member's path as stored in the archive and the encoding it was read with
    (``"utf-8 flag"``, ``"ascii"``, ``"utf-8"``, ``"cp949"``; None: undecodable, then the name is
    Python's cp437 reading)."""
    if info.flag_bits & UTF8_FLAG:
        name, encoding = info.orig_filename, "utf-8 flag"
    else:
        raw = info.orig_filename.encode("cp437")  # zipfile read the raw bytes as cp437
        name, encoding = info.orig_filename, None
        for candidate in ("ascii", "utf-8", "cp949"):
            with contextlib.suppress(UnicodeDecodeError):
                name, encoding = raw.decode(candidate), candidate
                break
    return unicodedata.normalize("NFC", name.replace("\\", "/")), encoding


def _refusal(name: str, info: zipfile.ZipInfo) -> str | None:
    """Why a member may not be written (zip-slip), or None."""
    if name.startswith("/") or _DRIVE.match(name):
        return "an absolute path; it would be written outside the part folder"
    if ".." in PurePosixPath(name).parts:
        return "a '..' in its path; it would be written outside the part folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link; links are not unpacked (they may point outside the part folder)"
    if not PurePosixPath(name).parts:
        return "an empty name"
    return None


@dataclass
class UnpackReport:
    """What :func:`unpack_delivery` did, member by member (paths relative to ``dst``, archives
    relative to ``src``).

    Args:
        src: the delivery folder.
        dst: the folder the parts were unpacked into.
        parts: part -> its folder name (``{"train": "1.Training"}``), also the folder under ``dst``.
        archives: every archive found.
        unpacked: files written by this run.
        skipped: files already there whole (same size and CRC), not written again.
        overwritten: files that differed from their member and were replaced (``overwrite``).
        broken: members (or whole archives) that could not be read: CRC mismatch, damaged data,
            unsupported compression, encryption. Nothing was written for them.
        refused: members not written: zip-slip paths, links, and existing files that differ.
        undecoded: members whose name is neither UTF-8 nor CP949, unpacked under cp437's reading.
        ignored: files in the parts that are not zip archives, left alone.
        encodings: how many member names were read with each encoding.
        bytes_unpacked: bytes written by this run.
    """

    src: str
    dst: str
    parts: dict[str, str]
    archives: list[str] = field(default_factory=list)
    unpacked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    broken: list[Problem] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    undecoded: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    encodings: Counter = field(default_factory=Counter)
    bytes_unpacked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was broken or refused: every member is in ``dst``."""
        return not self.broken and not self.refused

    def to_dict(self) -> dict:
        """The report as plain JSON data."""
        problems = {
            key: [{"archive": p.file, "member": p.record, "reason": p.reason} for p in value]
            for key, value in (
                ("broken", self.broken),
                ("refused", self.refused),
                ("undecoded", self.undecoded),
            )
        }
        return {
            "src": self.src,
            "dst": self.dst,
            "ok": self.ok,
            "parts": self.parts,
            "counts": self._counts(),
            "encodings": dict(self.encodings),
            "bytes_unpacked": self.bytes_unpacked,
            "archives": self.archives,
            "unpacked": self.unpacked,
            "skipped": self.skipped,
            "overwritten": self.overwritten,
            **problems,
            "ignored": self.ignored,
        }

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically."""
        return write_json_atomic(Path(path), self.to_dict())

    def _counts(self) -> dict[str, int]:
        names = ("archives", "unpacked", "skipped", "overwritten", "broken", "refused")
        return {n: len(getattr(self, n)) for n in (*names, "undecoded", "ignored")}

    def render(self) -> str:
        """Counts, then every broken, refused, undecoded, overwritten and ignored entry (the
        unpacked and skipped files are listed in the JSON report only)."""
        parts = ", ".join(f"{folder} ({part})" for part, folder in self.parts.items())
        lines = [f"delivery {self.src} -> {self.dst}: parts {parts}"]
        lines += [f"  {name}: {count:,}" for name, count in self._counts().items()]
        lines.append(f"  bytes unpacked: {self.bytes_unpacked:,}")
        lines.append(f"  member names read as: {dict(self.encodings)}")
        for title, entries in (
            ("broken (nothing written)", self.broken),
            ("refused (not written)", self.refused),
            ("undecoded names (unpacked under cp437's reading)", self.undecoded),
            ("overwritten (differed from the archive)", self.overwritten),
            ("ignored (not zip archives)", self.ignored),
        ):
            if entries:
                lines.append(f"{title}:")
                lines += [f"  {entry}" for entry in entries]
        return "\n".join(lines)


class _Records:
    """The size, modification time and CRC of every file unpacked, as JSON lines appended to
    ``<dst>/.unpack_state.jsonl`` (an interrupted run keeps what it recorded; a torn last line is
    ignored)."""

    def __init__(self, dst: Path) -> None:
        self.path = dst / STATE_FILE
        self.entries: dict[str, tuple[int, int, int]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    self.entries[entry["path"]] = (entry["size"], entry["mtime_ns"], entry["crc"])
        self._file: IO[str] | None = None

    def whole(self, key: str, path: Path, info: zipfile.ZipInfo) -> bool:
        """True when ``path`` holds the member, by the record or else by its CRC (then recorded)."""
        status = path.stat()
        if status.st_size != info.file_size:
            return False
        if self.entries.get(key) == (status.st_size, status.st_mtime_ns, info.CRC):
            return True
        if _crc32(path) != info.CRC:
            return False
        self.add(key, path, info.CRC)
        return True

    def add(self, key: str, path: Path, crc: int) -> None:
        """Record ``path`` (relative name ``key``) as holding a member of CRC ``crc``."""
        status = path.stat()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a")
        entry = {"path": key, "size": status.st_size, "mtime_ns": status.st_mtime_ns, "crc": crc}
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()
        self.entries[key] = (status.st_size, status.st_mtime_ns, crc)

    def close(self) -> None:
        """Close the record file (if this run wrote to it)."""
        if self._file is not None:
            self._file.close()


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _difference(path: Path, info: zipfile.ZipInfo) -> str:
    """How an existing file differs from its member (after :meth:`_Records.whole` said it does)."""
    size = path.stat().st_size
    if size != info.file_size:
        return f"{size:,} bytes where the archive's member has {info.file_size:,}"
    return f"same size, CRC {_crc32(path):08x} where the archive says {info.CRC:08x}"


def _archives(part: Path) -> tuple[list[Path], list[Path]]:
    """The zip archives below a part folder and its other (not hidden) files."""
    files = sorted(p for p in part.rglob("*") if p.is_file() and not p.name.startswith("."))
    zips = [p for p in files if p.suffix.lower() == ".zip"]
    return zips, [p for p in files if p.suffix.lower() != ".zip"]


@contextlib.contextmanager
def _open_archives(
    archives: Sequence[tuple[str, Path]], report: UnpackReport, src: Path
) -> Iterator[list[tuple[str, Path, zipfile.ZipFile]]]:
    """Open every archive (a part's folder name with each); an unreadable one is listed broken."""
    with contextlib.ExitStack() as stack:
        opened = []
        for folder, archive in archives:
            try:
                opened.append((folder, archive, stack.enter_context(zipfile.ZipFile(archive))))
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as error:
                reason = f"not a readable zip archive ({error}); download it again"
                report.broken.append(Problem(str(archive.relative_to(src)), reason))
        yield opened


def unpack_delivery(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    part_names: Mapping[str, Sequence[str]] = DEFAULT_PART_NAMES,
    depth: int = 2,
    progress: bool = True,
) -> UnpackReport:
    """Unpack every archive of every part of the delivery at ``src`` into ``<dst>/<part folder>``.

    Args:
        src: the delivery folder (see the module docstring for its layout).
        dst: where the parts go, one merged tree each.
        overwrite: replace existing files that differ from their member (listed either way).
        part_names: part -> the folder names that mean it (:func:`find_parts`).
        depth: how many folder levels below ``src`` to search for the part folders.
        progress: show a progress bar in bytes.

    Returns:
        The report; also see :attr:`UnpackReport.ok`.

    Raises:
        FileNotFoundError: no part folder, or a part without any zip archive.
        ValueError: ``dst`` would put a part into itself.
    """
    src, dst = Path(src), Path(dst)
    parts = find_delivery_parts(src, part_names, depth)
    folders = {part: unicodedata.normalize("NFC", path.name) for part, path in parts.items()}
    report = UnpackReport(str(src), str(dst), folders)
    archives = []
    for part, path in parts.items():
        into = (dst / folders[part]).resolve()
        if into == path.resolve() or dst.resolve().is_relative_to(path.resolve()):
            raise ValueError(
                f"dst={dst} would unpack the {part} part {path} into itself; give a dst outside "
                "the delivery's part folders"
            )
        zips, others = _archives(path)
        if not zips:
            raise FileNotFoundError(
                f"the {part} part {path} holds no .zip archive: download its TS_/TL_ archives "
                "into it, or point src at the delivery that has them"
            )
        archives += [(folders[part], z) for z in zips]
        report.ignored += [str(p.relative_to(src)) for p in others]
    report.archives = [str(a.relative_to(src)) for _, a in archives]
    with (
        _open_archives(archives, report, src) as opened,
        contextlib.closing(_Records(dst)) as records,
    ):
        total = sum(i.file_size for *_, z in opened for i in z.infolist() if not i.is_dir())
        bar = tqdm(
            total=total,
            desc="Unpacking",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress,
        )
        with bar:
            unpacker = _Unpacker(report, records, overwrite, bar)
            for folder, archive, zf in opened:
                for info in zf.infolist():
                    unpacker.member(zf, info, str(archive.relative_to(src)), dst, folder)
    return report


@dataclass
class _Unpacker:
    """Writes members one by one, each counted in the report and on the bar."""

    report: UnpackReport
    records: _Records
    overwrite: bool
    bar: tqdm

    def member(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, dst: Path, folder: str
    ) -> None:
        """Write one member into ``<dst>/<folder>`` unless it is there whole; say what happened."""
        report = self.report
        name, encoding = member_name(info)
        report.encodings[encoding or "undecoded"] += 1
        if encoding is None:
            reason = "a name neither UTF-8 nor CP949; unpacked under the name zipfile reads (cp437)"
            report.undecoded.append(Problem(archive, reason, name))
        if name.endswith("/") and _refusal(name, info) is None:
            (dst / folder / name).mkdir(parents=True, exist_ok=True)
            return
        key = f"{folder}/{PurePosixPath(name)}"
        target = dst / key
        refusal = _refusal(name, info)
        if refusal is None and (target.is_dir() or target.is_symlink()):
            refusal = f"{key} is a folder or a link in dst; move it away and run again"
        replacing = refusal is None and target.exists()
        if replacing and self.records.whole(key, target, info):
            report.skipped.append(key)
            self.bar.update(info.file_size)
            return
        if replacing and not self.overwrite:
            refusal = (
                f"{key} exists and differs ({_difference(target, info)}); it was left as it is: "
                "move it away, or run again with overwrite=true to replace it"
            )
        if refusal is not None:
            report.refused.append(Problem(archive, refusal, name))
            self.bar.update(info.file_size)
            return
        written = 0
        try:
            with atomic_file(target) as out, zf.open(info) as member:
                while chunk := member.read(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    self.bar.update(len(chunk))
        except tuple(_MEMBER_ERRORS) as error:
            self.bar.update(info.file_size - written)
            report.broken.append(Problem(archive, _broken_reason(error), name))
            return
        self.records.add(key, target, info.CRC)
        (report.overwritten if replacing else report.unpacked).append(key)
        report.bytes_unpacked += written


def _broken_reason(error: Exception) -> str:
    """What a member's read error means, and what to do about it."""
    what = next(text for kind, text in _MEMBER_ERRORS.items() if isinstance(error, kind))
    return what.format(error=error) + "; nothing written (download the archive again)"
