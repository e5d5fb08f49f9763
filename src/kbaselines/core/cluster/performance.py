"""Speed settings that change no result definition: torch.compile, channels-last, TF32 matmuls."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from kbaselines.core.task import BaseTask

__all__ = ["PerformanceSettings"]

log = logging.getLogger(__name__)


class PerformanceSettings(Callback):
    """Apply the speed settings to the task's network when a stage starts.

    Args:
        compile: ``torch.compile`` the task's ``net`` in place (state-dict keys unchanged, so
            checkpoints stay loadable without it); worth it on GPUs for runs of hours.
        channels_last: keep conv weights (and so activations) in NHWC, faster with mixed
            precision on tensor-core GPUs.
        float32_matmul_precision: ``"high"`` lets float32 matmuls use TF32 on Ampere and newer.
    """

    def __init__(
        self,
        compile: bool = False,
        channels_last: bool = False,
        float32_matmul_precision: str | None = None,
    ) -> None:
        self.compile = compile
        self.channels_last = channels_last
        self.float32_matmul_precision = float32_matmul_precision
        self._compiled = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.float32_matmul_precision is not None:
            torch.set_float32_matmul_precision(self.float32_matmul_precision)
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile and not self._compiled:
            if not isinstance(pl_module, BaseTask):
                raise TypeError(
                    f"{type(pl_module).__name__} is not a BaseTask with a `net` to compile: set "
                    "callbacks.performance.compile=false"
                )
            net = pl_module.net
            net.compile()
            self._compiled = True
            log.info("torch.compile applied to %s", type(net).__name__)
