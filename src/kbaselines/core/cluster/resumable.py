"""Exact mid-epoch resume: the checkpoint carries the RNG states and the place in the epoch.

Lightning restores model, optimizer, scheduler and loop counters, and on a mid-epoch checkpoint runs
the remaining number of batches of the interrupted epoch, but draws them from a fresh pass over a
plain DataLoader (its "not resumable" warning) with fresh random generators. This callback adds to
the checkpoint the torch / numpy / Python RNG states, the training loader's generator state at the
start of the epoch (it fixes the epoch's shuffling and the workers' seeds) and the number of batches
done; on resume it restores them and skips the batches already trained, so the epoch continues
where it stopped, in the same order.

Lightning creates the first epoch's data iterator (and prefetches a batch) before any epoch hook, so
the generator state cannot be read before that epoch's draws. The callback therefore starts the
iterator again at the first epoch of every ``fit`` (and at a resume), right after reading the state:
every epoch's order then comes from the generator state recorded at its start, in an uninterrupted
run and in a resumed one alike.
"""

from __future__ import annotations

import itertools
import logging
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader

__all__ = ["ResumableTraining"]

log = logging.getLogger(__name__)


class _SkipFirstBatches:
    """Wraps a batch sampler: the next pass leaves out its first ``skip`` batches, later ones none."""

    def __init__(self, batch_sampler: Any, skip: int) -> None:
        self.batch_sampler = batch_sampler
        self.skip = skip

    def __iter__(self) -> Any:
        # lazy: the sampler draws its permutation at the first batch, after the loader's worker
        # seed, in the same order as without the wrapper
        skip, self.skip = self.skip, 0
        return itertools.islice(self.batch_sampler, skip, None)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["batch_sampler"], name)


def _numpy_state() -> dict[str, Any]:
    """numpy's global RNG state as tensors and numbers (checkpoints load with weights_only)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["name"], keys, state["position"], state["has_gauss"], state["cached"])
    )


def _train_loader(trainer: pl.Trainer) -> DataLoader | None:
    loader = trainer.train_dataloader
    return loader if isinstance(loader, DataLoader) else None


class ResumableTraining(Callback):
    """Save and restore what makes a resumed epoch continue exactly where it stopped."""

    def __init__(self) -> None:
        self._epoch_start_generator: torch.Tensor | None = None
        self._pending: dict[str, Any] | None = None
        self._first_epoch = True
        self._restarted = False
        self._trainer: pl.Trainer | None = None  # set in setup(); state_dict needs it

    @property
    def state_key(self) -> str:
        return "ResumableTraining"

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None or trainer.state.fn != "fit":
            return {}
        # batches trained in this epoch (at on_train_batch_end, "completed" lags by one)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        finished = done >= trainer.num_training_batches
        loader = _train_loader(trainer)
        generator = None
        if loader is not None and loader.generator is not None:
            # a finished epoch resumes at the next one: the generator as it is now
            generator = loader.generator.get_state() if finished else self._epoch_start_generator
        return {
            "batches_done": 0 if finished else done,
            "loader_generator": generator,
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) or None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        self._first_epoch = True
        self._restarted = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a resumed fit: Lightning skips on_train_epoch_start of the interrupted epoch
        pending, self._pending = self._pending, None
        if pending is None:
            return
        loader = _train_loader(trainer)
        self._restore(pending, loader)
        self._epoch_start_generator = pending["loader_generator"]
        self._restart_iterator(trainer, loader)
        self._restarted = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restarted:  # the iterator of this epoch was made in on_train_start
            self._restarted = False
            return
        loader = _train_loader(trainer)
        if loader is not None and loader.generator is not None:
            self._epoch_start_generator = loader.generator.get_state()
        if self._first_epoch:
            self._restart_iterator(trainer, loader)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_epoch = self._restarted = False

    def _restart_iterator(self, trainer: pl.Trainer, loader: DataLoader | None) -> None:
        """Replace the iterator Lightning made before the first epoch hook by one drawn from the
        generator state just recorded (private API: the fit loop's data fetcher)."""
        self._first_epoch = False
        if loader is not None:
            iter(trainer.fit_loop._data_fetcher)

    @staticmethod
    def _restore(state: dict[str, Any], loader: DataLoader | None) -> None:
        torch.set_rng_state(state["torch"])
        _set_numpy_state(state["numpy"])
        random.setstate(state["python"])
        if loader is None:
            log.warning(
                "The training loader is not one DataLoader: the resumed epoch restarts its data "
                "from a fresh pass (RNG states restored)"
            )
            return
        if state["loader_generator"] is not None and loader.generator is not None:
            loader.generator.set_state(state["loader_generator"])
        skip = state["batches_done"]
        if skip and loader.batch_sampler is not None:
            # DataLoader forbids replacing its batch sampler; the wrapper goes around that guard
            object.__setattr__(
                loader, "batch_sampler", _SkipFirstBatches(loader.batch_sampler, skip)
            )
            log.info("Resuming mid-epoch: the first %d batches of the epoch are skipped", skip)
