"""Callbacks the scale tests add to a training subprocess (``PYTHONPATH=tests/scale``)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class SignalAtStep(Callback):
    """Send ``signal_name`` to this process when training reaches global step ``step``: the
    preemption warning arriving in the middle of an epoch, at a known place."""

    def __init__(self, step: int, signal_name: str = "SIGUSR1") -> None:
        self.step = step
        self.signum = signal.Signals[signal_name]

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.kill(os.getpid(), self.signum)
