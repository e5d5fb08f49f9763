"""The index of a K-Face tree: scanned once with a progress bar, cached, rebuilt on changes.

The full dataset has about ten million images: scanning it (one listing per folder, one read per
box file) takes long, and ten million Python records take gigabytes. So the index keeps each facet
as a small vocabulary plus one integer code per image (a few bytes an image), is cached as one
compressed ``.npz`` per tree in ``cache_dir``, and makes records only for the images a run selects.

**When the cache is rebuilt.** Two fingerprints are stored with the cache and compared on every
load; the next load scans again when either changed:

- the modification times of every folder of the tree (down to the ``<expression>`` folders that
  hold the images): adding, removing or renaming an image or a box file changes its folder's time.
  Checking costs one listing of the folders above the images;
- the size and modification time of every box file the scan read (taken from the open file, so an
  edit during the scan is noticed too): editing a box file *in place* changes no folder time but
  changes this. Checking costs one ``stat`` per box file: 0.03 s for the 8,100 box files of
  ``data=kface_synthetic`` (the folders take 0.02 s, the cache file 0.001 s), so about 40 s for
  the ten million of the full dataset with the file metadata in memory, longer on a network drive.

An image edited in place is not the index's business (it holds no image content): the datamodule
inspects the selected images by size and modification time (:mod:`kbaselines.core.data.integrity`).
``data.rebuild_index=true`` still forces a scan.

The cache is written to a temporary file in the same folder and renamed into place, so a reader
(another rank, another job) never sees half an index.
"""

from __future__ import annotations

import hashlib
import logging
import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.io import atomic_file
from kbaselines.kface import reader
from kbaselines.kface.reader import (
    FACETS,
    BoxStamp,
    FacetFilter,
    KFaceRecord,
    facet_sort_key,
    file_stamp,
    select_indices,
)

__all__ = [
    "KFaceIndex",
    "box_fingerprint",
    "build_index",
    "cache_file",
    "load_index",
    "tree_fingerprint",
]

log = logging.getLogger(__name__)

#: Bump when the cache layout changes: older caches are then rebuilt.
INDEX_VERSION = 3
#: The coded columns: the person, the four facets, and the image suffix (``.jpg``, ``.JPG``).
COLUMNS = ("person", *FACETS, "suffix")


@dataclass(frozen=True, eq=False)
class KFaceIndex:
    """The images and the problems of one tree, stored column-wise.

    Image ``i`` has ``person == columns["person"][0][columns["person"][1][i]]`` and so on for the
    facets; its path is ``<person>/<session>/<light>/<expression>/<camera><suffix>``.

    Args:
        tree: the resolved tree the paths are relative to.
        columns: per column of :data:`COLUMNS`, ``(vocabulary, codes)``.
        boxes: ``int32[N, 4]`` face boxes ``x y width height``; rows without a box are ignored.
        has_box: ``bool[N]``, whether image ``i`` has a box.
        box_file: ``bool[N]``, whether image ``i`` has a box file (an empty one gives no box).
        box_stamp: :func:`box_fingerprint` of the box files when the scan read them.
        problems: malformed names and boxes (those images are not in the index).
    """

    tree: Path
    columns: dict[str, tuple[list[str], np.ndarray]]
    boxes: np.ndarray
    has_box: np.ndarray
    box_file: np.ndarray
    box_stamp: str
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.has_box)

    def record(self, i: int) -> KFaceRecord:
        """The record of image ``i``."""
        values = [vocabulary[codes[i]] for vocabulary, codes in self.columns.values()]
        person, session, light, expression, camera, suffix = values
        box = tuple(int(v) for v in self.boxes[i]) if self.has_box[i] else None
        return KFaceRecord(
            f"{person}/{session}/{light}/{expression}/{camera}{suffix}",
            person,
            session,
            light,
            expression,
            camera,
            box=box,  # type: ignore[arg-type]
        )

    def box_files(self) -> list[str]:
        """Every box file the scan read, relative to the tree: those beside indexed images and
        the malformed ones (whose fix must reach the index)."""
        chosen = np.flatnonzero(self.box_file)
        person, session, light, expression, camera, _ = (
            np.asarray(vocabulary, dtype=object)[codes[chosen]]
            for vocabulary, codes in self.columns.values()
        )
        files = [
            f"{p}/{s}/{li}/{e}/{c}.txt"
            for p, s, li, e, c in zip(person, session, light, expression, camera, strict=True)
        ]
        return files + [p.file for p in self.problems if p.file.endswith(".txt")]

    @cached_property
    def records(self) -> list[KFaceRecord]:
        """Every record, in path order (made on first use: prefer :meth:`select` on big trees)."""
        return [self.record(i) for i in range(len(self))]

    def select(
        self,
        sessions: FacetFilter = "all",
        lights: FacetFilter = "all",
        expressions: FacetFilter = "all",
        cameras: FacetFilter = "all",
    ) -> list[KFaceRecord]:
        """The selected records, in path order, made only for the selected images.

        Raises:
            KFaceSelectionError: when a filter empties the selection (see
                :func:`~kbaselines.kface.reader.select_indices`).
        """
        if not len(self):
            raise reader.KFaceSelectionError(
                f"{self.tree}: no image of the form {reader.LAYOUT}; data.root must be the "
                "folder holding the 8-digit person folders (or High/ Middle/ Low/)"
            )
        chosen = select_indices(self.columns, sessions, lights, expressions, cameras)
        return [self.record(int(i)) for i in chosen]

    def count(self, column: str) -> dict[str, int]:
        """Images per value of a column (``"session"`` ...), in natural order (L2 before L10)."""
        vocabulary, codes = self.columns[column]
        tally = np.bincount(codes, minlength=len(vocabulary))
        pairs = sorted(
            zip(vocabulary, tally.tolist(), strict=True), key=lambda p: facet_sort_key(p[0])
        )
        return {value: n for value, n in pairs if n}


def tree_fingerprint(tree: Path) -> str:
    """A hash of the modification times of every folder of the tree, down to the image folders.

    Adding or removing a file changes the time of its folder, so any such change below the tree
    changes the fingerprint; editing a file in place does not.
    """
    digest = hashlib.blake2b(digest_size=16)
    tree = Path(tree)
    digest.update(f".:{tree.stat().st_mtime_ns};".encode())

    def visit(folder: str, prefix: str, depth: int) -> None:
        with os.scandir(folder) as entries:
            folders = sorted((e for e in entries if _is_folder(e)), key=lambda e: e.name)
        for entry in folders:
            digest.update(f"{prefix}{entry.name}:{entry.stat().st_mtime_ns};".encode())
            if depth < 3:
                visit(entry.path, f"{prefix}{entry.name}/", depth + 1)

    visit(str(tree), "", 0)
    return digest.hexdigest()


def _stamps_digest(stamps: list[BoxStamp]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path, size, mtime_ns in sorted(stamps):
        digest.update(f"{path}:{size}:{mtime_ns};".encode())
    return digest.hexdigest()


def box_fingerprint(tree: Path, box_files: list[str]) -> str:
    """A hash of the size and modification time of every box file: one ``stat`` each.

    An edit in place changes them, though not the time of the folder holding the file.
    """
    return _stamps_digest([(f, *file_stamp(os.path.join(tree, f))) for f in box_files])


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir() and not entry.name.startswith(".")
    except OSError:
        return False


def cache_file(tree: Path, cache_dir: str | Path) -> Path:
    """The cache file of a tree: named from a hash of the tree's absolute path."""
    key = hashlib.sha1(str(Path(tree).resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"kface_index_{key}.npz"


def build_index(
    tree: Path, scan: Callable[..., object] | None = None, progress: bool = True
) -> KFaceIndex:
    """Scan the tree once into a column-wise index, with a progress bar.

    Args:
        tree: the resolved tree.
        scan: the walk to use (default :func:`~kbaselines.kface.reader.iter_tree`).
        progress: show a progress bar of the images found.
    """
    scan = scan or reader.iter_tree
    vocabularies: dict[str, dict[str, int]] = {name: {} for name in COLUMNS}
    codes = {name: array("i") for name in COLUMNS}
    boxes = array("i")
    has_box = array("b")
    box_file = array("b")
    stamps: list[BoxStamp] = []
    problems: list[Problem] = []
    with tqdm(
        desc=f"Indexing {tree}",
        unit=" images",
        unit_scale=True,
        mininterval=1.0,
        disable=not progress,
    ) as bar:
        for item in scan(tree, bar, stamps):
            if isinstance(item, Problem):
                problems.append(item)
                continue
            # the suffix is ".jpg" in any case: keep it so the path can be rebuilt exactly
            values = (item.person, item.session, item.light, item.expression, item.camera)
            values += (item.path[-4:],)
            for name, value in zip(COLUMNS, values, strict=True):
                vocabulary = vocabularies[name]
                code = vocabulary.get(value)
                if code is None:
                    code = vocabulary[value] = len(vocabulary)
                codes[name].append(code)
            boxes.extend(item.box or (0, 0, 0, 0))
            has_box.append(item.box is not None)
            # the walk stamps an image's box file just before it yields the image
            box_file.append(bool(stamps) and stamps[-1][0] == item.path[:-4] + ".txt")
    columns = {
        name: (list(vocabularies[name]), np.frombuffer(codes[name], dtype=np.int32).copy())
        for name in COLUMNS
    }
    return KFaceIndex(
        Path(tree),
        columns,
        np.frombuffer(boxes, dtype=np.int32).reshape(-1, 4).copy(),
        np.frombuffer(has_box, dtype=np.int8).astype(bool),
        np.frombuffer(box_file, dtype=np.int8).astype(bool),
        _stamps_digest(stamps),
        problems,
    )


def _meta(tree: Path, fingerprint: str) -> list[str]:
    return [str(INDEX_VERSION), str(Path(tree).resolve()), fingerprint]


def _save(path: Path, index: KFaceIndex, fingerprint: str) -> None:
    """Write the index atomically (a temporary file beside ``path``, renamed into place)."""
    arrays: dict[str, np.ndarray] = {"meta": np.array(_meta(index.tree, fingerprint))}
    for name, (vocabulary, codes) in index.columns.items():
        arrays[f"{name}_vocabulary"] = np.array(vocabulary, dtype=str)
        small = np.uint8 if len(vocabulary) <= 256 else np.int32
        arrays[f"{name}_codes"] = codes.astype(small)
    arrays["boxes"] = index.boxes
    arrays["has_box"] = index.has_box
    arrays["box_file"] = index.box_file
    arrays["box_stamp"] = np.array(index.box_stamp)
    for name in ("file", "reason", "record"):
        values = [getattr(p, name) or "" for p in index.problems]
        arrays[f"problem_{name}"] = np.array(values, dtype=str)
    with atomic_file(path, "wb") as file:
        np.savez_compressed(file, **arrays)


def _load(path: Path, tree: Path, fingerprint: str) -> KFaceIndex | None:
    """The cached index, or None when it is stale, of another layout, or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if data["meta"].tolist() != _meta(tree, fingerprint):
                return None
            columns = {
                name: (
                    data[f"{name}_vocabulary"].tolist(),
                    data[f"{name}_codes"].astype(np.int32),
                )
                for name in COLUMNS
            }
            boxes, has_box, box_file = data["boxes"], data["has_box"], data["box_file"]
            box_stamp = str(data["box_stamp"])
            files, reasons, records = (
                data[f"problem_{name}"].tolist() for name in ("file", "reason", "record")
            )
    except (OSError, KeyError, ValueError, EOFError) as error:
        log.warning("Ignoring the unreadable index cache %s (%s); rebuilding it", path, error)
        return None
    problems = [
        Problem(f, r, record or None) for f, r, record in zip(files, reasons, records, strict=True)
    ]
    return KFaceIndex(Path(tree), columns, boxes, has_box, box_file, box_stamp, problems)


def load_index(tree: str | Path, cache_dir: str | Path | None, rebuild: bool = False) -> KFaceIndex:
    """The index of ``tree``, from the cache when the tree has not changed since it was built.

    Args:
        tree: the resolved K-Face tree (see :func:`~kbaselines.kface.reader.resolve_tree`).
        cache_dir: where the cache lives; None: no cache, scan every time.
        rebuild: scan again even when the cache looks current.
    """
    tree = Path(tree)
    fingerprint = tree_fingerprint(tree)
    cache = None if cache_dir is None else cache_file(tree, cache_dir)
    if cache is not None and cache.is_file() and not rebuild:
        index = _load(cache, tree, fingerprint)
        if index is not None and box_fingerprint(tree, index.box_files()) == index.box_stamp:
            log.debug("Loaded the index of %s from %s", tree, cache)
            return index
        if index is not None:
            log.info("Box files of %s were edited since it was indexed: indexing again", tree)
    index = build_index(tree)
    if cache is not None:
        _save(cache, index, fingerprint)
        log.info("Indexed %d images of %s (cache %s)", len(index), tree, cache)
    return index
