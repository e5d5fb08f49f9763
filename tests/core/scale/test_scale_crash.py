"""Crash safety: a training subprocess killed with SIGKILL at random moments, one kill while a
checkpoint is being written, and a damaged last.ckpt; the same command then finishes the run."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

import pytest
import torch
from scale_helpers import run_dir, run_train, scale_env, train_command

from kbaselines.core.cluster.checkpoint_io import AtomicCheckpointIO
from kbaselines.core.cluster.resume import resume_checkpoint
from kbaselines.core.config import PROJECT_ROOT

# a checkpoint (last.ckpt) at every training step, so that kills land during writes too
FREQUENT = [
    "trainer.max_epochs=2",
    "callbacks.last_checkpoint.every_n_train_steps=1",
]


def _kill_when(command: list[str], ready, delay: float, timeout: float = 600) -> None:
    """Start ``command``; once ``ready()`` holds, wait ``delay`` s and SIGKILL it."""
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=scale_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                return  # finished before the kill
            if time.monotonic() > deadline:
                pytest.fail("the training subprocess never reached the point to kill it")
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        process.kill()
        process.wait()


def test_killed_runs_restart_and_finish(scale_tiny: list[str], tmp_path: Path) -> None:
    overrides = [*scale_tiny, *FREQUENT, f"paths.log_dir={tmp_path}", "run_name=crash"]
    folder = run_dir(tmp_path, "crash")
    checkpoints = folder / "fold_0" / "checkpoints"
    rng = random.Random(7)

    # 1. in the middle of a checkpoint write: as soon as a temporary checkpoint file appears
    _kill_when(train_command(*overrides), lambda: any(checkpoints.glob(".last.ckpt.*.tmp")), 0)
    # 2. and 3. at random moments after training started
    for _ in range(2):
        _kill_when(
            train_command(*overrides),
            lambda: (checkpoints / "last.ckpt").exists(),
            rng.uniform(0.0, 3.0),
        )
    assert (checkpoints / "last.ckpt").exists()
    # every checkpoint left behind loads (atomic writes: no half file under a final name)
    for path in checkpoints.glob("*.ckpt"):
        torch.load(path, map_location="cpu", weights_only=True)
    # 4. last.ckpt damaged on disk: the run falls back to last-prev.ckpt with a warning. Fold 0
    # may have finished in one of the starts above (how far a start gets depends on the machine's
    # speed); a finished fold is skipped, so mark it unfinished: the restart must resume it
    if (checkpoints / "last-prev.ckpt").exists():
        (checkpoints / "last.ckpt").write_bytes(b"not a checkpoint")
        (folder / "fold_0" / "metrics.json").unlink(missing_ok=True)
        fallback = True
    else:
        fallback = False
    result = run_train(*overrides)
    log = result.stdout + result.stderr
    if fallback:
        assert "Resuming fold_0 from" in log and "last-prev.ckpt" in log
        assert "newer checkpoints were not used" in log and "last.ckpt:" in log
    summary = json.loads((folder / "cv_summary.json").read_text())
    assert summary["num_folds"] == 2 and len(summary["metrics"]["test/roc_auc"]["folds"]) == 2
    assert not list(checkpoints.glob("*.tmp"))


def test_atomic_save_keeps_the_previous_last(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    last = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {}, "loops": {}, "step": 1}, last)
    io.save_checkpoint({"state_dict": {}, "loops": {}, "step": 2}, last)
    assert torch.load(last, weights_only=True)["step"] == 2
    assert torch.load(tmp_path / "checkpoints" / "last-prev.ckpt", weights_only=True)["step"] == 1
    assert sorted(p.name for p in last.parent.iterdir()) == ["last-prev.ckpt", "last.ckpt"]


def test_failed_save_leaves_the_old_file(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    best = tmp_path / "best.ckpt"
    io.save_checkpoint({"step": 1}, best)
    with pytest.raises(Exception):  # noqa: B017 - torch.save refuses an unpicklable object
        io.save_checkpoint({"step": 2, "bad": lambda: None}, best)
    assert torch.load(best, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_resume_prefers_the_newest_readable(tmp_path: Path, caplog) -> None:
    io = AtomicCheckpointIO()
    fold = tmp_path / "fold_0"
    last = fold / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(fold) is None
    io.save_checkpoint({"state_dict": {}, "loops": {}}, last)
    io.save_checkpoint({"state_dict": {}, "loops": {}}, last)
    assert resume_checkpoint(fold) == last
    hpc = fold / "hpc_ckpt_1.ckpt"
    io.save_checkpoint({"state_dict": {}, "loops": {}}, hpc)
    assert resume_checkpoint(fold) == hpc
    hpc.write_bytes(b"\0" * 10)  # damaged
    (fold / "checkpoints" / ".last.ckpt.abc.tmp").write_bytes(b"half")
    with caplog.at_level("WARNING"):
        assert resume_checkpoint(fold) == last
    assert f"Resuming fold_0 from {last}" in caplog.text and str(hpc) in caplog.text
    assert not (fold / "checkpoints" / ".last.ckpt.abc.tmp").exists()
