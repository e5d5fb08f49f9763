"""Print the SLURM job script and resources of a training sweep without submitting it.

Takes the arguments of the train.py command, so a cluster config can be checked on any machine:
    python scripts/slurm_dry_run.py +experiment=kface_lightcnn9 data.root=/data/kface \
        hydra/launcher=slurm trainer=slurm trainer.devices=4 cv.fold=0,1,2,3,4
Exit status 1 when the preemption signal of the job and of the training process disagree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import yaml

from kbaselines.core.cluster.dry_run import (
    job_overrides,
    launcher_parameters,
    sbatch_script,
    signal_mismatches,
)
from kbaselines.core.cluster.run_name import pin_run_name
from kbaselines.core.config import compose_config


def main(argv: list[str]) -> int:
    overrides = pin_run_name(["train.py", *argv])[1:]
    jobs = job_overrides(overrides)
    cfg = compose_config(jobs[0], return_hydra_config=True)
    if "submitit" not in str(cfg.hydra.launcher.get("_target_", "")).lower():
        print("the launcher is not a submitit one: add hydra/launcher=slurm", file=sys.stderr)
        return 2
    params = launcher_parameters(cfg.hydra.launcher)
    print(f"# {len(jobs)} job(s), run folder {cfg.hydra.sweep.dir}")
    for number, job in enumerate(jobs):
        print(f"#   job {number}: {' '.join(job)}")
    print("# resources of each job (hydra.launcher, resolved):")
    print(yaml.safe_dump(params, sort_keys=True).rstrip())
    print("# sbatch script:")
    print(sbatch_script(params, num_jobs=len(jobs)))
    problems = signal_mismatches(cfg, params)
    for problem in problems:
        print(f"signal mismatch: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
