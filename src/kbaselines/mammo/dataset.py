"""Torch datasets of mammography: stage-1 patches and stage-2 whole views, read from the cache.

Both return ``{"image": [1, H, W] float, "cancer": 0/1, "benign": 0/1, "index": i}``; whole
views also carry ``"part"`` (0 validation, 1 test) so one loader can score both parts.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.context import BaseContext

import cv2
import numpy as np
import torch

from kbaselines.core.data.loaders import SeededDataset
from kbaselines.mammo.cache import ImageCache
from kbaselines.mammo.crop import TISSUE_LEVEL

__all__ = ["PatchDataset", "PatchItem", "ViewDataset", "ViewItem", "worker_context"]


def worker_context() -> BaseContext:
    """Where the loaders' workers start: a server process that imported this module (torch,
    numpy, OpenCV) once and forks every worker (``forkserver``; ``spawn`` where there is none).

    Not forks of the trainer: a forked worker shares the trainer's memory as it was at that moment,
    and every page the trainer writes afterwards (a whole-view step rewrites GBs of its heap) is
    copied, the worker keeping the old one as long as it lives; the training and the validation
    loaders' workers live at once. A run at 1664x1280 (batch 2, two steps of each stage) peaked
    at 5.3 GB with 12 cases and 6.8 GB with 36 with forked workers (their summed RSS, which
    SLURM's process accounting adds up: 10.8 and 13.0 GB); with workers from the server, 5.1 and
    4.8 GB (7.2 and 7.1 GB), each worker holding about 0.2 GB whatever the trainer holds.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


@dataclass(frozen=True)
class ViewItem:
    """One view of a case, with what the task and the reports need about it."""

    path: str
    case_id: str
    patient: str
    view: str
    grp: str
    breast: str
    device: str
    birads: str
    histology: str
    part: int = 1

    @property
    def laterality(self) -> str:
        return self.view[0].upper()


@dataclass(frozen=True)
class PatchItem:
    """A patch to cut: from a lesion box (jittered inside it) or anywhere in normal tissue (box None)."""

    path: str
    cls: str
    box: tuple[float, float, float, float] | None
    patch: int


def _targets(cls: str) -> tuple[float, float]:
    return float(cls == "cancer"), float(cls == "benign")


def _tensor(image: np.ndarray) -> torch.Tensor:
    """``[1, H, W]`` float32 in [0, 1] from cached uint16: one conversion, scaled in place."""
    values = np.ascontiguousarray(image, dtype=np.float32)
    np.divide(values, 65535.0, out=values)
    return torch.from_numpy(values)[None]


def _crop(image: np.ndarray, cy: int, cx: int, size: int) -> np.ndarray:
    """``np.pad(image, size // 2)[cy : cy + size, cx : cx + size]`` (zeros outside the image),
    copying only the crop: padding the whole (memory-mapped) image for every patch read all of it.
    """
    half = size // 2
    rows, columns = image.shape
    # the window in the padded image's coordinates, cut at its end as a slice would be
    y1, x1 = min(cy + size, rows + 2 * half), min(cx + size, columns + 2 * half)
    crop = np.zeros((max(y1 - cy, 0), max(x1 - cx, 0)), dtype=image.dtype)
    top, left = cy - half, cx - half  # the window's corner in image coordinates
    r0, r1 = max(top, 0), min(y1 - half, rows)
    c0, c1 = max(left, 0), min(x1 - half, columns)
    if r1 > r0 and c1 > c0:
        crop[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return crop


class _CachedItems(SeededDataset):
    """Items read from the image cache, with an augmentation stream reseeded per worker."""

    def __init__(self, cache: ImageCache, items: list, train: bool, seed: int) -> None:
        self.cache = cache
        self.items = items
        self.train = train
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)


class ViewDataset(_CachedItems):
    """Whole views resized to ``size`` (rows, columns); vertical flips when ``train``."""

    def __init__(
        self,
        cache: ImageCache,
        items: list[ViewItem],
        size: tuple[int, int],
        train: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(cache, items, train, seed)
        self.size = (int(size[0]), int(size[1]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        image = np.asarray(self.cache.load(item.path))
        if image.shape != self.size:
            image = cv2.resize(image, self.size[::-1], interpolation=cv2.INTER_AREA)
        if self.train and self.rng.random() < 0.5:
            image = image[::-1]
        cancer, benign = _targets(item.breast)
        return {
            "image": _tensor(image),
            "cancer": torch.tensor(cancer),
            "benign": torch.tensor(benign),
            "index": torch.tensor(index),
            "part": torch.tensor(item.part),
        }


class PatchDataset(_CachedItems):
    """Square patches (each item's ``patch`` cached pixels), resized to ``input_size``.

    Lesion patches are centred at a random point of the lesion's box; normal patches, from normal
    breasts, half at a random point of the tissue and half anywhere (edges and background are what
    the maps must call normal on whole views); both flipped at random when ``train``.
    """

    def __init__(
        self,
        cache: ImageCache,
        items: list[PatchItem],
        input_size: int,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(cache, items, train, seed)
        self.input_size = int(input_size)

    @property
    def classes(self) -> list[str]:
        return [item.cls for item in self.items]

    def _centre(self, image: np.ndarray, item: PatchItem) -> tuple[int, int]:
        rows, columns = image.shape
        if item.box is not None:
            x0, y0, x1, y1 = item.box
            x = self.rng.uniform(x0, x1) if self.train else (x0 + x1) / 2
            y = self.rng.uniform(y0, y1) if self.train else (y0 + y1) / 2
            return int(y * rows), int(x * columns)
        if self.rng.random() < 0.5:  # anywhere: the breast's edge and the background are normal too
            return int(self.rng.integers(rows)), int(self.rng.integers(columns))
        tissue = np.argwhere(np.asarray(image[::4, ::4]) > TISSUE_LEVEL * 65535) * 4
        if len(tissue) == 0:
            return rows // 2, columns // 2
        y, x = tissue[self.rng.integers(len(tissue))]
        return int(y), int(x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        image = np.asarray(self.cache.load(item.path))
        cy, cx = self._centre(image, item)
        crop = _crop(image, cy, cx, item.patch)
        if crop.shape[0] != self.input_size:
            crop = cv2.resize(
                crop, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA
            )
        if self.train and self.rng.random() < 0.5:
            crop = crop[::-1]
        cancer, benign = _targets(item.cls)
        return {
            "image": _tensor(crop),
            "cancer": torch.tensor(cancer),
            "benign": torch.tensor(benign),
            "index": torch.tensor(index),
        }
