"""Which folds to skip and which checkpoint each resumes from, decided once by rank 0.

Every DDP rank runs the same fold loop, and ranks that looked at the run folder on their own could
disagree (a checkpoint written between two looks, an unreadable ``last.ckpt``). Rank 0 decides for
every fold before any training. Lightning's local DDP launcher starts the other ranks with a copy of
rank 0's environment, so the plan travels in an environment variable; ranks started by SLURM (one
task per GPU) read the file rank 0 wrote for this job and this start.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from kbaselines.core.io import write_json_atomic

__all__ = ["PLAN_ENV", "FoldPlan", "shared_plan"]

PLAN_ENV = "KBASELINES_FOLD_PLAN"
# fold index -> {"done": bool, "resume": checkpoint path or None}
FoldPlan = dict[str, dict[str, object]]


def _slurm_rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("SLURM_PROCID", 0)), int(os.environ.get("SLURM_NTASKS", 1))


def shared_plan(run_dir: Path, compute: Callable[[], FoldPlan], timeout: float = 600) -> FoldPlan:
    """The plan of rank 0: computed here on rank 0, received on the other ranks."""
    if PLAN_ENV in os.environ and int(os.environ.get("LOCAL_RANK", 0)) > 0:
        return json.loads(os.environ[PLAN_ENV])  # a rank Lightning started from rank 0
    rank, world = _slurm_rank_and_world()
    shared = run_dir / (
        f".fold_plan_{os.environ.get('SLURM_JOB_ID', 'local')}_"
        f"{os.environ.get('SLURM_RESTART_COUNT', '0')}.json"
    )
    if rank == 0:
        plan = compute()
        os.environ[PLAN_ENV] = json.dumps(plan)  # for the ranks Lightning starts from here
        if world > 1:
            write_json_atomic(shared, plan)
        return plan
    deadline = time.monotonic() + timeout
    while not shared.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"rank {rank}: rank 0 wrote no fold plan {shared} within {timeout:.0f} s"
            )
        time.sleep(1)
    return json.loads(shared.read_text())
