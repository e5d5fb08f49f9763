"""The optimizer and LR scheduler of a task, built from the partials Hydra gives it.

The model config (``model/optimizer``, ``model/scheduler``) holds ``_partial_: true`` factories;
every task turns them into Lightning's ``configure_optimizers`` answer the same way here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["OptimizerFactory", "SchedulerFactory", "optimizers"]

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def optimizers(
    params: Iterable[torch.nn.Parameter],
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None = None,
    interval: str = "epoch",
) -> dict[str, Any]:
    """``{"optimizer", "lr_scheduler"}`` for ``configure_optimizers``: the optimizer over the
    parameters that require gradients (frozen backbone layers are left out), and the scheduler
    stepped every ``interval`` (``"epoch"`` or ``"step"``), if any."""
    built = optimizer(params=[p for p in params if p.requires_grad])
    if scheduler is None:
        return {"optimizer": built}
    return {
        "optimizer": built,
        "lr_scheduler": {"scheduler": scheduler(optimizer=built), "interval": interval},
    }
