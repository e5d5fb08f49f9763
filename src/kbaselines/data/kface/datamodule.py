"""The K-Face LightningDataModule: plain settings in, the fold's datasets out.

The CV layer gives the fold as ``split`` (sample ids per part); this module never splits or seeds
a split itself. Training classes are the training part's people; evaluation sets label their own
(unseen) people and mark each person's gallery image for identification.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, get_worker_info

from kbaselines.data.kface.dataset import KFaceDataset
from kbaselines.data.kface.index import KFaceIndex, load_index
from kbaselines.data.kface.reader import KFaceFormatError, KFaceRecord, resolve_tree, select
from kbaselines.data.kface.synthetic import ensure_synthetic_kface
from kbaselines.data.report import DatasetReport
from kbaselines.data.samples import SampleTable

__all__ = ["KFaceDataModule"]

Facet = Sequence[str] | str


def _worker_init(worker_id: int) -> None:
    """Reseed numpy, random and the albumentations pipeline of this worker from torch's seed."""
    info = get_worker_info()
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(seed)


class KFaceDataModule(pl.LightningDataModule):
    """K-Face images selected by facets, split by the CV layer.

    Args:
        root: the K-Face tree (or a folder holding High/Middle/Low trees).
        resolution: which of High/Middle/Low to read when the root holds them.
        sessions, lights, expressions, cameras: the selection, each a list of values or ``"all"``.
        gallery_camera: the camera of each person's gallery image (with S001/L1/E01).
        input_size: side of the square network input.
        in_chans: 1 (grayscale, LightCNN) or 3 (RGB).
        crop_margin: margin around the face box, as a fraction of its size.
        batch_size: the global training batch (divided by the number of processes).
        eval_batch_size: the evaluation batch (default: ``batch_size``).
        num_workers, pin_memory, persistent_workers: data-loader settings.
        cache_dir: where the index of the tree is cached (None: no cache).
        rebuild_index: scan the tree again even when the cached index looks current.
        augment: random crop and flip for training.
        seed: seed of augmentation and shuffling.
        split: ``{"train", "val", "test"}`` sample ids from the CV layer; None: every selected image
            is a test image (evaluating a checkpoint on a whole dataset).
        synthetic: arguments of ``generate_kface``: generate the tree at ``root`` when absent.
        group_key: the record field that groups samples in the splits (no group in two folds).
        stratify_key: the record field to stratify on, or None.
    """

    def __init__(
        self,
        root: str | None = None,
        resolution: str = "High",
        sessions: Facet = ("S001",),
        lights: Facet = ("L1",),
        expressions: Facet = ("E01",),
        cameras: Facet = ("C7",),
        gallery_camera: str = "C7",
        input_size: int = 128,
        in_chans: int = 1,
        crop_margin: float = 0.1,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        cache_dir: str | None = None,
        rebuild_index: bool = False,
        augment: bool = True,
        seed: int = 0,
        split: dict[str, list[str]] | None = None,
        synthetic: dict[str, Any] | None = None,
        group_key: str = "person",
        stratify_key: str | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.resolution = resolution
        self.filters = {
            "sessions": sessions,
            "lights": lights,
            "expressions": expressions,
            "cameras": cameras,
        }
        self.gallery_camera = gallery_camera
        self.input_size = input_size
        self.in_chans = in_chans
        self.crop_margin = crop_margin
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.loader_settings = {
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
            "worker_init_fn": _worker_init,
        }
        self.cache_dir = cache_dir
        self.rebuild_index = rebuild_index
        self.augment = augment
        self.seed = seed
        self.split = split
        self.synthetic = None if synthetic is None else dict(synthetic)
        self.group_key = group_key
        self.stratify_key = stratify_key
        self._index: KFaceIndex | None = None
        self.datasets: dict[str, KFaceDataset] = {}
        self.num_classes = 0

    # -- the tree ---------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the synthetic tree if configured (once), then build or load the index."""
        if self.synthetic is not None:
            ensure_synthetic_kface(self.root, **self.synthetic)
        self.index  # noqa: B018  (builds the cache)

    @property
    def tree(self) -> Path:
        return resolve_tree(self.root, self.resolution)

    @property
    def index(self) -> KFaceIndex:
        if self._index is None:
            self._index = load_index(self.tree, self.cache_dir, self.rebuild_index)
            self.rebuild_index = False
        return self._index

    def selected(self) -> list[KFaceRecord]:
        """The selected records, sorted by path; an error when the tree has problems."""
        index = self.index
        if index.problems:
            listing = "\n  ".join(str(p) for p in index.problems[:20])
            raise KFaceFormatError(
                f"{index.tree}: {len(index.problems)} problems (python scripts/check_dataset.py "
                f"data=kface data.root={self.root} lists them all):\n  {listing}"
            )
        if not index.records:
            raise KFaceFormatError(
                f"{index.tree}: no <person>/<session>/<light>/<expression>/<camera>.jpg found"
            )
        return select(index.records, **self.filters)

    def sample_table(self) -> SampleTable:
        """The selected images for the CV layer: ids are paths, groups are ``group_key`` values."""
        records = self.selected()
        labels = (
            None
            if self.stratify_key is None
            else [str(getattr(r, self.stratify_key)) for r in records]
        )
        return SampleTable(
            ids=[r.path for r in records],
            groups=[str(getattr(r, self.group_key)) for r in records],
            labels=labels,
        )

    # -- the fold's datasets ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        by_path = {r.path: r for r in self.selected()}
        parts = (
            self.split
            if self.split is not None
            else {"train": [], "val": [], "test": list(by_path)}
        )
        unknown = [i for ids in parts.values() for i in ids if i not in by_path]
        if unknown:
            raise KeyError(
                f"the split names {len(unknown)} images not in the selection, e.g. {unknown[:3]}"
            )
        train = [by_path[i] for i in parts.get("train", [])]
        people = sorted({r.person for r in train})
        self.num_classes = len(people)
        if train:
            label_of = {p: k for k, p in enumerate(people)}
            self.datasets["train"] = self._dataset(
                train, [label_of[r.person] for r in train], self.augment
            )
        for stage_name in ("val", "test"):
            records = [by_path[i] for i in parts.get(stage_name, [])]
            if records:
                self.datasets[stage_name] = self._evaluation_set(records)

    def _dataset(
        self, records: list[KFaceRecord], labels: list[int], train: bool, gallery=None
    ) -> KFaceDataset:
        return KFaceDataset(
            self.tree,
            records,
            labels,
            input_size=self.input_size,
            in_chans=self.in_chans,
            crop_margin=self.crop_margin,
            train=train,
            gallery=gallery,
            seed=self.seed,
        )

    def _evaluation_set(self, records: list[KFaceRecord]) -> KFaceDataset:
        people = sorted({r.person for r in records})
        label_of = {p: k for k, p in enumerate(people)}
        gallery = [
            (r.session, r.light, r.expression, r.camera)
            == ("S001", "L1", "E01", self.gallery_camera)
            for r in records
        ]
        having = Counter(r.person for r, g in zip(records, gallery, strict=True) if g)
        lacking = [p for p in people if having[p] != 1]
        if lacking:
            raise KFaceFormatError(
                f"people {lacking[:5]} have no gallery image S001/L1/E01/{self.gallery_camera} in the "
                "selection: keep those values in data.sessions/lights/expressions/cameras, or set "
                "data.gallery_camera to a selected camera"
            )
        return self._dataset(records, [label_of[r.person] for r in records], False, gallery)

    def eval_records(self, stage: str) -> list[KFaceRecord]:
        """The records of the val or test set, in dataset order (for writing predictions)."""
        return self.datasets[stage].records

    def _per_process(self, batch_size: int) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if batch_size % world:
            raise RuntimeError(f"batch size {batch_size} is not divisible by the {world} processes")
        return batch_size // world

    def _loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        if stage not in self.datasets:
            raise RuntimeError(f"no {stage} images: the split has an empty {stage} part")
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.datasets[stage],
            batch_size=self._per_process(batch_size),
            shuffle=shuffle,
            generator=generator,
            **self.loader_settings,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return (
            self._loader("val", self.eval_batch_size, shuffle=False)
            if "val" in self.datasets
            else []
        )

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    # -- checking a tree --------------------------------------------------------------------------
    def check(self) -> DatasetReport:
        """Counts and problems of the whole tree (not only the selection)."""
        index = self.index
        records = index.records
        counts: dict[str, int | dict[str, int]] = {
            "people": len({r.person for r in records}),
            "images": len(records),
            "boxes present": sum(r.box is not None for r in records),
            "boxes missing": sum(r.box is None for r in records),
        }
        for facet in ("session", "light", "expression", "camera"):
            tally = Counter(getattr(r, facet) for r in records)
            counts[f"images per {facet}"] = dict(
                sorted(tally.items(), key=lambda kv: (len(kv[0]), kv[0]))
            )
        return DatasetReport("K-Face", str(index.tree), counts, list(index.problems))
