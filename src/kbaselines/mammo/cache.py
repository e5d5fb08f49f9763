"""Decoded, resized mammograms on disk as uint16 ``.npy``, memory-mapped when read.

Decoding a 3328x2560 DICOM takes about half a second; a training step must not pay that. Each
entry's file name is a hash of the source file (path, size, modification time) and of the
preprocessing settings, so an edited source or a changed setting makes a new entry: the cache
can never serve a stale image. Entries are written atomically (temp file, then rename), in
parallel threads (file reads, numpy and OpenCV release the GIL for much of the work).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from kbaselines.core.data.integrity import default_workers
from kbaselines.core.io import atomic_file
from kbaselines.mammo.dicom import MammoDicomError, read_pixels

__all__ = ["CACHE_VERSION", "ImageCache", "decode_resized"]

#: Bumped when decoding changes, which invalidates every entry.
CACHE_VERSION = 1
_SCALE = 65535


def decode_resized(path: str | Path, size: tuple[int, int], flip_right: bool = True) -> np.ndarray:
    """Decode a DICOM (see :func:`read_pixels`) and resize to ``size`` = (rows, columns), uint16."""
    pixels, _ = read_pixels(path, flip_right=flip_right)
    rows, columns = size
    resized = cv2.resize(pixels, (columns, rows), interpolation=cv2.INTER_AREA)
    return np.round(np.clip(resized, 0.0, 1.0) * _SCALE).astype(np.uint16)


class ImageCache:
    """Images of one preprocessing setting (``size``, ``flip_right``) under ``folder``."""

    def __init__(self, folder: str | Path, size: tuple[int, int], flip_right: bool = True) -> None:
        self.folder = Path(folder)
        self.size = (int(size[0]), int(size[1]))
        self.flip_right = flip_right

    def entry(self, source: str | Path) -> Path:
        """The cache file of ``source`` under the current settings and file state."""
        source = Path(source).resolve()
        stat = source.stat()
        key = f"{CACHE_VERSION}|{source}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}|{self.flip_right}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:20]
        return self.folder / f"{source.stem}-{digest}.npy"

    def missing(self, sources: Iterable[str | Path]) -> list[Path]:
        """The sources with neither a current entry nor a recorded decoding failure."""
        return [Path(s) for s in sources if not self._known(self.entry(s))]

    @staticmethod
    def _known(entry: Path) -> bool:
        return entry.is_file() or entry.with_suffix(".error").is_file()

    def failure(self, source: str | Path) -> str | None:
        """Why the current version of ``source`` could not be decoded, or None."""
        error = self.entry(source).with_suffix(".error")
        return error.read_text() if error.is_file() else None

    def build(
        self, sources: Iterable[str | Path], workers: int | None = None, progress: bool = True
    ) -> int:
        """Decode every source without a current entry, in threads with a progress bar; return
        how many.

        A file that cannot be decoded (truncated pixel data, no pixel data, a missing decoder
        plugin) gets a ``.error`` entry holding the reason, read back by :meth:`failure`; it is
        tried again once the file changes. Two paths to one file are decoded once.

        Args:
            sources: the DICOM files.
            workers: threads (default one per core, at most 16).
            progress: show a progress bar.
        """
        entries = {self.entry(s): Path(s) for s in sources}
        todo = [source for entry, source in entries.items() if not self._known(entry)]
        if not todo:
            return 0
        with (
            ThreadPoolExecutor(max_workers=workers or default_workers()) as pool,
            tqdm(
                total=len(todo),
                desc=f"decoding mammograms into the cache at {self.size[0]}x{self.size[1]}",
                unit=" files",
                disable=not progress,
            ) as bar,
        ):
            for _ in pool.map(self._fill, todo):
                bar.update()
        return len(todo)

    def _fill(self, source: Path) -> None:
        try:
            self._write(source, decode_resized(source, self.size, self.flip_right))
        except MammoDicomError as error:
            with atomic_file(self.entry(source).with_suffix(".error"), "w") as handle:
                handle.write(error.reason)

    def _write(self, source: Path, image: np.ndarray) -> None:
        with atomic_file(self.entry(source), "wb") as handle:
            np.save(handle, image)

    def load(self, source: str | Path) -> np.ndarray:
        """The cached image of ``source`` (uint16, memory-mapped); decoded now when missing."""
        entry = self.entry(source)
        if not entry.is_file():
            self._write(Path(source), decode_resized(source, self.size, self.flip_right))
        return np.load(entry, mmap_mode="r")
