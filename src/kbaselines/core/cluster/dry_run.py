"""The sbatch script and resources of a SLURM sweep, made by submitit's own code, not submitted."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

__all__ = ["job_overrides", "launcher_parameters", "sbatch_script", "signal_mismatches"]


def job_overrides(overrides: list[str]) -> list[list[str]]:
    """The override list of every job of the sweep, as Hydra's basic sweeper expands it: the
    cartesian product of the sweep values, in command-line order."""
    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(job) for job in itertools.product(*choices)]


def launcher_parameters(launcher: DictConfig) -> dict[str, Any]:
    """The submitit executor parameters the hydra-submitit launcher would set (resolved)."""
    params = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(params, dict)
    params.pop("_target_", None)
    return params


def sbatch_script(params: dict[str, Any], num_jobs: int) -> str:
    """The job script ``sbatch`` would get for an array of ``num_jobs`` jobs.

    The parameters go through the same conversion as in the launcher (submitit's generic names,
    then its SLURM executor's), into an executor that skips the check for ``srun`` on the PATH.
    """
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    class OfflineSlurmExecutor(SlurmExecutor):
        @classmethod
        def affinity(cls) -> int:
            return 1

    params = dict(params)
    executor = OfflineSlurmExecutor(
        Path(params.pop("submitit_folder")), max_num_timeout=params.pop("max_num_timeout")
    )
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    converted = executor._convert_parameters({k: v for k, v in params.items() if k in generic})
    converted.update({k: v for k, v in params.items() if k not in generic})
    executor._internal_update_parameters(**converted)
    executor.parameters["map_count"] = num_jobs  # what map_array sets for an array job
    return executor._make_submission_file_text(executor._submitit_command_str, uid="dry-run")


def signal_mismatches(cfg: DictConfig, params: dict[str, Any]) -> list[str]:
    """Where the launcher's ``--signal`` and the training process's requeue signal disagree."""
    sent = str((params.get("additional_parameters") or {}).get("signal", "USR2@")).split("@")[0]
    expected = f"SIG{sent}"
    problems = []
    callback = (cfg.get("callbacks") or {}).get("preemption")
    if callback is not None and callback.signal_name != expected:
        problems.append(
            f"callbacks.preemption.signal_name={callback.signal_name} but the job gets {expected}"
        )
    for plugin in cfg.trainer.get("plugins") or []:
        signal_name = plugin.get("requeue_signal")
        if signal_name is not None and signal_name != expected:
            problems.append(
                f"trainer plugin requeue_signal={signal_name} but the job gets {expected}"
            )
    return problems
