"""The index of a K-Face tree: scanned once with a progress bar, cached, rebuilt when the tree changes.

The full dataset has about ten million images: scanning it takes long, so the records are cached as
one compact ``.npz`` per tree in ``cache_dir``. A change is detected by a fingerprint of folder
modification times (adding or removing a file changes its folder's time), which costs one listing
of the folders above the images, not one per image. Editing a box file in place changes no folder
time: delete the cache file or set ``data.rebuild_index=true`` after such an edit.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kbaselines.data.kface.reader import KFaceRecord, scan_tree
from kbaselines.data.report import Problem

__all__ = ["KFaceIndex", "load_index", "tree_fingerprint"]

log = logging.getLogger(__name__)

INDEX_VERSION = 1
FIELDS = ("path", "person", "session", "light", "expression", "camera")


@dataclass(frozen=True)
class KFaceIndex:
    """The records and the problems of one tree."""

    tree: Path
    records: list[KFaceRecord]
    problems: list[Problem]


def tree_fingerprint(tree: Path) -> str:
    """A hash of the modification times of every folder of the tree (images' folders included)."""
    digest = hashlib.sha1()
    stack = [(tree, 0)]
    while stack:
        folder, depth = stack.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if not entry.is_dir():
                    continue
                digest.update(f"{entry.path}:{entry.stat().st_mtime_ns};".encode())
                if depth < 3:
                    stack.append((Path(entry.path), depth + 1))
    return digest.hexdigest()


def _cache_file(tree: Path, cache_dir: Path) -> Path:
    key = hashlib.sha1(str(tree.resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"kface_index_{key}.npz"


def _save(path: Path, index: KFaceIndex, fingerprint: str) -> None:
    records = index.records
    arrays = {name: np.array([getattr(r, name) for r in records], dtype=str) for name in FIELDS}
    arrays["box"] = np.array([r.box or (-1, -1, -1, -1) for r in records], dtype=np.int64).reshape(
        -1, 4
    )
    arrays["problem_file"] = np.array([p.file for p in index.problems], dtype=str)
    arrays["problem_reason"] = np.array([p.reason for p in index.problems], dtype=str)
    arrays["meta"] = np.array([fingerprint, str(INDEX_VERSION), str(index.tree.resolve())])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _load(path: Path, tree: Path, fingerprint: str) -> KFaceIndex | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if list(data["meta"]) != [fingerprint, str(INDEX_VERSION), str(tree.resolve())]:
                return None
            columns = {name: data[name].tolist() for name in FIELDS}
            boxes = data["box"].tolist()
            problems = [
                Problem(f, r)
                for f, r in zip(
                    data["problem_file"].tolist(), data["problem_reason"].tolist(), strict=True
                )
            ]
    except (OSError, KeyError, ValueError) as error:
        log.warning("Ignoring the unreadable index cache %s (%s); rebuilding it", path, error)
        return None
    records = [
        KFaceRecord(
            **{name: columns[name][i] for name in FIELDS}, box=None if box[2] < 0 else tuple(box)
        )
        for i, box in enumerate(boxes)
    ]
    return KFaceIndex(tree, records, problems)


def load_index(tree: Path, cache_dir: Path | None, rebuild: bool = False) -> KFaceIndex:
    """The index of ``tree``, from the cache when the tree has not changed since it was built.

    Args:
        tree: the resolved K-Face tree.
        cache_dir: where the cache lives (``None``: no cache, scan every time).
        rebuild: scan again even when the cache looks current.
    """
    fingerprint = tree_fingerprint(tree)
    cache = None if cache_dir is None else _cache_file(tree, Path(cache_dir))
    if cache is not None and cache.exists() and not rebuild:
        index = _load(cache, tree, fingerprint)
        if index is not None:
            return index
    with tqdm(desc=f"Indexing {tree}", unit=" images", mininterval=1.0) as progress:
        records, problems = scan_tree(tree, progress)
    index = KFaceIndex(tree, records, problems)
    if cache is not None:
        _save(cache, index, fingerprint)
        log.info("Indexed %d images of %s (cache %s)", len(records), tree, cache)
    return index
