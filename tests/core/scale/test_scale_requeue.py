"""Preemption on SLURM, simulated on CPU: the warning signal arrives in the middle of an epoch, the
run checkpoints at the end of that batch and requeues (a fake ``scontrol`` that kills the process,
as SLURM does), and the same command resumes where it stopped.

The promise tested (README, "Running on a cluster"): the interrupted epoch continues where it
stopped, so the resumed run ends with the same weights and the same test metrics as a run that
was never interrupted (same seed, CPU, no random augmentation: augmentation draws inside the data
pipeline are not in the checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from scale_helpers import fold_metrics, run_dir, run_train, scale_env

pytestmark = pytest.mark.cli

# 2 epochs of 7 batches (108 training images, batch 16); the signal arrives during step 10
# (epoch 1, batch 4 of 7), a StepLR scheduler steps at every epoch end.
LONGER = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=null",
    "data.augment=false",
    "model/scheduler=step",
    "model.scheduler.step_size=1",
    "cv.fold=0",
]
SIGNAL_AT_STEP_10 = [
    "+callbacks.signal_at._target_=scale_signals.SignalAtStep",
    "+callbacks.signal_at.step=10",
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(scale_tiny: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("uninterrupted")
    run_train(*scale_tiny, *LONGER, f"paths.log_dir={logs}", "run_name=straight")
    return run_dir(logs, "straight")


def test_requeued_run_continues_the_epoch_where_it_stopped(
    scale_tiny: list[str], uninterrupted: Path, tmp_path: Path, fake_scontrol
) -> None:
    bin_dir, record = fake_scontrol
    env = scale_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SLURM_JOB_ID="4242")
    command = [*scale_tiny, *LONGER, *SIGNAL_AT_STEP_10, f"paths.log_dir={tmp_path}", "run_name=r"]
    folder = run_dir(tmp_path, "r")

    first = run_train(*command, env=env, expect=-9)  # killed by SLURM after the requeue
    assert record.read_text().split() == ["requeue", "4242"]
    assert "Preempted at global step 11" in first.stdout + first.stderr
    hpc = folder / "fold_0" / "hpc_ckpt_1.ckpt"
    saved = torch.load(hpc, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 11 and saved["epoch"] == 1
    assert saved["optimizer_states"][0]["state"], "optimizer moments must be in the checkpoint"
    assert saved["lr_schedulers"][0]["last_epoch"] == 1
    assert saved["callbacks"]["ResumableTraining"]["batches_done"] == 4
    assert not (folder / "fold_0" / "metrics.json").exists()

    second = run_train(*command, env=env)  # the requeued job: the same command
    log = second.stdout + second.stderr
    assert f"resuming from {hpc}" in log
    assert "the first 4 batches of the epoch are skipped" in log

    resumed = _weights(folder / "fold_0" / "checkpoints" / "last.ckpt")
    straight = _weights(uninterrupted / "fold_0" / "checkpoints" / "last.ckpt")
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    assert fold_metrics(folder) == fold_metrics(uninterrupted)
