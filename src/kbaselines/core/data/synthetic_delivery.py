"""The synthetic delivery form: a dataset tree packed as AI Hub delivers it, for tests and users.

Deliveries are often packed on Windows in Korea: zip archives whose member names are the raw CP949
bytes without zip's UTF-8 flag, source data (``TS_``/``VS_``) and labels (``TL_``/``VL_``) in
separate archives under ``원천데이터`` and ``라벨링데이터``, one folder per part. :func:`pack_delivery`
writes exactly that from generated trees, so that
:func:`~kbaselines.core.data.delivery.unpack_delivery` (and a user trying ``scripts/unpack.py``)
meets the real thing.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from kbaselines.core.data.delivery import UTF8_FLAG
from kbaselines.core.data.parts import DEFAULT_PART_NAMES, part_key
from kbaselines.core.io import atomic_file

__all__ = [
    "ARCHIVE_PREFIXES",
    "LABEL_FOLDER",
    "LABEL_SUFFIXES",
    "SOURCE_FOLDER",
    "pack_delivery",
]

# the files that go into the label archives (TL_/VL_); the rest go to the source ones (TS_/VS_)
LABEL_SUFFIXES: tuple[str, ...] = (".json", ".xml", ".csv", ".txt")
SOURCE_FOLDER = "원천데이터"
LABEL_FOLDER = "라벨링데이터"
# part -> (source archive prefix, label archive prefix)
ARCHIVE_PREFIXES: dict[str, tuple[str, str]] = {"train": ("TS", "TL"), "test": ("VS", "VL")}


class _LegacyNameInfo(zipfile.ZipInfo):
    """A member whose name is written as the raw bytes of a legacy code page without the UTF-8
    flag, as Windows archivers in Korea do; ``filename`` holds those bytes read as cp437 (what
    zipfile shows on reading). zipfile itself writes any non-ASCII name as UTF-8 with the flag."""

    __slots__ = ()

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("cp437"), self.flag_bits & ~UTF8_FLAG


def _part_of(folder: str, names: Mapping[str, Sequence[str]]) -> str:
    for part, spellings in names.items():
        if part_key(folder) in {part_key(s) for s in spellings} and part in ARCHIVE_PREFIXES:
            return part
    raise ValueError(
        f"part folder name {folder!r} names neither part of {dict(names)}; name it like "
        "1.Training or 2.Validation"
    )


def pack_delivery(
    parts: Mapping[str, str | Path],
    dst: str | Path,
    *,
    label_suffixes: Sequence[str] = LABEL_SUFFIXES,
    encoding: str = "cp949",
    root_archive: str = "data",
    compression: int = zipfile.ZIP_DEFLATED,
    part_names: Mapping[str, Sequence[str]] = DEFAULT_PART_NAMES,
    progress: bool = False,
) -> Path:
    """Write dataset trees as a delivery: ``<dst>/<part folder>/원천데이터/TS_<top folder>.zip``
    and ``.../라벨링데이터/TL_<top folder>.zip`` (``VS_``/``VL_`` for the validation part).

    Each top-level folder of a tree makes one source and one label archive (named after it), the
    files at the top one pair named ``root_archive``; member paths are relative to the tree root.
    Hidden files (a generator's marker) stay out, as a real delivery has none. Archives are
    written atomically.

    Args:
        parts: part folder name (``"1.Training"``, ``"2.검증데이터"``) -> the tree of that part.
        dst: the delivery folder to write.
        label_suffixes: files with these suffixes go into the label archives.
        encoding: of the member names: ``"utf-8"`` writes them as zipfile does (UTF-8, flag set);
            any other codec (``"cp949"``) writes its raw bytes without the flag.
        root_archive: the archive name of the files at the top of a tree.
        compression: ``zipfile.ZIP_DEFLATED``, or ``ZIP_STORED`` as archivers often keep
            images that are compressed already.
        part_names: part -> folder names, to tell a training folder from a validation one.
        progress: show a progress bar over the files.

    Returns:
        ``dst``.

    Raises:
        ValueError: a part folder name that names no part, or a file name the encoding lacks.
    """
    dst = Path(dst)
    suffixes = {s.lower() for s in label_suffixes}
    for folder, tree in parts.items():
        prefixes = ARCHIVE_PREFIXES[_part_of(folder, part_names)]
        tree = Path(tree)
        if not tree.is_dir():
            raise FileNotFoundError(f"the tree of part {folder!r}, {tree}, is not a folder")
        groups: dict[Path, list[Path]] = {}
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            relative = path.relative_to(tree)
            if any(piece.startswith(".") for piece in relative.parts):
                continue
            label = path.suffix.lower() in suffixes
            stem = relative.parts[0] if len(relative.parts) > 1 else root_archive
            kind = LABEL_FOLDER if label else SOURCE_FOLDER
            archive = dst / folder / kind / f"{prefixes[label]}_{stem}.zip"
            groups.setdefault(archive, []).append(path)
        with tqdm(
            total=sum(map(len, groups.values())),
            desc=f"Packing {folder}",
            unit=" files",
            disable=not progress,
        ) as bar:
            for archive, files in groups.items():
                _write_archive(archive, tree, files, encoding, compression)
                bar.update(len(files))
    return dst


def _write_archive(
    archive: Path, tree: Path, files: Sequence[Path], encoding: str, compression: int
) -> None:
    legacy = encoding.replace("_", "-").lower() not in ("utf-8", "utf8")
    with atomic_file(archive) as handle, zipfile.ZipFile(handle, "w", compression) as zf:
        for path in files:
            name = path.relative_to(tree).as_posix()
            info = (_LegacyNameInfo if legacy else zipfile.ZipInfo).from_file(path, name)
            if legacy:
                try:
                    info.filename = name.encode(encoding).decode("cp437")
                except UnicodeEncodeError as error:
                    raise ValueError(
                        f"{path}: its name cannot be written in {encoding} ({error}); rename "
                        "it or pack with encoding=utf-8"
                    ) from None
            info.compress_type = compression
            with path.open("rb") as source, zf.open(info, "w") as member:
                shutil.copyfileobj(source, member)
