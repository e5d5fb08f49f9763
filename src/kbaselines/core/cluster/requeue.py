"""Preemption: on the cluster's warning signal, checkpoint at the next batch boundary and requeue.

SLURM sends ``--signal=USR1@<seconds>`` before it stops a job (time limit or preemption). Lightning's
own SLURM handler saves a checkpoint inside the signal handler, i.e. at an arbitrary point of a
training step (half an optimizer step is possible). This callback only records the signal; the
checkpoint is written at the end of the current batch, when model, optimizer, scheduler and loop
counters agree, through the trainer's (atomic) checkpoint IO. Under SLURM the job is then requeued
(``scontrol requeue``) and waits for SLURM to stop it; elsewhere the process stops with
:class:`Preempted` (``train.py`` exits with status 3).
The same command, started again (by the requeued job), resumes from that checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

__all__ = ["Preempted", "PreemptionCheckpoint", "slurm_job_id"]

log = logging.getLogger(__name__)

# process exit status of a preempted run (train.py); a requeued job starts again anyway
PREEMPTED_EXIT_CODE = 3


class Preempted(RuntimeError):
    """The run stopped on the preemption signal after writing its resume checkpoint."""


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes (array jobs: ``<array>_<task>``), or None off SLURM."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class PreemptionCheckpoint(Callback):
    """Checkpoint to ``<fold>/hpc_ckpt_<n>.ckpt`` and requeue when ``signal_name`` arrives.

    Args:
        signal_name: the warning signal (``SIGUSR1``, the one ``--signal=USR1@<s>`` sends and the
            one the SLURM trainer config gives Lightning's ``SLURMEnvironment``).
        requeue: call ``scontrol requeue <job>`` when running in a SLURM job.
    """

    def __init__(self, signal_name: str = "SIGUSR1", requeue: bool = True) -> None:
        self.signum = signal.Signals[signal_name]
        self.requeue = requeue
        self._requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        log.info("Received %s: checkpointing at the end of this batch", signal.Signals(signum).name)
        self._requested = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning's signal connector, so this handler replaces its SLURM one on the signal
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._handler)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        stop = self._requested
        if trainer.world_size > 1:  # every rank stops at the same batch
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path)
        trainer.strategy.barrier("preempted")
        log.warning("Preempted at global step %d: resume checkpoint %s", trainer.global_step, path)
        job = slurm_job_id()
        if self.requeue and job is not None:
            if trainer.is_global_zero:
                result = subprocess.run(["scontrol", "requeue", job], check=False)
                log.warning("scontrol requeue %s: exit status %d", job, result.returncode)
            # as Lightning's handler: SLURM stops the requeued job (SIGTERM, then SIGKILL) and
            # starts it again; exiting here would report a failed job to submitit first
            while True:
                signal.pause()
        raise Preempted(
            f"stopped on {self.signum.name} at global step {trainer.global_step}; start the same "
            f"command again to resume from {Path(path).name}"
        )
