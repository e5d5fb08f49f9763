"""The task base: what every LightningModule of the framework shares, and the hooks each overrides.

A task wraps a plain ``nn.Module`` (``net``) given to it ready-made, with ``_partial_`` optimizer
and scheduler factories and the :class:`~kbaselines.core.data.datamodule.DataInfo` of its data.
The base owns what every task would otherwise repeat:

- ``configure_optimizers`` from the factories (frozen parameters left out);
- gathering evaluation outputs across ranks, once each and in dataset order
  (:meth:`BaseTask.gathered` for tensors, :meth:`BaseTask.gathered_objects` for ragged outputs);
- the checkpoint's ``net_sizes`` (what ``eval.py`` rebuilds the net with), from :meth:`net_sizes`;
- ``test_predictions`` (rows written as ``predictions_<stage>.csv`` by the CV layer) and
  :meth:`write_test_outputs` (files of the task's own, called on rank 0 after each test).

Each task overrides small hooks: the steps, ``on_*_epoch_end``, :meth:`net_sizes`,
:meth:`write_test_outputs`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from kbaselines.core.data.datamodule import DataInfo, FoldDataModule
from kbaselines.core.optimization import OptimizerFactory, SchedulerFactory, optimizers

__all__ = ["BaseTask"]

Data = TypeVar("Data", bound=FoldDataModule)


class BaseTask(pl.LightningModule):
    """A LightningModule around ``net`` with the framework's shared evaluation plumbing.

    Args:
        net: the network (a plain ``nn.Module``).
        optimizer: a partial optimizer (``_partial_: true`` in the config), called with the
            parameters that require gradients.
        scheduler: an optional partial LR scheduler, called with the optimizer.
        scheduler_interval: step the scheduler every ``epoch`` or every ``step``.
        info: the facts of the data (class names, joint names...), from the DataModule.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        info: DataInfo | None = None,
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"model.scheduler_interval={scheduler_interval!r}: epoch or step")
        # the factories and the data facts stay out of the checkpoint, which then holds only
        # tensors and plain values and loads with weights_only=True (core.cluster.checkpoint_io)
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler", "info"])
        for key, value in self.hparams.items():  # Hydra passes config nodes; keep plain values
            if isinstance(value, DictConfig | ListConfig):
                self.hparams[key] = OmegaConf.to_container(value, resolve=True)
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.info = info if info is not None else DataInfo()
        self.test_predictions: list[dict[str, Any]] = []
        self._outputs: list[Any] = []

    # -- hooks a task overrides -------------------------------------------------------------------
    def net_sizes(self) -> dict[str, int]:
        """The data-derived sizes the net was built with (``num_classes``), kept in checkpoints."""
        return {}

    def write_test_outputs(self, out_dir: Path, stage: str) -> None:
        """Write the task's own files of a finished test (plots, COCO JSON); rank 0 only."""

    # -- shared plumbing --------------------------------------------------------------------------
    @property
    def data(self) -> FoldDataModule:
        """The DataModule this task is trained or evaluated with."""
        return self.data_as(FoldDataModule)

    def data_as(self, kind: type[Data]) -> Data:
        """The trainer's DataModule as the ``kind`` a family's task needs (its own DataModule
        class, whose declared methods it then calls).

        Raises:
            TypeError: the trainer has no DataModule, or one of another kind.
        """
        datamodule = self.trainer.datamodule
        if not isinstance(datamodule, kind):
            raise TypeError(
                f"{type(self).__name__} needs a {kind.__name__} (pass datamodule= to the "
                f"Trainer), not a {type(datamodule).__name__}"
            )
        return datamodule

    def collect(self, outputs: Mapping[str, torch.Tensor] | Any) -> None:
        """Keep one batch's evaluation outputs (tensors keyed by name, with an ``index`` of the
        samples; or any object with an ``"index"`` for :meth:`gathered_objects`)."""
        self._outputs.append(outputs)

    def has_outputs(self) -> bool:
        """Whether any evaluation batch was collected since the last gathering."""
        return bool(self._outputs)

    def gathered(self) -> dict[str, np.ndarray]:
        """Every rank's collected tensors, concatenated, once per sample (a distributed sampler
        pads with copies) and in dataset order (sorted by ``index``); the buffer is emptied."""
        outputs = {k: torch.cat([o[k] for o in self._outputs]) for k in self._outputs[0]}
        self._outputs.clear()
        if self.trainer.world_size > 1:
            gathered = self.all_gather(outputs)  # [world, n, ...] per key
            outputs = {k: v.reshape(-1, *v.shape[2:]) for k, v in gathered.items()}
        index = outputs["index"].cpu().numpy()
        _, first = np.unique(index, return_index=True)
        return {k: v.cpu().numpy()[first] for k, v in outputs.items()}

    def gathered_objects(self) -> list[dict[str, Any]]:
        """Every rank's collected objects (dicts with an ``"index"``), once each, in dataset
        order; for outputs of varying size (detections). The buffer is emptied."""
        outputs, self._outputs = self._outputs, []
        if self.trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            parts: list[list[dict[str, Any]]] = [[] for _ in range(self.trainer.world_size)]
            dist.all_gather_object(parts, outputs)
            outputs = [o for part in parts for o in part]
        unique = {o["index"]: o for o in outputs}
        return [unique[i] for i in sorted(unique)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the net's data-derived sizes and the data's facts (plain values), so that
        ``eval.py``, ``predict.py`` and ``export.py`` can rebuild the task without the data."""
        checkpoint["net_sizes"] = self.net_sizes()
        checkpoint["data_info"] = dataclasses.asdict(self.info)

    def configure_optimizers(self) -> Any:
        return optimizers(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.scheduler_interval,
        )
