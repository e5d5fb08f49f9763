"""Data-loader pieces every DataModule shares: worker seeding and the per-process batch size."""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, get_worker_info

__all__ = ["SeededDataset", "per_process_batch", "worker_init_fn"]


class SeededDataset(Dataset):
    """A dataset with its own random augmentation, which each data-loader worker reseeds.

    Albumentations pipelines follow their ``Compose(seed=...)``, not the global seeds: a dataset
    that augments subclasses this and reseeds its pipeline in :meth:`reseed`.
    """

    def reseed(self, seed: int) -> None:
        """Give this copy of the dataset (one per worker) its own augmentation seed."""
        raise NotImplementedError(f"{type(self).__name__} must define reseed(seed)")


def worker_init_fn(worker_id: int) -> None:
    """Reseed numpy, ``random`` and the worker's augmentation pipeline from torch's worker seed.

    Torch seeds each worker with ``base_seed + worker_id``, the base drawn from the loader's
    seeded generator; numpy, ``random`` and albumentations do not follow it on their own, so a
    :class:`SeededDataset` (an albumentations ``Compose`` inside) is reseeded too.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = get_worker_info()
    if info is not None and isinstance(info.dataset, SeededDataset):
        info.dataset.reseed(seed)


def per_process_batch(trainer: pl.Trainer | None, batch_size: int) -> int:
    """The batch of one process: the global batch divided by the trainer's world size.

    Raises:
        RuntimeError: when the global batch does not divide evenly between the processes.
    """
    world = trainer.world_size if trainer is not None else 1
    if batch_size % world:
        raise RuntimeError(
            f"batch size {batch_size} is not divisible by the number of processes ({world}); "
            "set data.batch_size (and data.eval_batch_size) to a multiple of it"
        )
    return batch_size // world
