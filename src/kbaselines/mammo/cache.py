"""Decoded, resized mammograms on disk as uint16 ``.npy``, memory-mapped when read.

Decoding a 3328x2560 DICOM takes about half a second; a training step must not pay that. Each
entry's file name is a hash of the source file (path, size, modification time) and of the
preprocessing settings, so an edited source or a changed setting makes a new entry: the cache
can never serve a stale image. Entries are written atomically (temp file, then rename), in
parallel threads (file reads, numpy and OpenCV release the GIL for much of the work).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from kbaselines.core.data.integrity import default_workers
from kbaselines.core.io import atomic_file, write_json_atomic
from kbaselines.mammo.crop import CROP_KEY, CropBox, check_crop, find_breast
from kbaselines.mammo.dicom import MammoDicomError, read_pixels

__all__ = ["CACHE_VERSION", "ImageCache", "decode_resized", "decode_view"]

#: Bumped when decoding changes, which invalidates every entry (2: padding pixels black).
CACHE_VERSION = 2
_SCALE = 65535


def decode_view(
    path: str | Path,
    size: tuple[int, int],
    flip_right: bool = True,
    laterality: str | None = None,
    crop: str = "none",
) -> tuple[np.ndarray, CropBox | None]:
    """Decode a DICOM (see :func:`read_pixels`), cut it to the breast when ``crop`` is
    ``"breast"`` (:func:`~kbaselines.mammo.crop.find_breast`) and resize to ``size`` = (rows,
    columns), uint16; with the crop box (None without a crop)."""
    pixels, _ = read_pixels(path, flip_right=flip_right, laterality=laterality)
    box = find_breast(pixels, size) if crop == "breast" else None
    if box is not None:
        pixels = box.cut(pixels)
    rows, columns = size
    resized = cv2.resize(pixels, (columns, rows), interpolation=cv2.INTER_AREA)
    return np.round(np.clip(resized, 0.0, 1.0) * _SCALE).astype(np.uint16), box


def decode_resized(
    path: str | Path,
    size: tuple[int, int],
    flip_right: bool = True,
    laterality: str | None = None,
) -> np.ndarray:
    """The whole view decoded and resized (:func:`decode_view` without a crop)."""
    return decode_view(path, size, flip_right, laterality)[0]


class ImageCache:
    """Images of one preprocessing setting (``size``, ``flip_right``) under ``folder``.

    ``sides`` gives the laterality of sources whose tags do not say it (from the views table),
    by resolved path; it is part of their entries' keys. ``crop="breast"`` cuts each view to the
    breast before resizing; its box (full-resolution pixels of the oriented view) is kept beside
    the entry (``.crop.json``, written before the image) and read by :meth:`crop_box`.
    """

    def __init__(
        self,
        folder: str | Path,
        size: tuple[int, int],
        flip_right: bool = True,
        sides: Mapping[str, str] | None = None,
        crop: str = "none",
    ) -> None:
        self.folder = Path(folder)
        self.size = (int(size[0]), int(size[1]))
        self.flip_right = flip_right
        self.sides = dict(sides or {})
        self.crop = check_crop(crop)

    def _side(self, source: str | Path) -> str | None:
        return self.sides.get(str(Path(source).resolve())) if self.sides else None

    def entry(self, source: str | Path) -> Path:
        """The cache file of ``source`` under the current settings and file state."""
        source = Path(source).resolve()
        stat = source.stat()
        key = f"{CACHE_VERSION}|{source}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}|{self.flip_right}"
        if side := self._side(source):
            key += f"|{side}"
        if self.crop != "none":
            key += f"|{CROP_KEY}"
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
            for _ in pool.map(self.fill, todo):
                bar.update()
        return len(todo)

    def fill(self, source: Path) -> None:
        """Decode ``source`` into its entry, or its ``.error`` entry (see :meth:`build`)."""
        try:
            self._write(source, *self._decode(source))
        except MammoDicomError as error:
            with atomic_file(self.entry(source).with_suffix(".error"), "w") as handle:
                handle.write(error.reason)

    def _decode(self, source: str | Path) -> tuple[np.ndarray, CropBox | None]:
        return decode_view(source, self.size, self.flip_right, self._side(source), self.crop)

    def _write(self, source: Path, image: np.ndarray, box: CropBox | None = None) -> None:
        entry = self.entry(source)
        if box is not None:  # first: an image entry never lacks its box
            write_json_atomic(entry.with_suffix(".crop.json"), box.to_json())
        with atomic_file(entry, "wb") as handle:
            np.save(handle, image)

    def crop_box(self, source: str | Path) -> CropBox | None:
        """The crop box of ``source``'s entry (decoded now when missing); None without a crop."""
        if self.crop == "none":
            return None
        entry = self.entry(source)
        if not entry.is_file():
            self._write(Path(source), *self._decode(source))
        return CropBox.from_json(json.loads(entry.with_suffix(".crop.json").read_text()))

    def load(self, source: str | Path) -> np.ndarray:
        """The cached image of ``source`` (uint16, memory-mapped); decoded now when missing."""
        entry = self.entry(source)
        if not entry.is_file():
            self._write(Path(source), *self._decode(source))
        return np.load(entry, mmap_mode="r")
