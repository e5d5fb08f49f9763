"""Checkpoints that survive a kill at any moment: temporary file, fsync, rename; the previous
``last`` kept as ``last-prev.ckpt`` so that a damaged ``last.ckpt`` still leaves a resume point."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from kbaselines.core.io import atomic_file

__all__ = [
    "PREVIOUS_SUFFIX",
    "AtomicCheckpointIO",
    "UnsafeCheckpointError",
    "fsync_dir",
    "load_checkpoint",
    "previous_path",
]

log = logging.getLogger(__name__)

# last.ckpt -> last-prev.ckpt: the good checkpoint before the newest one
PREVIOUS_SUFFIX = "-prev"


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds more than tensors and plain values: loading it could run its code."""


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint, loaded weights-only: tensors and plain values, and no code of the file runs.

    Every checkpoint the framework writes loads this way (tasks keep only plain hyperparameters).

    Raises:
        UnsafeCheckpointError: naming the file and what it holds beyond tensors and plain values.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        reason = str(error).split("WeightsUnpickler error:")[-1].strip().split(". Please")[0]
        raise UnsafeCheckpointError(
            f"{path} was refused: it holds more than tensors and plain values ({reason}), so "
            "loading it could run code. Use a checkpoint written by K-Baselines, or export the "
            "weights you trust with torch.save(model.state_dict(), ...)"
        ) from error


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry itself is flushed)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, written atomically on the local file system.

    The checkpoint goes to a temporary file in the target folder, is fsynced, then renamed over the
    target: a reader (or a restarted run) sees the old file or the new one, never half of one. A
    checkpoint named in ``keep_previous`` (default ``last.ckpt``) is first moved to
    ``<name>-prev.ckpt``, so a run killed between the two renames, or a ``last.ckpt`` damaged on
    disk, still resumes (see :func:`kbaselines.core.cluster.resume.resume_checkpoint`).
    """

    def __init__(self, keep_previous: tuple[str, ...] = ("last.ckpt",)) -> None:
        super().__init__()
        self.keep_previous = tuple(keep_previous)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options (got {storage_options!r})"
            )
        path = Path(path)
        previous = path.name in self.keep_previous and path.exists()
        with atomic_file(path, "wb", fsync=True) as file:
            torch.save(checkpoint, file)
            if previous:
                # the new file is complete: keep the old one as last-prev before the rename
                os.replace(path, previous_path(path))
        fsync_dir(path.parent)
        log.debug("Checkpoint written atomically: %s", path)


def previous_path(path: Path) -> Path:
    """``last.ckpt`` -> ``last-prev.ckpt``."""
    return path.with_name(f"{path.stem}{PREVIOUS_SUFFIX}{path.suffix}")
