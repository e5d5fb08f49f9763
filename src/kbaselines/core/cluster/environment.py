"""The SLURM cluster environment, built from config values (signal names, not enum objects)."""

from __future__ import annotations

import signal

from pytorch_lightning.plugins.environments import SLURMEnvironment

__all__ = ["slurm_environment"]


def slurm_environment(
    auto_requeue: bool = True, requeue_signal: str = "SIGUSR1"
) -> SLURMEnvironment:
    """Lightning's ``SLURMEnvironment`` with requeue on ``requeue_signal`` (``--signal`` of sbatch)."""
    return SLURMEnvironment(
        auto_requeue=auto_requeue, requeue_signal=signal.Signals[requeue_signal]
    )
