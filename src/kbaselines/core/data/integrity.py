"""Open every file of a dataset before training: readable, decodable, its size, its content digest.

A damaged file found mid-epoch costs a crash per file and an epoch each time; found here it costs
one listing. :func:`inspect_files` reads every file once, in parallel threads (decoders and hashing
release the GIL), with a progress bar, and caches the facts by size and modification time so a
second run only stats. The facts serve three checks:

- **decoding**: empty, truncated, unreadable files and files of another format than their name says
  (``FileFacts.error``), which ``check_dataset.py`` reports and training refuses or, with
  ``data.skip_broken=true``, leaves out with a count and a list;
- **sizes**: boxes and keypoints are checked against the image they belong to;
- **content**: :func:`audit_content` finds one file reached by two paths (symlinks, hard links) and
  byte-identical files in two groups; the split's leakage check refuses a fold whose parts share
  an image (``SampleTable.digests``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from kbaselines.core.data.dataset_report import Problem
from kbaselines.core.io import atomic_file

__all__ = [
    "Decoder",
    "FileFacts",
    "audit_content",
    "decode_image",
    "default_workers",
    "fact_problems",
    "facts_cache_file",
    "inspect_files",
    "tree_problems",
]

log = logging.getLogger(__name__)

#: Bump when the cached facts change meaning: older caches are then ignored.
CACHE_VERSION = 1
#: The formats Pillow must find behind each image suffix of the guideline's datasets.
FORMATS_BY_SUFFIX = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

Decoder = Callable[[bytes, str], tuple[int, int]]
"""Decode a file's bytes (the second argument is its suffix, lower case) to ``(width, height)``;
raise on a damaged file, with a message that says what is wrong."""


@dataclass(frozen=True)
class FileFacts:
    """What reading one file found.

    Args:
        size: bytes (0 for a missing file).
        mtime_ns: modification time (0 for a missing file).
        identity: ``device:inode`` of the file reached (two paths to one file share it).
        digest: BLAKE2b-128 of the bytes (empty when the file could not be read).
        width: decoded width in pixels (0 when not decoded).
        height: decoded height in pixels.
        error: what is wrong, or empty when the file is fine.
    """

    size: int
    mtime_ns: int
    identity: str
    digest: str
    width: int
    height: int
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the file was read and decoded."""
        return not self.error


def facts_cache_file(cache_dir: str | Path | None, root: str | Path, name: str) -> Path | None:
    """``<cache_dir>/<name>_files_<hash of the root>.npz``, or None without a cache folder."""
    if cache_dir is None:
        return None
    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{name}_files_{key}.npz"


def default_workers() -> int:
    """Threads for :func:`inspect_files`: the cores, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def decode_image(data: bytes, suffix: str) -> tuple[int, int]:
    """Decode an image completely with Pillow (a truncated file fails here, not in an epoch)."""
    with Image.open(io.BytesIO(data)) as image:
        expected = FORMATS_BY_SUFFIX.get(suffix)
        if expected is not None and image.format != expected:
            raise ValueError(
                f"is a {image.format} file named {suffix}: convert it to {expected} or rename it"
            )
        image.load()
        return image.size


def _inspect_one(path: str, decode: Decoder | None) -> FileFacts:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        reason = "is a dangling link" if os.path.islink(path) else "is missing"
        return FileFacts(0, 0, "", "", 0, 0, f"{reason}: restore the file or remove it")
    except OSError as error:
        return FileFacts(
            0, 0, "", "", 0, 0, f"cannot be read ({error.strerror}): check its permissions"
        )
    identity = f"{stat.st_dev}:{stat.st_ino}"
    if stat.st_size == 0:
        return FileFacts(
            0,
            stat.st_mtime_ns,
            identity,
            "",
            0,
            0,
            "is empty (0 bytes); restore it from the delivery or remove it",
        )
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        return FileFacts(
            stat.st_size, stat.st_mtime_ns, identity, "", 0, 0, f"cannot be read ({error})"
        )
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    width = height = 0
    error_text = ""
    if decode is not None:
        try:
            width, height = decode(data, os.path.splitext(path)[1].lower())
        except Exception as error:  # every decoder's failure is a fact about the file
            error_text = f"cannot be decoded: {error}; restore it from the delivery or remove it"
    return FileFacts(stat.st_size, stat.st_mtime_ns, identity, digest, width, height, error_text)


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _load_cache(cache_file: Path) -> dict[str, FileFacts]:
    try:
        with np.load(cache_file, allow_pickle=False) as data:
            if int(data["version"]) != CACHE_VERSION:
                return {}
            columns = [data[name].tolist() for name in _CACHE_COLUMNS]
    except FileNotFoundError:
        return {}
    except (OSError, KeyError, ValueError, EOFError) as error:
        log.warning("Ignoring the unreadable check cache %s (%s)", cache_file, error)
        return {}
    paths, *fields = columns
    return {path: FileFacts(*values) for path, *values in zip(paths, *fields, strict=True)}


_CACHE_COLUMNS = ("path", "size", "mtime_ns", "identity", "digest", "width", "height", "error")


def _save_cache(cache_file: Path, facts: Mapping[str, FileFacts]) -> None:
    paths = sorted(facts)
    arrays = {"version": np.array(CACHE_VERSION), "path": np.array(paths, dtype=str)}
    for name in _CACHE_COLUMNS[1:]:
        values = [getattr(facts[p], name) for p in paths]
        arrays[name] = np.array(values, dtype=str if isinstance(values[0], str) else np.int64)
    with atomic_file(cache_file, "wb") as file:
        np.savez_compressed(file, **arrays)


def inspect_files(
    paths: Iterable[str | Path],
    decode: Decoder | None = decode_image,
    cache_file: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "Checking files",
) -> dict[str, FileFacts]:
    """Read (and decode) every file, in parallel, reusing the cached facts of unchanged files.

    Args:
        paths: the files; the result is keyed by ``str(path)``.
        decode: decodes a file's bytes to its size (:func:`decode_image` for images); None only
            reads and hashes.
        cache_file: where the facts are kept between runs (``.npz``, no pickle); a file whose
            size and modification time are unchanged is not read again. None: no cache.
        workers: threads (default :func:`default_workers`).
        progress: show a progress bar.
        desc: the progress bar's label.
    """
    keys = list(dict.fromkeys(str(p) for p in paths))
    cached = _load_cache(Path(cache_file)) if cache_file is not None else {}
    facts: dict[str, FileFacts] = {}
    todo: list[str] = []
    for key in keys:
        known = cached.get(key)
        if known is not None and not known.error and _stamp(key) == (known.size, known.mtime_ns):
            facts[key] = known
        else:
            todo.append(key)
    if todo:
        with (
            ThreadPoolExecutor(max_workers=workers or default_workers()) as pool,
            tqdm(total=len(todo), desc=desc, unit=" files", disable=not progress) as bar,
        ):
            for key, fact in zip(
                todo, pool.map(lambda p: _inspect_one(p, decode), todo), strict=True
            ):
                facts[key] = fact
                bar.update()
        if cache_file is not None:
            _save_cache(Path(cache_file), {**cached, **facts})
    return facts


def fact_problems(facts: Mapping[str, FileFacts], relative_to: str | Path) -> list[Problem]:
    """A problem for every file that could not be read or decoded, named relative to the root."""
    return [
        Problem(_relative(path, relative_to), fact.error)
        for path, fact in sorted(facts.items())
        if fact.error
    ]


def audit_content(
    files_by_sample: Mapping[str, Sequence[str]],
    group_of: Mapping[str, str],
    facts: Mapping[str, FileFacts],
    relative_to: str | Path,
) -> list[Problem]:
    """Files reached twice and byte-identical files in two groups, naming both paths.

    Args:
        files_by_sample: sample id to the files it reads.
        group_of: sample id to its group (person, item, patient).
        facts: :func:`inspect_files` of those files.
        relative_to: the dataset root, for the names.
    """
    groups_of_file: dict[str, set[str]] = defaultdict(set)
    for sample, files in files_by_sample.items():
        for file in files:
            groups_of_file[str(file)].add(group_of[sample])
    by_identity: dict[str, list[str]] = defaultdict(list)
    by_digest: dict[str, list[str]] = defaultdict(list)
    for file in sorted(groups_of_file):
        fact = facts.get(file)
        if fact is None or not fact.ok:
            continue
        by_identity[fact.identity].append(file)
        by_digest[fact.digest].append(file)
    problems = []
    for paths in by_identity.values():
        first = paths[0]
        problems += [
            Problem(
                _relative(other, relative_to),
                f"is the same file as {_relative(first, relative_to)} (a link or a linked "
                f"folder; groups {_groups(groups_of_file, first, other)}): keep one path",
            )
            for other in paths[1:]
        ]
    for paths in by_digest.values():
        distinct = sorted({facts[p].identity: p for p in reversed(paths)}.values())
        first = distinct[0]
        problems += [
            Problem(
                _relative(other, relative_to),
                f"is byte-identical to {_relative(first, relative_to)} in another group "
                f"({_groups(groups_of_file, first, other)}): the same image in two groups leaks "
                "between folds; remove one copy",
            )
            for other in distinct[1:]
            if groups_of_file[other] != groups_of_file[first]
        ]
    return problems


def _groups(groups_of_file: Mapping[str, set[str]], a: str, b: str) -> str:
    return f"{', '.join(sorted(groups_of_file[a]))} and {', '.join(sorted(groups_of_file[b]))}"


def tree_problems(root: str | Path, skip: Callable[[str], bool] | None = None) -> list[Problem]:
    """Empty folders and dangling links anywhere under ``root`` (hidden entries ignored).

    Args:
        root: the dataset folder.
        skip: folders (relative paths) not to look into, e.g. a cache folder.
    """
    root = str(root)
    problems = []
    for folder, subfolders, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        subfolders[:] = sorted(
            d
            for d in subfolders
            if not d.startswith(".") and not (skip and skip(os.path.join(relative, d)))
        )
        visible = [f for f in files if not f.startswith(".")]
        for name in sorted(visible + subfolders):
            path = os.path.join(folder, name)
            if os.path.islink(path) and not os.path.exists(path):
                problems.append(
                    Problem(
                        _relative(path, root), "is a dangling link: restore its target or remove it"
                    )
                )
        if not visible and not subfolders and folder != root:
            problems.append(Problem(_relative(folder, root), "is an empty folder: remove it"))
    return problems


def _relative(path: str | Path, root: str | Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)
