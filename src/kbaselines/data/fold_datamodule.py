"""The part every DataModule of the framework shares: a fold's datasets and their loaders.

A dataset's DataModule reads its format, builds ``self.datasets`` (``"train"``, ``"val"``,
``"test"``) from the fold's ``split`` in ``setup()``, and inherits the loaders: the global batch is
divided between the processes, shuffling and workers are seeded, an empty validation part gives
no validation, and training without the CV layer's split is refused with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from kbaselines.data.loaders import per_process_batch, worker_init_fn

__all__ = ["FoldDataModule"]


class FoldDataModule(pl.LightningDataModule):
    """Loaders over ``self.datasets`` for a subclass that sets these attributes in ``__init__``:

    ``split`` (the CV layer's ids per part, or None for eval.py), ``datasets`` (part name to
    Dataset, filled by ``setup()``), ``batch_size`` and ``eval_batch_size`` (global batches),
    ``num_workers``, ``pin_memory``, ``persistent_workers`` and ``seed``.

    Subclasses with a sampler of their own (class-aware, balanced) override :meth:`train_sampler`;
    ``collate_fn`` batches samples of varying size (detection targets).
    """

    split: dict[str, list[str]] | None
    datasets: dict[str, Dataset]
    batch_size: int
    eval_batch_size: int
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    seed: int
    collate_fn: Callable[[list[Any]], Any] | None = None

    def train_sampler(self) -> Sampler | None:
        """The training sampler; None shuffles with the seeded generator."""
        return None

    def loader(
        self, dataset: Dataset, batch_size: int, shuffle: bool, sampler: Sampler | None = None
    ) -> DataLoader:
        """A seeded loader of this process's share of ``batch_size``."""
        return DataLoader(
            dataset,
            batch_size=per_process_batch(getattr(self, "trainer", None), batch_size),
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=worker_init_fn,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or sampled) training batches of the fold."""
        if self.split is None:
            raise RuntimeError(
                f"this {type(self).__name__} has no split (split=None): every sample is a test "
                "sample, for evaluating a checkpoint (eval.py). Training needs the folds of the CV "
                "layer: run train.py, which gives each fold as split={'train', 'val', 'test'}"
            )
        if "train" not in self.datasets:
            raise RuntimeError(
                "no training samples: call setup() first, or the split's train is empty"
            )
        return self.loader(
            self.datasets["train"], self.batch_size, shuffle=True, sampler=self.train_sampler()
        )

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches, or an empty list when the fold has no validation part."""
        if "val" not in self.datasets:
            return []
        return self.loader(self.datasets["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches of the fold (of every selected sample without a split)."""
        if "test" not in self.datasets:
            raise RuntimeError("no test samples: call setup() first, or the split's test is empty")
        return self.loader(self.datasets["test"], self.eval_batch_size, shuffle=False)
