"""The SLURM dry run: the sbatch script of a fold sweep, printed by submitit's own code, with one
task per GPU and the requeue signal, without a cluster; a signal mismatch is reported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kbaselines.core.cluster.run_name import pin_run_name
from kbaselines.core.config import PROJECT_ROOT

pytestmark = pytest.mark.cli

SWEEP = [
    "+experiment=kface_lightcnn9",
    "hydra/launcher=slurm",
    "trainer=slurm",
    "trainer.devices=4",
    "trainer.num_nodes=2",
    "hydra.launcher.partition=gpu",
    "hydra.launcher.account=proj42",
    "run_name=r1",
    "cv.fold=0,1,2,3,4",
]


def _dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/slurm_dry_run.py", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dry_run_prints_the_job_script() -> None:
    result = _dry_run(*SWEEP)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "#SBATCH --array=0-4%5",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj42",
        "#SBATCH --signal=USR1@120",
        "#SBATCH --time=1440",
        "#SBATCH --mem=64GB",
        "#SBATCH --cpus-per-task=8",
    ):
        assert line in out, line
    assert out.count("#SBATCH --signal=") == 1
    assert "srun" in out and "submitit.core._submit" in out
    assert "logs/kface_lightcnn9/r1/.submitit/" in out
    assert out.count("#   job ") == 5 and "cv.fold=4" in out


def test_dry_run_reports_a_signal_mismatch() -> None:
    result = _dry_run(*SWEEP, "callbacks.preemption.signal_name=SIGUSR2")
    assert result.returncode == 1
    assert "signal mismatch: callbacks.preemption.signal_name=SIGUSR2" in result.stderr


def test_run_name_is_pinned_once() -> None:
    argv = pin_run_name(["train.py", "-m", "cv.fold=0,1", "--cfg", "job"])
    assert argv[:2] == ["train.py", "-m"] and argv[2].startswith("run_name=")
    assert argv[3:] == ["cv.fold=0,1", "--cfg", "job"]
    assert pin_run_name(argv) == argv
    assert pin_run_name(["train.py", "-m"])[2].startswith("run_name=")
    assert pin_run_name(["train.py", "run_name=x"]) == ["train.py", "run_name=x"]


def test_jobs_expand_as_hydras_basic_sweeper() -> None:
    """Our expansion (public override API) against Hydra's own sweeper, the reference."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from kbaselines.core.cluster.dry_run import job_overrides

    overrides = ["+experiment=x", "cv.fold=range(0,3)", "model=a,b", "x=[1,2]", 'q="a,b"']
    parsed = OverridesParser.create().parse_overrides(overrides)
    expected = [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    assert job_overrides(overrides) == expected and len(expected) == 6
