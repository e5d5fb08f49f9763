"""A callback the recipe tests add on the command line: what each stage fed the network.

``+callbacks.input_probe._target_=input_probe.InputProbe`` (with ``tests/recipes`` on
``PYTHONPATH``) writes ``input_shapes.json`` into the fold's folder: for every stage and epoch, the
distinct shapes of the batch's images as the DataModule gave them and of the input of the first
convolution the network ran, i.e. what the backbone saw after any resizing inside the model (the
detectors' transform). The assertion that a recipe runs at its real size reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

STAGES = ("train", "validation", "test")


def _image_shapes(batch: Any) -> list[list[int]]:
    """The shapes of the batch's images: ``batch["image"]`` (a tensor), or ``batch["images"]``
    (the detectors' list of tensors) as ``[count, *shape]`` per distinct shape."""
    images = batch.get("image", batch.get("images")) if isinstance(batch, dict) else None
    if isinstance(images, torch.Tensor):
        return [list(images.shape)]
    shapes = [tuple(t.shape) for t in images or () if isinstance(t, torch.Tensor)]
    return [[shapes.count(s), *s] for s in dict.fromkeys(shapes)]


class InputProbe(pl.Callback):
    """Record the input shapes of every stage, per epoch; rewrite the JSON after each stage."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, dict[str, list]]] = {}
        self._armed: str | None = None
        self._epoch = 0
        self._handles: list[Any] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self._handles:
            self._handles = [
                m.register_forward_pre_hook(self._first_conv)
                for m in pl_module.modules()
                if isinstance(m, nn.Conv2d)
            ]

    def _first_conv(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self._armed is not None and inputs and isinstance(inputs[0], torch.Tensor):
            self._add(self._armed, "conv", [list(inputs[0].shape)])
            self._armed = None

    def _add(self, stage: str, key: str, shapes: list[list[int]]) -> None:
        record = self.seen.setdefault(stage, {}).setdefault(str(self._epoch), {})
        known = record.setdefault(key, [])
        for shape in shapes:
            if shape not in known:
                known.append(shape)

    def _batch(self, trainer: pl.Trainer, stage: str, batch: Any) -> None:
        self._epoch = trainer.current_epoch
        self._add(stage, "batch", _image_shapes(batch))
        self._armed = stage

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch(trainer, "train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._batch(trainer, "validation", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._batch(trainer, "test", batch)

    def _write(self, trainer: pl.Trainer) -> None:
        path = Path(trainer.default_root_dir) / "input_shapes.json"
        path.write_text(json.dumps(self.seen, indent=1))

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self._write(trainer)
