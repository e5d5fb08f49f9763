"""The synthetic delivery form: a dataset tree packed as AI Hub delivers it, for tests and users.

Deliveries are often packed on Windows in Korea: zip archives whose member names are the raw CP949
bytes without zip's UTF-8 flag, source data (``TS_``/``VS_``) and labels (``TL_``/``VL_``) in
separate archives under ``원천데이터`` and ``라벨링데이터``, one folder per part. :func:`pack_delivery`
writes exactly that from generated trees, so that
:func:`~kbaselines.core.data.delivery.unpack_delivery` (and a user trying ``scripts/unpack.py``)
meets the real thing.

:func:`make_synthetic_delivery` makes the whole delivery form of a dataset's synthetic twin
(``scripts/make_delivery.py``): its two parts generated with disjoint groups, as a delivery is
split by person, item, recording or patient, each given a Korean-named reference file as real
deliveries ship beside their data, then packed. A dataset says how its twin is generated and
which generator arguments count and number its groups through its DataModule's
:meth:`~kbaselines.core.data.datamodule.FoldDataModule.synthetic_twin` (a
:class:`SyntheticTwin`); nothing here knows a dataset.
"""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kbaselines.core.data import generated
from kbaselines.core.data.delivery import UTF8_FLAG
from kbaselines.core.data.parts import DEFAULT_PART_NAMES, part_key
from kbaselines.core.io import atomic_file, write_text_atomic

__all__ = [
    "ARCHIVE_PREFIXES",
    "DELIVERY_MARKER",
    "FILE_LIST",
    "LABEL_FOLDER",
    "LABEL_SUFFIXES",
    "PART_FOLDERS",
    "SOURCE_FOLDER",
    "SyntheticDelivery",
    "SyntheticTwin",
    "make_synthetic_delivery",
    "pack_delivery",
    "write_file_list",
]

# the files that go into the label archives (TL_/VL_); the rest go to the source ones (TS_/VS_)
LABEL_SUFFIXES: tuple[str, ...] = (".json", ".xml", ".csv", ".txt")
SOURCE_FOLDER = "원천데이터"
LABEL_FOLDER = "라벨링데이터"
# part -> (source archive prefix, label archive prefix)
ARCHIVE_PREFIXES: dict[str, tuple[str, str]] = {"train": ("TS", "TL"), "test": ("VS", "VL")}
# part -> its folder, in the tree and in the delivery, as AI Hub names them
PART_FOLDERS: dict[str, str] = {"train": "1.Training", "test": "2.Validation"}
# the reference file given to each part: the part's file list, "path,bytes", as deliveries ship one
FILE_LIST = "참고자료/파일_목록.csv"
# the marker of a made delivery folder: a folder without it is never replaced
DELIVERY_MARKER = ".synthetic_delivery.json"


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


@dataclass(frozen=True)
class SyntheticTwin:
    """How a dataset's synthetic twin is generated, as far as a delivery of it needs to know.

    Args:
        generate: ``generate(root, **arguments)`` writes the twin at ``root`` unless a tree made
            with the same arguments is there (the family's ``ensure_synthetic_*``).
        arguments: its generator's arguments (``data.synthetic``), every default filled in.
        count: the argument that counts the groups (people, items, recordings, cases).
        first: the argument that numbers the first group: a tree numbered after another's last
            group shares no group with it.
        seed: the argument that seeds the draws. The Validation part is drawn with the next
            seed: a generator that draws its groups in sequence from one seed (pose) would
            otherwise draw the Training part's first groups again under the new numbers,
            byte-identical files that the leakage check reports.
    """

    generate: Callable[..., Path]
    arguments: Mapping[str, Any]
    count: str
    first: str
    seed: str = "seed"

    def __post_init__(self) -> None:
        names = (self.count, self.first, self.seed)
        missing = [name for name in names if name not in self.arguments]
        if missing:
            raise ValueError(
                f"the synthetic twin's arguments {sorted(self.arguments)} lack {missing}: give "
                "every argument, defaults filled in"
            )

    def parts(self, validation_share: float) -> dict[str, dict[str, Any]]:
        """The generator arguments of a delivery's parts: ``train`` the twin's own, ``test``
        ``validation_share`` as many groups (at least one), numbered after the train part's and
        drawn with the next seed.

        Raises:
            ValueError: ``validation_share`` is not positive.
        """
        if not validation_share > 0:
            raise ValueError(
                f"validation_share={validation_share}: give the Validation part's size as a "
                f"positive share of the Training part's {self.count}, e.g. 0.25"
            )
        train = dict(self.arguments)
        count, first = int(train[self.count]), int(train[self.first])
        test = {
            **train,
            self.count: max(1, round(validation_share * count)),
            self.first: first + count,
            self.seed: int(train[self.seed]) + 1,
        }
        return {"train": train, "test": test}


def write_file_list(tree: str | Path, name: str = FILE_LIST) -> Path:
    """Write the file list of ``tree`` (every visible file but the list: ``경로,크기``, path and
    bytes) to ``tree/name``, a Korean-named reference file as deliveries ship; a list that is
    already current is left untouched, so that a reader's cached index of the tree stays valid."""
    tree = Path(tree)
    target = tree / name
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["경로", "크기"])
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and p != target):
        relative = path.relative_to(tree)
        if not any(piece.startswith(".") for piece in relative.parts):
            writer.writerow([relative.as_posix(), path.stat().st_size])
    text = rows.getvalue()
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        write_text_atomic(target, text)
    return target


@dataclass
class SyntheticDelivery:
    """What :func:`make_synthetic_delivery` made.

    Args:
        trees: part folder name -> the generated tree of that part.
        arguments: part folder name -> the generator arguments it was made with.
        delivery: the delivery folder (the part folders are below ``delivery/<wrap>``).
        archives: every archive written, relative to ``delivery``.
    """

    trees: dict[str, Path]
    arguments: dict[str, dict[str, Any]]
    delivery: Path
    archives: list[str] = field(default_factory=list)


def make_synthetic_delivery(
    twin: SyntheticTwin,
    dst: str | Path,
    *,
    validation_share: float = 0.25,
    part_folders: Mapping[str, str] = PART_FOLDERS,
    wrap: str | None = "01.데이터",
    encoding: str = "cp949",
    compression: int = zipfile.ZIP_DEFLATED,
    part_names: Mapping[str, Sequence[str]] = DEFAULT_PART_NAMES,
    progress: bool = True,
) -> SyntheticDelivery:
    """Generate the twin's two parts into ``<dst>/tree/<part folder>`` and pack them as a
    delivery into ``<dst>/delivery/<wrap>/<part folder>/{원천데이터,라벨링데이터}/``.

    The trees are generated once (a tree made with the same arguments is reused); each gets the
    Korean-named file list :data:`FILE_LIST` (:func:`write_file_list`), which the label archives
    carry. The delivery is written into a temporary sibling and renamed into place, replacing
    only a delivery this function made (it holds :data:`DELIVERY_MARKER`).

    Args:
        twin: the dataset's synthetic twin (its DataModule's ``synthetic_twin``).
        dst: the folder of the tree and the delivery.
        validation_share: the Validation part's groups as a share of the Training part's.
        part_folders: part (``train``, ``test``) -> its folder name; must name the part in
            ``part_names``.
        wrap: a folder wrapping the part folders in the delivery, as AI Hub's ``01.데이터``;
            None: the parts directly under ``<dst>/delivery``.
        encoding: of the member names (:func:`pack_delivery`).
        compression: of the members (:func:`pack_delivery`).
        part_names: part -> folder names, to tell a training folder from a validation one.
        progress: show progress bars.

    Raises:
        FileExistsError: ``<dst>/delivery`` or a tree folder exists and was not made here.
        ValueError: a part folder name that names no part, or a bad ``validation_share``.
    """
    dst = Path(dst)
    if set(part_folders) != set(PART_FOLDERS):
        raise ValueError(
            f"part_folders={dict(part_folders)} must give the folders of exactly the parts "
            f"{', '.join(PART_FOLDERS)}, e.g. {PART_FOLDERS}"
        )
    for part, folder in part_folders.items():
        if _part_of(folder, part_names) != part:
            raise ValueError(
                f"part_folders.{part}={folder!r} names the {_part_of(folder, part_names)} part; "
                f"name the {part} part's folder like {PART_FOLDERS[part]}"
            )
    trees: dict[str, Path] = {}
    arguments: dict[str, dict[str, Any]] = {}
    for part, part_arguments in twin.parts(validation_share).items():
        folder = part_folders[part]
        trees[folder] = Path(twin.generate(dst / "tree" / folder, **part_arguments))
        arguments[folder] = part_arguments
        write_file_list(trees[folder])
    made = SyntheticDelivery(trees, arguments, dst / "delivery")
    marker = {"parts": arguments, "wrap": wrap, "encoding": encoding}

    def pack(folder: Path) -> None:
        target = folder / wrap if wrap else folder
        pack_delivery(
            trees,
            target,
            encoding=encoding,
            compression=compression,
            part_names=part_names,
            progress=progress,
        )
        made.archives = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.zip"))

    generated.write_generated(made.delivery, DELIVERY_MARKER, marker, pack, "synthetic delivery")
    return made
